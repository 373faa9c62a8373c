//! Batched, multi-channel convolutions with groups and bias: `conv1d_ncw` and
//! `conv2d_nchw`, with their gradient rules.

use ndarray::{Array1, Array3, Array4, ArrayBase, ArrayView1, ArrayView4, Axis, Data, Ix3, Ix4};

use super::plan::{ConvPlan, Shapes};
use super::settings::{Conv1dSettings, Conv2dSettings};
use super::{engine, padding};
use crate::error::ShapeError;
use crate::{NoTangent, Scalar};

/// The state the pullback of a batched convolution owns: the plan, the input as the
/// kernels read it (padding written in for non-zero modes) and the weight.
pub(crate) struct Tape<A> {
    plan: ConvPlan,
    input: Array4<A>,
    weight: Array4<A>,
    has_bias: bool,
}

impl<A: Scalar> Tape<A> {
    /// Returns the gradients of input, weight and bias (empty without a bias).
    pub fn pullback(&self, output_grad: ArrayView4<'_, A>) -> (Array4<A>, Array4<A>, Array1<A>) {
        let inner = self.inner_plan();
        let input_grad = engine::backward_input(output_grad, self.weight.view(), &inner);
        let input_grad = if self.plan.needs_explicit_padding() {
            padding::pad_adjoint(input_grad.view(), &self.plan)
        } else {
            input_grad
        };
        let weight_grad = engine::backward_weight(output_grad, self.input.view(), &inner);
        let bias_grad = if self.has_bias {
            engine::backward_bias(output_grad)
        } else {
            Array1::zeros(0)
        };
        (input_grad, weight_grad, bias_grad)
    }

    fn inner_plan(&self) -> ConvPlan {
        if self.plan.needs_explicit_padding() {
            self.plan.padded()
        } else {
            self.plan
        }
    }
}

/// Runs a checked plan: writes non-zero padding into the input, then convolves.
pub(crate) fn run<A: Scalar>(
    input: ArrayView4<'_, A>,
    weight: ArrayView4<'_, A>,
    bias: Option<ArrayView1<'_, A>>,
    plan: &ConvPlan,
) -> Array4<A> {
    if plan.needs_explicit_padding() {
        let padded = padding::pad(input, plan);
        engine::forward(padded.view(), weight, bias, &plan.padded())
    } else {
        engine::forward(input, weight, bias, plan)
    }
}

/// Runs a checked plan and keeps what its pullback needs.
pub(crate) fn run_with_tape<A: Scalar>(
    input: ArrayView4<'_, A>,
    weight: ArrayView4<'_, A>,
    bias: Option<ArrayView1<'_, A>>,
    plan: ConvPlan,
) -> (Array4<A>, Tape<A>) {
    let input = if plan.needs_explicit_padding() {
        padding::pad(input, &plan)
    } else {
        input.as_standard_layout().into_owned()
    };
    let weight = weight.as_standard_layout().into_owned();
    let inner = if plan.needs_explicit_padding() {
        plan.padded()
    } else {
        plan
    };
    let output = engine::forward(input.view(), weight.view(), bias, &inner);
    let tape = Tape {
        plan,
        input,
        weight,
        has_bias: bias.is_some(),
    };
    (output, tape)
}

/// Panics unless a cotangent has the output's shape.
pub(crate) fn check_cotangent(operation: &str, cotangent: &[usize], output: &[usize]) {
    assert_eq!(
        cotangent, output,
        "the cotangent passed to the pullback of `{operation}` has shape {cotangent:?} but the output has shape {output:?}"
    );
}

