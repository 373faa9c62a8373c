//! The generated gradient of a loop: Horner's rule for a degree-50 polynomial against a
//! hand-written adjoint loop and the primal.
//!
//! Run with `cargo bench --bench control_flow -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array1;
use stagegrad::differentiable;

#[differentiable]
fn horner(x: f64, c: &Array1<f64>) -> f64 {
    let n = c.len();
    let mut acc = 0.0;
    for k in 0..n {
        acc = acc * x + c[n - 1 - k];
    }
    acc
}

/// Differentiates Horner's rule by hand: the forward loop keeps each partial value and
/// the reverse loop walks them back.
fn horner_hand_written(x: f64, c: &Array1<f64>) -> (f64, f64, Array1<f64>) {
    let n = c.len();
    let mut partials = Vec::with_capacity(n);
    let mut acc = 0.0;
    for k in 0..n {
        partials.push(acc);
        acc = acc * x + c[n - 1 - k];
    }
    let mut gradient_x = 0.0;
    let mut gradient_c = Array1::zeros(n);
    let mut adjoint = 1.0;
    for k in (0..n).rev() {
        gradient_c[n - 1 - k] += adjoint;
        gradient_x += adjoint * partials[k];
        adjoint *= x;
    }
    (acc, gradient_x, gradient_c)
}

fn horner_degree_50(c: &mut Criterion) {
    let coefficients = Array1::from_shape_fn(51, |k| 1.0 / (k as f64 + 1.0));
    let x = 0.9;
    let (value, generated) = horner_grad(x, &coefficients);
    let (hand_value, hand_x, hand_c) = horner_hand_written(x, &coefficients);
    assert!((value - hand_value).abs() < 1e-12);
    assert!((generated.x - hand_x).abs() < 1e-9);
    assert!((&generated.c - &hand_c).iter().all(|d| d.abs() < 1e-12));

    let mut group = c.benchmark_group("horner_degree_50");
    group.bench_function("generated_gradient", |b| {
        b.iter(|| horner_grad(black_box(x), black_box(&coefficients)))
    });
    group.bench_function("hand_written_gradient", |b| {
        b.iter(|| horner_hand_written(black_box(x), black_box(&coefficients)))
    });
    group.bench_function("primal", |b| {
        b.iter(|| horner(black_box(x), black_box(&coefficients)))
    });
    group.finish();
}

criterion_group!(benches, horner_degree_50);
criterion_main!(benches);
