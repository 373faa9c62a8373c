//! Tangent types: what a gradient of each kind of value looks like.

use ndarray::{Array, ArrayBase, Data, Dimension};

use crate::Scalar;

/// A value that a differentiable function can take or return, with the type of its
/// gradient.
///
/// `f32` and `f64` are their own tangents. An ndarray array of either has an owned
/// array of the same dimension as its tangent, and `&T` has `T`'s tangent. Integers,
/// `bool` and settings structs have [`NoTangent`]. User structs get an impl from
/// `#[derive(Differentiable)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no tangent type, so it cannot be differentiated",
    label = "this value has no tangent type",
    note = "derive it with `#[derive(stagegrad::Differentiable)]`, or exclude the argument with `#[differentiable(wrt(...))]`"
)]
pub trait Differentiable {
    /// The gradient of a value of this type.
    type Tangent: TangentSpace;

    /// The accumulator in which the reverse sweep sums the contributions to this value's
    /// gradient. For leaves it is `Option<Tangent>`, so a value that receives nothing
    /// allocates nothing.
    type Slot: Default + Accumulate<Self::Tangent> + Accumulate<NoTangent>;

    /// Returns the zero tangent at this value (same shape for arrays).
    fn zero_tangent(&self) -> Self::Tangent;

    /// Turns the summed contributions into a tangent, filling what received nothing with
    /// zeros of this value's shape.
    fn finish(&self, slot: Self::Slot) -> Self::Tangent;

    /// Returns the summed gradient, or `None` when nothing was accumulated, so the
    /// reverse sweep can skip a stage that received no gradient.
    fn settle(&self, slot: Self::Slot) -> Option<Self::Tangent> {
        Some(self.finish(slot))
    }

    /// Returns the cotangent 1 for a scalar; `None` for values with more than one element.
    fn unit_cotangent(&self) -> Option<Self::Tangent> {
        None
    }

    /// Moves this value by `scale * step`, the update an optimiser applies.
    fn apply_step(&mut self, step: &Self::Tangent, scale: f64);
}

/// Sums contributions to a gradient.
pub trait Accumulate<G> {
    /// Adds `gradient` to what is already there.
    fn accumulate(&mut self, gradient: G);
}

impl<T: TangentSpace> Accumulate<T> for Option<T> {
    #[inline(always)]
    fn accumulate(&mut self, gradient: T) {
        match self {
            Some(sum) => sum.add_assign(&gradient),
            None => *self = Some(gradient),
        }
    }
}

/// A constant's contribution is nothing; it arrives where a callee treats an argument
/// as a constant (through `wrt`) while the caller differentiates it.
macro_rules! ignore_no_tangent {
    ($($t:ty),*) => {$(
        impl Accumulate<NoTangent> for Option<$t> {
            #[inline(always)]
            fn accumulate(&mut self, _gradient: NoTangent) {}
        }
    )*};
}

ignore_no_tangent!(f32, f64);

impl<A: Scalar, D: Dimension> Accumulate<NoTangent> for Option<Array<A, D>> {
    #[inline(always)]
    fn accumulate(&mut self, _gradient: NoTangent) {}
}

/// The tangent of a value that is not differentiated: integers, `bool`, settings.
///
/// It is zero-sized, so carrying it costs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct NoTangent;

/// The vector-space operations an optimiser needs on a gradient.
///
/// Coefficients are `f64` whatever the element type, so one optimiser steps `f32` and
/// `f64` models alike.
pub trait TangentSpace: Clone {
    /// Adds `other` to `self` elementwise.
    fn add_assign(&mut self, other: &Self);

    /// Multiplies every element by `factor`.
    fn scale(&mut self, factor: f64);

    /// Computes `self += alpha * x`.
    fn axpy(&mut self, alpha: f64, x: &Self);

    /// Returns the inner product of the two tangents.
    fn dot(&self, other: &Self) -> f64;

    /// Returns the Euclidean norm.
    fn norm(&self) -> f64 {
        self.dot(self).sqrt()
    }

    /// Replaces each element `a` with `f(a, b)`, `b` being the matching element of
    /// `other`. Optimisers build their elementwise updates from this.
    fn zip_map(&mut self, other: &Self, f: &mut dyn FnMut(f64, f64) -> f64);

    /// Returns the number of scalar elements.
    fn len(&self) -> usize;

    /// Returns `true` when there are no scalar elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl TangentSpace for NoTangent {
    fn add_assign(&mut self, _other: &Self) {}
    fn scale(&mut self, _factor: f64) {}
    fn axpy(&mut self, _alpha: f64, _x: &Self) {}
    fn dot(&self, _other: &Self) -> f64 {
        0.0
    }
    fn zip_map(&mut self, _other: &Self, _f: &mut dyn FnMut(f64, f64) -> f64) {}
    fn len(&self) -> usize {
        0
    }
}

