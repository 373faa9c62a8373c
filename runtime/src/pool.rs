//! Pooling on `N x C x H x W` arrays (and on `C x H x W` and `H x W` ones): max, average
//! and global average, with stride, padding, dilation (max only) and `ceil_mode` as
//! PyTorch defines them, each with its gradient rule.
//!
//! Padding never wins a max: padded positions are skipped, as if they held `-inf`. Ties
//! send the whole gradient to the first maximum in row-major order of the window, as
//! PyTorch does; a NaN in a window is its maximum. A window that reads only padding
//! (possible when a dilation steps over a short input) gives `-inf` and passes no
//! gradient, as in PyTorch.

use ndarray::{
    Array, Array2, Array4, ArrayBase, ArrayView4, Axis, Data, Dimension, Ix2, Ix3, Ix4, IxDyn,
};
use rayon::prelude::*;

use crate::conv::AxisPlan;
use crate::conv::Padding;
use crate::error::ShapeError;
use crate::{Differentiable, NoTangent, Scalar};

/// Pooling runs serially below this many window reads: rayon's hand-off costs more there.
const SERIAL_MAX_READS: usize = 1 << 15;

/// Settings of [`max_pool2d`] and [`avg_pool2d`]. Each per-axis field contains
/// `[height, width]`.
///
/// The stride defaults to the kernel size, as in PyTorch.
///
/// ```
/// use stagegrad_runtime::{Padding, Pool2dSettings};
///
/// let settings = Pool2dSettings::new(3).stride(2).padding(1).ceil_mode(true);
/// assert_eq!(settings.kernel, [3, 3]);
/// assert_eq!(settings.stride, [2, 2]);
/// assert_eq!(settings.padding, [Padding::Symmetric(1); 2]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dSettings {
    /// Window size along height and width.
    pub kernel: [usize; 2],
    /// Step between windows along height and width; the kernel size unless set.
    pub stride: [usize; 2],
    /// Padding of the height and width axes. PyTorch's limit applies: each side at most
    /// half the dilated window.
    pub padding: [Padding; 2],
    /// Step between window elements; only [`max_pool2d`] accepts values other than 1.
    pub dilation: [usize; 2],
    /// Whether the output length rounds up, `ceil((W + p - d(K - 1) - 1) / s) + 1`,
    /// instead of down. A last window that would start beyond the input and the leading
    /// padding is dropped, and windows are clipped to the padded input.
    pub ceil_mode: bool,
    /// Whether [`avg_pool2d`] divides by the whole window, padding included (PyTorch's
    /// default), or only by the input elements it covers.
    pub count_include_pad: bool,
}

impl Default for Pool2dSettings {
    /// A 2 x 2 window with stride 2.
    fn default() -> Self {
        Self::new(2)
    }
}

impl Pool2dSettings {
    /// Returns settings for a square `kernel x kernel` window, with stride `kernel`, no
    /// padding, dilation 1, floor mode and `count_include_pad`.
    pub const fn new(kernel: usize) -> Self {
        Self::kernel_hw(kernel, kernel)
    }

    /// Returns settings for a `height x width` window, with stride equal to the window.
    pub const fn kernel_hw(height: usize, width: usize) -> Self {
        Self {
            kernel: [height, width],
            stride: [height, width],
            padding: [Padding::Valid; 2],
            dilation: [1; 2],
            ceil_mode: false,
            count_include_pad: true,
        }
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

    /// Sets whether output lengths round up.
    pub fn ceil_mode(mut self, ceil_mode: bool) -> Self {
        self.ceil_mode = ceil_mode;
        self
    }

    /// Sets whether [`avg_pool2d`] counts padding in the divisor.
    pub fn count_include_pad(mut self, count_include_pad: bool) -> Self {
        self.count_include_pad = count_include_pad;
        self
    }
}

impl Differentiable for Pool2dSettings {
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

/// The array dimensions pooling accepts: `H x W` ([`Ix2`](type@Ix2)), `C x H x W` ([`Ix3`](type@Ix3)) and
/// `N x C x H x W` ([`Ix4`](type@Ix4)). The last two axes are pooled.
pub trait PoolDim: Dimension + sealed::Sealed {}

impl PoolDim for Ix2 {}
impl PoolDim for Ix3 {}
impl PoolDim for Ix4 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for ndarray::Ix2 {}
    impl Sealed for ndarray::Ix3 {}
    impl Sealed for ndarray::Ix4 {}
}

/// Views an `H x W`, `C x H x W` or `N x C x H x W` array as `N x C x H x W`.
fn as_nchw<A, S: Data<Elem = A>, D: PoolDim>(input: &ArrayBase<S, D>) -> ArrayView4<'_, A> {
    let mut view = input.view().into_dyn();
    while view.ndim() < 4 {
        view = view.insert_axis(Axis(0));
    }
    view.into_dimensionality()
        .expect("four axes after padding the shape")
}

