//! Padding, stride, dilation and groups: the settings of convolution and pooling, and
//! the output-size rule they imply.

use crate::error::ShapeError;
use crate::{Differentiable, NoTangent};

/// How much padding one spatial axis gets.
///
/// The output length of an axis of length `W`, kernel length `K`, stride `s` and
/// dilation `d`, padded by `p_before` and `p_after`, is
/// `floor((W + p_before + p_after - d(K - 1) - 1) / s) + 1`.
///
/// ```
/// use stagegrad_runtime::{Padding, output_len};
///
/// assert_eq!(output_len(9, 3, Padding::Valid, 1, 1).unwrap(), 7);
/// assert_eq!(output_len(9, 4, Padding::Same, 1, 1).unwrap(), 9);
/// assert_eq!(output_len(9, 3, Padding::SameUpper, 2, 1).unwrap(), 5);
/// assert_eq!(output_len(9, 3, Padding::Symmetric(1), 2, 1).unwrap(), 5);
/// assert_eq!(output_len(9, 3, Padding::Explicit(0, 2), 1, 1).unwrap(), 9);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Padding {
    /// No padding: only windows that lie entirely inside the input.
    #[default]
    Valid,
    /// PyTorch's `padding="same"`: the output is as long as the input. The total padding
    /// `d(K - 1)` is split with the odd element on the right (`after`). It requires
    /// stride 1; for a stride use [`Padding::SameUpper`].
    Same,
    /// TensorFlow's `padding="SAME"` (ONNX `SAME_UPPER`): the output length is
    /// `ceil(W / s)` for any stride, and the total padding
    /// `max((ceil(W / s) - 1) s + d(K - 1) + 1 - W, 0)` is split with the odd element
    /// after.
    SameUpper,
    /// The same amount before and after.
    Symmetric(usize),
    /// Explicit amounts `(before, after)`: top and bottom for the height axis, left and
    /// right for the width axis.
    Explicit(usize, usize),
}

impl From<usize> for Padding {
    /// Turns an amount into [`Padding::Symmetric`], so `settings.padding(1)` works.
    fn from(amount: usize) -> Self {
        Padding::Symmetric(amount)
    }
}

impl From<(usize, usize)> for Padding {
    /// Turns `(before, after)` into [`Padding::Explicit`].
    fn from((before, after): (usize, usize)) -> Self {
        Padding::Explicit(before, after)
    }
}

impl Padding {
    /// Returns the padding `(before, after)` this rule gives an axis of length `input`
    /// under a kernel of length `kernel`, with `stride` and `dilation`.
    ///
    /// # Errors
    ///
    /// A [`ShapeError`] when the stride, dilation or kernel length is 0, when
    /// [`Padding::Same`] meets a stride other than 1, or when the dilated kernel is
    /// longer than the padded input.
    pub fn amounts(
        self,
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
    ) -> Result<(usize, usize), ShapeError> {
        AxisPlan::new(input, kernel, self, stride, dilation)
            .map(|plan| (plan.before, plan.after))
            .map_err(|reason| scalar_error("Padding::amounts", reason, input, kernel))
    }
}

/// The values of the padded border.
///
/// The limits follow PyTorch: `Reflect` needs each side's padding to be smaller than
/// the input length, `Circular` needs it no larger than the input length, and
/// `Replicate` needs a non-empty input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum PaddingMode {
    /// Zeros.
    #[default]
    Zeros,
    /// The input mirrored at its edge, without repeating the edge: `[c b | a b c | b a]`.
    Reflect,
    /// The edge value repeated: `[a a | a b c | c c]`.
    Replicate,
    /// The input wrapped around: `[b c | a b c | a b]`.
    Circular,
}

