//! Scalar functions through `#[differentiable]`: each generated gradient is checked
//! against a derivative written out by hand in the test and against central finite
//! differences, and the value against the untouched original function.

#[allow(dead_code)] // each test crate uses a different part of the shared checks
mod scalar_support;

use std::f64::consts::{LN_2, LN_10, PI};

use num_traits::Float;
use scalar_support::{assert_all_close, assert_gradient, central_differences_with};
use stagegrad::differentiable;

// The example of the design brief.

#[differentiable]
fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

#[test]
fn design_example_gradient() {
    assert_eq!(
        f_grad(-2.0, 5.0, -4.0),
        (
            -12.0,
            FGrad {
                x: -4.0,
                y: -4.0,
                z: 3.0
            }
        )
    );
    assert_eq!(f(-2.0, 5.0, -4.0), -12.0);
}

#[test]
fn design_example_trace_values() {
    let trace = f_trace(-2.0, 5.0, -4.0);
    assert_eq!(trace.value("g"), Some(3.0));
    assert_eq!(trace.value("x"), Some(-2.0));
    assert_eq!(trace.value("y"), Some(5.0));
    assert_eq!(trace.value("z"), Some(-4.0));
    assert_eq!(trace.value("f"), Some(-12.0));
    assert_eq!(trace.value("no_such_stage"), None);
}

#[test]
fn design_example_trace_adjoints() {
    let trace = f_trace(-2.0, 5.0, -4.0);
    assert_eq!(trace.adjoint("f"), Some(1.0));
    assert_eq!(trace.adjoint("g"), Some(-4.0));
    assert_eq!(trace.adjoint("x"), Some(-4.0));
    assert_eq!(trace.adjoint("y"), Some(-4.0));
    assert_eq!(trace.adjoint("z"), Some(3.0));
}

#[test]
fn pullback_called_twice_scales_the_gradient() {
    let (value, pullback) = f_vjp(-2.0, 5.0, -4.0);
    assert_eq!(value, -12.0);
    assert_eq!(
        pullback(1.0),
        FGrad {
            x: -4.0,
            y: -4.0,
            z: 3.0
        }
    );
    assert_eq!(
        pullback(2.5),
        FGrad {
            x: -10.0,
            y: -10.0,
            z: 7.5
        }
    );
    assert_eq!(
        pullback(-0.5),
        FGrad {
            x: 2.0,
            y: 2.0,
            z: -1.5
        }
    );
    assert_eq!(
        pullback(0.0),
        FGrad {
            x: -0.0,
            y: -0.0,
            z: 0.0
        }
    );
}

// Arithmetic: + - * / and unary minus.

#[differentiable]
fn arithmetic(x: f64, y: f64, z: f64) -> f64 {
    (x + y) * (x - z) / (y * z) - -x
}

#[test]
fn arithmetic_gradient() {
    let (x, y, z) = (1.5, -0.75, 2.25);
    let (value, grad) = arithmetic_grad(x, y, z);
    assert_eq!(value, arithmetic(x, y, z));
    let (u, v) = ((x + y) * (x - z), y * z);
    let hand = [
        (2.0 * x + y - z) / v + 1.0,
        (x - z) / v - u * z / (v * v),
        -(x + y) / v - u * y / (v * v),
    ];
    assert_gradient(
        "arithmetic",
        &[x, y, z],
        &[grad.x, grad.y, grad.z],
        &hand,
        |p| arithmetic(p[0], p[1], p[2]),
    );
}

// Trigonometric functions and their inverses.

#[differentiable]
fn trigonometric(x: f64, y: f64) -> f64 {
    x.sin() * y.cos() + (x * y).tan()
}

#[test]
fn trigonometric_gradient() {
    let (x, y) = (0.4, -1.1);
    let (value, grad) = trigonometric_grad(x, y);
    assert_eq!(value, trigonometric(x, y));
    let sec2 = 1.0 / (x * y).cos().powi(2);
    let hand = [x.cos() * y.cos() + y * sec2, -x.sin() * y.sin() + x * sec2];
    assert_gradient("trigonometric", &[x, y], &[grad.x, grad.y], &hand, |p| {
        trigonometric(p[0], p[1])
    });
}

#[differentiable]
fn inverse_trigonometric(x: f64, y: f64) -> f64 {
    x.asin() * y.acos() + (x + y).atan()
}

#[test]
fn inverse_trigonometric_gradient() {
    let (x, y) = (0.3, -0.6);
    let (value, grad) = inverse_trigonometric_grad(x, y);
    assert_eq!(value, inverse_trigonometric(x, y));
    let datan = 1.0 / (1.0 + (x + y).powi(2));
    let hand = [
        y.acos() / (1.0 - x * x).sqrt() + datan,
        -x.asin() / (1.0 - y * y).sqrt() + datan,
    ];
    assert_gradient(
        "inverse trigonometric",
        &[x, y],
        &[grad.x, grad.y],
        &hand,
        |p| inverse_trigonometric(p[0], p[1]),
    );
}