/// Reshapes an `N x C x H x W` result back to the caller's dimension, replacing the
/// last two axes.
fn from_nchw<A, D: PoolDim>(output: Array4<A>, like: &D) -> Array<A, D> {
    let (oh, ow) = (output.len_of(Axis(2)), output.len_of(Axis(3)));
    let mut shape = like.clone();
    let ndim = shape.ndim();
    shape[ndim - 2] = oh;
    shape[ndim - 1] = ow;
    output
        .into_dyn()
        .into_shape_with_order(IxDyn(shape.slice()))
        .and_then(|array| array.into_dimensionality())
        .expect("same elements, leading axes of length 1 dropped")
}

/// The checked geometry of a pooling pass.
#[derive(Clone, Copy, Debug)]
struct PoolPlan {
    planes: usize,
    height: AxisPlan,
    width: AxisPlan,
}

fn axis_plan(input: usize, index: usize, settings: &Pool2dSettings) -> Result<AxisPlan, String> {
    let (kernel, stride, dilation) = (
        settings.kernel[index],
        settings.stride[index],
        settings.dilation[index],
    );
    let mut plan = AxisPlan::new(input, kernel, settings.padding[index], stride, dilation)?;
    let half = (dilation * (kernel - 1)).div_ceil(2);
    if plan.before.max(plan.after) > half {
        return Err(format!(
            "padding ({}, {}) exceeds half the dilated window {half}",
            plan.before, plan.after
        ));
    }
    if settings.ceil_mode {
        let span = input + plan.before + plan.after - (dilation * (kernel - 1) + 1);
        let mut output = span.div_ceil(stride) + 1;
        // A window must start inside the input or the leading padding.
        if (output - 1) * stride >= input + plan.before {
            output -= 1;
        }
        plan.output = output;
    }
    Ok(plan)
}

fn plan(
    operation: &'static str,
    shape: &[usize],
    settings: &Pool2dSettings,
) -> Result<PoolPlan, ShapeError> {
    let error = |reason: String| {
        ShapeError::new(operation, reason)
            .with_shape("input", shape)
            .with_shape("kernel", &settings.kernel)
    };
    let ndim = shape.len();
    let (h, w) = (shape[ndim - 2], shape[ndim - 1]);
    let height =
        axis_plan(h, 0, settings).map_err(|reason| error(format!("height axis: {reason}")))?;
    let width =
        axis_plan(w, 1, settings).map_err(|reason| error(format!("width axis: {reason}")))?;
    Ok(PoolPlan {
        planes: shape[..ndim - 2].iter().product(),
        height,
        width,
    })
}

#[track_caller]
fn or_panic<T>(result: Result<T, ShapeError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}

