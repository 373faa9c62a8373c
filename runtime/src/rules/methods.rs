//! Derivative rules for array methods: reductions, transposes, reshapes and products,
//! and `unwrap` on the `Option` or `Result` that some of them return.
//!
//! `#[differentiable]` turns a method call into a call of [`MethodRule`] or
//! [`MethodRule2`] with one of the op values below, which carry the method's constant
//! arguments:
//!
//! | user code | op |
//! | --- | --- |
//! | `x.sum()` | [`Sum`] |
//! | `x.mean()` | [`Mean`] |
//! | `x.sum_axis(axis)` | [`SumAxis`] |
//! | `x.mean_axis(axis)` | [`MeanAxis`] |
//! | `x.t()`, `x.reversed_axes()` | [`Transpose`] |
//! | `x.into_shape_with_order(shape)`, `x.into_shape(shape)`, `x.to_shape(shape)` | [`IntoShape`] |
//! | `x.reshape(shape)` | [`Reshape`] |
//! | `x.insert_axis(axis)` | [`InsertAxis`] |
//! | `x.to_owned()`, `x.clone()` | [`ToOwned`] |
//! | `x.dot(&y)` | [`Dot`] |
//! | `v.unwrap()` | [`Unwrap`] |
//! | `v.expect(message)` | [`Expect`] or [`Unwrap`] |
//!
//! Every result is an owned array, because the generated code keeps its intermediates.
//! A method that returns a view in ndarray (`t`, `to_shape`) therefore returns a copy
//! here, and the reshapes accept any layout: they read elements in the requested index
//! order (row-major unless an [`Order`] is given) and copy where needed.

use ndarray::{
    Array, Array2, ArrayBase, ArrayView1, Axis, Data, Dimension, Ix1, Ix2, Order, RemoveAxis,
    ShapeArg, ShapeError,
};

use super::{MethodRule, MethodRule2};
use crate::{Differentiable, Scalar};

/// `x.sum()`: the sum of all elements, a scalar.
///
/// Its gradient is the cotangent in every element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sum;

/// `x.mean()`: the mean of all elements, `None` for an empty array, as in ndarray.
///
/// Its gradient is the cotangent divided by the number of elements, in every element.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mean;

/// `x.sum_axis(axis)`: the sums along `axis`, which removes that axis.
///
/// The gradient copies each output cotangent along the removed axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SumAxis(pub Axis);

/// `x.mean_axis(axis)`: the means along `axis`, `None` where the axis has length 0, as in
/// ndarray.
///
/// The gradient copies each output cotangent, divided by the axis length, along the
/// removed axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeanAxis(pub Axis);

/// `x.t()` or `x.reversed_axes()`: the array with its axes in reverse order, owned.
///
/// The gradient reverses the axes of the cotangent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Transpose;

/// `x.into_shape_with_order(shape)`, `x.into_shape(shape)` or `x.to_shape(shape)`: the
/// elements in a new shape, owned, or [`ShapeError`] when the element counts differ.
///
/// `shape` is anything ndarray accepts as a [`ShapeArg`]: a shape such as `(2, 3)` or
/// `[2, 3]` (read in row-major order), or a pair `(shape, Order)`. Unlike ndarray's
/// `into_shape_with_order`, a source that is not contiguous in that order is copied
/// rather than rejected. The deprecated ndarray method `into_shape` reads a column-major
/// array in column-major order, but this rule reads every source in row-major order.
///
/// The gradient reshapes the cotangent back to the source's shape, in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntoShape<E>(pub E);

/// `x.reshape(shape)`: the elements in a new shape, owned.
///
/// The same as [`IntoShape`], but a count mismatch panics with both shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reshape<E>(pub E);

/// `x.insert_axis(axis)`: the array with a new axis of length 1 at `axis`, owned.
///
/// The gradient removes that axis from the cotangent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertAxis(pub Axis);

/// `x.to_owned()` or `x.clone()`: an owned copy, with the cotangent as its gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToOwned;

