//! Control flow in differentiable functions: branches, loops, reassignment, indexing
//! and early return, checked against hand-derived values and central differences.

use ndarray::{Array1, Array2, array};
use proptest::prelude::*;
use stagegrad::{Conv1dSettings, conv1d, differentiable};

fn central<F: Fn(f64) -> f64>(f: F, x: f64) -> f64 {
    let step = 1e-6 * (1.0 + x.abs());
    (f(x + step) - f(x - step)) / (2.0 * step)
}

fn numerical<D: ndarray::Dimension>(
    x: &ndarray::Array<f64, D>,
    f: impl Fn(&ndarray::Array<f64, D>) -> f64,
) -> ndarray::Array<f64, D> {
    let mut gradient = ndarray::Array::zeros(x.raw_dim());
    let slots = gradient.as_slice_mut().expect("a new array is contiguous");
    for (position, slot) in slots.iter_mut().enumerate() {
        let mut plus = x.to_owned();
        plus.as_slice_mut().expect("contiguous")[position] += 1e-6;
        let mut minus = x.to_owned();
        minus.as_slice_mut().expect("contiguous")[position] -= 1e-6;
        *slot = (f(&plus) - f(&minus)) / 2e-6;
    }
    gradient
}

fn assert_close<D: ndarray::Dimension>(
    generated: &ndarray::Array<f64, D>,
    expected: &ndarray::Array<f64, D>,
) {
    assert_eq!(generated.shape(), expected.shape());
    for (a, b) in generated.iter().zip(expected) {
        assert!(
            (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
            "generated {generated}\nexpected {expected}"
        );
    }
}

/// p(x) = c[0] + c[1] x + ... by Horner's rule, differentiated in x and in c.
#[differentiable]
fn horner(x: f64, c: &Array1<f64>) -> f64 {
    let n = c.len();
    let mut acc = 0.0;
    for k in 0..n {
        acc = acc * x + c[n - 1 - k];
    }
    acc
}

#[test]
fn horner_gradient_matches_derivative() {
    let c = array![1.0, -2.0, 0.5, 3.0];
    let x = 0.7;
    let (value, g) = horner_grad(x, &c);
    assert!((value - (1.0 - 2.0 * x + 0.5 * x * x + 3.0 * x * x * x)).abs() < 1e-12);
    // p'(x) = -2 + x + 9 x^2; dp/dc[k] = x^k.
    assert!((g.x - (-2.0 + x + 9.0 * x * x)).abs() < 1e-12);
    assert_close(&g.c, &array![1.0, x, x * x, x * x * x]);
    assert!((g.x - central(|x| horner(x, &c), x)).abs() < 1e-6);
}

/// log(sum(exp(x))) with the max shift found by a loop and an `if`.
#[differentiable]
fn log_sum_exp(x: &Array1<f64>) -> f64 {
    let mut largest = x[0];
    for i in 1..x.len() {
        if x[i] > largest {
            largest = x[i];
        }
    }
    let mut total = 0.0;
    for i in 0..x.len() {
        total += (x[i] - largest).exp();
    }
    total.ln() + largest
}

#[test]
fn log_sum_exp_gradient_is_softmax() {
    let x = array![1.0, 3.0, -0.5, 2.0];
    let (value, g) = log_sum_exp_grad(&x);
    let total: f64 = x.iter().map(|v| v.exp()).sum();
    assert!((value - total.ln()).abs() < 1e-12);
    let softmax = x.mapv(|v| v.exp() / total);
    assert_close(&g.x, &softmax);
    assert_close(&g.x, &numerical(&x, log_sum_exp));
}

/// A piecewise function with three pieces and an early return.
#[differentiable]
fn piecewise(x: f64) -> f64 {
    if x < -1.0 {
        return -x * x;
    }
    if x < 1.0 { x.sin() * 2.0 } else { x.ln() + x }
}

#[test]
fn piecewise_each_side_of_each_boundary() {
    for x in [
        -1.5,
        -1.0 - 1e-3,
        -1.0 + 1e-3,
        0.0,
        1.0 - 1e-3,
        1.0 + 1e-3,
        2.5,
    ] {
        let (value, g) = piecewise_grad(x);
        assert_eq!(value, piecewise(x));
        let expected = if x < -1.0 {
            -2.0 * x
        } else if x < 1.0 {
            2.0 * x.cos()
        } else {
            1.0 / x + 1.0
        };
        assert!(
            (g.x - expected).abs() < 1e-12,
            "x = {x}: {} vs {expected}",
            g.x
        );
        assert!((g.x - central(piecewise, x)).abs() < 1e-5, "x = {x}");
    }
}

/// Takes `ln` only of positive inputs. The untaken branch would give NaN (ln of a
/// negative number), and none of it may leak into the gradient.
#[differentiable]
fn guarded_log(x: f64) -> f64 {
    if x > 0.0 { x.ln() } else { x * 0.5 }
}

#[test]
fn untaken_branch_never_reaches_gradient() {
    let (value, g) = guarded_log_grad(-2.0);
    assert_eq!(value, -1.0);
    assert_eq!(g.x, 0.5);
}

/// Multiplies x[0] * x[1] * ... in a loop.
#[differentiable]
fn cumulative_product(x: &Array1<f64>) -> f64 {
    let mut product = 1.0;
    for value in x.iter() {
        product *= value;
    }
    product
}

#[test]
fn cumulative_product_gradient() {
    let x = array![2.0, -3.0, 0.5, 4.0];
    let (value, g) = cumulative_product_grad(&x);
    assert_eq!(value, -12.0);
    assert_close(&g.x, &array![-6.0, 4.0, -24.0, -3.0]);
}

/// Computes a valid 1D cross-correlation with nested loops and indexing, then its dot
/// product with `weights`.
#[differentiable]
fn naive_conv1d_loss(x: &Array1<f64>, k: &Array1<f64>, weights: &Array1<f64>) -> f64 {
    let outputs = x.len() - k.len() + 1;
    let mut loss = 0.0;
    for i in 0..outputs {
        let mut sum = 0.0;
        for j in 0..k.len() {
            sum += x[i + j] * k[j];
        }
        loss += sum * weights[i];
    }
    loss
}

#[test]
fn naive_conv1d_matches_runtime_conv1d() {
    let x = array![0.5, -1.0, 2.0, 0.25, 3.0, -0.75, 1.5];
    let k = array![0.2, -0.4, 1.1];
    let weights = array![1.0, -2.0, 0.5, 3.0, -1.0];
    let (value, g) = naive_conv1d_loss_grad(&x, &k, &weights);
    let settings = Conv1dSettings::default();
    let output = conv1d(&x, &k, &settings);
    assert!((value - output.dot(&weights)).abs() < 1e-12);
    let (_, pullback) = stagegrad::conv1d_vjp(&x, &k, &settings);
    let (dx, dk, _) = pullback(weights.clone());
    assert_close(&g.x, &dx);
    assert_close(&g.k, &dk);
    assert_close(&g.weights, &output);
}

/// Nested loops over a 2D array: sum of a[i][j]^2 * (i + 1).
#[differentiable]
fn weighted_squares(a: &Array2<f64>) -> f64 {
    let mut total = 0.0;
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            let v = a[[i, j]];
            total += v * v * (i as f64 + 1.0);
        }
    }
    total
}

