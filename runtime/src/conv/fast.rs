//! The packed matrix-product path for large convolutions.
//!
//! For one image and one group, the convolution is the product `Y = W C` of the weight
//! `W` (`O/groups x K`, with `K = C/groups * KH * KW`) and the im2col matrix `C`
//! (`K x OH * OW`), whose column `p` contains the inputs that output pixel `p` reads. The
//! full `C` is never built: tiles of [`tile`] output pixels are packed straight from the
//! `NCHW` input into a per-thread buffer and multiplied at once. The backward rules are
//! the products `dC = Wᵀ dY` (then scattered back onto the input, col2im) and
//! `dW = dY Cᵀ`.
//!
//! Work is split with rayon over images and groups, then over blocks of output channels
//! (forward), input channels (input gradient) or images (weight gradient) when there are
//! fewer images than threads. Below [`PARALLEL_MIN_MACS`] everything runs serially.

use std::ops::Range;

use rayon::prelude::*;

use super::gemm::{Matrix, matmul, with_scratch};
use super::plan::ConvPlan;
use crate::Scalar;

/// Bytes per row of a packed tile: 256 output pixels in `f32`, 128 in `f64`.
///
/// The packed tile of a 64-channel 3 x 3 layer (576 rows, 590 KB) then leaves room for
/// the product in a 2 MiB L2 cache. On the 2-core Xeon of docs/benchmarks.md, 128
/// pixels in `f64` ran the forward pass about 10% faster than 256; `f32` did not change.
const TILE_BYTES: usize = 1024;

/// Output pixels per packed tile for element type `A`.
fn tile<A>() -> usize {
    TILE_BYTES / std::mem::size_of::<A>()
}

/// Below this many multiply-adds a pass runs on the calling thread alone.
const PARALLEL_MIN_MACS: usize = 1 << 21;

/// Minimum channels per parallel block, so each product stays large enough.
const MIN_BLOCK: usize = 16;

fn parallel(plan: &ConvPlan) -> bool {
    plan.macs() >= PARALLEL_MIN_MACS && rayon::current_num_threads() > 1
}

/// Splits `channels` into blocks so that `units` independent units give about two tasks
/// per thread; returns the block length.
fn block_len(channels: usize, units: usize, parallel: bool) -> usize {
    let threads = rayon::current_num_threads();
    if !parallel || units >= 2 * threads {
        return channels.max(1);
    }
    let parts = (2 * threads).div_ceil(units);
    channels.div_ceil(parts).max(MIN_BLOCK.min(channels)).max(1)
}

/// The pixels `[p0, p0 + len)` of the flattened output, cut at row ends: yields
/// `(offset in the tile, output row, first column, column count)`.
fn row_segments(
    first: usize,
    len: usize,
    width: usize,
) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let mut pixel = first;
    let end = first + len;
    std::iter::from_fn(move || {
        (pixel < end).then(|| {
            let (row, col) = (pixel / width, pixel % width);
            let count = (width - col).min(end - pixel);
            let segment = (pixel - first, row, col, count);
            pixel += count;
            segment
        })
    })
}

