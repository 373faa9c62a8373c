//! stagegrad differentiates ordinary Rust functions at compile time.
pub use stagegrad_macros::differentiable;
pub use stagegrad_runtime::*;
