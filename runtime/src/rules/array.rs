//! Elementwise rules for ndarray arrays, with NumPy-style broadcasting.

use ndarray::{Array, ArrayBase, Axis, Data, DimMax, Dimension, IxDyn, Zip};

use super::ops::{BinaryOp, UnaryOp};
use super::{BinaryRule, UnaryRule};
use crate::Scalar;

impl<O: UnaryOp, A: Scalar, S: Data<Elem = A>, D: Dimension> UnaryRule<O> for ArrayBase<S, D> {
    type Output = Array<A, D>;

    fn forward(&self, op: &O) -> Array<A, D> {
        self.mapv(|x| op.value(x))
    }

    fn backward(&self, op: &O, output: &Array<A, D>, cotangent: &Array<A, D>) -> Array<A, D> {
        Zip::from(self)
            .and(output)
            .and(cotangent)
            .map_collect(|&x, &y, &c| c * op.derivative(x, y))
    }
}

/// Returns the shape two operands broadcast to, or panics naming both shapes.
#[track_caller]
pub(crate) fn broadcast_shape<E: Dimension>(operation: &str, lhs: &[usize], rhs: &[usize]) -> E {
    let ndim = lhs.len().max(rhs.len());
    let mut shape = E::zeros(ndim);
    for axis in 0..ndim {
        let a = axis_len(lhs, ndim, axis);
        let b = axis_len(rhs, ndim, axis);
        shape[axis] = if a == b || b == 1 {
            a
        } else if a == 1 {
            b
        } else {
            panic!(
                "cannot broadcast shapes {lhs:?} and {rhs:?} for `{operation}`: axis {axis} has lengths {a} and {b}"
            )
        };
    }
    shape
}

fn axis_len(shape: &[usize], ndim: usize, axis: usize) -> usize {
    let offset = ndim - shape.len();
    if axis < offset {
        1
    } else {
        shape[axis - offset]
    }
}

/// Sums a gradient of the broadcast shape back to an operand's shape: over the leading
/// axes the operand lacks, and over the axes where the operand has length 1.
pub(crate) fn sum_to_shape<A: Scalar, E: Dimension, D: Dimension>(
    full: Array<A, E>,
    target: &D,
) -> Array<A, D> {
    if full.shape() == target.slice() {
        return full
            .into_dimensionality::<D>()
            .expect("same shape, so the dimension converts");
    }
    let mut sum: Array<A, IxDyn> = full.into_dyn();
    while sum.ndim() > target.ndim() {
        sum = sum.sum_axis(Axis(0));
    }
    for axis in 0..target.ndim() {
        if target[axis] == 1 && sum.shape()[axis] != 1 {
            sum = sum.sum_axis(Axis(axis)).insert_axis(Axis(axis));
        }
    }
    sum.into_dimensionality::<D>()
        .expect("summed to the operand's shape, so the dimension converts")
}

impl<O, A, S1, S2, D1, D2> BinaryRule<O, ArrayBase<S2, D2>> for ArrayBase<S1, D1>
where
    O: BinaryOp,
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
    D1: Dimension + DimMax<D2>,
    D2: Dimension,
{
    type Output = Array<A, <D1 as DimMax<D2>>::Output>;

    #[track_caller]
    fn forward(&self, op: &O, rhs: &ArrayBase<S2, D2>) -> Self::Output {
        let shape: <D1 as DimMax<D2>>::Output = broadcast_shape(O::NAME, self.shape(), rhs.shape());
        let lhs = self.broadcast(shape.clone()).expect("shape checked above");
        let rhs = rhs.broadcast(shape).expect("shape checked above");
        Zip::from(&lhs)
            .and(&rhs)
            .map_collect(|&a, &b| op.value(a, b))
    }

    fn backward_lhs(
        &self,
        op: &O,
        rhs: &ArrayBase<S2, D2>,
        output: &Self::Output,
        cotangent: &Self::Output,
    ) -> Array<A, D1> {
        let lhs_full = self
            .broadcast(output.raw_dim())
            .expect("broadcast in the forward pass");
        let rhs_full = rhs
            .broadcast(output.raw_dim())
            .expect("broadcast in the forward pass");
        let full = Zip::from(&lhs_full)
            .and(&rhs_full)
            .and(output)
            .and(cotangent)
            .map_collect(|&a, &b, &y, &c| c * op.derivative_lhs(a, b, y));
        sum_to_shape(full, &self.raw_dim())
    }

    fn backward_rhs(
        &self,
        op: &O,
        rhs: &ArrayBase<S2, D2>,
        output: &Self::Output,
        cotangent: &Self::Output,
    ) -> Array<A, D2> {
        let lhs_full = self
            .broadcast(output.raw_dim())
            .expect("broadcast in the forward pass");
        let rhs_full = rhs
            .broadcast(output.raw_dim())
            .expect("broadcast in the forward pass");
        let full = Zip::from(&lhs_full)
            .and(&rhs_full)
            .and(output)
            .and(cotangent)
            .map_collect(|&a, &b, &y, &c| c * op.derivative_rhs(a, b, y));
        sum_to_shape(full, &rhs.raw_dim())
    }
}

impl<O, A, S, D> BinaryRule<O, A> for ArrayBase<S, D>
where
    O: BinaryOp,
    A: Scalar + crate::Differentiable<Tangent = A>,
    S: Data<Elem = A>,
    D: Dimension,
{
    type Output = Array<A, D>;

    fn forward(&self, op: &O, rhs: &A) -> Array<A, D> {
        let b = *rhs;
        self.mapv(|a| op.value(a, b))
    }

    fn backward_lhs(
        &self,
        op: &O,
        rhs: &A,
        output: &Array<A, D>,
        cotangent: &Array<A, D>,
    ) -> Array<A, D> {
        let b = *rhs;
        Zip::from(self)
            .and(output)
            .and(cotangent)
            .map_collect(|&a, &y, &c| c * op.derivative_lhs(a, b, y))
    }

    fn backward_rhs(&self, op: &O, rhs: &A, output: &Array<A, D>, cotangent: &Array<A, D>) -> A {
        let b = *rhs;
        let mut sum = A::zero();
        Zip::from(self)
            .and(output)
            .and(cotangent)
            .for_each(|&a, &y, &c| sum += c * op.derivative_rhs(a, b, y));
        sum
    }
}

impl<O, A, S, D> BinaryRule<O, ArrayBase<S, D>> for A
where
    O: BinaryOp,
    A: Scalar + crate::Differentiable<Tangent = A>,
    S: Data<Elem = A>,
    D: Dimension,
{
    type Output = Array<A, D>;

    fn forward(&self, op: &O, rhs: &ArrayBase<S, D>) -> Array<A, D> {
        let a = *self;
        rhs.mapv(|b| op.value(a, b))
    }

    fn backward_lhs(
        &self,
        op: &O,
        rhs: &ArrayBase<S, D>,
        output: &Array<A, D>,
        cotangent: &Array<A, D>,
    ) -> A {
        let a = *self;
        let mut sum = A::zero();
        Zip::from(rhs)
            .and(output)
            .and(cotangent)
            .for_each(|&b, &y, &c| sum += c * op.derivative_lhs(a, b, y));
        sum
    }

    fn backward_rhs(
        &self,
        op: &O,
        rhs: &ArrayBase<S, D>,
        output: &Array<A, D>,
        cotangent: &Array<A, D>,
    ) -> Array<A, D> {
        let a = *self;
        Zip::from(rhs)
            .and(output)
            .and(cotangent)
            .map_collect(|&b, &y, &c| c * op.derivative_rhs(a, b, y))
    }
}
