//! A program that `tests/expansion_lints.rs` compiles as its own crate: one function for
//! each kind of input `#[differentiable]` accepts, so that clippy and `deny(warnings)`
//! see every shape of generated code. `main` calls each original function and a few
//! generated ones, the way a user would.

#![deny(warnings)]

use ndarray::{Array1, Array2, array};
use num_traits::Float;
use stagegrad::{Differentiable, differentiable};

/// Computes `(x + y) z` through a named stage `g`.
#[differentiable]
pub fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

/// Exercises float methods, powers, rebinding and a constant.
#[differentiable]
fn smooth(x: f64, y: f64) -> f64 {
    let a = x.sin() * y + 2.0;
    let a = a.exp() + a;
    a.ln() * x.powi(3) - y.sqrt()
}

/// Exercises `f32`, `wrt`, an integer argument and a cast.
#[differentiable(wrt(x))]
fn scaled(x: f32, k: f32, n: usize) -> f32 {
    x * k * n as f32
}

/// Exercises a stopped gradient and compound assignment.
#[differentiable]
fn damped(x: f64, y: f64) -> f64 {
    let mut total = x * y;
    total += stagegrad::detach(x * x);
    total
}

/// Exercises a type parameter bounded by `num_traits::Float`.
#[differentiable]
fn cube_plus<T: Float>(x: T, y: T) -> T {
    x * x * x + y
}

mod layers {
    use stagegrad::differentiable;

    #[differentiable]
    pub fn product(a: f64, b: f64) -> f64 {
        a * b
    }
}

/// Exercises a `for` loop over a range, indexing and `if` / `else`.
#[differentiable]
fn horner_magnitude(x: f64, coefficients: &Array1<f64>) -> f64 {
    let n = coefficients.len();
    let mut total = 0.0;
    for k in 0..n {
        total = total * x + coefficients[n - 1 - k];
    }
    if total > 0.0 { total } else { -total }
}

/// Calls differentiable functions of this module and of another one.
#[differentiable]
fn composed(x: f64, y: f64) -> f64 {
    let p = layers::product(x, y);
    smooth(p, y) + f(x, y, p)
}

/// Returns `softplus(x)` and its pullback, whose slope is the logistic function.
fn softplus_rule(x: f64) -> (f64, impl Fn(f64) -> (f64,) + use<>) {
    let value = softplus(x);
    let slope = 1.0 / (1.0 + (-x).exp());
    (value, move |cotangent: f64| (cotangent * slope,))
}

#[differentiable(vjp = softplus_rule)]
fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

/// Calls a function that has a hand-written rule.
#[differentiable]
fn uses_rule(x: f64) -> f64 {
    softplus(x) * x
}

/// Exercises arrays passed by reference, with a scalar result.
#[differentiable]
fn squared_error(prediction: &Array1<f64>, target: &Array1<f64>) -> f64 {
    let difference = prediction - target;
    (difference.clone() * difference).sum()
}

/// Returns an array, so the macro generates `_vjp` and `_trace` but no `_grad`.
#[differentiable]
fn affine(w: &Array2<f64>, x: &Array1<f64>, b: &Array1<f64>) -> Array1<f64> {
    w.dot(x) + b
}

#[derive(Differentiable, Clone, Debug)]
struct Model {
    w: Array1<f64>,
    b: f64,
}

/// Reads the fields of a derived model.
#[differentiable]
fn model_loss(model: &Model, x: &Array1<f64>, target: f64) -> f64 {
    let prediction = (&model.w * x).sum() + model.b;
    let error = prediction - target;
    error * error
}

fn main() {
    let x = array![1.0, 2.0];
    let w = array![[1.0, 0.5], [-1.0, 2.0]];
    let b = array![0.25, -0.25];
    let model = Model {
        w: array![0.5, -0.5],
        b: 0.1,
    };

    println!("{}", f(-2.0, 5.0, -4.0));
    println!("{}", smooth(0.3, 0.7));
    println!("{}", scaled(1.5, 2.0, 3));
    println!("{}", damped(0.3, 0.7));
    println!("{}", cube_plus(2.0_f32, 1.0));
    println!("{}", horner_magnitude(0.5, &x));
    println!("{}", layers::product(0.3, 0.7));
    println!("{}", composed(0.3, 0.7));
    println!("{}", softplus(0.3));
    println!("{}", uses_rule(0.3));
    println!("{}", squared_error(&x, &b));
    println!("{}", affine(&w, &x, &b));
    println!("{}", model_loss(&model, &x, 1.0));

    // Some generated items stay unused on purpose: they must not warn either.
    let (value, gradient) = f_grad(-2.0, 5.0, -4.0);
    println!("{value} {gradient:?}");
    println!("{}", f_trace(-2.0, 5.0, -4.0));
    let (value, gradient) = cube_plus_grad(2.0_f64, 1.0);
    println!("{value} {gradient:?}");
    let (value, gradient) = horner_magnitude_grad(0.5, &x);
    println!("{value} {gradient:?}");
    let (value, gradient) = composed_grad(0.3, 0.7);
    println!("{value} {gradient:?}");
    let (value, gradient) = uses_rule_grad(0.3);
    println!("{value} {gradient:?}");
    let (value, pullback) = affine_vjp(&w, &x, &b);
    println!("{value} {:?}", pullback(array![1.0, 1.0]));
    let (value, gradient) = model_loss_grad(&model, &x, 1.0);
    println!("{value} {gradient:?}");
}