#[test]
fn nested_loops_over_matrix() {
    let a = array![[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]];
    let (_, g) = weighted_squares_grad(&a);
    assert_close(&g.a, &array![[2.0, -4.0, 1.0], [12.0, 1.0, -4.0]]);
    assert_close(&g.a, &numerical(&a, weighted_squares));
}

#[test]
fn trace_shows_iterations_and_branches() {
    let trace = log_sum_exp_trace(&array![1.0, 3.0]);
    let text = trace.to_string();
    assert!(text.contains("i = 1"), "{text}");
    assert!(text.contains("then branch"), "{text}");
    assert!(text.contains("iterations"), "{text}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn horner_random_inputs(x in -2.0f64..2.0, c in proptest::collection::vec(-3.0f64..3.0, 1..8)) {
        let c = Array1::from(c);
        let (_, g) = horner_grad(x, &c);
        prop_assert!((g.x - central(|x| horner(x, &c), x)).abs() < 1e-5 * (1.0 + g.x.abs()));
    }

    #[test]
    fn log_sum_exp_random_inputs(x in proptest::collection::vec(-5.0f64..5.0, 1..7)) {
        let x = Array1::from(x);
        let (_, g) = log_sum_exp_grad(&x);
        assert_close(&g.x, &numerical(&x, log_sum_exp));
        prop_assert!((g.x.sum() - 1.0).abs() < 1e-12);
    }
}