fn plan_2d<A, S1, S2>(
    operation: &'static str,
    input: &ArrayBase<S1, Ix4>,
    weight: &ArrayBase<S2, Ix4>,
    bias: Option<&Array1<A>>,
    settings: &Conv2dSettings,
) -> Result<ConvPlan, ShapeError>
where
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    // Stack arrays, so checking allocates nothing.
    let bias_shape = [bias.map_or(0, |b| b.len())];
    let all = [
        ("input", input.shape()),
        ("weight", weight.shape()),
        ("bias", &bias_shape[..]),
    ];
    let shapes = Shapes {
        operation,
        named: if bias.is_some() { &all } else { &all[..2] },
    };
    let shape = |s: &[usize]| [s[0], s[1], s[2], s[3]];
    ConvPlan::new(
        shape(input.shape()),
        shape(weight.shape()),
        bias.map(|b| b.len()),
        settings,
        &shapes,
    )
}

fn plan_1d<A, S1, S2>(
    operation: &'static str,
    input: &ArrayBase<S1, Ix3>,
    weight: &ArrayBase<S2, Ix3>,
    bias: Option<&Array1<A>>,
    settings: &Conv1dSettings,
) -> Result<ConvPlan, ShapeError>
where
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    // Stack arrays, so checking allocates nothing.
    let bias_shape = [bias.map_or(0, |b| b.len())];
    let all = [
        ("input", input.shape()),
        ("weight", weight.shape()),
        ("bias", &bias_shape[..]),
    ];
    let shapes = Shapes {
        operation,
        named: if bias.is_some() { &all } else { &all[..2] },
    };
    let (i, w) = (input.shape(), weight.shape());
    ConvPlan::new(
        [i[0], i[1], 1, i[2]],
        [w[0], w[1], 1, w[2]],
        bias.map(|b| b.len()),
        &settings.to_2d(),
        &shapes,
    )
}

/// Unwraps a checked result, panicking at the caller's location with the error's message.
#[track_caller]
pub(crate) fn or_panic<T>(result: Result<T, ShapeError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}

/// Returns the batched 2-D cross-correlation of an `N x C x H x W` input with an
/// `O x C/groups x KH x KW` weight, plus an optional bias per output channel, as
/// PyTorch's `conv2d`:
///
/// `y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] x̃[n, g(o) C/groups + c, i s_h + p d_h, j s_w + q d_w]`
///
/// where `x̃` is the padded input and `g(o) = o / (O / groups)` is the group of output
/// channel `o`. The output is `N x O x OH x OW`, each size given by
/// [`output_len`](crate::output_len).
///
/// ```
/// use ndarray::{Array1, Array4};
/// use stagegrad_runtime::{Conv2dSettings, conv2d_nchw};
///
/// let input = Array4::<f64>::ones((2, 3, 5, 5));
/// let weight = Array4::<f64>::ones((4, 3, 3, 3));
/// let bias = Array1::from(vec![0.0, 1.0, 2.0, 3.0]);
/// let output = conv2d_nchw(&input, &weight, Some(&bias), &Conv2dSettings::new().padding(1));
/// assert_eq!(output.shape(), &[2, 4, 5, 5]);
/// assert_eq!(output[[0, 0, 2, 2]], 27.0);
/// assert_eq!(output[[1, 3, 0, 0]], 12.0 + 3.0);
/// ```
///
/// # Panics
///
/// When the shapes do not fit together; [`try_conv2d_nchw`] returns the same
/// [`ShapeError`] instead.
#[track_caller]
#[stagegrad_macros::differentiable(vjp = conv2d_nchw_vjp, crate = crate)]
pub fn conv2d_nchw<A, S1, S2>(
    input: &ArrayBase<S1, Ix4>,
    weight: &ArrayBase<S2, Ix4>,
    bias: Option<&Array1<A>>,
    settings: &Conv2dSettings,
) -> Array4<A>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    or_panic(try_conv2d_nchw(input, weight, bias, settings))
}