#[differentiable]
fn hyperbolic(x: f64, y: f64) -> f64 {
    x.sinh() * y.cosh() + (x - y).tanh()
}

#[test]
fn hyperbolic_gradient() {
    let (x, y) = (0.8, -0.3);
    let (value, grad) = hyperbolic_grad(x, y);
    assert_eq!(value, hyperbolic(x, y));
    let dtanh = 1.0 - (x - y).tanh().powi(2);
    let hand = [x.cosh() * y.cosh() + dtanh, x.sinh() * y.sinh() - dtanh];
    assert_gradient("hyperbolic", &[x, y], &[grad.x, grad.y], &hand, |p| {
        hyperbolic(p[0], p[1])
    });
}

// Exponentials and logarithms.

#[differentiable]
fn exponentials(x: f64, y: f64) -> f64 {
    x.exp() * y + (x * y).exp2() - y.exp_m1()
}

#[test]
fn exponentials_gradient() {
    let (x, y) = (0.7, 1.3);
    let (value, grad) = exponentials_grad(x, y);
    assert_eq!(value, exponentials(x, y));
    let two_xy = (x * y).exp2();
    let hand = [
        x.exp() * y + LN_2 * two_xy * y,
        x.exp() + LN_2 * two_xy * x - y.exp(),
    ];
    assert_gradient("exponentials", &[x, y], &[grad.x, grad.y], &hand, |p| {
        exponentials(p[0], p[1])
    });
}

#[differentiable]
fn logarithms(x: f64, y: f64) -> f64 {
    x.ln() * y.log2() + (x * y).log10() - x.ln_1p()
}

#[test]
fn logarithms_gradient() {
    let (x, y) = (2.5, 0.6);
    let (value, grad) = logarithms_grad(x, y);
    assert_eq!(value, logarithms(x, y));
    let hand = [
        y.log2() / x + 1.0 / (x * LN_10) - 1.0 / (1.0 + x),
        x.ln() / (y * LN_2) + 1.0 / (y * LN_10),
    ];
    assert_gradient("logarithms", &[x, y], &[grad.x, grad.y], &hand, |p| {
        logarithms(p[0], p[1])
    });
}

// Roots, reciprocal, absolute value.

#[differentiable]
fn roots(x: f64, y: f64) -> f64 {
    x.sqrt() * y.cbrt()
}

#[test]
fn roots_gradient() {
    let (x, y) = (3.0, -5.0);
    let (value, grad) = roots_grad(x, y);
    assert_eq!(value, roots(x, y));
    let hand = [
        y.cbrt() / (2.0 * x.sqrt()),
        x.sqrt() / (3.0 * y.cbrt().powi(2)),
    ];
    assert_gradient("roots", &[x, y], &[grad.x, grad.y], &hand, |p| {
        roots(p[0], p[1])
    });
}

#[differentiable]
fn reciprocal_and_abs(x: f64, y: f64) -> f64 {
    x.recip() + (x * y).abs()
}

#[test]
fn reciprocal_and_abs_gradient() {
    for (x, y) in [(0.5, 2.0), (-1.5, 0.25), (0.8, -3.0)] {
        let (value, grad) = reciprocal_and_abs_grad(x, y);
        assert_eq!(value, reciprocal_and_abs(x, y));
        let sign = (x * y).signum();
        let hand = [-1.0 / (x * x) + sign * y, sign * x];
        assert_gradient(
            "reciprocal and abs",
            &[x, y],
            &[grad.x, grad.y],
            &hand,
            |p| reciprocal_and_abs(p[0], p[1]),
        );
    }
}

// Powers: integer exponents are constants of the function.

#[differentiable]
fn integer_powers(x: f64, n: i32) -> f64 {
    x.powi(n) + 3.0 * x.powi(2) - x.powi(-1)
}

#[test]
fn integer_powers_gradient() {
    for n in [-3, 0, 1, 4, 7] {
        let x = 1.25;
        let (value, grad) = integer_powers_grad(x, n);
        assert_eq!(value, integer_powers(x, n));
        let hand = [f64::from(n) * x.powi(n - 1) + 6.0 * x + x.powi(-2)];
        assert_gradient(
            &format!("integer powers, n = {n}"),
            &[x],
            &[grad.x],
            &hand,
            |p| integer_powers(p[0], n),
        );
    }
}

#[test]
fn integer_argument_is_not_a_gradient_field() {
    // The gradient struct has exactly one field: `n: i32` is a constant.
    let IntegerPowersGrad { x } = integer_powers_grad(2.0, 3).1;
    assert_eq!(x, 3.0 * 4.0 + 12.0 + 0.25);
}

#[differentiable]
fn real_power(x: f64, y: f64) -> f64 {
    x.powf(y)
}

#[test]
fn real_power_gradient() {
    let (x, y) = (1.7, -2.3);
    let (value, grad) = real_power_grad(x, y);
    assert_eq!(value, real_power(x, y));
    let hand = [y * x.powf(y - 1.0), x.powf(y) * x.ln()];
    assert_gradient("real power", &[x, y], &[grad.x, grad.y], &hand, |p| {
        real_power(p[0], p[1])
    });
}