/// `x.dot(&y)`: the matrix product of two matrices, a matrix and a vector (either way
/// round), or the inner product of two vectors.
///
/// For `C = A B` with cotangent `G`, the gradients are `G Bᵀ` and `Aᵀ G`. A vector
/// operand takes the matching row or column role, so a gradient of a matrix against a
/// vector is an outer product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dot;

/// `v.unwrap()` on the `Option` of [`Mean`] and [`MeanAxis`] or the `Result` of
/// [`IntoShape`]. The gradient passes through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unwrap;

/// `v.expect(message)`: [`Unwrap`] that panics with `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a>(pub &'a str);

/// Panics unless `axis` is an axis of an array of `shape`.
#[track_caller]
fn check_axis(method: &str, axis: Axis, shape: &[usize]) {
    assert!(
        axis.index() < shape.len(),
        "cannot apply `{method}` along axis {} of a {}-dimensional array of shape {shape:?}: expected an axis in 0..{}",
        axis.index(),
        shape.len(),
        shape.len()
    );
}

/// Panics unless the inner lengths of a product agree.
#[track_caller]
pub(crate) fn check_inner_lengths(
    operation: &str,
    lhs: &[usize],
    rhs: &[usize],
    lhs_inner: usize,
    rhs_inner: usize,
) {
    assert!(
        lhs_inner == rhs_inner,
        "cannot compute `{operation}` of shapes {lhs:?} and {rhs:?}: the inner lengths {lhs_inner} and {rhs_inner} differ"
    );
}

fn length_as<A: Scalar>(length: usize) -> A {
    A::from_usize(length).expect("every `usize` converts to a float")
}

impl<A, S, D> MethodRule<Sum> for ArrayBase<S, D>
where
    A: Scalar + Differentiable<Tangent = A>,
    S: Data<Elem = A>,
    D: Dimension,
{
    type Output = A;

    fn forward(&self, _op: &Sum) -> A {
        self.sum()
    }

    fn backward(&self, _op: &Sum, _output: &A, cotangent: &A) -> Array<A, D> {
        Array::from_elem(self.raw_dim(), *cotangent)
    }
}

impl<A, S, D> MethodRule<Mean> for ArrayBase<S, D>
where
    A: Scalar + Differentiable<Tangent = A>,
    S: Data<Elem = A>,
    D: Dimension,
{
    type Output = Option<A>;

    fn forward(&self, _op: &Mean) -> Option<A> {
        self.mean()
    }

    fn backward(&self, _op: &Mean, _output: &Option<A>, cotangent: &A) -> Array<A, D> {
        if self.is_empty() {
            return self.zero_tangent();
        }
        Array::from_elem(self.raw_dim(), *cotangent / length_as::<A>(self.len()))
    }
}

impl<A, S, D> MethodRule<SumAxis> for ArrayBase<S, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: RemoveAxis,
{
    type Output = Array<A, D::Smaller>;

    #[track_caller]
    fn forward(&self, op: &SumAxis) -> Array<A, D::Smaller> {
        check_axis("sum_axis", op.0, self.shape());
        self.sum_axis(op.0)
    }

    fn backward(
        &self,
        op: &SumAxis,
        _output: &Array<A, D::Smaller>,
        cotangent: &Array<A, D::Smaller>,
    ) -> Array<A, D> {
        spread_along_axis(cotangent, op.0, &self.raw_dim(), A::one())
    }
}

impl<A, S, D> MethodRule<MeanAxis> for ArrayBase<S, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: RemoveAxis,
{
    type Output = Option<Array<A, D::Smaller>>;

    #[track_caller]
    fn forward(&self, op: &MeanAxis) -> Option<Array<A, D::Smaller>> {
        check_axis("mean_axis", op.0, self.shape());
        self.mean_axis(op.0)
    }

    fn backward(
        &self,
        op: &MeanAxis,
        _output: &Option<Array<A, D::Smaller>>,
        cotangent: &Array<A, D::Smaller>,
    ) -> Array<A, D> {
        let length = self.len_of(op.0);
        if length == 0 {
            return self.zero_tangent();
        }
        let factor = length_as::<A>(length).recip();
        spread_along_axis(cotangent, op.0, &self.raw_dim(), factor)
    }
}

