//! `f(x, y, z) = (x + y) z` with its gradient at (-2, 5, -4), `wrt`, and a hand-written
//! rule declared with `#[differentiable(vjp = path)]` and called from another
//! differentiable function.

use stagegrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

#[differentiable(wrt(x))]
fn only_x(x: f64, y: f64) -> f64 {
    x * x * y
}

/// The rule of `softplus`: its derivative is the logistic function.
fn softplus_rule(x: f64) -> (f64, impl Fn(f64) -> (f64,) + use<>) {
    let value = softplus(x);
    let slope = 1.0 / (1.0 + (-x).exp());
    (value, move |cotangent: f64| (cotangent * slope,))
}

#[differentiable(vjp = softplus_rule)]
fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

#[differentiable]
fn scaled_softplus(x: f64, k: f64) -> f64 {
    softplus(x) * k
}

fn main() {
    assert_eq!(f(-2.0, 5.0, -4.0), -12.0);
    let (value, gradient) = f_grad(-2.0, 5.0, -4.0);
    assert_eq!(value, -12.0);
    assert_eq!(
        gradient,
        FGrad {
            x: -4.0,
            y: -4.0,
            z: 3.0
        }
    );
    let (_, pullback) = f_vjp(-2.0, 5.0, -4.0);
    assert_eq!(
        pullback(2.0),
        FGrad {
            x: -8.0,
            y: -8.0,
            z: 6.0
        }
    );
    assert_eq!(f_trace(-2.0, 5.0, -4.0).value("g"), Some(3.0));

    assert_eq!(only_x(3.0, 2.0), 18.0);
    let (value, gradient) = only_x_grad(3.0, 2.0);
    assert_eq!(value, 18.0);
    assert_eq!(gradient, OnlyXGrad { x: 12.0 });

    let x: f64 = 0.5;
    let logistic = 1.0 / (1.0 + (-x).exp());
    let (value, gradient) = softplus_grad(x);
    assert_eq!(value, softplus(x));
    assert!((gradient.x - logistic).abs() < 1e-15);
    let (value, gradient) = scaled_softplus_grad(x, 3.0);
    assert!((value - 3.0 * softplus(x)).abs() < 1e-15);
    assert!((gradient.x - 3.0 * logistic).abs() < 1e-15);
    assert!((gradient.k - softplus(x)).abs() < 1e-15);
    assert_eq!(scaled_softplus(x, 3.0), value);
}
