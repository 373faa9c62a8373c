//! The error that the shape-checked primitives (convolution, pooling, Toeplitz builders)
//! return when their arguments do not fit together.

use std::fmt;

/// Arguments of a primitive whose shapes or settings do not fit together, for example a
/// weight whose channel count does not match the input, a stride of 0, or a kernel that
/// is longer than the padded input.
///
/// The message names the operation, says what is wrong, and lists every shape
/// involved, so it can be shown to a user as it is:
///
/// ```
/// use stagegrad_runtime::{Padding, output_len};
///
/// let error = output_len(2, 5, Padding::Valid, 1, 1).unwrap_err();
/// assert_eq!(error.operation(), "output_len");
/// assert!(error.to_string().contains("kernel extent 5 exceeds the padded input length 2"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    operation: &'static str,
    reason: String,
    shapes: Vec<(&'static str, Vec<usize>)>,
}

impl ShapeError {
    /// Creates an error for `operation` with a lowercase `reason` and no shapes yet.
    pub fn new(operation: &'static str, reason: impl Into<String>) -> Self {
        Self {
            operation,
            reason: reason.into(),
            shapes: Vec::new(),
        }
    }

    /// Adds a named shape to the list that the message prints.
    pub fn with_shape(mut self, name: &'static str, shape: &[usize]) -> Self {
        self.shapes.push((name, shape.to_vec()));
        self
    }

    /// Returns the name of the operation that failed, such as `"conv2d_nchw"`.
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// Returns what is wrong, without the operation name and the shapes.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Returns every shape involved, each with the name of its argument.
    pub fn shapes(&self) -> &[(&'static str, Vec<usize>)] {
        &self.shapes
    }
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid arguments to `{}`: {}",
            self.operation, self.reason
        )?;
        if !self.shapes.is_empty() {
            f.write_str(" (")?;
            for (i, (name, shape)) in self.shapes.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{name} {shape:?}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl std::error::Error for ShapeError {}