/// Copies `factor * cotangent` along the axis that a reduction removed, back to the
/// source's shape.
#[track_caller]
fn spread_along_axis<A: Scalar, E: Dimension, D: Dimension>(
    cotangent: &Array<A, E>,
    axis: Axis,
    source_shape: &D,
    factor: A,
) -> Array<A, D> {
    let expanded = cotangent.view().insert_axis(axis);
    let Some(broadcast) = expanded.broadcast(source_shape.clone()) else {
        panic!(
            "cannot spread a gradient of shape {:?} along axis {} to shape {:?}",
            cotangent.shape(),
            axis.index(),
            source_shape.slice()
        )
    };
    if factor == A::one() {
        broadcast.to_owned()
    } else {
        broadcast.mapv(|c| c * factor)
    }
}

impl<A, S, D> MethodRule<Transpose> for ArrayBase<S, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: Dimension,
{
    type Output = Array<A, D>;

    fn forward(&self, _op: &Transpose) -> Array<A, D> {
        self.to_owned().reversed_axes()
    }

    fn backward(
        &self,
        _op: &Transpose,
        _output: &Array<A, D>,
        cotangent: &Array<A, D>,
    ) -> Array<A, D> {
        cotangent.t().to_owned()
    }
}

/// Splits a shape argument into the shape and the index order, row-major by default.
fn shape_and_order<E: ShapeArg + Clone>(shape: &E) -> (E::Dim, Order) {
    let (shape, order) = shape.clone().into_shape_and_order();
    (shape, order.unwrap_or(Order::RowMajor))
}

/// Reads `cotangent` back into the source's shape, in the order the forward pass used.
#[track_caller]
fn reshape_back<A: Scalar, E: Dimension, D: Dimension>(
    cotangent: &Array<A, E>,
    source_shape: &D,
    order: Order,
) -> Array<A, D> {
    match cotangent.to_shape((source_shape.clone(), order)) {
        Ok(gradient) => gradient.into_owned(),
        Err(_) => panic!(
            "cannot reshape a gradient of shape {:?} back to the source shape {:?}",
            cotangent.shape(),
            source_shape.slice()
        ),
    }
}

impl<A, S, D, E> MethodRule<IntoShape<E>> for ArrayBase<S, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: Dimension,
    E: ShapeArg + Clone,
{
    type Output = Result<Array<A, E::Dim>, ShapeError>;

    fn forward(&self, op: &IntoShape<E>) -> Result<Array<A, E::Dim>, ShapeError> {
        let (shape, order) = shape_and_order(&op.0);
        Ok(self.to_shape((shape, order))?.into_owned())
    }

    #[track_caller]
    fn backward(
        &self,
        op: &IntoShape<E>,
        _output: &Result<Array<A, E::Dim>, ShapeError>,
        cotangent: &Array<A, E::Dim>,
    ) -> Array<A, D> {
        let (_, order) = shape_and_order(&op.0);
        reshape_back(cotangent, &self.raw_dim(), order)
    }
}

impl<A, S, D, E> MethodRule<Reshape<E>> for ArrayBase<S, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: Dimension,
    E: ShapeArg + Clone,
{
    type Output = Array<A, E::Dim>;

    #[track_caller]
    fn forward(&self, op: &Reshape<E>) -> Array<A, E::Dim> {
        let (shape, order) = shape_and_order(&op.0);
        match self.to_shape((shape.clone(), order)) {
            Ok(reshaped) => reshaped.into_owned(),
            Err(_) => panic!(
                "cannot `reshape` an array of shape {:?} to shape {:?}: they have {} and {} elements",
                self.shape(),
                shape.slice(),
                self.len(),
                shape.size_checked().map_or_else(
                    || "more than `usize::MAX`".to_owned(),
                    |size| size.to_string()
                )
            ),
        }
    }

    #[track_caller]
    fn backward(
        &self,
        op: &Reshape<E>,
        _output: &Array<A, E::Dim>,
        cotangent: &Array<A, E::Dim>,
    ) -> Array<A, D> {
        let (_, order) = shape_and_order(&op.0);
        reshape_back(cotangent, &self.raw_dim(), order)
    }
}