macro_rules! scalar_tangent {
    ($t:ty) => {
        impl TangentSpace for $t {
            #[inline(always)]
            fn add_assign(&mut self, other: &Self) {
                *self += *other;
            }
            fn scale(&mut self, factor: f64) {
                *self *= <$t>::from_f64_lossy(factor);
            }
            fn axpy(&mut self, alpha: f64, x: &Self) {
                *self += <$t>::from_f64_lossy(alpha) * *x;
            }
            fn dot(&self, other: &Self) -> f64 {
                (*self * *other).to_f64_lossless()
            }
            fn zip_map(&mut self, other: &Self, f: &mut dyn FnMut(f64, f64) -> f64) {
                *self = <$t>::from_f64_lossy(f(self.to_f64_lossless(), other.to_f64_lossless()));
            }
            fn len(&self) -> usize {
                1
            }
        }

        impl Differentiable for $t {
            type Tangent = $t;
            type Slot = Option<$t>;

            #[inline(always)]
            fn zero_tangent(&self) -> $t {
                0.0
            }

            #[inline(always)]
            fn finish(&self, slot: Option<$t>) -> $t {
                slot.unwrap_or(0.0)
            }

            #[inline(always)]
            fn settle(&self, slot: Option<$t>) -> Option<$t> {
                slot
            }

            #[inline(always)]
            fn unit_cotangent(&self) -> Option<$t> {
                Some(1.0)
            }

            fn apply_step(&mut self, step: &$t, scale: f64) {
                *self += <$t>::from_f64_lossy(scale) * *step;
            }
        }
    };
}

scalar_tangent!(f32);
scalar_tangent!(f64);

impl<A: Scalar, D: Dimension> TangentSpace for Array<A, D> {
    fn add_assign(&mut self, other: &Self) {
        assert_eq!(
            self.shape(),
            other.shape(),
            "cannot add gradients of shapes {:?} and {:?}",
            self.shape(),
            other.shape()
        );
        *self += other;
    }

    fn scale(&mut self, factor: f64) {
        let factor = A::from_f64_lossy(factor);
        self.mapv_inplace(|a| a * factor);
    }

    fn axpy(&mut self, alpha: f64, x: &Self) {
        let alpha = A::from_f64_lossy(alpha);
        self.scaled_add(alpha, x);
    }

    fn dot(&self, other: &Self) -> f64 {
        self.iter()
            .zip(other.iter())
            .map(|(a, b)| (*a * *b).to_f64_lossless())
            .sum()
    }

    fn zip_map(&mut self, other: &Self, f: &mut dyn FnMut(f64, f64) -> f64) {
        ndarray::Zip::from(&mut *self).and(other).for_each(|a, b| {
            *a = A::from_f64_lossy(f(a.to_f64_lossless(), b.to_f64_lossless()));
        });
    }

    fn len(&self) -> usize {
        ndarray::ArrayBase::len(self)
    }
}

impl<A: Scalar, S: Data<Elem = A>, D: Dimension> Differentiable for ArrayBase<S, D> {
    type Tangent = Array<A, D>;
    type Slot = Option<Array<A, D>>;

    fn zero_tangent(&self) -> Array<A, D> {
        Array::zeros(self.raw_dim())
    }

    fn finish(&self, slot: Self::Slot) -> Array<A, D> {
        slot.unwrap_or_else(|| self.zero_tangent())
    }

    fn settle(&self, slot: Self::Slot) -> Option<Array<A, D>> {
        slot
    }

    fn unit_cotangent(&self) -> Option<Array<A, D>> {
        (self.len() == 1).then(|| Array::ones(self.raw_dim()))
    }

    #[track_caller]
    fn apply_step(&mut self, _step: &Array<A, D>, _scale: f64) {
        // The storage is generic here, so nothing can be written through it. Owned
        // fields of derived structs step through `__private::step_array` instead.
        panic!(
            "cannot step an array through its generic storage; step the model that owns it, or use `scaled_add`"
        )
    }
}

impl<T: Differentiable + ?Sized> Differentiable for &T {
    type Tangent = T::Tangent;
    type Slot = T::Slot;

    #[inline(always)]
    fn zero_tangent(&self) -> T::Tangent {
        (**self).zero_tangent()
    }

    #[inline(always)]
    fn finish(&self, slot: T::Slot) -> T::Tangent {
        (**self).finish(slot)
    }

    #[inline(always)]
    fn settle(&self, slot: T::Slot) -> Option<T::Tangent> {
        (**self).settle(slot)
    }

    fn unit_cotangent(&self) -> Option<T::Tangent> {
        (**self).unit_cotangent()
    }

    fn apply_step(&mut self, _step: &T::Tangent, _scale: f64) {
        panic!("cannot step a shared reference; step the value it points to")
    }
}

impl<T: Differentiable> Differentiable for Option<T> {
    type Tangent = T::Tangent;
    type Slot = T::Slot;

    fn zero_tangent(&self) -> T::Tangent {
        self.as_ref()
            .expect("cannot take the tangent of `None`")
            .zero_tangent()
    }

    fn finish(&self, slot: T::Slot) -> T::Tangent {
        self.as_ref()
            .expect("cannot take the tangent of `None`")
            .finish(slot)
    }

    fn settle(&self, slot: T::Slot) -> Option<T::Tangent> {
        self.as_ref().and_then(|value| value.settle(slot))
    }