// Functions of two arguments: hypot, atan2, max, min, mul_add.

#[differentiable]
fn polar(x: f64, y: f64) -> f64 {
    x.hypot(y) + y.atan2(x)
}

#[test]
fn polar_gradient() {
    let (x, y) = (-1.2, 0.9);
    let (value, grad) = polar_grad(x, y);
    assert_eq!(value, polar(x, y));
    let r2 = x * x + y * y;
    let r = r2.sqrt();
    let hand = [x / r - y / r2, y / r + x / r2];
    assert_gradient("polar", &[x, y], &[grad.x, grad.y], &hand, |p| {
        polar(p[0], p[1])
    });
}

#[differentiable]
fn max_times_min(x: f64, y: f64, z: f64) -> f64 {
    x.max(y) * z.min(y)
}

#[test]
fn max_times_min_gradient() {
    // x wins the max and z the min: f = x z.
    let (x, y, z) = (2.0, 1.0, -3.0);
    let (value, grad) = max_times_min_grad(x, y, z);
    assert_eq!(value, max_times_min(x, y, z));
    assert_gradient(
        "max times min, x and z win",
        &[x, y, z],
        &[grad.x, grad.y, grad.z],
        &[z, 0.0, x],
        |p| max_times_min(p[0], p[1], p[2]),
    );
    // y wins both: f = y².
    let (x, y, z) = (-1.0, 0.5, 4.0);
    let (value, grad) = max_times_min_grad(x, y, z);
    assert_eq!(value, max_times_min(x, y, z));
    assert_gradient(
        "max times min, y wins",
        &[x, y, z],
        &[grad.x, grad.y, grad.z],
        &[0.0, 2.0 * y, 0.0],
        |p| max_times_min(p[0], p[1], p[2]),
    );
}

#[differentiable]
fn fused(x: f64, y: f64, z: f64) -> f64 {
    x.mul_add(y, z) * z
}

#[test]
fn fused_gradient() {
    let (x, y, z) = (1.1, -0.4, 2.0);
    let (value, grad) = fused_grad(x, y, z);
    assert_eq!(value, fused(x, y, z));
    let hand = [y * z, x * z, x * y + 2.0 * z];
    assert_gradient(
        "fused multiply-add",
        &[x, y, z],
        &[grad.x, grad.y, grad.z],
        &hand,
        |p| fused(p[0], p[1], p[2]),
    );
}

// Piecewise constant functions contribute nothing to the gradient.

#[differentiable]
fn rounding(x: f64) -> f64 {
    x.signum() * x + x.floor() + x.ceil() * 2.0 + x.round()
}

#[test]
fn rounding_gradient() {
    for x in [1.3, -2.7, 0.2] {
        let (value, grad) = rounding_grad(x);
        assert_eq!(value, rounding(x));
        // Only the factor `x` of `signum(x) · x` has a derivative.
        assert_gradient("rounding", &[x], &[grad.x], &[x.signum()], |p| {
            rounding(p[0])
        });
    }
}

// Casts between float types.

#[differentiable]
fn mixed_precision(x: f64, y: f32) -> f64 {
    let a = (x as f32) * y;
    let b = a.sin() as f64;
    b * x
}

#[test]
fn mixed_precision_gradient() {
    let (x, y) = (0.9_f64, 1.4_f32);
    let (value, grad) = mixed_precision_grad(x, y);
    assert_eq!(value, mixed_precision(x, y));
    let a = (x as f32) * y;
    let hand_x = f64::from(a.cos() * y) * x + f64::from(a.sin());
    let hand_y = f64::from(a.cos() * (x as f32)) * x;
    assert_all_close("mixed precision, x", &[grad.x], &[hand_x], 1e-6, 0.0);
    assert_all_close(
        "mixed precision, y",
        &[f64::from(grad.y)],
        &[hand_y],
        1e-6,
        0.0,
    );
    // The function rounds to `f32` inside, so the step must be far above its noise.
    let numeric = central_differences_with(
        |p| mixed_precision(p[0], p[1] as f32),
        &[x, f64::from(y)],
        |_| 1e-2,
    );
    assert_all_close(
        "mixed precision, finite differences",
        &[grad.x, f64::from(grad.y)],
        &numeric,
        1e-3,
        1e-4,
    );
}

#[differentiable]
fn widened(x: f32) -> f32 {
    let w = x as f64;
    (w.exp() * w) as f32
}

#[test]
fn widened_gradient() {
    let x = 0.6_f32;
    let (value, grad) = widened_grad(x);
    assert_eq!(value, widened(x));
    let w = f64::from(x);
    assert_eq!(grad.x, (w.exp() * (1.0 + w)) as f32);
}

// Calls to other differentiable functions.

#[differentiable]
fn square(t: f64) -> f64 {
    t * t
}