impl<A, S, D> MethodRule<InsertAxis> for ArrayBase<S, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: Dimension,
{
    type Output = Array<A, D::Larger>;

    #[track_caller]
    fn forward(&self, op: &InsertAxis) -> Array<A, D::Larger> {
        assert!(
            op.0.index() <= self.ndim(),
            "cannot apply `insert_axis` at axis {} of a {}-dimensional array of shape {:?}: expected an axis in 0..={}",
            op.0.index(),
            self.ndim(),
            self.shape(),
            self.ndim()
        );
        self.to_owned().insert_axis(op.0)
    }

    fn backward(
        &self,
        op: &InsertAxis,
        _output: &Array<A, D::Larger>,
        cotangent: &Array<A, D::Larger>,
    ) -> Array<A, D> {
        cotangent
            .index_axis(op.0, 0)
            .into_dimensionality::<D>()
            .expect("removing the inserted axis restores the source's dimension")
            .to_owned()
    }
}

impl<A, S, D> MethodRule<ToOwned> for ArrayBase<S, D>
where
    A: Scalar,
    S: Data<Elem = A>,
    D: Dimension,
{
    type Output = Array<A, D>;

    fn forward(&self, _op: &ToOwned) -> Array<A, D> {
        self.to_owned()
    }

    fn backward(
        &self,
        _op: &ToOwned,
        _output: &Array<A, D>,
        cotangent: &Array<A, D>,
    ) -> Array<A, D> {
        cotangent.clone()
    }
}

impl<A: Scalar + Differentiable<Tangent = A>> MethodRule<ToOwned> for A {
    type Output = A;

    fn forward(&self, _op: &ToOwned) -> A {
        *self
    }

    fn backward(&self, _op: &ToOwned, _output: &A, cotangent: &A) -> A {
        *cotangent
    }
}

impl<T: Differentiable + Clone> MethodRule<Unwrap> for Option<T> {
    type Output = T;

    #[track_caller]
    fn forward(&self, _op: &Unwrap) -> T {
        match self {
            Some(value) => value.clone(),
            None => panic!("called `Option::unwrap()` on a `None` value"),
        }
    }

    fn backward(&self, _op: &Unwrap, _output: &T, cotangent: &T::Tangent) -> T::Tangent {
        cotangent.clone()
    }
}

impl<T: Differentiable + Clone> MethodRule<Unwrap> for Result<T, ShapeError> {
    type Output = T;

    #[track_caller]
    fn forward(&self, _op: &Unwrap) -> T {
        match self {
            Ok(value) => value.clone(),
            Err(error) => panic!("called `Result::unwrap()` on an `Err` value: {error:?}"),
        }
    }

    fn backward(&self, _op: &Unwrap, _output: &T, cotangent: &T::Tangent) -> T::Tangent {
        cotangent.clone()
    }
}

impl<T: Differentiable + Clone> MethodRule<Expect<'_>> for Option<T> {
    type Output = T;

    #[track_caller]
    fn forward(&self, op: &Expect<'_>) -> T {
        match self {
            Some(value) => value.clone(),
            None => panic!("{}", op.0),
        }
    }

    fn backward(&self, _op: &Expect<'_>, _output: &T, cotangent: &T::Tangent) -> T::Tangent {
        cotangent.clone()
    }
}

impl<T: Differentiable + Clone> MethodRule<Expect<'_>> for Result<T, ShapeError> {
    type Output = T;

    #[track_caller]
    fn forward(&self, op: &Expect<'_>) -> T {
        match self {
            Ok(value) => value.clone(),
            Err(error) => panic!("{}: {error:?}", op.0),
        }
    }

    fn backward(&self, _op: &Expect<'_>, _output: &T, cotangent: &T::Tangent) -> T::Tangent {
        cotangent.clone()
    }
}

/// Returns the outer product `u vᵀ`, through the matrix product of a column and a row.
fn outer<A: Scalar>(u: ArrayView1<'_, A>, v: ArrayView1<'_, A>) -> Array2<A> {
    u.insert_axis(Axis(1)).dot(&v.insert_axis(Axis(0)))
}

