//! Picks the kernel for a convolution pass: direct loops for small work, the packed
//! matrix-product path ([`super::fast`]) otherwise. Padding here is always zeros; the
//! other modes are written into the input before.

use ndarray::{Array1, Array4, ArrayView1, ArrayView4, Axis};

use super::plan::ConvPlan;
use super::{direct, fast};
use crate::Scalar;

/// Below this many multiply-adds a pass runs the direct loops, serially, because packing
/// and threads cost more than they save there. The digits network's 8 x 8 layers (about
/// 150 000 multiply-adds) fall below it.
// NOTE: an estimate; the crossover with the packed path has not been measured.
const DIRECT_MAX_MACS: usize = 1 << 18;

fn slice<'a, A: Scalar>(view: &'a ndarray::CowArray<'_, A, ndarray::Ix4>) -> &'a [A] {
    view.as_slice()
        .expect("standard layout, so the array is one slice")
}

/// Returns the convolution of `input` with `weight`, plus `bias` per output channel.
pub(crate) fn forward<A: Scalar>(
    input: ArrayView4<'_, A>,
    weight: ArrayView4<'_, A>,
    bias: Option<ArrayView1<'_, A>>,
    plan: &ConvPlan,
) -> Array4<A> {
    let input = input.as_standard_layout();
    let weight = weight.as_standard_layout();
    let [n, o, oh, ow] = plan.output_shape();
    let mut output = Array4::zeros((n, o, oh, ow));
    if let Some(bias) = bias {
        for mut image in output.outer_iter_mut() {
            for (mut plane, &b) in image.outer_iter_mut().zip(bias.iter()) {
                plane.fill(b);
            }
        }
    }
    let out = output
        .as_slice_mut()
        .expect("fresh array, so standard layout");
    if plan.macs() <= DIRECT_MAX_MACS && direct::flat_applies(plan) {
        direct::forward_flat(slice(&input), slice(&weight), out, plan);
    } else if plan.macs() <= DIRECT_MAX_MACS {
        direct::forward(slice(&input), slice(&weight), out, plan);
    } else {
        fast::forward(slice(&input), slice(&weight), out, plan);
    }
    output
}

/// Returns the gradient of the input given the output cotangent.
pub(crate) fn backward_input<A: Scalar>(
    output_grad: ArrayView4<'_, A>,
    weight: ArrayView4<'_, A>,
    plan: &ConvPlan,
) -> Array4<A> {
    let output_grad = output_grad.as_standard_layout();
    let weight = weight.as_standard_layout();
    let mut input_grad = Array4::zeros((
        plan.batch,
        plan.in_channels,
        plan.height.input,
        plan.width.input,
    ));
    let dx = input_grad
        .as_slice_mut()
        .expect("fresh array, so standard layout");
    if plan.macs() <= DIRECT_MAX_MACS && direct::flat_applies(plan) {
        direct::backward_input_flat(slice(&output_grad), slice(&weight), dx, plan);
    } else if plan.macs() <= DIRECT_MAX_MACS {
        direct::backward_input(slice(&output_grad), slice(&weight), dx, plan);
    } else {
        fast::backward_input(slice(&output_grad), slice(&weight), dx, plan);
    }
    input_grad
}

/// Returns the gradient of the weight given the output cotangent.
pub(crate) fn backward_weight<A: Scalar>(
    output_grad: ArrayView4<'_, A>,
    input: ArrayView4<'_, A>,
    plan: &ConvPlan,
) -> Array4<A> {
    let output_grad = output_grad.as_standard_layout();
    let input = input.as_standard_layout();
    let mut weight_grad = Array4::zeros(plan.weight_shape());
    let dw = weight_grad
        .as_slice_mut()
        .expect("fresh array, so standard layout");
    if plan.macs() <= DIRECT_MAX_MACS && direct::flat_applies(plan) {
        direct::backward_weight_flat(slice(&output_grad), slice(&input), dw, plan);
    } else if plan.macs() <= DIRECT_MAX_MACS {
        direct::backward_weight(slice(&output_grad), slice(&input), dw, plan);
    } else {
        fast::backward_weight(slice(&output_grad), slice(&input), dw, plan);
    }
    weight_grad
}

/// Returns the gradient of the bias: the output cotangent summed over batch, height and
/// width.
pub(crate) fn backward_bias<A: Scalar>(output_grad: ArrayView4<'_, A>) -> Array1<A> {
    let mut grad = Array1::zeros(output_grad.len_of(Axis(1)));
    for image in output_grad.outer_iter() {
        for (g, plane) in grad.iter_mut().zip(image.outer_iter()) {
            *g += plane.sum();
        }
    }
    grad
}