/// Returns [`conv2d_nchw`]'s output, or an error when the shapes do not fit.
///
/// # Errors
///
/// A [`ShapeError`] naming every shape when the weight's channels times `groups` differ
/// from the input's channels, `groups` is 0 or does not divide both channel counts, the
/// bias length differs from the output channel count, a stride or dilation is 0, the
/// dilated kernel exceeds the padded input, or a padding mode's limit is exceeded.
pub fn try_conv2d_nchw<A, S1, S2>(
    input: &ArrayBase<S1, Ix4>,
    weight: &ArrayBase<S2, Ix4>,
    bias: Option<&Array1<A>>,
    settings: &Conv2dSettings,
) -> Result<Array4<A>, ShapeError>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = plan_2d("conv2d_nchw", input, weight, bias, settings)?;
    Ok(run(
        input.view(),
        weight.view(),
        bias.map(|b| b.view()),
        &plan,
    ))
}

/// Returns [`conv2d_nchw`]'s output and its pullback, which maps the output's cotangent
/// to the gradients of input, weight and bias (an empty array without a bias), and
/// [`NoTangent`] for the settings.
///
/// The gradients are `dx = Kᵀ dy` (a transposed convolution that scatters every output
/// cotangent back onto the inputs its window read; inputs no window reads get zero),
/// `dw[o, c, p, q] = sum_{n, i, j} dy[n, o, i, j] x̃[n, ., i s_h + p d_h, j s_w + q d_w]`
/// and `db[o] = sum_{n, i, j} dy[n, o, i, j]`. The pullback owns a copy of the input and
/// the weight.
///
/// # Panics
///
/// As [`conv2d_nchw`]; the pullback panics when the cotangent's shape differs from the
/// output's.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn conv2d_nchw_vjp<A, S1, S2>(
    input: &ArrayBase<S1, Ix4>,
    weight: &ArrayBase<S2, Ix4>,
    bias: Option<&Array1<A>>,
    settings: &Conv2dSettings,
) -> (
    Array4<A>,
    impl Fn(Array4<A>) -> (Array4<A>, Array4<A>, Array1<A>, NoTangent) + use<A, S1, S2>,
)
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = or_panic(plan_2d("conv2d_nchw", input, weight, bias, settings));
    let (output, tape) = run_with_tape(input.view(), weight.view(), bias.map(|b| b.view()), plan);
    let pullback = move |output_grad: Array4<A>| {
        check_cotangent("conv2d_nchw", output_grad.shape(), &plan.output_shape());
        let (dx, dw, db) = tape.pullback(output_grad.view());
        (dx, dw, db, NoTangent)
    };
    (output, pullback)
}

/// Returns the batched 1-D cross-correlation of an `N x C x W` input with an
/// `O x C/groups x K` weight, plus an optional bias per output channel, as PyTorch's
/// `conv1d`:
///
/// `y[n, o, j] = b[o] + sum_{c, q} w[o, c, q] x̃[n, g(o) C/groups + c, j s + q d]`
///
/// where `x̃` is the padded input and `g(o)` the group of output channel `o`.
///
/// ```
/// use ndarray::{Array3, array};
/// use stagegrad_runtime::{Conv1dSettings, conv1d_ncw};
///
/// let input = Array3::from_shape_vec((1, 2, 4), vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0]).unwrap();
/// let weight = Array3::from_shape_vec((1, 2, 2), vec![1.0, 0.0, 0.0, 1.0]).unwrap();
/// let output = conv1d_ncw(&input, &weight, None, &Conv1dSettings::new());
/// assert_eq!(output, array![[[21.0, 32.0, 43.0]]]);
/// ```
///
/// # Panics
///
/// When the shapes do not fit together; [`try_conv1d_ncw`] returns the same
/// [`ShapeError`] instead.
#[track_caller]
#[stagegrad_macros::differentiable(vjp = conv1d_ncw_vjp, crate = crate)]
pub fn conv1d_ncw<A, S1, S2>(
    input: &ArrayBase<S1, Ix3>,
    weight: &ArrayBase<S2, Ix3>,
    bias: Option<&Array1<A>>,
    settings: &Conv1dSettings,
) -> Array3<A>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    or_panic(try_conv1d_ncw(input, weight, bias, settings))
}

