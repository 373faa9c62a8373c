//! The scalar types the rules are written for.

use std::fmt::{Debug, Display};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::{Float, FloatConst, FromPrimitive};

/// A floating-point element type the derivative rules support: `f32` or `f64`.
///
/// The rules are written once over `S: Scalar`. This is the runtime's own trait rather
/// than `num_traits::Float` on purpose: a blanket rule impl over every `T: Float` would
/// overlap (E0119) with the impls for ndarray arrays, because another crate could make an
/// array type `Float`. No crate but this one can implement `Scalar`, so the impls stay
/// apart. A generic function bounded by `T: num_traits::Float` gets the extra
/// `T: Scalar` bound on its generated items from the macro.
pub trait Scalar:
    Float
    + FloatConst
    + FromPrimitive
    + LinalgScalar
    + ScalarOperand
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::ops::DivAssign
    + crate::Differentiable<Tangent = Self, Slot = Option<Self>>
    + crate::TangentSpace
    + crate::trace::Summarize
    + 'static
{
    /// The name of the type, `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to the nearest value of `Self`.
    fn from_f64_lossy(value: f64) -> Self;

    /// Converts to `f64` without loss.
    fn to_f64_lossless(self) -> f64;
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";

    fn from_f64_lossy(value: f64) -> Self {
        value as f32
    }

    fn to_f64_lossless(self) -> f64 {
        f64::from(self)
    }
}

impl Scalar for f64 {
    const NAME: &'static str = "f64";

    fn from_f64_lossy(value: f64) -> Self {
        value
    }

    fn to_f64_lossless(self) -> f64 {
        self
    }
}