impl PaddingMode {
    /// Maps a position of the padded axis, given relative to the first input element
    /// (so negative in the leading padding), to the input element it copies; `None`
    /// for a zero.
    pub(crate) fn source(self, position: isize, len: usize) -> Option<usize> {
        let len = len as isize;
        if (0..len).contains(&position) {
            return Some(position as usize);
        }
        let index = match self {
            PaddingMode::Zeros => return None,
            PaddingMode::Reflect if position < 0 => -position,
            PaddingMode::Reflect => 2 * (len - 1) - position,
            PaddingMode::Replicate => position.clamp(0, len - 1),
            PaddingMode::Circular => position.rem_euclid(len),
        };
        Some(index as usize)
    }

    /// Checks PyTorch's limits on the amount of padding for this mode.
    pub(crate) fn check(
        self,
        axis: &str,
        input: usize,
        before: usize,
        after: usize,
    ) -> Result<(), String> {
        let largest = before.max(after);
        match self {
            PaddingMode::Zeros => Ok(()),
            PaddingMode::Reflect if largest >= input => Err(format!(
                "`Reflect` padding ({before}, {after}) on the {axis} axis needs each side smaller than the input length {input}"
            )),
            PaddingMode::Circular if largest > input => Err(format!(
                "`Circular` padding ({before}, {after}) on the {axis} axis needs each side no larger than the input length {input}"
            )),
            PaddingMode::Replicate if input == 0 && largest > 0 => Err(format!(
                "`Replicate` padding on the {axis} axis needs a non-empty input"
            )),
            _ => Ok(()),
        }
    }
}

/// Returns the output length of one axis: `floor((W + p_before + p_after - d(K - 1) - 1) / s) + 1`
/// for an input of length `input` (`W`), a kernel of length `kernel` (`K`), the padding
/// that `padding` gives, `stride` (`s`) and `dilation` (`d`).
///
/// ```
/// use stagegrad_runtime::{Padding, output_len};
///
/// // x of length 9, a 3-tap kernel, padding 1, stride 2: 5 outputs.
/// assert_eq!(output_len(9, 3, Padding::Symmetric(1), 2, 1).unwrap(), 5);
/// // A dilated kernel of extent 2 (3 - 1) + 1 = 5 on 9 elements: 5 outputs.
/// assert_eq!(output_len(9, 3, Padding::Valid, 1, 2).unwrap(), 5);
/// assert!(output_len(9, 3, Padding::Valid, 0, 1).is_err());
/// ```
///
/// # Errors
///
/// A [`ShapeError`] when `stride`, `dilation` or `kernel` is 0, when the dilated kernel
/// `d(K - 1) + 1` is longer than the padded input, or when [`Padding::Same`] meets a
/// stride other than 1.
pub fn output_len(
    input: usize,
    kernel: usize,
    padding: Padding,
    stride: usize,
    dilation: usize,
) -> Result<usize, ShapeError> {
    AxisPlan::new(input, kernel, padding, stride, dilation)
        .map(|plan| plan.output)
        .map_err(|reason| scalar_error("output_len", reason, input, kernel))
}

fn scalar_error(
    operation: &'static str,
    reason: String,
    input: usize,
    kernel: usize,
) -> ShapeError {
    ShapeError::new(operation, reason)
        .with_shape("input", &[input])
        .with_shape("kernel", &[kernel])
}

/// The resolved geometry of one spatial axis: lengths, stride, dilation and padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AxisPlan {
    pub input: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    pub before: usize,
    pub after: usize,
    pub output: usize,
}

impl AxisPlan {
    /// Resolves `padding` and computes the output length, or returns the reason it fails.
    pub fn new(
        input: usize,
        kernel: usize,
        padding: Padding,
        stride: usize,
        dilation: usize,
    ) -> Result<Self, String> {
        if stride == 0 {
            return Err("stride must be positive, found 0".into());
        }
        if dilation == 0 {
            return Err("dilation must be positive, found 0".into());
        }
        if kernel == 0 {
            return Err("kernel length must be positive, found 0".into());
        }
        let span = dilation * (kernel - 1);
        let (before, after) = match padding {
            Padding::Valid => (0, 0),
            Padding::Symmetric(amount) => (amount, amount),
            Padding::Explicit(before, after) => (before, after),
            Padding::Same if stride != 1 => {
                return Err(format!(
                    "padding `Same` requires stride 1, found stride {stride}; use `Padding::SameUpper` for TensorFlow-style `same` padding with a stride"
                ));
            }
            Padding::Same => (span / 2, span - span / 2),
            Padding::SameUpper => {
                let output = input.div_ceil(stride);
                let total = (output.saturating_sub(1) * stride + span + 1).saturating_sub(input);
                (total / 2, total - total / 2)
            }
        };
        Self::with_amounts(input, kernel, stride, dilation, before, after)
    }