#[differentiable]
fn with_calls(x: f64, y: f64) -> f64 {
    square(x.sin()) + square(y) * x
}

#[test]
fn with_calls_gradient() {
    let (x, y) = (0.8, -1.7);
    let (value, grad) = with_calls_grad(x, y);
    assert_eq!(value, with_calls(x, y));
    let hand = [2.0 * x.sin() * x.cos() + y * y, 2.0 * y * x];
    assert_gradient("with calls", &[x, y], &[grad.x, grad.y], &hand, |p| {
        with_calls(p[0], p[1])
    });
    assert_eq!(square_grad(3.0), (9.0, SquareGrad { t: 6.0 }));
}

// `detach` stops the gradient.

#[differentiable]
fn detached(x: f64, y: f64) -> f64 {
    x * stagegrad::detach(x * y) + y
}

#[test]
fn detach_stops_the_gradient() {
    let (x, y) = (1.5, -2.0);
    let (value, grad) = detached_grad(x, y);
    assert_eq!(value, detached(x, y));
    // As if `x * y` were a constant c: d(x c + y) = (c, 1).
    assert_eq!(grad, DetachedGrad { x: x * y, y: 1.0 });
    // Without the detach the gradient would be (2 x y, x² + 1).
    assert_ne!(grad.x, 2.0 * x * y);
}

#[differentiable]
fn fully_detached(x: f64, y: f64) -> f64 {
    stagegrad::detach(x.sin() * y) + y
}

#[test]
fn detach_everything_through_x() {
    let (value, grad) = fully_detached_grad(0.5, 2.0);
    assert_eq!(value, fully_detached(0.5, 2.0));
    assert_eq!(grad, FullyDetachedGrad { x: 0.0, y: 1.0 });
}

// Bindings: shadowing, reassignment and compound assignment.

#[differentiable]
#[allow(clippy::let_and_return)] // the shadowed argument is the point of the test
fn shadowing(x: f64, y: f64) -> f64 {
    let a = x * y;
    let a = a.sin() + a;
    let x = a * x;
    x
}

#[test]
fn shadowing_gradient() {
    let (x, y) = (0.7, 1.9);
    let (value, grad) = shadowing_grad(x, y);
    assert_eq!(value, shadowing(x, y));
    let a0 = x * y;
    let a = a0.sin() + a0;
    let da = a0.cos() + 1.0;
    let hand = [da * y * x + a, da * x * x];
    assert_gradient("shadowing", &[x, y], &[grad.x, grad.y], &hand, |p| {
        shadowing(p[0], p[1])
    });
    // The trace shows the last binding of a shadowed name.
    assert_eq!(shadowing_trace(x, y).value("a"), Some(a));
}

#[differentiable]
fn reassignment(x: f64, y: f64) -> f64 {
    let mut a = x;
    a = a * y + x;
    a = a.exp();
    a
}

#[test]
fn reassignment_gradient() {
    let (x, y) = (0.3, -0.8);
    let (value, grad) = reassignment_grad(x, y);
    assert_eq!(value, reassignment(x, y));
    let e = (x * y + x).exp();
    assert_gradient(
        "reassignment",
        &[x, y],
        &[grad.x, grad.y],
        &[e * (y + 1.0), e * x],
        |p| reassignment(p[0], p[1]),
    );
}

#[differentiable]
fn compound_assignment(x: f64, y: f64) -> f64 {
    let mut a = x;
    a += y;
    a *= x;
    a -= y.sin();
    a /= y;
    a
}

#[test]
fn compound_assignment_gradient() {
    let (x, y) = (1.2, 0.7);
    let (value, grad) = compound_assignment_grad(x, y);
    assert_eq!(value, compound_assignment(x, y));
    let numerator = (x + y) * x - y.sin();
    let hand = [(2.0 * x + y) / y, (x - y.cos()) / y - numerator / (y * y)];
    assert_gradient(
        "compound assignment",
        &[x, y],
        &[grad.x, grad.y],
        &hand,
        |p| compound_assignment(p[0], p[1]),
    );
}

#[differentiable]
fn compound_with_constant_right_side(x: f64) -> f64 {
    let mut a = x;
    a += 1.0;
    a *= 3.0;
    a -= 0.5;
    a /= 2.0;
    a * a
}

#[test]
fn compound_with_constant_right_side_gradient() {
    let x = -0.4;
    let (value, grad) = compound_with_constant_right_side_grad(x);
    assert_eq!(value, compound_with_constant_right_side(x));
    let a = ((x + 1.0) * 3.0 - 0.5) / 2.0;
    assert_gradient(
        "compound with constants",
        &[x],
        &[grad.x],
        &[2.0 * a * 1.5],
        |p| compound_with_constant_right_side(p[0]),
    );
}

// Constants, literals and other body forms.

#[differentiable]
fn with_constants(x: f64, y: f64) -> f64 {
    3.0 * x + std::f64::consts::PI * y.powi(2) - 0.5
}

