//! Convolution as deep learning uses it: cross-correlation (the kernel is not flipped),
//! with padding, stride, dilation and groups, on single-channel arrays and on batched
//! `N x C x W` and `N x C x H x W` arrays, each with its gradient rule.
//!
//! Every function `foo` has `try_foo`, which returns a [`ShapeError`] where `foo`
//! panics, and `foo_vjp`, which returns the value and the pullback: a closure that maps
//! the output's cotangent to one gradient per argument, [`NoTangent`] for the settings.
//!
//! Small convolutions run direct loops serially, allocating only their output; large
//! ones pack input tiles straight from the `NCHW` array into a matrix product, in
//! parallel over images and output channels.

mod batched;
mod direct;
mod engine;
mod fast;
mod gemm;
mod padding;
mod plan;
mod settings;

pub use batched::{
    conv1d_ncw, conv1d_ncw_vjp, conv2d_nchw, conv2d_nchw_input_grad, conv2d_nchw_vjp,
    conv2d_nchw_weight_grad, try_conv1d_ncw, try_conv2d_nchw, try_conv2d_nchw_input_grad,
    try_conv2d_nchw_weight_grad,
};
pub use settings::{Conv1dSettings, Conv2dSettings, Padding, PaddingMode, output_len};

pub(crate) use plan::{ConvPlan, Shapes};
pub(crate) use settings::AxisPlan;

use ndarray::{Array1, Array2, ArrayBase, Axis, Data, Ix1, Ix2};

use crate::error::ShapeError;
use crate::{NoTangent, Scalar};
use batched::{check_cotangent, or_panic, run, run_with_tape};

fn plan_single(
    operation: &'static str,
    input: &[usize],
    kernel: &[usize],
    settings: &Conv2dSettings,
) -> Result<ConvPlan, ShapeError> {
    let shapes = Shapes {
        operation,
        named: &[("input", input), ("kernel", kernel)],
    };
    let spatial = |s: &[usize]| {
        if s.len() == 1 {
            [1, s[0]]
        } else {
            [s[0], s[1]]
        }
    };
    let [h, w] = spatial(input);
    let [kh, kw] = spatial(kernel);
    ConvPlan::new([1, 1, h, w], [1, 1, kh, kw], None, settings, &shapes)
}

/// Returns the 1-D cross-correlation of a signal with a kernel:
/// `y[j] = sum_q k[q] x̃[j s + q d]`, `x̃` being the padded signal.
///
/// With `x` of length 9 and a 3-tap kernel, valid padding gives 7 outputs; padding 1
/// and stride 2 give 5, the first being `k[1] x[0] + k[2] x[1]`:
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::{Conv1dSettings, conv1d};
///
/// let x = array![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// let k = array![1.0, 10.0, 100.0];
/// let y = conv1d(&x, &k, &Conv1dSettings::new());
/// assert_eq!(y.len(), 7);
/// assert_eq!(y[0], 1.0 + 20.0 + 300.0);
/// let y = conv1d(&x, &k, &Conv1dSettings::new().padding(1).stride(2));
/// assert_eq!(y.len(), 5);
/// assert_eq!(y[0], 10.0 * 1.0 + 100.0 * 2.0);
/// ```
///
/// # Panics
///
/// When the settings do not fit the lengths (see [`try_conv1d`]).
#[track_caller]
#[stagegrad_macros::differentiable(vjp = conv1d_vjp, crate = crate)]
pub fn conv1d<A, S1, S2>(
    input: &ArrayBase<S1, Ix1>,
    kernel: &ArrayBase<S2, Ix1>,
    settings: &Conv1dSettings,
) -> Array1<A>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    or_panic(try_conv1d(input, kernel, settings))
}

/// Returns [`conv1d`]'s output, or an error when the settings do not fit.
///
/// # Errors
///
/// A [`ShapeError`] naming both lengths when a stride or dilation is 0, `groups` is not
/// 1, the dilated kernel exceeds the padded input, or a padding mode's limit is
/// exceeded.
pub fn try_conv1d<A, S1, S2>(
    input: &ArrayBase<S1, Ix1>,
    kernel: &ArrayBase<S2, Ix1>,
    settings: &Conv1dSettings,
) -> Result<Array1<A>, ShapeError>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = plan_single("conv1d", input.shape(), kernel.shape(), &settings.to_2d())?;
    let output = run(as_4d_1(input), as_4d_1(kernel), None, &plan);
    Ok(output
        .into_shape_with_order(plan.width.output)
        .expect("one row"))
}

fn as_4d_1<A, S: Data<Elem = A>>(array: &ArrayBase<S, Ix1>) -> ndarray::ArrayView4<'_, A> {
    array
        .view()
        .insert_axis(Axis(0))
        .insert_axis(Axis(0))
        .insert_axis(Axis(0))
}

fn as_4d_2<A, S: Data<Elem = A>>(array: &ArrayBase<S, Ix2>) -> ndarray::ArrayView4<'_, A> {
    array.view().insert_axis(Axis(0)).insert_axis(Axis(0))
}