    /// Builds the plan for explicit amounts; `stride`, `dilation` and `kernel` are positive.
    pub fn with_amounts(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        before: usize,
        after: usize,
    ) -> Result<Self, String> {
        let extent = dilation * (kernel - 1) + 1;
        let padded = input + before + after;
        if extent > padded {
            return Err(format!(
                "dilated kernel extent {extent} exceeds the padded input length {padded}: input {input}, padding {before} + {after}, kernel {kernel}, dilation {dilation}"
            ));
        }
        Ok(Self {
            input,
            kernel,
            stride,
            dilation,
            before,
            after,
            output: (padded - extent) / stride + 1,
        })
    }

    /// Returns the plan of the same axis after its padding has been written into the
    /// input: the input grows by the padding, which becomes 0.
    pub fn padded(self) -> Self {
        Self {
            input: self.input + self.before + self.after,
            before: 0,
            after: 0,
            ..self
        }
    }

    /// Returns the output positions whose tap `tap` reads a real input element (not
    /// padding): the `o` with `0 <= o s - before + tap d < input`.
    #[inline]
    pub fn valid_outputs(&self, tap: usize) -> std::ops::Range<usize> {
        let offset = tap * self.dilation;
        // NOTE: positions are o * stride + offset - before; work in usize by shifting.
        let first = self.before.saturating_sub(offset).div_ceil(self.stride);
        let end_limit = self.input + self.before;
        let end = if end_limit > offset {
            ((end_limit - offset - 1) / self.stride + 1).min(self.output)
        } else {
            0
        };
        first.min(end)..end
    }

    /// Returns the input position that output `o` reads at tap `tap`, relative to the
    /// first input element (negative inside the leading padding).
    #[inline]
    pub fn position(&self, output: usize, tap: usize) -> isize {
        (output * self.stride + tap * self.dilation) as isize - self.before as isize
    }
}

/// Settings of a 1-D convolution ([`conv1d`](crate::conv1d), [`conv1d_ncw`](crate::conv1d_ncw)).
///
/// `Default` is valid padding with zeros, stride 1, dilation 1 and one group.
///
/// ```
/// use stagegrad_runtime::{Conv1dSettings, Padding};
///
/// let settings = Conv1dSettings::new().padding(1).stride(2);
/// assert_eq!(settings.padding, Padding::Symmetric(1));
/// assert_eq!(settings.stride, 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv1dSettings {
    /// Padding of the width axis.
    pub padding: Padding,
    /// The values of the padding.
    pub padding_mode: PaddingMode,
    /// Step between two output positions, at least 1.
    pub stride: usize,
    /// Step between two kernel taps, at least 1.
    pub dilation: usize,
    /// Number of groups: input and output channels are split into this many groups,
    /// each convolved with its own weights. It must divide both channel counts.
    pub groups: usize,
}

impl Default for Conv1dSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl Conv1dSettings {
    /// Returns the default settings: valid padding, stride 1, dilation 1, one group.
    pub const fn new() -> Self {
        Self {
            padding: Padding::Valid,
            padding_mode: PaddingMode::Zeros,
            stride: 1,
            dilation: 1,
            groups: 1,
        }
    }

    /// Sets the padding: a [`Padding`], an amount on each side (`usize`) or
    /// `(before, after)`.
    pub fn padding(mut self, padding: impl Into<Padding>) -> Self {
        self.padding = padding.into();
        self
    }

    /// Sets what the padding holds.
    pub fn padding_mode(mut self, mode: PaddingMode) -> Self {
        self.padding_mode = mode;
        self
    }