#[test]
fn with_constants_gradient() {
    let (x, y) = (-0.25, 1.5);
    let (value, grad) = with_constants_grad(x, y);
    assert_eq!(value, with_constants(x, y));
    assert_gradient(
        "with constants",
        &[x, y],
        &[grad.x, grad.y],
        &[3.0, 2.0 * PI * y],
        |p| with_constants(p[0], p[1]),
    );
}

#[differentiable]
fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[differentiable]
fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

#[test]
fn logistic_and_softplus_gradients() {
    for x in [-3.0, -0.2, 0.0, 1.7] {
        let s = logistic(x);
        let (value, grad) = logistic_grad(x);
        assert_eq!(value, s);
        assert_gradient("logistic", &[x], &[grad.x], &[s * (1.0 - s)], |p| {
            logistic(p[0])
        });
        // softplus' = logistic
        let (value, grad) = softplus_grad(x);
        assert_eq!(value, softplus(x));
        assert_gradient("softplus", &[x], &[grad.x], &[s], |p| softplus(p[0]));
    }
}

#[differentiable]
fn gaussian(x: f64, mu: f64, sigma: f64) -> f64 {
    (-(x - mu).powi(2) / (2.0 * sigma * sigma)).exp() / (sigma * (2.0 * PI).sqrt())
}

#[test]
fn gaussian_gradient() {
    let (x, mu, sigma) = (0.4, -0.3, 1.6);
    let (value, grad) = gaussian_grad(x, mu, sigma);
    let g = gaussian(x, mu, sigma);
    assert_eq!(value, g);
    let d = x - mu;
    let s2 = sigma * sigma;
    let hand = [
        -g * d / s2,
        g * d / s2,
        g * (d * d / (s2 * sigma) - 1.0 / sigma),
    ];
    assert_gradient(
        "gaussian",
        &[x, mu, sigma],
        &[grad.x, grad.mu, grad.sigma],
        &hand,
        |p| gaussian(p[0], p[1], p[2]),
    );
}

#[differentiable]
fn rosenbrock(x: f64, y: f64) -> f64 {
    (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2)
}

#[test]
fn rosenbrock_gradient() {
    for (x, y) in [(-1.2, 1.0), (0.5, 0.3), (1.0, 1.0)] {
        let (value, grad) = rosenbrock_grad(x, y);
        assert_eq!(value, rosenbrock(x, y));
        let hand = [
            -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
            200.0 * (y - x * x),
        ];
        assert_gradient("rosenbrock", &[x, y], &[grad.x, grad.y], &hand, |p| {
            rosenbrock(p[0], p[1])
        });
    }
    // The minimum is a stationary point.
    assert_eq!(
        rosenbrock_grad(1.0, 1.0).1,
        RosenbrockGrad { x: 0.0, y: 0.0 }
    );
}

#[differentiable]
fn cube(x: f64) -> f64 {
    x * x * x
}

#[test]
fn repeated_use_accumulates() {
    let x = -1.3;
    let (value, grad) = cube_grad(x);
    assert_eq!(value, cube(x));
    assert_gradient("cube", &[x], &[grad.x], &[3.0 * x * x], |p| cube(p[0]));
}

#[differentiable]
#[allow(unused_variables)] // `y` is unused on purpose
fn ignores_y(x: f64, y: f64) -> f64 {
    x * 2.0
}

#[test]
fn unused_argument_has_zero_gradient() {
    assert_eq!(
        ignores_y_grad(1.5, 7.0),
        (3.0, IgnoresYGrad { x: 2.0, y: 0.0 })
    );
    assert_eq!(ignores_y(1.5, 7.0), 3.0);
}

#[differentiable]
#[allow(clippy::needless_return)] // the `return` form is the point of the test
fn explicit_return(x: f64, y: f64) -> f64 {
    let p = x * y;
    return p + x;
}

#[test]
fn explicit_return_gradient() {
    let (value, grad) = explicit_return_grad(2.0, -3.0);
    assert_eq!(value, explicit_return(2.0, -3.0));
    assert_eq!(grad, ExplicitReturnGrad { x: -2.0, y: 2.0 });
}

#[differentiable]
fn typed_bindings(x: f64) -> f64 {
    let a: f64 = x * 2.0;
    let c: f64 = 1.5;
    a * c + c
}

#[test]
fn typed_bindings_gradient() {
    assert_eq!(
        typed_bindings_grad(0.5),
        (3.0, TypedBindingsGrad { x: 3.0 })
    );
    assert_eq!(typed_bindings(0.5), 3.0);
}

#[differentiable]
fn scaled_by_count(x: f64, n: usize) -> f64 {
    x * (n as f64) + x.sin()
}

#[test]
fn integer_argument_used_through_a_cast() {
    let (x, n) = (0.3, 4);
    let (value, grad) = scaled_by_count_grad(x, n);
    assert_eq!(value, scaled_by_count(x, n));
    assert_gradient("scaled by count", &[x], &[grad.x], &[4.0 + x.cos()], |p| {
        scaled_by_count(p[0], n)
    });
}