/// Returns [`conv1d`]'s output and its pullback, which maps the output's cotangent `dy`
/// to `(dx, dk, NoTangent)`: `dx = Kᵀ dy` (each output's cotangent scattered back onto
/// the inputs its window read, zero for inputs no window reads) and
/// `dk[q] = sum_j dy[j] x̃[j s + q d]`.
///
/// # Panics
///
/// As [`conv1d`]; the pullback panics when the cotangent's length differs from the
/// output's.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn conv1d_vjp<A, S1, S2>(
    input: &ArrayBase<S1, Ix1>,
    kernel: &ArrayBase<S2, Ix1>,
    settings: &Conv1dSettings,
) -> (
    Array1<A>,
    impl Fn(Array1<A>) -> (Array1<A>, Array1<A>, NoTangent) + use<A, S1, S2>,
)
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = or_panic(plan_single(
        "conv1d",
        input.shape(),
        kernel.shape(),
        &settings.to_2d(),
    ));
    let (output, tape) = run_with_tape(as_4d_1(input), as_4d_1(kernel), None, plan);
    let (input_len, kernel_len, output_len) =
        (plan.width.input, plan.width.kernel, plan.width.output);
    let pullback = move |output_grad: Array1<A>| {
        check_cotangent("conv1d", output_grad.shape(), &[output_len]);
        let (dx, dk, _) = tape.pullback(as_4d_1(&output_grad));
        let dx = dx.into_shape_with_order(input_len).expect("one row");
        let dk = dk.into_shape_with_order(kernel_len).expect("one row");
        (dx, dk, NoTangent)
    };
    (
        output.into_shape_with_order(output_len).expect("one row"),
        pullback,
    )
}

/// Returns the 2-D cross-correlation of an image with a kernel:
/// `y[i, j] = sum_{p, q} k[p, q] x̃[i s_h + p d_h, j s_w + q d_w]`, `x̃` being the padded
/// image.
///
/// The 2 x 2 box filter of 1/4 averages each 2 x 2 window:
///
/// ```
/// use ndarray::{Array2, array};
/// use stagegrad_runtime::{Conv2dSettings, conv2d};
///
/// let image = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
/// let box_filter = Array2::from_elem((2, 2), 0.25);
/// assert_eq!(conv2d(&image, &box_filter, &Conv2dSettings::new()), array![[3.0, 4.0], [6.0, 7.0]]);
/// ```
///
/// # Panics
///
/// When the settings do not fit the shapes (see [`try_conv2d`]).
#[track_caller]
#[stagegrad_macros::differentiable(vjp = conv2d_vjp, crate = crate)]
pub fn conv2d<A, S1, S2>(
    input: &ArrayBase<S1, Ix2>,
    kernel: &ArrayBase<S2, Ix2>,
    settings: &Conv2dSettings,
) -> Array2<A>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    or_panic(try_conv2d(input, kernel, settings))
}

/// Returns [`conv2d`]'s output, or an error when the settings do not fit.
///
/// # Errors
///
/// A [`ShapeError`] naming both shapes when a stride or dilation is 0, `groups` is not
/// 1, the dilated kernel exceeds the padded image on an axis, or a padding mode's limit
/// is exceeded.
pub fn try_conv2d<A, S1, S2>(
    input: &ArrayBase<S1, Ix2>,
    kernel: &ArrayBase<S2, Ix2>,
    settings: &Conv2dSettings,
) -> Result<Array2<A>, ShapeError>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = plan_single("conv2d", input.shape(), kernel.shape(), settings)?;
    let output = run(as_4d_2(input), as_4d_2(kernel), None, &plan);
    Ok(output
        .into_shape_with_order((plan.height.output, plan.width.output))
        .expect("one plane"))
}

/// Returns [`conv2d`]'s output and its pullback, which maps the output's cotangent `dy`
/// to `(dx, dk, NoTangent)`: `dx = Kᵀ dy` on the row-major flattened image (zero where
/// no window reads) and `dk[p, q] = sum_{i, j} dy[i, j] x̃[i s_h + p d_h, j s_w + q d_w]`.
///
/// # Panics
///
/// As [`conv2d`]; the pullback panics when the cotangent's shape differs from the
/// output's.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn conv2d_vjp<A, S1, S2>(
    input: &ArrayBase<S1, Ix2>,
    kernel: &ArrayBase<S2, Ix2>,
    settings: &Conv2dSettings,
) -> (
    Array2<A>,
    impl Fn(Array2<A>) -> (Array2<A>, Array2<A>, NoTangent) + use<A, S1, S2>,
)
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = or_panic(plan_single(
        "conv2d",
        input.shape(),
        kernel.shape(),
        settings,
    ));
    let (output, tape) = run_with_tape(as_4d_2(input), as_4d_2(kernel), None, plan);
    let input_shape = (plan.height.input, plan.width.input);
    let kernel_shape = (plan.height.kernel, plan.width.kernel);
    let output_shape = (plan.height.output, plan.width.output);
    let pullback = move |output_grad: Array2<A>| {
        check_cotangent(
            "conv2d",
            output_grad.shape(),
            &[output_shape.0, output_shape.1],
        );
        let (dx, dk, _) = tape.pullback(as_4d_2(&output_grad));
        let dx = dx.into_shape_with_order(input_shape).expect("one plane");
        let dk = dk.into_shape_with_order(kernel_shape).expect("one plane");
        (dx, dk, NoTangent)
    };
    (
        output
            .into_shape_with_order(output_shape)
            .expect("one plane"),
        pullback,
    )
}
