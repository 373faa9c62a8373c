//! stagegrad differentiates ordinary Rust functions at compile time.
pub use stagegrad_macros::{Differentiable, differentiable};
pub use stagegrad_runtime::*;