#[differentiable]
#[allow(unused_variables)] // `y` is unused on purpose
fn argument_is_the_result(x: f64, y: f64) -> f64 {
    x
}

#[test]
fn returning_an_argument() {
    assert_eq!(
        argument_is_the_result_grad(2.0, 3.0),
        (2.0, ArgumentIsTheResultGrad { x: 1.0, y: 0.0 })
    );
    assert_eq!(argument_is_the_result(2.0, 3.0), 2.0);
}

#[differentiable]
fn long_chain(x: f64) -> f64 {
    let a = x.sin();
    let b = a * a + x;
    let c = b.exp() / (1.0 + b * b);
    let d = c.ln() - b.atan();
    let e = d.tanh() * x.cosh();
    e.powi(3) + d
}

#[test]
fn long_chain_gradient() {
    let x = 0.35;
    let (value, grad) = long_chain_grad(x);
    assert_eq!(value, long_chain(x));
    // Forward, then the chain rule link by link.
    let a = x.sin();
    let b = a * a + x;
    let c = b.exp() / (1.0 + b * b);
    let d = c.ln() - b.atan();
    let e = d.tanh() * x.cosh();
    let de = 3.0 * e * e;
    let dd = 1.0 + de * (1.0 - d.tanh().powi(2)) * x.cosh();
    let dc = dd / c;
    let db = dc * (c - 2.0 * b * c / (1.0 + b * b)) - dd / (1.0 + b * b);
    let da = db * 2.0 * a;
    let dx = db + da * x.cos() + de * d.tanh() * x.sinh();
    assert_gradient("long chain", &[x], &[grad.x], &[dx], |p| long_chain(p[0]));
}

#[differentiable]
fn aliases(x: f64, y: f64) -> f64 {
    let a = x;
    let b = a;
    b * y + a
}

#[test]
fn aliases_of_an_argument() {
    assert_eq!(
        aliases_grad(2.0, 3.0),
        (8.0, AliasesGrad { x: 4.0, y: 2.0 })
    );
    assert_eq!(aliases(2.0, 3.0), 8.0);
}

#[differentiable]
fn reassigned_to_a_constant(x: f64, y: f64) -> f64 {
    let mut a = x;
    let b = a * y;
    a = 3.0;
    a * b
}

#[test]
fn reassignment_to_a_constant_cuts_the_path() {
    // Only `b = x y` still depends on `x`: f = 3 x y.
    let (value, grad) = reassigned_to_a_constant_grad(2.0, -1.5);
    assert_eq!(value, reassigned_to_a_constant(2.0, -1.5));
    assert_eq!(grad, ReassignedToAConstantGrad { x: -4.5, y: 6.0 });
}

#[differentiable]
fn argument_shadowed_by_a_constant(x: f64, y: f64) -> f64 {
    let product = x * y;
    let x = 1.5;
    x * product
}

#[test]
fn argument_shadowed_by_a_constant_gradient() {
    let (value, grad) = argument_shadowed_by_a_constant_grad(2.0, 3.0);
    assert_eq!(value, argument_shadowed_by_a_constant(2.0, 3.0));
    assert_eq!(grad, ArgumentShadowedByAConstantGrad { x: 4.5, y: 3.0 });
}

#[differentiable]
fn constant_receivers(x: f64, y: f64) -> f64 {
    2.0_f64.powf(x)
        + 1.0_f64.hypot(y)
        + 3.0_f64.mul_add(x, y)
        + x.max(0.0)
        + y.atan2(1.0)
        + x.powf(2.0)
}

#[test]
fn constant_receivers_and_arguments() {
    let (x, y) = (0.5, 2.0);
    let (value, grad) = constant_receivers_grad(x, y);
    assert_eq!(value, constant_receivers(x, y));
    let hand = [
        2.0_f64.powf(x) * LN_2 + 3.0 + 1.0 + 2.0 * x,
        y / (1.0 + y * y).sqrt() + 1.0 + 1.0 / (1.0 + y * y),
    ];
    assert_gradient(
        "constant receivers",
        &[x, y],
        &[grad.x, grad.y],
        &hand,
        |p| constant_receivers(p[0], p[1]),
    );
}

#[differentiable]
#[allow(unused_variables)] // `x` is unused on purpose
fn constant_result(x: f64) -> f64 {
    3.0
}

#[test]
fn constant_result_has_zero_gradient() {
    assert_eq!(
        constant_result_grad(2.0),
        (3.0, ConstantResultGrad { x: 0.0 })
    );
    assert_eq!(constant_result(2.0), 3.0);
}

#[differentiable]
fn detached_binding(x: f64) -> f64 {
    let frozen = stagegrad::detach(x);
    frozen * x
}

#[test]
fn detached_binding_is_a_constant() {
    assert_eq!(
        detached_binding_grad(2.0),
        (4.0, DetachedBindingGrad { x: 2.0 })
    );
    assert_eq!(detached_binding(2.0), 4.0);
}

// f32 functions.