/// Runs `body(input plane, output plane, index plane)` for each plane, in parallel when
/// the work is large. An empty `indices` gives every plane an empty index slice.
fn for_each_plane<A, F>(
    input: &[A],
    output: &mut [A],
    indices: &mut [usize],
    plan: &PoolPlan,
    body: F,
) where
    A: Scalar,
    F: Fn(&[A], &mut [A], &mut [usize]) + Sync,
{
    let in_plane = plan.height.input * plan.width.input;
    let out_plane = plan.height.output * plan.width.output;
    if out_plane == 0 || in_plane == 0 {
        return;
    }
    let planes = input.chunks(in_plane).zip(output.chunks_mut(out_plane));
    let reads = plan.planes * out_plane * plan.height.kernel * plan.width.kernel;
    match (reads <= SERIAL_MAX_READS, indices.is_empty()) {
        (true, true) => planes.for_each(|(x, y)| body(x, y, &mut [])),
        (true, false) => planes
            .zip(indices.chunks_mut(out_plane))
            .for_each(|((x, y), i)| body(x, y, i)),
        (false, true) => input
            .par_chunks(in_plane)
            .zip(output.par_chunks_mut(out_plane))
            .for_each(|(x, y)| body(x, y, &mut [])),
        (false, false) => input
            .par_chunks(in_plane)
            .zip(output.par_chunks_mut(out_plane))
            .zip(indices.par_chunks_mut(out_plane))
            .for_each(|((x, y), i)| body(x, y, i)),
    }
}

/// The window rows (or columns) of output `o` that lie inside the input.
#[inline]
fn window(axis: &AxisPlan, o: usize) -> impl Iterator<Item = usize> + Clone {
    let input = axis.input as isize;
    (0..axis.kernel).filter_map(move |tap| {
        let position = axis.position(o, tap);
        (0..input).contains(&position).then_some(position as usize)
    })
}

/// Returns the first input position of output `o`'s window when every tap of it lies
/// inside the input.
fn interior(axis: &AxisPlan, o: usize) -> Option<usize> {
    let first = axis.position(o, 0);
    let last = axis.position(o, axis.kernel - 1);
    (first >= 0 && last < axis.input as isize).then_some(first as usize)
}

/// Max-pools one plane whose windows all lie inside the input.
///
/// The taps go in the outer loops and the outputs of a row in the inner one, so the
/// comparisons of different outputs do not wait on each other. The taps still go in
/// row-major order, so a tie keeps the first maximum.
fn max_plane_inside<A: Scalar>(
    x: &[A],
    y: &mut [A],
    argmax: &mut [usize],
    h: &AxisPlan,
    w: &AxisPlan,
) {
    for i in 0..h.output {
        let best = &mut y[i * w.output..(i + 1) * w.output];
        let best_index = &mut argmax[i * w.output..(i + 1) * w.output];
        for kr in 0..h.kernel {
            let row = (i * h.stride + kr * h.dilation) * w.input;
            for kq in 0..w.kernel {
                let offset = row + kq * w.dilation;
                let first = kr == 0 && kq == 0;
                for (j, (best, best_index)) in
                    best.iter_mut().zip(best_index.iter_mut()).enumerate()
                {
                    let index = offset + j * w.stride;
                    let value = x[index];
                    // Non-short-circuit `|` and `&` let the compiler select without a
                    // branch that random data would mispredict.
                    let take = first | (value > *best) | (value.is_nan() & !best.is_nan());
                    *best = if take { value } else { *best };
                    *best_index = if take { index } else { *best_index };
                }
            }
        }
    }
}

