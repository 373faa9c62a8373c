//! The generated gradient code of scalar functions allocates nothing: `f_grad`, and
//! `f_vjp` with its pullback called twice, for plain functions, functions that call other
//! differentiable functions, functions with a hand-written rule, and generic ones.
//!
//! `allocation_counter` installs a counting global allocator in this test binary and
//! counts on the calling thread only, so the test harness's own threads do not disturb
//! a measurement.

use std::hint::black_box;

use allocation_counter::measure;
use stagegrad::differentiable;

/// Runs `work` and returns how many heap allocations it made on this thread.
fn allocations(work: impl FnOnce()) -> u64 {
    measure(work).count_total
}

#[differentiable]
fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

#[differentiable]
fn many_stages(x: f64, y: f64) -> f64 {
    let mut a = x.sin() * y + 2.0;
    a = a.exp() + a;
    a += y.hypot(x);
    let b = a.max(x) / (1.0 + y * y);
    b.tanh().powi(3) + x.mul_add(y, b) - (x as f32).cos() as f64
}

#[differentiable]
fn square(t: f64) -> f64 {
    t * t
}

#[differentiable]
fn composed(x: f64, y: f64) -> f64 {
    let s = square(x.sin()) + f(x, y, x);
    many_stages(s, y) * square(y)
}

fn log_sum_exp_rule(a: f64, b: f64) -> (f64, impl Fn(f64) -> (f64, f64) + use<>) {
    let largest = a.max(b);
    let (ea, eb) = ((a - largest).exp(), (b - largest).exp());
    let total = ea + eb;
    (largest + total.ln(), move |cotangent: f64| {
        (cotangent * ea / total, cotangent * eb / total)
    })
}

#[differentiable(vjp = log_sum_exp_rule)]
fn log_sum_exp(a: f64, b: f64) -> f64 {
    let largest = a.max(b);
    largest + ((a - largest).exp() + (b - largest).exp()).ln()
}

#[differentiable]
fn with_rule(x: f64, y: f64) -> f64 {
    log_sum_exp(x * y, y) * x
}

#[differentiable]
fn generic_poly<T>(x: T, y: T) -> T
where
    T: num_traits::Float,
{
    x * x * y + y.sin()
}

#[test]
fn counter_sees_an_allocation() {
    // Without this control a broken counter would pass every test below.
    assert_eq!(
        allocations(|| {
            black_box(Box::new(1.0_f64));
        }),
        1
    );
}

#[test]
fn design_example_allocates_nothing() {
    let (x, y, z) = black_box((-2.0, 5.0, -4.0));
    assert_eq!(
        allocations(|| {
            black_box(f_grad(x, y, z));
        }),
        0
    );
    assert_eq!(
        allocations(|| {
            let (value, pullback) = f_vjp(x, y, z);
            black_box(value);
            black_box(pullback(1.0));
            black_box(pullback(-3.0));
        }),
        0
    );
    assert_eq!(f(x, y, z), -12.0);
}

#[test]
fn many_stages_allocate_nothing() {
    let (x, y) = black_box((0.4, -1.3));
    assert_eq!(
        allocations(|| {
            black_box(many_stages_grad(x, y));
        }),
        0
    );
    assert_eq!(
        allocations(|| {
            let (value, pullback) = many_stages_vjp(x, y);
            black_box(value);
            black_box(pullback(2.0));
            black_box(pullback(0.5));
        }),
        0
    );
    assert_eq!(many_stages_grad(x, y).0, many_stages(x, y));
}

#[test]
fn composed_functions_allocate_nothing() {
    let (x, y) = black_box((0.7, 0.2));
    assert_eq!(
        allocations(|| {
            black_box(composed_grad(x, y));
        }),
        0
    );
    assert_eq!(
        allocations(|| {
            let (value, pullback) = composed_vjp(x, y);
            black_box(value);
            black_box(pullback(1.0));
            black_box(pullback(-1.0));
        }),
        0
    );
    assert_eq!(composed_grad(x, y).0, composed(x, y));
}

#[test]
fn hand_written_rule_allocates_nothing() {
    let (x, y) = black_box((1.5, -0.5));
    assert_eq!(
        allocations(|| {
            black_box(with_rule_grad(x, y));
        }),
        0
    );
    assert_eq!(
        allocations(|| {
            let (value, pullback) = with_rule_vjp(x, y);
            black_box(value);
            black_box(pullback(1.0));
            black_box(pullback(4.0));
        }),
        0
    );
    assert_eq!(with_rule_grad(x, y).0, with_rule(x, y));
}

#[test]
fn generic_functions_allocate_nothing() {
    let (x, y) = black_box((1.5_f32, 0.25_f32));
    assert_eq!(
        allocations(|| {
            black_box(generic_poly_grad(x, y));
        }),
        0
    );
    let (x, y) = black_box((1.5_f64, 0.25_f64));
    assert_eq!(
        allocations(|| {
            let (value, pullback) = generic_poly_vjp(x, y);
            black_box(value);
            black_box(pullback(1.0));
            black_box(pullback(2.0));
        }),
        0
    );
    assert_eq!(generic_poly_grad(x, y).0, generic_poly(x, y));
}

#[test]
fn trace_allocates() {
    // The trace records names and expressions as strings, so it does allocate: this
    // shows the zero counts above are about the gradient code, not a blind counter.
    let (x, y, z) = black_box((-2.0, 5.0, -4.0));
    assert!(
        allocations(|| {
            black_box(f_trace(x, y, z));
        }) > 0
    );
}
