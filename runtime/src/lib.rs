//! The runtime of stagegrad: the [`Differentiable`] trait and tangent types, derivative
//! rules, and the trace of a staged computation.
//!
//! Most users depend on the `stagegrad` facade crate, which re-exports all of this
//! next to the `#[differentiable]` macro.

pub mod conv;
pub mod error;
pub mod nn;
pub mod optim;
pub mod pool;
pub mod rules;
mod scalar;
mod tangent;
pub mod toeplitz;
pub mod trace;

#[doc(hidden)]
pub mod __private;

pub use scalar::Scalar;
pub use tangent::{Accumulate, Differentiable, NoTangent, TangentSpace};
pub use trace::Trace;

pub use conv::*;
pub use error::ShapeError;
pub use toeplitz::*;

pub use nn::*;
pub use pool::*;

/// Stops the gradient at `value`: the result equals `value`, and nothing flows back
/// through it.
#[inline(always)]
pub fn detach<T>(value: T) -> T {
    value
}