fn max_forward<A: Scalar>(input: ArrayView4<'_, A>, plan: &PoolPlan) -> (Array4<A>, Vec<usize>) {
    let input = input.as_standard_layout();
    let (n, c) = (input.len_of(Axis(0)), input.len_of(Axis(1)));
    let (h, w) = (plan.height, plan.width);
    let mut output = Array4::zeros((n, c, h.output, w.output));
    let mut argmax = vec![usize::MAX; output.len()];
    let x = input.as_slice().expect("standard layout");
    let y = output.as_slice_mut().expect("fresh array");
    let inside = (0..h.output).all(|i| interior(&h, i).is_some())
        && (0..w.output).all(|j| interior(&w, j).is_some());
    for_each_plane(x, y, &mut argmax, plan, |x, y, argmax| {
        if inside {
            max_plane_inside(x, y, argmax, &h, &w);
            return;
        }
        for i in 0..h.output {
            let rows = interior(&h, i);
            for j in 0..w.output {
                if let (Some(first_row), Some(first_column)) = (rows, interior(&w, j)) {
                    // The window lies inside the input: no bounds to test per tap.
                    let mut best_index = first_row * w.input + first_column;
                    let mut best = x[best_index];
                    for kr in 0..h.kernel {
                        let row = (first_row + kr * h.dilation) * w.input;
                        for kq in 0..w.kernel {
                            let index = row + first_column + kq * w.dilation;
                            let value = x[index];
                            // Non-short-circuit `|` and `&` let the compiler select
                            // without a branch that random data would mispredict.
                            let take = (value > best) | (value.is_nan() & !best.is_nan());
                            best = if take { value } else { best };
                            best_index = if take { index } else { best_index };
                        }
                    }
                    y[i * w.output + j] = best;
                    argmax[i * w.output + j] = best_index;
                    continue;
                }
                let mut best = A::neg_infinity();
                let mut best_index = usize::MAX;
                for r in window(&h, i) {
                    for q in window(&w, j) {
                        let value = x[r * w.input + q];
                        if value > best
                            || (value.is_nan() && !best.is_nan())
                            || best_index == usize::MAX
                        {
                            best = value;
                            best_index = r * w.input + q;
                        }
                    }
                }
                y[i * w.output + j] = best;
                argmax[i * w.output + j] = best_index;
            }
        }
    });
    (output, argmax)
}

fn max_backward<A: Scalar>(
    output_grad: ArrayView4<'_, A>,
    argmax: &[usize],
    plan: &PoolPlan,
) -> Array4<A> {
    let output_grad = output_grad.as_standard_layout();
    let (n, c) = (output_grad.len_of(Axis(0)), output_grad.len_of(Axis(1)));
    let mut input_grad = Array4::zeros((n, c, plan.height.input, plan.width.input));
    let in_plane = plan.height.input * plan.width.input;
    let out_plane = plan.height.output * plan.width.output;
    if in_plane == 0 || out_plane == 0 {
        return input_grad;
    }
    let dy = output_grad.as_slice().expect("standard layout");
    let dx = input_grad.as_slice_mut().expect("fresh array");
    let body = |(dx, (dy, argmax)): (&mut [A], (&[A], &[usize]))| {
        for (&g, &index) in dy.iter().zip(argmax) {
            if index != usize::MAX {
                dx[index] += g;
            }
        }
    };
    let planes = dx
        .chunks_mut(in_plane)
        .zip(dy.chunks(out_plane).zip(argmax.chunks(out_plane)));
    if plan.planes * out_plane <= SERIAL_MAX_READS {
        planes.for_each(body);
    } else {
        dx.par_chunks_mut(in_plane)
            .zip(dy.par_chunks(out_plane).zip(argmax.par_chunks(out_plane)))
            .for_each(body);
    }
    input_grad
}

/// The divisor of output `(i, j)` of an average pool: the window clipped to the padded
/// input, or to the input alone without `count_include_pad`.
fn divisor(plan: &PoolPlan, i: usize, j: usize, count_include_pad: bool) -> usize {
    let extent = |axis: &AxisPlan, o: usize| {
        let start = o * axis.stride;
        let end = (start + axis.kernel).min(axis.input + axis.before + axis.after);
        end - start
    };
    if count_include_pad {
        extent(&plan.height, i) * extent(&plan.width, j)
    } else {
        window(&plan.height, i).count() * window(&plan.width, j).count()
    }
}