/// Writes the im2col tile of `channels` input planes (`x`, standard layout) for output
/// pixels `[p0, p0 + len)`: row `(c, kh, kw)` of `col` contains what each of those pixels
/// reads at that tap, zero in the padding.
fn pack<A: Scalar>(
    x: &[A],
    channels: usize,
    plan: &ConvPlan,
    p0: usize,
    len: usize,
    col: &mut [A],
) {
    let (h, w) = (plan.height, plan.width);
    let plane_len = h.input * w.input;
    let mut rows = col.chunks_exact_mut(len);
    for c in 0..channels {
        let plane = &x[c * plane_len..(c + 1) * plane_len];
        for kh in 0..h.kernel {
            for kw in 0..w.kernel {
                let row = rows.next().expect("one row per tap");
                let valid = w.valid_outputs(kw);
                for (offset, oh, ow0, count) in row_segments(p0, len, w.output) {
                    let segment = &mut row[offset..offset + count];
                    let ih = h.position(oh, kh);
                    if ih < 0 || ih >= h.input as isize {
                        segment.fill(A::zero());
                        continue;
                    }
                    let x_row = &plane[ih as usize * w.input..][..w.input];
                    let start = valid.start.clamp(ow0, ow0 + count);
                    let end = valid.end.clamp(start, ow0 + count);
                    segment[..start - ow0].fill(A::zero());
                    segment[end - ow0..].fill(A::zero());
                    if start < end {
                        let first = w.position(start, kw) as usize;
                        let target = &mut segment[start - ow0..end - ow0];
                        if w.stride == 1 {
                            target.copy_from_slice(&x_row[first..first + (end - start)]);
                        } else {
                            for (t, &v) in target
                                .iter_mut()
                                .zip(x_row[first..].iter().step_by(w.stride))
                            {
                                *t = v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`pack`]: adds each element of the tile `col` to the input element it
/// was read from (col2im).
fn unpack_add<A: Scalar>(
    col: &[A],
    channels: usize,
    plan: &ConvPlan,
    p0: usize,
    len: usize,
    dx: &mut [A],
) {
    let (h, w) = (plan.height, plan.width);
    let plane_len = h.input * w.input;
    let mut rows = col.chunks_exact(len);
    for c in 0..channels {
        let plane = &mut dx[c * plane_len..(c + 1) * plane_len];
        for kh in 0..h.kernel {
            for kw in 0..w.kernel {
                let row = rows.next().expect("one row per tap");
                let valid = w.valid_outputs(kw);
                for (offset, oh, ow0, count) in row_segments(p0, len, w.output) {
                    let ih = h.position(oh, kh);
                    if ih < 0 || ih >= h.input as isize {
                        continue;
                    }
                    let start = valid.start.clamp(ow0, ow0 + count);
                    let end = valid.end.clamp(start, ow0 + count);
                    if start >= end {
                        continue;
                    }
                    let source = &row[offset + start - ow0..offset + end - ow0];
                    let x_row = &mut plane[ih as usize * w.input..][..w.input];
                    let first = w.position(start, kw) as usize;
                    if w.stride == 1 {
                        for (t, &v) in x_row[first..first + (end - start)].iter_mut().zip(source) {
                            *t += v;
                        }
                    } else {
                        for (t, &v) in x_row[first..].iter_mut().step_by(w.stride).zip(source) {
                            *t += v;
                        }
                    }
                }
            }
        }
    }
}

/// Copies `rows x len` elements starting at `first`, rows `stride` apart, into `target`.
fn gather<A: Scalar>(
    source: &[A],
    first: usize,
    rows: usize,
    len: usize,
    stride: usize,
    target: &mut Vec<A>,
) {
    target.clear();
    for r in 0..rows {
        target.extend_from_slice(&source[first + r * stride..][..len]);
    }
}

fn ensure_len<A: Scalar>(buffer: &mut Vec<A>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, A::zero());
    }
}

/// Adds the convolution of `input` with `weight` to `output`.
pub(crate) fn forward<A: Scalar>(input: &[A], weight: &[A], output: &mut [A], plan: &ConvPlan) {
    let weight = weight.to_vec();
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let depth = in_group * plan.height.kernel * plan.width.kernel;
    let pixels = plan.height.output * plan.width.output;
    let plane_len = plan.height.input * plan.width.input;
    let parallel = parallel(plan);
    let block = block_len(out_group, plan.batch * plan.groups, parallel);
    if pixels == 0 || out_group == 0 {
        return;
    }

    // `unit` numbers (image, group) pairs in output order; `chunk` contains output channels
    // `[b * block, ..)` of that group.
    let task = |unit: usize, b: usize, chunk: &mut [A]| {
        let (n, g) = (unit / plan.groups, unit % plan.groups);
        let rows = chunk.len() / pixels;
        let first_channel = g * out_group + b * block;
        let x = &input[(n * plan.in_channels + g * in_group) * plane_len..][..in_group * plane_len];
        with_scratch(|[col, _, product]| {
            for p0 in (0..pixels).step_by(tile::<A>()) {
                let len = tile::<A>().min(pixels - p0);
                ensure_len(col, depth * len);
                pack(x, in_group, plan, p0, len, &mut col[..depth * len]);
                let w = Matrix::row_major(&weight, first_channel * depth, rows, depth, depth);
                matmul(product, w, Matrix::row_major(col, 0, depth, len, len));
                for (r, values) in product.chunks_exact(len).take(rows).enumerate() {
                    for (y, &v) in chunk[r * pixels + p0..][..len].iter_mut().zip(values) {
                        *y += v;
                    }
                }
            }
        });
    };

    if parallel {
        output
            .par_chunks_mut(out_group * pixels)
            .enumerate()
            .for_each(|(unit, group)| {
                group
                    .par_chunks_mut(block * pixels)
                    .enumerate()
                    .for_each(|(b, chunk)| task(unit, b, chunk));
            });
    } else {
        for (unit, group) in output.chunks_mut(out_group * pixels).enumerate() {
            for (b, chunk) in group.chunks_mut(block * pixels).enumerate() {
                task(unit, b, chunk);
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
    let weight = weight.to_vec();
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let taps = plan.height.kernel * plan.width.kernel;
    let depth = in_group * taps;
    let pixels = plan.height.output * plan.width.output;
    let plane_len = plan.height.input * plan.width.input;
    let parallel = parallel(plan);
    let block = block_len(in_group, plan.batch * plan.groups, parallel);
    if pixels == 0 || plane_len == 0 || in_group == 0 {
        return;
    }

    // `chunk` contains the gradient of input channels `[b * block, ..)` of group `g` of image `n`.
    let task = |unit: usize, b: usize, chunk: &mut [A]| {
        let (n, g) = (unit / plan.groups, unit % plan.groups);
        let channels = chunk.len() / plane_len;
        let first_tap_row = b * block * taps;
        let dy_first = (n * plan.out_channels + g * out_group) * pixels;
        with_scratch(|[dcol, staged, _]| {
            for p0 in (0..pixels).step_by(tile::<A>()) {
                let len = tile::<A>().min(pixels - p0);
                gather(output_grad, dy_first + p0, out_group, len, pixels, staged);
                // The weight block of this group's outputs and these input channels,
                // transposed: (channels * taps) x out_group.
                let w = Matrix::row_major(
                    &weight,
                    g * out_group * depth + first_tap_row,
                    out_group,
                    channels * taps,
                    depth,
                );
                matmul(
                    dcol,
                    w.t(),
                    Matrix::row_major(staged, 0, out_group, len, len),
                );
                unpack_add(
                    &dcol[..channels * taps * len],
                    channels,
                    plan,
                    p0,
                    len,
                    chunk,
                );
            }
        });
    };

    if parallel {
        input_grad
            .par_chunks_mut(in_group * plane_len)
            .enumerate()
            .for_each(|(unit, group)| {
                group
                    .par_chunks_mut(block * plane_len)
                    .enumerate()
                    .for_each(|(b, chunk)| task(unit, b, chunk));
            });
    } else {
        for (unit, group) in input_grad.chunks_mut(in_group * plane_len).enumerate() {
            for (b, chunk) in group.chunks_mut(block * plane_len).enumerate() {
                task(unit, b, chunk);
            }
        }
    }
}

/// Adds the weight gradient of the images in `images` to `weight_grad`.
fn weight_grad_of<A: Scalar>(
    output_grad: &[A],
    input: &[A],
    plan: &ConvPlan,
    images: Range<usize>,
    weight_grad: &mut [A],
) {
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let depth = in_group * plan.height.kernel * plan.width.kernel;
    let pixels = plan.height.output * plan.width.output;
    let plane_len = plan.height.input * plan.width.input;
    with_scratch(|[col, staged, product]| {
        for n in images {
            for g in 0..plan.groups {
                let x = &input[(n * plan.in_channels + g * in_group) * plane_len..]
                    [..in_group * plane_len];
                let dy_first = (n * plan.out_channels + g * out_group) * pixels;
                let dw = &mut weight_grad[g * out_group * depth..][..out_group * depth];
                for p0 in (0..pixels).step_by(tile::<A>()) {
                    let len = tile::<A>().min(pixels - p0);
                    ensure_len(col, depth * len);
                    pack(x, in_group, plan, p0, len, &mut col[..depth * len]);
                    gather(output_grad, dy_first + p0, out_group, len, pixels, staged);
                    let dy = Matrix::row_major(staged, 0, out_group, len, len);
                    matmul(product, dy, Matrix::row_major(col, 0, depth, len, len).t());
                    for (d, &v) in dw.iter_mut().zip(product.iter()) {
                        *d += v;
                    }
                }
            }
        }
    });
}

/// Adds the gradient of the weight, given the output cotangent, to `weight_grad`.
///
/// In parallel, the batch is cut into contiguous ranges of images, each summed into its
/// own buffer, and the buffers are added in a fixed order, so the result does not depend
/// on scheduling.
pub(crate) fn backward_weight<A: Scalar>(
    output_grad: &[A],
    input: &[A],
    weight_grad: &mut [A],
    plan: &ConvPlan,
) {
    let pixels = plan.height.output * plan.width.output;
    if pixels == 0 || plan.batch == 0 {
        return;
    }
    // Several parts per thread let rayon balance them when a core is busy elsewhere.
    let parts = if parallel(plan) {
        (4 * rayon::current_num_threads()).min(plan.batch)
    } else {
        1
    };
    if parts <= 1 {
        weight_grad_of(output_grad, input, plan, 0..plan.batch, weight_grad);
        return;
    }
    let per_part = plan.batch.div_ceil(parts);
    let partials: Vec<Vec<A>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let images = part * per_part..((part + 1) * per_part).min(plan.batch);
            let mut partial = vec![A::zero(); weight_grad.len()];
            weight_grad_of(output_grad, input, plan, images, &mut partial);
            partial
        })
        .collect();
    for partial in partials {
        for (d, v) in weight_grad.iter_mut().zip(partial) {
            *d += v;
        }
    }
}