    fn unit_cotangent(&self) -> Option<T::Tangent> {
        self.as_ref().and_then(T::unit_cotangent)
    }

    fn apply_step(&mut self, step: &T::Tangent, scale: f64) {
        if let Some(value) = self {
            value.apply_step(step, scale);
        }
    }
}

impl<T: Differentiable> Differentiable for Result<T, ndarray::ShapeError> {
    type Tangent = T::Tangent;
    type Slot = T::Slot;

    #[track_caller]
    fn zero_tangent(&self) -> T::Tangent {
        match self {
            Ok(value) => value.zero_tangent(),
            Err(error) => panic!("cannot take the tangent of a failed reshape: {error}"),
        }
    }

    #[track_caller]
    fn finish(&self, slot: T::Slot) -> T::Tangent {
        match self {
            Ok(value) => value.finish(slot),
            Err(error) => panic!("cannot take the tangent of a failed reshape: {error}"),
        }
    }

    fn settle(&self, slot: T::Slot) -> Option<T::Tangent> {
        self.as_ref().ok().and_then(|value| value.settle(slot))
    }

    fn unit_cotangent(&self) -> Option<T::Tangent> {
        self.as_ref().ok().and_then(T::unit_cotangent)
    }

    fn apply_step(&mut self, step: &T::Tangent, scale: f64) {
        if let Ok(value) = self {
            value.apply_step(step, scale);
        }
    }
}

macro_rules! constant {
    ($($t:ty),*) => {$(
        impl Differentiable for $t {
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
            #[inline(always)]
            fn settle(&self, _slot: Option<NoTangent>) -> Option<NoTangent> {
                None
            }
            fn apply_step(&mut self, _step: &NoTangent, _scale: f64) {}
        }
    )*};
}

constant!(
    bool,
    char,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    (),
    str,
    String,
    NoTangent,
    ndarray::Axis
);

// Class labels and other integer sequences are constants of a function.
constant!(
    [bool],
    [i8],
    [i16],
    [i32],
    [i64],
    [isize],
    [u8],
    [u16],
    [u32],
    [u64],
    [usize],
    Vec<bool>,
    Vec<i8>,
    Vec<i16>,
    Vec<i32>,
    Vec<i64>,
    Vec<isize>,
    Vec<u8>,
    Vec<u16>,
    Vec<u32>,
    Vec<u64>,
    Vec<usize>
);

/// Tuples are differentiated element by element: the tangent of `(A, B)` is
/// `(A::Tangent, B::Tangent)`.
macro_rules! tuple_tangent {
    ($($name:ident $gradient:ident $index:tt),+) => {
        impl<$($name: TangentSpace),+> TangentSpace for ($($name,)+) {
            fn add_assign(&mut self, other: &Self) {
                $(self.$index.add_assign(&other.$index);)+
            }

            fn scale(&mut self, factor: f64) {
                $(self.$index.scale(factor);)+
            }

            fn axpy(&mut self, alpha: f64, x: &Self) {
                $(self.$index.axpy(alpha, &x.$index);)+
            }

            fn dot(&self, other: &Self) -> f64 {
                0.0 $(+ self.$index.dot(&other.$index))+
            }

            fn zip_map(&mut self, other: &Self, f: &mut dyn FnMut(f64, f64) -> f64) {
                $(self.$index.zip_map(&other.$index, f);)+
            }

            fn len(&self) -> usize {
                0 $(+ self.$index.len())+
            }
        }

        impl<$($name: Differentiable),+> Differentiable for ($($name,)+) {
            type Tangent = ($($name::Tangent,)+);
            type Slot = TupleSlot<($($name::Slot,)+)>;

            fn zero_tangent(&self) -> Self::Tangent {
                ($(self.$index.zero_tangent(),)+)
            }

            fn finish(&self, slot: Self::Slot) -> Self::Tangent {
                ($(self.$index.finish(slot.0.$index),)+)
            }

            fn apply_step(&mut self, step: &Self::Tangent, scale: f64) {
                $(self.$index.apply_step(&step.$index, scale);)+
            }
        }

        impl<$($name: Default),+> Default for TupleSlot<($($name,)+)> {
            fn default() -> Self {
                TupleSlot(($($name::default(),)+))
            }
        }

        impl<$($name, $gradient),+> Accumulate<($($gradient,)+)> for TupleSlot<($($name,)+)>
        where
            $($name: Accumulate<$gradient>),+
        {
            fn accumulate(&mut self, gradient: ($($gradient,)+)) {
                $(self.0.$index.accumulate(gradient.$index);)+
            }
        }

        impl<$($name),+> Accumulate<NoTangent> for TupleSlot<($($name,)+)> {
            fn accumulate(&mut self, _gradient: NoTangent) {}
        }
    };
}

/// The adjoint slot of a tuple: one slot per element.
#[derive(Debug)]
pub struct TupleSlot<T>(pub T);

tuple_tangent!(A GA 0, B GB 1);
tuple_tangent!(A GA 0, B GB 1, C GC 2);
tuple_tangent!(A GA 0, B GB 1, C GC 2, D GD 3);
