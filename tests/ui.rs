//! Compile-error tests of `#[differentiable]` and `#[derive(Differentiable)]`: each file
//! under `tests/ui/fail` is one mistake, and its `.stderr` is the reviewed message.
//! Files under `tests/ui/pass` must compile and run.
//!
//! After a change to a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test --test ui` and review the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
