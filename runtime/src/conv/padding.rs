//! Writing non-zero padding (reflect, replicate, circular) into an input, and the
//! adjoint of that copy for the backward pass.

use ndarray::{Array4, ArrayView4, Axis, s};

use super::plan::ConvPlan;
use super::settings::{AxisPlan, PaddingMode};
use crate::Scalar;

/// For each position of the padded axis, the input element it copies (`None` for a zero).
fn sources(plan: &AxisPlan, mode: PaddingMode) -> Vec<Option<usize>> {
    (0..plan.input + plan.before + plan.after)
        .map(|q| mode.source(q as isize - plan.before as isize, plan.input))
        .collect()
}

/// Returns the input with the plan's padding written into it.
pub(crate) fn pad<A: Scalar>(input: ArrayView4<'_, A>, plan: &ConvPlan) -> Array4<A> {
    let rows = sources(&plan.height, plan.mode);
    let cols = sources(&plan.width, plan.mode);
    let (batch, channels) = (input.len_of(Axis(0)), input.len_of(Axis(1)));
    let mut padded = Array4::zeros((batch, channels, rows.len(), cols.len()));
    for n in 0..batch {
        for c in 0..channels {
            let source = input.slice(s![n, c, .., ..]);
            let mut target = padded.slice_mut(s![n, c, .., ..]);
            for (i, row) in rows.iter().enumerate() {
                let Some(r) = *row else { continue };
                for (j, col) in cols.iter().enumerate() {
                    if let Some(q) = *col {
                        target[[i, j]] = source[[r, q]];
                    }
                }
            }
        }
    }
    padded
}

/// Returns the gradient of the unpadded input from the gradient of the padded one:
/// every padded element adds its gradient to the input element it copied.
pub(crate) fn pad_adjoint<A: Scalar>(padded_grad: ArrayView4<'_, A>, plan: &ConvPlan) -> Array4<A> {
    let rows = sources(&plan.height, plan.mode);
    let cols = sources(&plan.width, plan.mode);
    let (batch, channels) = (padded_grad.len_of(Axis(0)), padded_grad.len_of(Axis(1)));
    let mut grad = Array4::zeros((batch, channels, plan.height.input, plan.width.input));
    for n in 0..batch {
        for c in 0..channels {
            let source = padded_grad.slice(s![n, c, .., ..]);
            let mut target = grad.slice_mut(s![n, c, .., ..]);
            for (i, row) in rows.iter().enumerate() {
                let Some(r) = *row else { continue };
                for (j, col) in cols.iter().enumerate() {
                    if let Some(q) = *col {
                        target[[r, q]] += source[[i, j]];
                    }
                }
            }
        }
    }
    grad
}
