//! Short descriptions of values for the trace.

use std::fmt;

use ndarray::{ArrayBase, Data, Dimension};

use crate::{NoTangent, Scalar};

/// A value as the trace shows it: a scalar in full, an array by its shape and statistics.
#[derive(Debug, Clone, PartialEq)]
pub enum Summary {
    /// A scalar.
    Scalar(f64),
    /// An array, by shape and statistics; `values` holds up to the first 6 elements in
    /// row-major order.
    Array {
        /// The array's shape.
        shape: Vec<usize>,
        /// The smallest element.
        min: f64,
        /// The largest element.
        max: f64,
        /// The mean of the elements.
        mean: f64,
        /// Up to the first 6 elements, row-major.
        values: Vec<f64>,
    },
    /// No gradient: the value is a constant of the function.
    NoTangent,
    /// Any other value, in words.
    Other(String),
}

impl Summary {
    /// Returns the scalar, if this is one.
    pub fn as_scalar(&self) -> Option<f64> {
        match self {
            Summary::Scalar(value) => Some(*value),
            _ => None,
        }
    }

    /// Returns the shape: empty for a scalar, `None` for other values.
    pub fn shape(&self) -> Option<&[usize]> {
        match self {
            Summary::Scalar(_) => Some(&[]),
            Summary::Array { shape, .. } => Some(shape),
            _ => None,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Summary::Scalar(value) => write!(f, "{}", format_number(*value)),
            Summary::Array {
                shape,
                min,
                max,
                mean,
                ..
            } => write!(
                f,
                "{shape:?} min {} max {} mean {}",
                format_number(*min),
                format_number(*max),
                format_number(*mean)
            ),
            Summary::NoTangent => write!(f, "none"),
            Summary::Other(text) => write!(f, "{text}"),
        }
    }
}

/// Formats a number as traces print it: whole numbers without a fraction, others with up
/// to 6 decimal places and no trailing zeros, and values that would print as 0 in
/// scientific notation.
pub fn format_number(value: f64) -> String {
    if value.is_nan() || value.is_infinite() {
        return format!("{value}");
    }
    if value == value.trunc() && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let text = format!("{value:.6}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "0" || text == "-0" {
        format!("{value:.3e}")
    } else {
        text.to_owned()
    }
}

/// A value the trace can describe.
pub trait Summarize {
    /// Returns the description of this value.
    fn summarize(&self) -> Summary;
}

impl Summarize for f32 {
    fn summarize(&self) -> Summary {
        Summary::Scalar(f64::from(*self))
    }
}

impl Summarize for f64 {
    fn summarize(&self) -> Summary {
        Summary::Scalar(*self)
    }
}

impl Summarize for NoTangent {
    fn summarize(&self) -> Summary {
        Summary::NoTangent
    }
}

impl<T: Summarize + ?Sized> Summarize for &T {
    fn summarize(&self) -> Summary {
        (**self).summarize()
    }
}

impl<T: Summarize> Summarize for Option<T> {
    fn summarize(&self) -> Summary {
        match self {
            Some(value) => value.summarize(),
            None => Summary::Other("none".to_owned()),
        }
    }
}

impl<T: Summarize> Summarize for Result<T, ndarray::ShapeError> {
    fn summarize(&self) -> Summary {
        match self {
            Ok(value) => value.summarize(),
            Err(error) => Summary::Other(format!("error: {error}")),
        }
    }
}

impl<A: Scalar, S: Data<Elem = A>, D: Dimension> Summarize for ArrayBase<S, D> {
    fn summarize(&self) -> Summary {
        if self.is_empty() {
            return Summary::Array {
                shape: self.shape().to_vec(),
                min: f64::NAN,
                max: f64::NAN,
                mean: f64::NAN,
                values: Vec::new(),
            };
        }
        let mut min = f64::INFINITY;
        let mut max = f64::NEG_INFINITY;
        let mut sum = 0.0;
        for &element in self.iter() {
            let element = element.to_f64_lossless();
            min = min.min(element);
            max = max.max(element);
            sum += element;
        }
        Summary::Array {
            shape: self.shape().to_vec(),
            min,
            max,
            mean: sum / self.len() as f64,
            values: self.iter().take(6).map(|a| a.to_f64_lossless()).collect(),
        }
    }
}

macro_rules! summarize_integer {
    ($($t:ty),*) => {$(
        impl Summarize for $t {
            fn summarize(&self) -> Summary {
                Summary::Other(self.to_string())
            }
        }
    )*};
}

summarize_integer!(bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// Describes a sequence of integers (class labels, indices) by its first 6 elements and
/// its length.
fn summarize_sequence<T: fmt::Display>(elements: &[T]) -> Summary {
    let shown: Vec<String> = elements.iter().take(6).map(ToString::to_string).collect();
    let text = if elements.len() > shown.len() {
        format!("[{}, ...] ({} elements)", shown.join(", "), elements.len())
    } else {
        format!("[{}]", shown.join(", "))
    };
    Summary::Other(text)
}

macro_rules! summarize_integer_sequence {
    ($($t:ty),*) => {$(
        impl Summarize for [$t] {
            fn summarize(&self) -> Summary {
                summarize_sequence(self)
            }
        }

        impl Summarize for Vec<$t> {
            fn summarize(&self) -> Summary {
                summarize_sequence(self)
            }
        }
    )*};
}

summarize_integer_sequence!(bool, i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

macro_rules! summarize_tuple {
    ($($name:ident $index:tt),+) => {
        impl<$($name: Summarize),+> Summarize for ($($name,)+) {
            fn summarize(&self) -> Summary {
                let parts = [$(self.$index.summarize().to_string()),+];
                Summary::Other(format!("({})", parts.join(", ")))
            }
        }
    };
}

summarize_tuple!(A 0, B 1);
summarize_tuple!(A 0, B 1, C 2);
summarize_tuple!(A 0, B 1, C 2, D 3);