/// Returns [`conv1d_ncw`]'s output, or an error when the shapes do not fit.
///
/// # Errors
///
/// As [`try_conv2d_nchw`], for the width axis.
pub fn try_conv1d_ncw<A, S1, S2>(
    input: &ArrayBase<S1, Ix3>,
    weight: &ArrayBase<S2, Ix3>,
    bias: Option<&Array1<A>>,
    settings: &Conv1dSettings,
) -> Result<Array3<A>, ShapeError>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = plan_1d("conv1d_ncw", input, weight, bias, settings)?;
    let output = run(
        input.view().insert_axis(Axis(2)),
        weight.view().insert_axis(Axis(2)),
        bias.map(|b| b.view()),
        &plan,
    );
    Ok(output.remove_axis(Axis(2)))
}

/// Returns [`conv1d_ncw`]'s output and its pullback, which maps the output's cotangent
/// to the gradients of input, weight and bias (an empty array without a bias), and
/// [`NoTangent`] for the settings. The rules are those of [`conv2d_nchw_vjp`] on one
/// axis.
///
/// # Panics
///
/// As [`conv1d_ncw`]; the pullback panics when the cotangent's shape differs from the
/// output's.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn conv1d_ncw_vjp<A, S1, S2>(
    input: &ArrayBase<S1, Ix3>,
    weight: &ArrayBase<S2, Ix3>,
    bias: Option<&Array1<A>>,
    settings: &Conv1dSettings,
) -> (
    Array3<A>,
    impl Fn(Array3<A>) -> (Array3<A>, Array3<A>, Array1<A>, NoTangent) + use<A, S1, S2>,
)
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let plan = or_panic(plan_1d("conv1d_ncw", input, weight, bias, settings));
    let (output, tape) = run_with_tape(
        input.view().insert_axis(Axis(2)),
        weight.view().insert_axis(Axis(2)),
        bias.map(|b| b.view()),
        plan,
    );
    let pullback = move |output_grad: Array3<A>| {
        let [n, o, _, w] = plan.output_shape();
        check_cotangent("conv1d_ncw", output_grad.shape(), &[n, o, w]);
        let (dx, dw, db) = tape.pullback(output_grad.view().insert_axis(Axis(2)));
        (
            dx.remove_axis(Axis(2)),
            dw.remove_axis(Axis(2)),
            db,
            NoTangent,
        )
    };
    (output.remove_axis(Axis(2)), pullback)
}

/// Checks that an output gradient has the shape the plan produces.
fn check_output_grad(
    shapes: &Shapes<'_>,
    plan: &ConvPlan,
    output_grad: &[usize],
) -> Result<(), ShapeError> {
    let expected = plan.output_shape();
    if output_grad != expected {
        return Err(shapes.error(format!(
            "the output gradient has shape {output_grad:?} but the convolution gives {expected:?}"
        )));
    }
    Ok(())
}

/// Returns the gradient of [`conv2d_nchw`] with respect to its input, given the output
/// gradient, the weight and the input's spatial size `(H, W)`: `dx = Kᵀ dy`, the
/// transposed convolution. It is the first entry of the pullback of
/// [`conv2d_nchw_vjp`], without the input itself.
///
/// # Panics
///
/// When the shapes do not fit; [`try_conv2d_nchw_input_grad`] returns the error instead.
#[track_caller]
pub fn conv2d_nchw_input_grad<A, S1, S2>(
    output_grad: &ArrayBase<S1, Ix4>,
    weight: &ArrayBase<S2, Ix4>,
    input_size: (usize, usize),
    settings: &Conv2dSettings,
) -> Array4<A>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    or_panic(try_conv2d_nchw_input_grad(
        output_grad,
        weight,
        input_size,
        settings,
    ))
}