#[differentiable]
fn single_precision(x: f32, y: f32) -> f32 {
    x * x * y + (x - y).exp()
}

#[test]
fn single_precision_gradient() {
    let (x, y) = (0.5_f32, -0.25_f32);
    let (value, grad) = single_precision_grad(x, y);
    assert_eq!(value, single_precision(x, y));
    let e = (x - y).exp();
    assert_eq!(
        grad,
        SinglePrecisionGrad {
            x: 2.0 * x * y + e,
            y: x * x - e
        }
    );
}

// `wrt` restricts the gradient.

#[differentiable(wrt(x, z))]
fn restricted(x: f64, y: f64, z: f64) -> f64 {
    x * y + z.sin() * y
}

#[test]
fn wrt_restricts_the_gradient() {
    let (x, y, z) = (1.5, -2.0, 0.4);
    let (value, grad) = restricted_grad(x, y, z);
    assert_eq!(value, restricted(x, y, z));
    // A struct literal and an exhaustive pattern compile only when the fields are
    // exactly `x` and `z`.
    let RestrictedGrad { x: dx, z: dz } = grad.clone();
    assert_eq!(
        grad,
        RestrictedGrad {
            x: y,
            z: z.cos() * y
        }
    );
    assert_gradient("restricted", &[x, z], &[dx, dz], &[y, z.cos() * y], |p| {
        restricted(p[0], y, p[1])
    });
}

#[differentiable(wrt(y))]
fn restricted_to_one(x: f64, y: f64) -> f64 {
    x.exp() * y
}

#[test]
fn wrt_of_one_argument() {
    let (value, grad) = restricted_to_one_grad(1.0, 3.0);
    assert_eq!(value, restricted_to_one(1.0, 3.0));
    let RestrictedToOneGrad { y } = grad;
    assert_eq!(y, 1.0_f64.exp());
    let (_, pullback) = restricted_to_one_vjp(1.0, 3.0);
    assert_eq!(
        pullback(2.0),
        RestrictedToOneGrad {
            y: 2.0 * 1.0_f64.exp()
        }
    );
}

// Generic functions over `T: num_traits::Float`, with the bound inline and in a `where`
// clause.

mod inline_bound {
    // TODO: the generated items add `where T: Scalar` next to the inline `T: Float`, which
    // trips `clippy::multiple_bound_locations` on the user's token.
    #![allow(clippy::multiple_bound_locations)]

    use num_traits::Float;
    use stagegrad::differentiable;

    #[differentiable]
    pub fn generic_poly<T: Float>(x: T, y: T) -> T {
        let two = T::from(2.0).unwrap();
        x * x * y + two * y.sin()
    }
}

use inline_bound::{GenericPolyGrad, generic_poly, generic_poly_grad, generic_poly_vjp};

#[test]
fn generic_over_f64() {
    let (x, y) = (1.5_f64, -0.5_f64);
    let (value, grad) = generic_poly_grad(x, y);
    assert_eq!(value, generic_poly(x, y));
    let hand = [2.0 * x * y, x * x + 2.0 * y.cos()];
    assert_gradient("generic, f64", &[x, y], &[grad.x, grad.y], &hand, |p| {
        generic_poly(p[0], p[1])
    });
    let _: GenericPolyGrad<f64> = grad;
}

#[test]
fn generic_over_f32() {
    let (x, y) = (1.5_f32, -0.5_f32);
    let (value, grad) = generic_poly_grad::<f32>(x, y);
    assert_eq!(value, generic_poly(x, y));
    assert_eq!(
        grad,
        GenericPolyGrad {
            x: 2.0 * x * y,
            y: x * x + 2.0 * y.cos()
        }
    );
    let (_, pullback) = generic_poly_vjp(x, y);
    assert_eq!(
        pullback(0.5_f32),
        GenericPolyGrad {
            x: 0.5 * grad.x,
            y: 0.5 * grad.y
        }
    );
}

#[differentiable]
fn generic_caller<T>(x: T) -> T
where
    T: Float,
{
    generic_poly(x, x) + x.exp()
}

#[test]
fn generic_calling_generic() {
    for x in [0.25_f64, -1.0] {
        let (value, grad) = generic_caller_grad(x);
        assert_eq!(value, generic_caller(x));
        // d/dx (x³ + 2 sin x + eˣ)
        let hand = [3.0 * x * x + 2.0 * x.cos() + x.exp()];
        assert_gradient("generic caller", &[x], &[grad.x], &hand, |p| {
            generic_caller(p[0])
        });
    }
    let (_, grad) = generic_caller_grad(0.25_f32);
    let x = 0.25_f32;
    assert_all_close(
        "generic caller, f32",
        &[f64::from(grad.x)],
        &[f64::from(3.0 * x * x + 2.0 * x.cos() + x.exp())],
        1e-6,
        0.0,
    );
}

// Conventions at points where the derivative does not exist, one assertion each.

#[differentiable]
fn absolute(x: f64) -> f64 {
    x.abs()
}