fn avg_forward<A: Scalar>(
    input: ArrayView4<'_, A>,
    plan: &PoolPlan,
    count_include_pad: bool,
) -> Array4<A> {
    let input = input.as_standard_layout();
    let (n, c) = (input.len_of(Axis(0)), input.len_of(Axis(1)));
    let (h, w) = (plan.height, plan.width);
    let mut output = Array4::zeros((n, c, h.output, w.output));
    let x = input.as_slice().expect("standard layout");
    let y = output.as_slice_mut().expect("fresh array");
    for_each_plane(x, y, &mut [], plan, |x, y, _| {
        for i in 0..h.output {
            for j in 0..w.output {
                let mut sum = A::zero();
                for r in window(&h, i) {
                    for q in window(&w, j) {
                        sum += x[r * w.input + q];
                    }
                }
                let count = divisor(plan, i, j, count_include_pad);
                y[i * w.output + j] = if count == 0 {
                    A::zero()
                } else {
                    sum / A::from_usize(count).expect("a count fits")
                };
            }
        }
    });
    output
}

fn avg_backward<A: Scalar>(
    output_grad: ArrayView4<'_, A>,
    plan: &PoolPlan,
    count_include_pad: bool,
) -> Array4<A> {
    let output_grad = output_grad.as_standard_layout();
    let (n, c) = (output_grad.len_of(Axis(0)), output_grad.len_of(Axis(1)));
    let (h, w) = (plan.height, plan.width);
    let mut input_grad = Array4::zeros((n, c, h.input, w.input));
    let dy = output_grad.as_slice().expect("standard layout");
    let dx = input_grad.as_slice_mut().expect("fresh array");
    let in_plane = h.input * w.input;
    let out_plane = h.output * w.output;
    if in_plane == 0 || out_plane == 0 {
        return input_grad;
    }
    let body = |(dx, dy): (&mut [A], &[A])| {
        for i in 0..h.output {
            for j in 0..w.output {
                let count = divisor(plan, i, j, count_include_pad);
                if count == 0 {
                    continue;
                }
                let share = dy[i * w.output + j] / A::from_usize(count).expect("a count fits");
                for r in window(&h, i) {
                    for q in window(&w, j) {
                        dx[r * w.input + q] += share;
                    }
                }
            }
        }
    };
    let reads = plan.planes * out_plane * h.kernel * w.kernel;
    if reads <= SERIAL_MAX_READS {
        dx.chunks_mut(in_plane)
            .zip(dy.chunks(out_plane))
            .for_each(body);
    } else {
        dx.par_chunks_mut(in_plane)
            .zip(dy.par_chunks(out_plane))
            .for_each(body);
    }
    input_grad
}

/// Returns the max pooling of the last two axes: `y[.., i, j]` is the largest input in
/// the window of rows `i s_h - p_top + p d_h` and columns `j s_w - p_left + q d_w`,
/// padding excluded.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::{Pool2dSettings, max_pool2d};
///
/// let image = array![[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0], [13.0, 14.0, 15.0, 16.0]];
/// assert_eq!(max_pool2d(&image, &Pool2dSettings::new(2)), array![[6.0, 8.0], [14.0, 16.0]]);
/// ```
///
/// # Panics
///
/// When the settings do not fit the shape; [`try_max_pool2d`] returns the error instead.
#[track_caller]
#[stagegrad_macros::differentiable(vjp = max_pool2d_vjp, crate = crate)]
pub fn max_pool2d<A, S, D>(input: &ArrayBase<S, D>, settings: &Pool2dSettings) -> Array<A, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: PoolDim,
{
    or_panic(try_max_pool2d(input, settings))
}

/// Returns [`max_pool2d`]'s output, or an error when the settings do not fit.
///
/// # Errors
///
/// A [`ShapeError`] naming the input shape and the kernel when a kernel size, stride or
/// dilation is 0, the dilated window exceeds the padded input, or a side's padding
/// exceeds half the dilated window.
pub fn try_max_pool2d<A, S, D>(
    input: &ArrayBase<S, D>,
    settings: &Pool2dSettings,
) -> Result<Array<A, D>, ShapeError>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: PoolDim,
{
    let plan = plan("max_pool2d", input.shape(), settings)?;
    let (output, _) = max_forward(as_nchw(input), &plan);
    Ok(from_nchw(output, &input.raw_dim()))
}

