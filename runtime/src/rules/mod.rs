//! Derivative rules, dispatched by trait so that one operator in user code
//! differentiates correctly for scalars, arrays, and mixes of the two.

pub mod array;
pub mod methods;
pub mod ops;

use crate::{Differentiable, Scalar};
use ops::{BinaryOp, UnaryOp};

/// The rule for an elementwise function of one value.
#[diagnostic::on_unimplemented(
    message = "no derivative rule for `{O}` on `{Self}`",
    label = "no derivative rule for this operand",
    note = "elementwise functions differentiate `f32`, `f64` and ndarray arrays of them"
)]
pub trait UnaryRule<O: UnaryOp>: Differentiable {
    /// The type of `f(self)`.
    type Output: Differentiable;

    /// Computes `f(self)`.
    fn forward(&self, op: &O) -> Self::Output;

    /// Returns the gradient with respect to `self`, given the output and its cotangent.
    fn backward(
        &self,
        op: &O,
        output: &Self::Output,
        cotangent: &<Self::Output as Differentiable>::Tangent,
    ) -> Self::Tangent;
}

/// The rule for an elementwise function of two values, with broadcasting for arrays.
#[diagnostic::on_unimplemented(
    message = "no derivative rule for `{O}` between `{Self}` and `{Rhs}`",
    label = "no derivative rule for these operands",
    note = "arithmetic differentiates `f32`, `f64` and ndarray arrays of them with one element type; convert an operand with `as`, and write float literals such as `2.0`"
)]
pub trait BinaryRule<O: BinaryOp, Rhs: Differentiable + ?Sized>: Differentiable {
    /// The type of `f(self, rhs)`.
    type Output: Differentiable;

    /// Computes `f(self, rhs)`.
    fn forward(&self, op: &O, rhs: &Rhs) -> Self::Output;

    /// Returns the gradient with respect to `self`, summed back to `self`'s shape.
    fn backward_lhs(
        &self,
        op: &O,
        rhs: &Rhs,
        output: &Self::Output,
        cotangent: &<Self::Output as Differentiable>::Tangent,
    ) -> Self::Tangent;

    /// Returns the gradient with respect to `rhs`, summed back to `rhs`'s shape.
    fn backward_rhs(
        &self,
        op: &O,
        rhs: &Rhs,
        output: &Self::Output,
        cotangent: &<Self::Output as Differentiable>::Tangent,
    ) -> Rhs::Tangent;
}

impl<O: UnaryOp, S: Scalar> UnaryRule<O> for S
where
    S: Differentiable<Tangent = S>,
{
    type Output = S;

    #[inline(always)]
    fn forward(&self, op: &O) -> S {
        op.value(*self)
    }

    #[inline(always)]
    fn backward(&self, op: &O, output: &S, cotangent: &S) -> S {
        *cotangent * op.derivative(*self, *output)
    }
}

impl<O: BinaryOp, S: Scalar> BinaryRule<O, S> for S
where
    S: Differentiable<Tangent = S>,
{
    type Output = S;

    #[inline(always)]
    fn forward(&self, op: &O, rhs: &S) -> S {
        op.value(*self, *rhs)
    }

    #[inline(always)]
    fn backward_lhs(&self, op: &O, rhs: &S, output: &S, cotangent: &S) -> S {
        *cotangent * op.derivative_lhs(*self, *rhs, *output)
    }

    #[inline(always)]
    fn backward_rhs(&self, op: &O, rhs: &S, output: &S, cotangent: &S) -> S {
        *cotangent * op.derivative_rhs(*self, *rhs, *output)
    }
}

/// `x.mul_add(a, b)`, the fused `x * a + b`, for scalars.
#[inline(always)]
pub fn mul_add<S: Scalar>(x: &S, a: &S, b: &S) -> S {
    x.mul_add(*a, *b)
}

/// The rule for a method of one differentiable value, such as `x.sum()` or
/// `x.sum_axis(Axis(0))`. The op carries the method's constant arguments.
#[diagnostic::on_unimplemented(
    message = "no derivative rule for `{Op}` on `{Self}`",
    label = "no derivative rule for this receiver",
    note = "see `stagegrad::rules` for the methods each type supports"
)]
pub trait MethodRule<Op>: Differentiable {
    /// The method's result.
    type Output: Differentiable;

    /// Computes the method's result.
    fn forward(&self, op: &Op) -> Self::Output;

    /// Returns the gradient with respect to the receiver.
    fn backward(
        &self,
        op: &Op,
        output: &Self::Output,
        cotangent: &<Self::Output as Differentiable>::Tangent,
    ) -> Self::Tangent;
}

/// The rule for a method of two differentiable values, such as `a.dot(&b)`.
#[diagnostic::on_unimplemented(
    message = "no derivative rule for `{Op}` between `{Self}` and `{Rhs}`",
    label = "no derivative rule for these operands",
    note = "see `stagegrad::rules` for the methods each type supports"
)]
pub trait MethodRule2<Op, Rhs: Differentiable + ?Sized>: Differentiable {
    /// The method's result.
    type Output: Differentiable;

    /// Computes the method's result.
    fn forward(&self, op: &Op, rhs: &Rhs) -> Self::Output;

    /// Returns the gradient with respect to the receiver.
    fn backward_lhs(
        &self,
        op: &Op,
        rhs: &Rhs,
        output: &Self::Output,
        cotangent: &<Self::Output as Differentiable>::Tangent,
    ) -> Self::Tangent;

    /// Returns the gradient with respect to the argument.
    fn backward_rhs(
        &self,
        op: &Op,
        rhs: &Rhs,
        output: &Self::Output,
        cotangent: &<Self::Output as Differentiable>::Tangent,
    ) -> Rhs::Tangent;
}