#[test]
fn abs_derivative_at_zero_is_zero() {
    assert_eq!(absolute(0.0), 0.0);
    assert_eq!(absolute_grad(0.0).1.x, 0.0);
    assert_eq!(absolute_grad(-0.0).1.x, 0.0);
}

#[differentiable]
fn maximum(x: f64, y: f64) -> f64 {
    x.max(y)
}

#[differentiable]
fn minimum(x: f64, y: f64) -> f64 {
    x.min(y)
}

#[test]
fn max_tie_splits_the_gradient_equally() {
    assert_eq!(maximum(2.0, 2.0), 2.0);
    assert_eq!(
        maximum_grad(2.0, 2.0),
        (2.0, MaximumGrad { x: 0.5, y: 0.5 })
    );
}

#[test]
fn min_tie_splits_the_gradient_equally() {
    assert_eq!(minimum(-1.0, -1.0), -1.0);
    assert_eq!(
        minimum_grad(-1.0, -1.0),
        (-1.0, MinimumGrad { x: 0.5, y: 0.5 })
    );
}

#[test]
fn max_min_without_a_tie() {
    assert_eq!(maximum_grad(3.0, 2.0).1, MaximumGrad { x: 1.0, y: 0.0 });
    assert_eq!(minimum_grad(3.0, 2.0).1, MinimumGrad { x: 0.0, y: 1.0 });
}

#[differentiable]
fn root(x: f64) -> f64 {
    x.sqrt()
}

#[test]
fn sqrt_derivative_at_zero_is_positive_infinity() {
    assert_eq!(root(0.0), 0.0);
    assert_eq!(root_grad(0.0), (0.0, RootGrad { x: f64::INFINITY }));
}

#[test]
fn powf_exponent_derivative_at_zero_base() {
    let (value, grad) = real_power_grad(0.0, 2.5);
    assert_eq!(value, 0.0);
    // ln(0) = -inf would give 0 · -inf = NaN; the convention is 0.
    assert_eq!(grad.y, 0.0);
}

#[test]
fn powf_base_derivative_at_zero_exponent() {
    assert_eq!(real_power_grad(0.0, 0.0).1.x, 0.0);
}

#[differentiable]
fn integer_power(x: f64, n: i32) -> f64 {
    x.powi(n)
}

#[test]
fn powi_zero_derivative_is_zero() {
    assert_eq!(integer_power(0.0, 0), 1.0);
    // 0 · x⁻¹ at x = 0 would be NaN; x⁰ is the constant 1.
    assert_eq!(
        integer_power_grad(0.0, 0),
        (1.0, IntegerPowerGrad { x: 0.0 })
    );
    assert_eq!(integer_power_grad(2.5, 0).1.x, 0.0);
}

#[differentiable]
fn floor_of(x: f64) -> f64 {
    x.floor()
}

#[differentiable]
fn ceil_of(x: f64) -> f64 {
    x.ceil()
}

#[differentiable]
fn round_of(x: f64) -> f64 {
    x.round()
}

#[differentiable]
fn signum_of(x: f64) -> f64 {
    x.signum()
}

#[test]
fn floor_derivative_is_zero() {
    assert_eq!(floor_of(1.5), 1.0);
    assert_eq!(floor_of_grad(1.0), (1.0, FloorOfGrad { x: 0.0 }));
    assert_eq!(floor_of_grad(1.5).1.x, 0.0);
}

#[test]
fn ceil_derivative_is_zero() {
    assert_eq!(ceil_of(-2.5), -2.0);
    assert_eq!(ceil_of_grad(-2.0), (-2.0, CeilOfGrad { x: 0.0 }));
    assert_eq!(ceil_of_grad(-2.5).1.x, 0.0);
}

#[test]
fn round_derivative_is_zero() {
    assert_eq!(round_of(0.5), 1.0);
    assert_eq!(round_of_grad(0.5), (1.0, RoundOfGrad { x: 0.0 }));
    assert_eq!(round_of_grad(0.2).1.x, 0.0);
}

#[test]
fn signum_derivative_is_zero() {
    assert_eq!(signum_of(-3.0), -1.0);
    assert_eq!(signum_of_grad(0.0), (1.0, SignumOfGrad { x: 0.0 }));
    assert_eq!(signum_of_grad(-3.0).1.x, 0.0);
}

#[differentiable]
fn radius(x: f64, y: f64) -> f64 {
    x.hypot(y)
}

#[differentiable]
fn angle(y: f64, x: f64) -> f64 {
    y.atan2(x)
}

#[test]
fn hypot_derivative_at_the_origin_is_zero() {
    assert_eq!(radius(3.0, 4.0), 5.0);
    assert_eq!(radius_grad(0.0, 0.0), (0.0, RadiusGrad { x: 0.0, y: 0.0 }));
}

#[test]
fn atan2_derivative_at_the_origin_is_zero() {
    assert_eq!(angle(0.0, 0.0), 0.0);
    assert_eq!(angle_grad(0.0, 0.0), (0.0, AngleGrad { y: 0.0, x: 0.0 }));
}
