//! The packed matrix-product path for large convolutions.

use super::direct;
use super::plan::ConvPlan;
use crate::Scalar;

pub(crate) fn forward<A: Scalar>(input: &[A], weight: &[A], output: &mut [A], plan: &ConvPlan) {
    direct::forward(input, weight, output, plan);
}

pub(crate) fn backward_input<A: Scalar>(
    output_grad: &[A],
    weight: &[A],
    input_grad: &mut [A],
    plan: &ConvPlan,
) {
    direct::backward_input(output_grad, weight, input_grad, plan);
}

pub(crate) fn backward_weight<A: Scalar>(
    output_grad: &[A],
    input: &[A],
    weight_grad: &mut [A],
    plan: &ConvPlan,
) {
    direct::backward_weight(output_grad, input, weight_grad, plan);
}