/// Returns [`max_pool2d`]'s output and its pullback, which sends each output's
/// cotangent to the input that won its window (the first maximum in row-major order) and
/// returns `(dx, NoTangent)`. Inputs that win no window get zero; one that wins several
/// windows sums their cotangents.
///
/// # Panics
///
/// As [`max_pool2d`]; the pullback panics when the cotangent's shape differs from the
/// output's.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn max_pool2d_vjp<A, S, D>(
    input: &ArrayBase<S, D>,
    settings: &Pool2dSettings,
) -> (
    Array<A, D>,
    impl Fn(Array<A, D>) -> (Array<A, D>, NoTangent) + use<A, S, D>,
)
where
    A: Scalar,
    S: Data<Elem = A>,
    D: PoolDim,
{
    let plan = or_panic(plan("max_pool2d", input.shape(), settings));
    let (output, argmax) = max_forward(as_nchw(input), &plan);
    let input_dim = input.raw_dim();
    let output = from_nchw(output, &input_dim);
    let output_shape = output.shape().to_vec();
    let pullback = move |output_grad: Array<A, D>| {
        check_cotangent("max_pool2d", output_grad.shape(), &output_shape);
        let grad = max_backward(as_nchw(&output_grad), &argmax, &plan);
        (from_nchw(grad, &input_dim), NoTangent)
    };
    (output, pullback)
}

fn check_cotangent(operation: &str, cotangent: &[usize], output: &[usize]) {
    assert_eq!(
        cotangent, output,
        "the cotangent passed to the pullback of `{operation}` has shape {cotangent:?} but the output has shape {output:?}"
    );
}

fn avg_plan(shape: &[usize], settings: &Pool2dSettings) -> Result<PoolPlan, ShapeError> {
    if settings.dilation != [1, 1] {
        return Err(ShapeError::new(
            "avg_pool2d",
            format!(
                "dilation must be 1, found {:?}; only `max_pool2d` is dilated",
                settings.dilation
            ),
        )
        .with_shape("input", shape)
        .with_shape("kernel", &settings.kernel));
    }
    plan("avg_pool2d", shape, settings)
}

/// Returns the average pooling of the last two axes: the mean of each window, over the
/// whole window (padding counted as zeros) with `count_include_pad`, else over the input
/// elements it covers. In `ceil_mode`, windows are clipped to the padded input first.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::{Pool2dSettings, avg_pool2d};
///
/// let image = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
/// assert_eq!(avg_pool2d(&image, &Pool2dSettings::new(2).stride(1)), array![[3.0, 4.0], [6.0, 7.0]]);
/// let settings = Pool2dSettings::new(2).padding(1).count_include_pad(false);
/// assert_eq!(avg_pool2d(&image, &settings), array![[1.0, 2.5], [5.5, 7.0]]);
/// ```
///
/// # Panics
///
/// When the settings do not fit the shape; [`try_avg_pool2d`] returns the error instead.
#[track_caller]
#[stagegrad_macros::differentiable(vjp = avg_pool2d_vjp, crate = crate)]
pub fn avg_pool2d<A, S, D>(input: &ArrayBase<S, D>, settings: &Pool2dSettings) -> Array<A, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: PoolDim,
{
    or_panic(try_avg_pool2d(input, settings))
}

/// Returns [`avg_pool2d`]'s output, or an error when the settings do not fit.
///
/// # Errors
///
/// As [`try_max_pool2d`], and when a dilation is not 1.
pub fn try_avg_pool2d<A, S, D>(
    input: &ArrayBase<S, D>,
    settings: &Pool2dSettings,
) -> Result<Array<A, D>, ShapeError>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: PoolDim,
{
    let plan = avg_plan(input.shape(), settings)?;
    let output = avg_forward(as_nchw(input), &plan, settings.count_include_pad);
    Ok(from_nchw(output, &input.raw_dim()))
}