    /// Sets the stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// Sets the dilation.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = dilation;
        self
    }

    /// Sets the number of groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// Returns the same convolution as a 2-D one over a height axis of length 1.
    pub(crate) fn to_2d(self) -> Conv2dSettings {
        Conv2dSettings {
            padding: [Padding::Valid, self.padding],
            padding_mode: self.padding_mode,
            stride: [1, self.stride],
            dilation: [1, self.dilation],
            groups: self.groups,
        }
    }
}

/// Settings of a 2-D convolution ([`conv2d`](crate::conv2d), [`conv2d_nchw`](crate::conv2d_nchw)).
///
/// Each per-axis field contains `[height, width]`. `Default` is valid padding with zeros,
/// stride 1, dilation 1 and one group.
///
/// ```
/// use stagegrad_runtime::{Conv2dSettings, Padding};
///
/// let settings = Conv2dSettings::new().padding(Padding::SameUpper).stride(2);
/// assert_eq!(settings.stride, [2, 2]);
/// let settings = Conv2dSettings::new().padding_hw((0, 1), 2).stride_hw(1, 2);
/// assert_eq!(settings.padding, [Padding::Explicit(0, 1), Padding::Symmetric(2)]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dSettings {
    /// Padding of the height and width axes.
    pub padding: [Padding; 2],
    /// The values of the padding.
    pub padding_mode: PaddingMode,
    /// Strides along height and width, each at least 1.
    pub stride: [usize; 2],
    /// Dilations along height and width, each at least 1.
    pub dilation: [usize; 2],
    /// Number of groups: input and output channels are split into this many groups,
    /// each convolved with its own weights. It must divide both channel counts.
    pub groups: usize,
}

impl Default for Conv2dSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl Conv2dSettings {
    /// Returns the default settings: valid padding, stride 1, dilation 1, one group.
    pub const fn new() -> Self {
        Self {
            padding: [Padding::Valid; 2],
            padding_mode: PaddingMode::Zeros,
            stride: [1; 2],
            dilation: [1; 2],
            groups: 1,
        }
    }

    /// Sets the same padding on both axes: a [`Padding`], an amount on each side
    /// (`usize`) or `(before, after)`.
    pub fn padding(mut self, padding: impl Into<Padding>) -> Self {
        self.padding = [padding.into(); 2];
        self
    }

    /// Sets the padding of the height and width axes separately.
    pub fn padding_hw(mut self, height: impl Into<Padding>, width: impl Into<Padding>) -> Self {
        self.padding = [height.into(), width.into()];
        self
    }

    /// Sets what the padding holds.
    pub fn padding_mode(mut self, mode: PaddingMode) -> Self {
        self.padding_mode = mode;
        self
    }

    /// Sets the same stride on both axes.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = [stride; 2];
        self
    }

    /// Sets the strides of the height and width axes separately.
    pub fn stride_hw(mut self, height: usize, width: usize) -> Self {
        self.stride = [height, width];
        self
    }

    /// Sets the same dilation on both axes.
    pub fn dilation(mut self, dilation: usize) -> Self {
        self.dilation = [dilation; 2];
        self
    }

    /// Sets the dilations of the height and width axes separately.
    pub fn dilation_hw(mut self, height: usize, width: usize) -> Self {
        self.dilation = [height, width];
        self
    }

    /// Sets the number of groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }
}

/// Settings are constants of a differentiable function: their tangent is [`NoTangent`].
macro_rules! constant_settings {
    ($($t:ty),*) => {$(
        impl Differentiable for $t {
            type Tangent = NoTangent;
            type Slot = Option<NoTangent>;

            #[inline(always)]
            fn zero_tangent(&self) -> NoTangent {
                NoTangent
            }

            #[inline(always)]
            fn finish(&self, _slot: Option<NoTangent>) -> NoTangent {
                NoTangent
            }

            fn apply_step(&mut self, _step: &NoTangent, _scale: f64) {}
        }
    )*};
}

constant_settings!(Conv1dSettings, Conv2dSettings, Padding, PaddingMode);