/// Returns [`conv2d_nchw_input_grad`], or an error when the shapes do not fit.
///
/// # Errors
///
/// As [`try_conv2d_nchw`] for an input of `N x (weight channels * groups) x H x W`, and
/// when the output gradient's shape differs from the output of that convolution.
pub fn try_conv2d_nchw_input_grad<A, S1, S2>(
    output_grad: &ArrayBase<S1, Ix4>,
    weight: &ArrayBase<S2, Ix4>,
    (height, width): (usize, usize),
    settings: &Conv2dSettings,
) -> Result<Array4<A>, ShapeError>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let named = [
        ("output_grad", output_grad.shape()),
        ("weight", weight.shape()),
        ("input_size", &[height, width][..]),
    ];
    let shapes = Shapes {
        operation: "conv2d_nchw_input_grad",
        named: &named,
    };
    let (o, c, kh, kw) = weight.dim();
    let input = [
        output_grad.len_of(Axis(0)),
        c * settings.groups,
        height,
        width,
    ];
    let plan = ConvPlan::new(input, [o, c, kh, kw], None, settings, &shapes)?;
    check_output_grad(&shapes, &plan, output_grad.shape())?;
    if plan.needs_explicit_padding() {
        let padded = engine::backward_input(output_grad.view(), weight.view(), &plan.padded());
        Ok(padding::pad_adjoint(padded.view(), &plan))
    } else {
        Ok(engine::backward_input(
            output_grad.view(),
            weight.view(),
            &plan,
        ))
    }
}

/// Returns the gradient of [`conv2d_nchw`] with respect to its weight, given the output
/// gradient, the input and the kernel size `(KH, KW)`:
/// `dw[o, c, p, q] = sum_{n, i, j} dy[n, o, i, j] x̃[n, ., i s_h + p d_h, j s_w + q d_w]`.
/// It is the second entry of the pullback of [`conv2d_nchw_vjp`].
///
/// # Panics
///
/// When the shapes do not fit; [`try_conv2d_nchw_weight_grad`] returns the error instead.
#[track_caller]
pub fn conv2d_nchw_weight_grad<A, S1, S2>(
    output_grad: &ArrayBase<S1, Ix4>,
    input: &ArrayBase<S2, Ix4>,
    kernel_size: (usize, usize),
    settings: &Conv2dSettings,
) -> Array4<A>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    or_panic(try_conv2d_nchw_weight_grad(
        output_grad,
        input,
        kernel_size,
        settings,
    ))
}

/// Returns [`conv2d_nchw_weight_grad`], or an error when the shapes do not fit.
///
/// # Errors
///
/// As [`try_conv2d_nchw`] for a weight of `O x C/groups x KH x KW` (`O` from the output
/// gradient), and when the output gradient's shape differs from the output of that
/// convolution.
pub fn try_conv2d_nchw_weight_grad<A, S1, S2>(
    output_grad: &ArrayBase<S1, Ix4>,
    input: &ArrayBase<S2, Ix4>,
    (kernel_height, kernel_width): (usize, usize),
    settings: &Conv2dSettings,
) -> Result<Array4<A>, ShapeError>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let named = [
        ("output_grad", output_grad.shape()),
        ("input", input.shape()),
        ("kernel_size", &[kernel_height, kernel_width][..]),
    ];
    let shapes = Shapes {
        operation: "conv2d_nchw_weight_grad",
        named: &named,
    };
    let (n, c, h, w) = input.dim();
    let groups = settings.groups.max(1);
    let weight = [
        output_grad.len_of(Axis(1)),
        c / groups,
        kernel_height,
        kernel_width,
    ];
    let plan = ConvPlan::new([n, c, h, w], weight, None, settings, &shapes)?;
    check_output_grad(&shapes, &plan, output_grad.shape())?;
    if plan.needs_explicit_padding() {
        let padded = padding::pad(input.view(), &plan);
        Ok(engine::backward_weight(
            output_grad.view(),
            padded.view(),
            &plan.padded(),
        ))
    } else {
        Ok(engine::backward_weight(
            output_grad.view(),
            input.view(),
            &plan,
        ))
    }
}