impl<A, S1, S2> MethodRule2<Dot, ArrayBase<S2, Ix2>> for ArrayBase<S1, Ix2>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    type Output = Array2<A>;

    #[track_caller]
    fn forward(&self, _op: &Dot, rhs: &ArrayBase<S2, Ix2>) -> Array2<A> {
        check_inner_lengths("dot", self.shape(), rhs.shape(), self.ncols(), rhs.nrows());
        self.dot(rhs)
    }

    fn backward_lhs(
        &self,
        _op: &Dot,
        rhs: &ArrayBase<S2, Ix2>,
        _output: &Array2<A>,
        cotangent: &Array2<A>,
    ) -> Array2<A> {
        cotangent.dot(&rhs.t())
    }

    fn backward_rhs(
        &self,
        _op: &Dot,
        _rhs: &ArrayBase<S2, Ix2>,
        _output: &Array2<A>,
        cotangent: &Array2<A>,
    ) -> Array2<A> {
        self.t().dot(cotangent)
    }
}

impl<A, S1, S2> MethodRule2<Dot, ArrayBase<S2, Ix1>> for ArrayBase<S1, Ix2>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    type Output = Array<A, Ix1>;

    #[track_caller]
    fn forward(&self, _op: &Dot, rhs: &ArrayBase<S2, Ix1>) -> Array<A, Ix1> {
        check_inner_lengths("dot", self.shape(), rhs.shape(), self.ncols(), rhs.len());
        self.dot(rhs)
    }

    fn backward_lhs(
        &self,
        _op: &Dot,
        rhs: &ArrayBase<S2, Ix1>,
        _output: &Array<A, Ix1>,
        cotangent: &Array<A, Ix1>,
    ) -> Array2<A> {
        outer(cotangent.view(), rhs.view())
    }

    fn backward_rhs(
        &self,
        _op: &Dot,
        _rhs: &ArrayBase<S2, Ix1>,
        _output: &Array<A, Ix1>,
        cotangent: &Array<A, Ix1>,
    ) -> Array<A, Ix1> {
        self.t().dot(cotangent)
    }
}

impl<A, S1, S2> MethodRule2<Dot, ArrayBase<S2, Ix2>> for ArrayBase<S1, Ix1>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    type Output = Array<A, Ix1>;

    #[track_caller]
    fn forward(&self, _op: &Dot, rhs: &ArrayBase<S2, Ix2>) -> Array<A, Ix1> {
        check_inner_lengths("dot", self.shape(), rhs.shape(), self.len(), rhs.nrows());
        self.dot(rhs)
    }

    fn backward_lhs(
        &self,
        _op: &Dot,
        rhs: &ArrayBase<S2, Ix2>,
        _output: &Array<A, Ix1>,
        cotangent: &Array<A, Ix1>,
    ) -> Array<A, Ix1> {
        rhs.dot(cotangent)
    }

    fn backward_rhs(
        &self,
        _op: &Dot,
        _rhs: &ArrayBase<S2, Ix2>,
        _output: &Array<A, Ix1>,
        cotangent: &Array<A, Ix1>,
    ) -> Array2<A> {
        outer(self.view(), cotangent.view())
    }
}

impl<A, S1, S2> MethodRule2<Dot, ArrayBase<S2, Ix1>> for ArrayBase<S1, Ix1>
where
    A: Scalar + Differentiable<Tangent = A>,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    type Output = A;

    #[track_caller]
    fn forward(&self, _op: &Dot, rhs: &ArrayBase<S2, Ix1>) -> A {
        check_inner_lengths("dot", self.shape(), rhs.shape(), self.len(), rhs.len());
        self.dot(rhs)
    }

    fn backward_lhs(
        &self,
        _op: &Dot,
        rhs: &ArrayBase<S2, Ix1>,
        _output: &A,
        cotangent: &A,
    ) -> Array<A, Ix1> {
        let c = *cotangent;
        rhs.mapv(|b| b * c)
    }

    fn backward_rhs(
        &self,
        _op: &Dot,
        _rhs: &ArrayBase<S2, Ix1>,
        _output: &A,
        cotangent: &A,
    ) -> Array<A, Ix1> {
        let c = *cotangent;
        self.mapv(|a| a * c)
    }
}
