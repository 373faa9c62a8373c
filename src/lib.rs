#![doc = include_str!("../README.md")]
//!
//! # The two macros
//!
//! - [`macro@differentiable`] on a function generates `f_grad`, `f_vjp`, `f_trace` and
//!   the gradient struct `FGrad` next to it.
//! - [`macro@Differentiable`] on a struct of arrays and scalars generates its tangent
//!   struct (same field names) and the vector-space operations the optimisers in
//!   [`optim`] use.
//!
//! Everything else is the runtime: derivative rules ([`rules`]), convolution and
//! pooling ([`conv`], [`pool`]), losses and activations ([`nn`]), Toeplitz matrices
//! ([`mod@toeplitz`]), optimisers ([`optim`]) and the [`Trace`] of a computation.

pub use stagegrad_macros::{Differentiable, differentiable};
pub use stagegrad_runtime::*;