/// Returns [`avg_pool2d`]'s output and its pullback, which spreads each output's
/// cotangent, divided by that window's divisor, over the input elements of the window,
/// and returns `(dx, NoTangent)`.
///
/// # Panics
///
/// As [`avg_pool2d`]; the pullback panics when the cotangent's shape differs from the
/// output's.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn avg_pool2d_vjp<A, S, D>(
    input: &ArrayBase<S, D>,
    settings: &Pool2dSettings,
) -> (
    Array<A, D>,
    impl Fn(Array<A, D>) -> (Array<A, D>, NoTangent) + use<A, S, D>,
)
where
    A: Scalar,
    S: Data<Elem = A>,
    D: PoolDim,
{
    let plan = or_panic(avg_plan(input.shape(), settings));
    let count_include_pad = settings.count_include_pad;
    let output = from_nchw(
        avg_forward(as_nchw(input), &plan, count_include_pad),
        &input.raw_dim(),
    );
    let input_dim = input.raw_dim();
    let output_shape = output.shape().to_vec();
    let pullback = move |output_grad: Array<A, D>| {
        check_cotangent("avg_pool2d", output_grad.shape(), &output_shape);
        let grad = avg_backward(as_nchw(&output_grad), &plan, count_include_pad);
        (from_nchw(grad, &input_dim), NoTangent)
    };
    (output, pullback)
}

/// Returns the mean of each `H x W` plane of an `N x C x H x W` input, as `N x C`.
///
/// ```
/// use ndarray::{Array4, array};
/// use stagegrad_runtime::global_avg_pool;
///
/// let input = Array4::from_shape_vec((1, 2, 2, 2), vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0]).unwrap();
/// assert_eq!(global_avg_pool(&input), array![[2.5, 2.0]]);
/// ```
///
/// # Panics
///
/// When a plane is empty (`H` or `W` is 0); [`try_global_avg_pool`] returns the error
/// instead.
#[track_caller]
#[stagegrad_macros::differentiable(vjp = global_avg_pool_vjp, crate = crate)]
pub fn global_avg_pool<A: Scalar, S: Data<Elem = A>>(input: &ArrayBase<S, Ix4>) -> Array2<A> {
    or_panic(try_global_avg_pool(input))
}

/// Returns [`global_avg_pool`]'s output, or an error for empty planes.
///
/// # Errors
///
/// A [`ShapeError`] naming the input shape when `H` or `W` is 0.
pub fn try_global_avg_pool<A: Scalar, S: Data<Elem = A>>(
    input: &ArrayBase<S, Ix4>,
) -> Result<Array2<A>, ShapeError> {
    let (n, c, h, w) = input.dim();
    if h * w == 0 {
        return Err(
            ShapeError::new("global_avg_pool", "the planes to average are empty")
                .with_shape("input", input.shape()),
        );
    }
    let count = A::from_usize(h * w).expect("a count fits");
    Ok(Array2::from_shape_fn((n, c), |(i, j)| {
        input.slice(ndarray::s![i, j, .., ..]).sum() / count
    }))
}

/// Returns [`global_avg_pool`]'s output and its pullback, which spreads each cotangent
/// `dy[n, c] / (H W)` over its plane and returns `(dx, NoTangent)`.
///
/// # Panics
///
/// As [`global_avg_pool`]; the pullback panics when the cotangent is not `N x C`.
#[track_caller]
#[allow(clippy::type_complexity)]
pub fn global_avg_pool_vjp<A: Scalar, S: Data<Elem = A>>(
    input: &ArrayBase<S, Ix4>,
) -> (Array2<A>, impl Fn(Array2<A>) -> (Array4<A>,) + use<A, S>) {
    let output = global_avg_pool(input);
    let (n, c, h, w) = input.dim();
    let pullback = move |output_grad: Array2<A>| {
        check_cotangent("global_avg_pool", output_grad.shape(), &[n, c]);
        let count = A::from_usize(h * w).expect("a count fits");
        let grad = Array4::from_shape_fn((n, c, h, w), |(i, j, _, _)| output_grad[[i, j]] / count);
        (grad,)
    };
    (output, pullback)
}
