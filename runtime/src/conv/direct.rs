//! Direct loops for small convolutions, where packing for a matrix product costs more
//! than it saves. They run serially and allocate nothing beyond their output.
//!
//! All slices are in standard (row-major) layout: the input `N x C x H x W`, the weight
//! `O x C/groups x KH x KW`, the output `N x O x OH x OW`. Padding is zeros and is never
//! touched: each tap only visits the output positions whose input lies inside the image.

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
