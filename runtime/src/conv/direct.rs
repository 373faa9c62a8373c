//! Direct loops for small convolutions, where packing for a matrix product costs more
//! than it saves. They run serially and allocate nothing beyond their output.
//!
//! All slices are in standard (row-major) layout: the input `N x C x H x W`, the weight
//! `O x C/groups x KH x KW`, the output `N x O x OH x OW`. Padding is zeros and is never
//! touched: each tap only visits the output positions whose input lies inside the image.
//! Stride-1 convolutions take the padded-width kernels ([`forward_flat`] and the two
//! below it), which copy the padding into per-thread scratch buffers instead.

use super::gemm::with_scratch;
use super::plan::ConvPlan;
use crate::Scalar;

/// Adds `scale * source` to `target` elementwise.
#[inline(always)]
fn axpy<A: Scalar>(target: &mut [A], scale: A, source: &[A]) {
    for (t, &s) in target.iter_mut().zip(source) {
        *t += scale * s;
    }
}

/// Adds the convolution of `input` with `weight` to `output`.
pub(crate) fn forward<A: Scalar>(input: &[A], weight: &[A], output: &mut [A], plan: &ConvPlan) {
    let (h, w) = (plan.height, plan.width);
    let (in_plane, out_plane) = (h.input * w.input, h.output * w.output);
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let taps = h.kernel * w.kernel;
    for n in 0..plan.batch {
        for o in 0..plan.out_channels {
            let group = o / out_group;
            let out_start = (n * plan.out_channels + o) * out_plane;
            let y = &mut output[out_start..out_start + out_plane];
            for ci in 0..in_group {
                let c = group * in_group + ci;
                let x = &input[(n * plan.in_channels + c) * in_plane..][..in_plane];
                let kernel = &weight[(o * in_group + ci) * taps..][..taps];
                for kh in 0..h.kernel {
                    for oh in h.valid_outputs(kh) {
                        let ih = h.position(oh, kh) as usize;
                        let x_row = &x[ih * w.input..(ih + 1) * w.input];
                        let y_row = &mut y[oh * w.output..(oh + 1) * w.output];
                        for kw in 0..w.kernel {
                            let k = kernel[kh * w.kernel + kw];
                            let cols = w.valid_outputs(kw);
                            if cols.is_empty() {
                                continue;
                            }
                            let first = w.position(cols.start, kw) as usize;
                            if w.stride == 1 {
                                axpy(
                                    &mut y_row[cols.clone()],
                                    k,
                                    &x_row[first..first + cols.len()],
                                );
                            } else {
                                for (y_value, &x_value) in y_row[cols]
                                    .iter_mut()
                                    .zip(x_row[first..].iter().step_by(w.stride))
                                {
                                    *y_value += k * x_value;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds the gradient of the input, given the output cotangent, to `input_grad`.
pub(crate) fn backward_input<A: Scalar>(
    output_grad: &[A],
    weight: &[A],
    input_grad: &mut [A],
    plan: &ConvPlan,
) {
    let (h, w) = (plan.height, plan.width);
    let (in_plane, out_plane) = (h.input * w.input, h.output * w.output);
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let taps = h.kernel * w.kernel;
    for n in 0..plan.batch {
        for o in 0..plan.out_channels {
            let group = o / out_group;
            let gy = &output_grad[(n * plan.out_channels + o) * out_plane..][..out_plane];
            for ci in 0..in_group {
                let c = group * in_group + ci;
                let dx = &mut input_grad[(n * plan.in_channels + c) * in_plane..][..in_plane];
                let kernel = &weight[(o * in_group + ci) * taps..][..taps];
                for kh in 0..h.kernel {
                    for oh in h.valid_outputs(kh) {
                        let ih = h.position(oh, kh) as usize;
                        let dx_row = &mut dx[ih * w.input..(ih + 1) * w.input];
                        let gy_row = &gy[oh * w.output..(oh + 1) * w.output];
                        for kw in 0..w.kernel {
                            let k = kernel[kh * w.kernel + kw];
                            let cols = w.valid_outputs(kw);
                            if cols.is_empty() {
                                continue;
                            }
                            let first = w.position(cols.start, kw) as usize;
                            if w.stride == 1 {
                                axpy(&mut dx_row[first..first + cols.len()], k, &gy_row[cols]);
                            } else {
                                for (dx_value, &g) in dx_row[first..]
                                    .iter_mut()
                                    .step_by(w.stride)
                                    .zip(&gy_row[cols])
                                {
                                    *dx_value += k * g;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adds the gradient of the weight, given the output cotangent, to `weight_grad`.
pub(crate) fn backward_weight<A: Scalar>(
    output_grad: &[A],
    input: &[A],
    weight_grad: &mut [A],
    plan: &ConvPlan,
) {
    let (h, w) = (plan.height, plan.width);
    let (in_plane, out_plane) = (h.input * w.input, h.output * w.output);
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let taps = h.kernel * w.kernel;
    for n in 0..plan.batch {
        for o in 0..plan.out_channels {
            let group = o / out_group;
            let gy = &output_grad[(n * plan.out_channels + o) * out_plane..][..out_plane];
            for ci in 0..in_group {
                let c = group * in_group + ci;
                let x = &input[(n * plan.in_channels + c) * in_plane..][..in_plane];
                let dk = &mut weight_grad[(o * in_group + ci) * taps..][..taps];
                for kh in 0..h.kernel {
                    for oh in h.valid_outputs(kh) {
                        let ih = h.position(oh, kh) as usize;
                        let x_row = &x[ih * w.input..(ih + 1) * w.input];
                        let gy_row = &gy[oh * w.output..(oh + 1) * w.output];
                        for kw in 0..w.kernel {
                            let cols = w.valid_outputs(kw);
                            if cols.is_empty() {
                                continue;
                            }
                            let first = w.position(cols.start, kw) as usize;
                            let mut sum = A::zero();
                            if w.stride == 1 {
                                for (&g, &x_value) in gy_row[cols.clone()]
                                    .iter()
                                    .zip(&x_row[first..first + cols.len()])
                                {
                                    sum += g * x_value;
                                }
                            } else {
                                for (&g, &x_value) in gy_row[cols]
                                    .iter()
                                    .zip(x_row[first..].iter().step_by(w.stride))
                                {
                                    sum += g * x_value;
                                }
                            }
                            dk[kh * w.kernel + kw] += sum;
                        }
                    }
                }
            }
        }
    }
}

/// The padded-width layout of a stride-1 convolution of one image: each input plane is
/// copied with its zero padding into a `Hp x Wp` plane, and the output is computed on a
/// grid of `OH` rows of `Wp` columns (the last `Wp - OW` columns of each row are waste).
/// There, tap `(p, q)` of every output reads the padded plane at one fixed offset, so a
/// whole plane is one long multiply-add that vectorizes, instead of short row pieces.
struct Flat {
    padded_width: usize,
    padded_len: usize,
    /// Length of the output grid that is read or written: `(OH - 1) Wp + OW`.
    grid_len: usize,
}

impl Flat {
    fn new(plan: &ConvPlan) -> Self {
        let (h, w) = (plan.height, plan.width);
        let padded_width = w.input + w.before + w.after;
        let padded_len = (h.input + h.before + h.after) * padded_width;
        let grid_len = if h.output == 0 || w.output == 0 {
            0
        } else {
            (h.output - 1) * padded_width + w.output
        };
        Self {
            padded_width,
            padded_len,
            grid_len,
        }
    }

    /// Offset of tap `(p, q)` in the padded plane.
    fn offset(&self, plan: &ConvPlan, p: usize, q: usize) -> usize {
        p * plan.height.dilation * self.padded_width + q * plan.width.dilation
    }

    /// Copies `channels` input planes into `padded`, zeros around.
    fn pad<A: Scalar>(&self, plan: &ConvPlan, x: &[A], channels: usize, padded: &mut Vec<A>) {
        let (h, w) = (plan.height, plan.width);
        padded.clear();
        padded.resize(channels * self.padded_len, A::zero());
        for c in 0..channels {
            let plane = &x[c * h.input * w.input..][..h.input * w.input];
            let target = &mut padded[c * self.padded_len..][..self.padded_len];
            for (i, row) in plane.chunks_exact(w.input).enumerate() {
                let start = (i + h.before) * self.padded_width + w.before;
                target[start..start + w.input].copy_from_slice(row);
            }
        }
    }

    /// Copies one output plane onto the grid, zeros in the waste columns.
    fn spread<A: Scalar>(&self, plan: &ConvPlan, plane: &[A], grid: &mut Vec<A>) {
        let ow = plan.width.output;
        grid.clear();
        grid.resize(self.grid_len, A::zero());
        for (i, row) in plane.chunks_exact(ow).enumerate() {
            grid[i * self.padded_width..][..ow].copy_from_slice(row);
        }
    }
}

/// Whether the padded-width kernels apply: stride 1 on both axes.
pub(crate) fn flat_applies(plan: &ConvPlan) -> bool {
    plan.height.stride == 1 && plan.width.stride == 1
}

/// [`forward`] for stride 1, through the padded-width layout.
pub(crate) fn forward_flat<A: Scalar>(
    input: &[A],
    weight: &[A],
    output: &mut [A],
    plan: &ConvPlan,
) {
    let flat = Flat::new(plan);
    let (h, w) = (plan.height, plan.width);
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let (in_plane, out_plane, taps) = (h.input * w.input, h.output * w.output, h.kernel * w.kernel);
    if flat.grid_len == 0 {
        return;
    }
    with_scratch(|[padded, grid, _]| {
        for n in 0..plan.batch {
            flat.pad(
                plan,
                &input[n * plan.in_channels * in_plane..],
                plan.in_channels,
                padded,
            );
            for o in 0..plan.out_channels {
                let group = o / out_group;
                grid.clear();
                grid.resize(flat.grid_len, A::zero());
                for ci in 0..in_group {
                    let source =
                        &padded[(group * in_group + ci) * flat.padded_len..][..flat.padded_len];
                    let kernel = &weight[(o * in_group + ci) * taps..][..taps];
                    for p in 0..h.kernel {
                        for q in 0..w.kernel {
                            let offset = flat.offset(plan, p, q);
                            axpy(
                                grid,
                                kernel[p * w.kernel + q],
                                &source[offset..offset + flat.grid_len],
                            );
                        }
                    }
                }
                let y = &mut output[(n * plan.out_channels + o) * out_plane..][..out_plane];
                for (i, row) in y.chunks_exact_mut(w.output).enumerate() {
                    for (t, &v) in row.iter_mut().zip(&grid[i * flat.padded_width..]) {
                        *t += v;
                    }
                }
            }
        }
    });
}

/// [`backward_input`] for stride 1, through the padded-width layout.
pub(crate) fn backward_input_flat<A: Scalar>(
    output_grad: &[A],
    weight: &[A],
    input_grad: &mut [A],
    plan: &ConvPlan,
) {
    let flat = Flat::new(plan);
    let (h, w) = (plan.height, plan.width);
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let (in_plane, out_plane, taps) = (h.input * w.input, h.output * w.output, h.kernel * w.kernel);
    if flat.grid_len == 0 {
        return;
    }
    with_scratch(|[padded_grad, grid, _]| {
        for n in 0..plan.batch {
            padded_grad.clear();
            padded_grad.resize(plan.in_channels * flat.padded_len, A::zero());
            for o in 0..plan.out_channels {
                let group = o / out_group;
                flat.spread(
                    plan,
                    &output_grad[(n * plan.out_channels + o) * out_plane..][..out_plane],
                    grid,
                );
                for ci in 0..in_group {
                    let target = &mut padded_grad[(group * in_group + ci) * flat.padded_len..]
                        [..flat.padded_len];
                    let kernel = &weight[(o * in_group + ci) * taps..][..taps];
                    for p in 0..h.kernel {
                        for q in 0..w.kernel {
                            let offset = flat.offset(plan, p, q);
                            axpy(
                                &mut target[offset..offset + flat.grid_len],
                                kernel[p * w.kernel + q],
                                grid,
                            );
                        }
                    }
                }
            }
            for c in 0..plan.in_channels {
                let source = &padded_grad[c * flat.padded_len..][..flat.padded_len];
                let dx = &mut input_grad[(n * plan.in_channels + c) * in_plane..][..in_plane];
                for (i, row) in dx.chunks_exact_mut(w.input).enumerate() {
                    let start = (i + h.before) * flat.padded_width + w.before;
                    for (t, &v) in row.iter_mut().zip(&source[start..start + w.input]) {
                        *t += v;
                    }
                }
            }
        }
    });
}

/// [`backward_weight`] for stride 1, through the padded-width layout.
pub(crate) fn backward_weight_flat<A: Scalar>(
    output_grad: &[A],
    input: &[A],
    weight_grad: &mut [A],
    plan: &ConvPlan,
) {
    let flat = Flat::new(plan);
    let (h, w) = (plan.height, plan.width);
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let (in_plane, out_plane, taps) = (h.input * w.input, h.output * w.output, h.kernel * w.kernel);
    if flat.grid_len == 0 {
        return;
    }
    with_scratch(|[padded, grid, _]| {
        for n in 0..plan.batch {
            flat.pad(
                plan,
                &input[n * plan.in_channels * in_plane..],
                plan.in_channels,
                padded,
            );
            for o in 0..plan.out_channels {
                let group = o / out_group;
                flat.spread(
                    plan,
                    &output_grad[(n * plan.out_channels + o) * out_plane..][..out_plane],
                    grid,
                );
                for ci in 0..in_group {
                    let source =
                        &padded[(group * in_group + ci) * flat.padded_len..][..flat.padded_len];
                    let dk = &mut weight_grad[(o * in_group + ci) * taps..][..taps];
                    for p in 0..h.kernel {
                        for q in 0..w.kernel {
                            let offset = flat.offset(plan, p, q);
                            dk[p * w.kernel + q] +=
                                dot(grid, &source[offset..offset + flat.grid_len]);
                        }
                    }
                }
            }
        }
    });
}

/// Returns the sum of `a[i] b[i]`, in eight independent partial sums so it vectorizes.
#[inline(always)]
fn dot<A: Scalar>(a: &[A], b: &[A]) -> A {
    let mut sums = [A::zero(); 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: A = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    sums.iter().copied().sum::<A>() + tail
}
