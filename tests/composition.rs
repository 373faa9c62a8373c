//! Differentiable functions calling each other across modules: by path, through `use`
//! (renamed too), through hand-written rules declared with `#[differentiable(vjp = path)]`,
//! and several levels deep. Every gradient is checked against one derived by hand and
//! against central finite differences.

#[allow(dead_code)] // each test crate uses a different part of the shared checks
mod scalar_support;

use scalar_support::assert_gradient;

/// The callees.
mod b {
    use stagegrad::differentiable;

    /// `x · sin(y)`.
    #[differentiable]
    pub fn g(x: f64, y: f64) -> f64 {
        x * y.sin()
    }

    /// `eᵗ - t`.
    #[differentiable]
    pub fn h(t: f64) -> f64 {
        t.exp() - t
    }

    /// `g(t, t)² + h(t)`: a callee that itself calls differentiable functions.
    #[differentiable]
    pub fn nested(t: f64) -> f64 {
        let inner = g(t, t);
        inner * inner + h(t)
    }

    /// `x^n · scale`, with an integer argument that is a constant.
    #[differentiable]
    pub fn scaled_power(x: f64, n: i32, scale: f64) -> f64 {
        x.powi(n) * scale
    }
}

/// Hand-written rules and the functions declared with them.
mod rules {
    use stagegrad::differentiable;

    /// `ln(eᵃ + eᵇ)` without overflow, with the gradient `(softmax(a, b)₀, softmax(a, b)₁)`
    /// computed once and kept by the pullback.
    pub fn log_sum_exp_rule(a: f64, b: f64) -> (f64, impl Fn(f64) -> (f64, f64) + use<>) {
        let largest = a.max(b);
        let (ea, eb) = ((a - largest).exp(), (b - largest).exp());
        let total = ea + eb;
        let value = largest + total.ln();
        let (wa, wb) = (ea / total, eb / total);
        (value, move |cotangent: f64| {
            (cotangent * wa, cotangent * wb)
        })
    }

    /// `ln(eᵃ + eᵇ)`, differentiated through [`log_sum_exp_rule`].
    #[differentiable(vjp = log_sum_exp_rule)]
    pub fn log_sum_exp(a: f64, b: f64) -> f64 {
        let largest = a.max(b);
        largest + ((a - largest).exp() + (b - largest).exp()).ln()
    }

    /// Rounding with the straight-through gradient: the pullback passes the cotangent on
    /// unchanged, where differentiating `round` itself would give 0.
    pub fn straight_through_rule(x: f64) -> (f64, impl Fn(f64) -> (f64,) + use<>) {
        (x.round(), |cotangent: f64| (cotangent,))
    }

    /// `round(x)`, differentiated through [`straight_through_rule`].
    #[differentiable(vjp = straight_through_rule)]
    pub fn straight_through(x: f64) -> f64 {
        x.round()
    }

    /// Quantisation to `levels` steps per unit, straight-through in `x`; `levels` is a
    /// constant, so its tangent is `NoTangent`.
    pub fn quantize_rule(
        x: f64,
        levels: u32,
    ) -> (f64, impl Fn(f64) -> (f64, stagegrad::NoTangent) + use<>) {
        let steps = f64::from(levels);
        ((x * steps).round() / steps, |cotangent: f64| {
            (cotangent, stagegrad::NoTangent)
        })
    }

    /// `round(x · levels) / levels`, differentiated through [`quantize_rule`].
    #[differentiable(vjp = quantize_rule)]
    pub fn quantize(x: f64, levels: u32) -> f64 {
        let steps = f64::from(levels);
        (x * steps).round() / steps
    }
}

/// The callers.
mod a {
    use stagegrad::differentiable;

    use super::b;
    use super::b::h;
    use super::b::h as renamed_h;
    use super::rules::{log_sum_exp, quantize, straight_through};

    /// `g(x, y) · h(y)`: one callee by path, one imported with `use`.
    #[differentiable]
    pub fn product(x: f64, y: f64) -> f64 {
        b::g(x, y) * h(y)
    }

    /// Callees reached by a renamed import and by an absolute path, with expressions as
    /// arguments.
    #[differentiable]
    pub fn paths(x: f64, y: f64) -> f64 {
        renamed_h(x * y) + crate::b::g(y.exp(), x - y)
    }

    /// Returns `g(x, x)`, passing the same variable to both parameters of a callee.
    #[differentiable]
    pub fn twice(x: f64) -> f64 {
        b::g(x, x)
    }

    /// Calls a callee that calls others in turn.
    #[differentiable]
    pub fn deep(x: f64, y: f64) -> f64 {
        b::nested(x * y) - y
    }

    /// Calls a callee with a constant integer argument.
    #[differentiable]
    pub fn with_constant(x: f64, y: f64) -> f64 {
        b::scaled_power(x, 3, y) + x
    }

    /// Calls a hand-written rule from a differentiable function.
    #[differentiable]
    pub fn smooth_max_product(x: f64, y: f64) -> f64 {
        log_sum_exp(x, y * y) * x
    }

    /// Squares a rounding whose hand-written gradient differs from its own derivative.
    #[differentiable]
    pub fn rounded_square(x: f64) -> f64 {
        let r = straight_through(x * 3.0);
        r * r
    }

    /// Calls a hand-written rule that has a constant argument.
    #[differentiable]
    pub fn quantized_sine(x: f64) -> f64 {
        quantize(x.sin(), 4) * x
    }
}

use a::*;

#[test]
fn call_by_path_and_through_use() {
    let (x, y) = (0.6, -0.9);
    let (value, grad) = product_grad(x, y);
    assert_eq!(value, product(x, y));
    let (g, h) = (x * y.sin(), y.exp() - y);
    let hand = [y.sin() * h, x * y.cos() * h + g * (y.exp() - 1.0)];
    assert_gradient("product", &[x, y], &[grad.x, grad.y], &hand, |p| {
        product(p[0], p[1])
    });
}

#[test]
fn call_through_renamed_import_and_crate_path() {
    let (x, y) = (0.4, 0.7);
    let (value, grad) = paths_grad(x, y);
    assert_eq!(value, paths(x, y));
    // h(x y) + e^y · sin(x - y)
    let dh = (x * y).exp() - 1.0;
    let hand = [
        dh * y + y.exp() * (x - y).cos(),
        dh * x + y.exp() * (x - y).sin() - y.exp() * (x - y).cos(),
    ];
    assert_gradient("paths", &[x, y], &[grad.x, grad.y], &hand, |p| {
        paths(p[0], p[1])
    });
}

#[test]
fn same_variable_in_two_parameters() {
    let x = 1.1;
    let (value, grad) = twice_grad(x);
    assert_eq!(value, twice(x));
    assert_gradient("twice", &[x], &[grad.x], &[x.sin() + x * x.cos()], |p| {
        twice(p[0])
    });
}

#[test]
fn nested_calls_three_levels_deep() {
    let (x, y) = (0.8, -0.5);
    let (value, grad) = deep_grad(x, y);
    assert_eq!(value, deep(x, y));
    // nested(t) = (t sin t)² + eᵗ - t, so nested'(t) = 2 t sin t (sin t + t cos t) + eᵗ - 1.
    let t = x * y;
    let dnested = 2.0 * t * t.sin() * (t.sin() + t * t.cos()) + t.exp() - 1.0;
    let hand = [dnested * y, dnested * x - 1.0];
    assert_gradient("deep", &[x, y], &[grad.x, grad.y], &hand, |p| {
        deep(p[0], p[1])
    });
}

#[test]
fn callee_with_a_constant_argument() {
    let (x, y) = (1.3, 0.25);
    let (value, grad) = with_constant_grad(x, y);
    assert_eq!(value, with_constant(x, y));
    let hand = [3.0 * x * x * y + 1.0, x.powi(3)];
    assert_gradient("with constant", &[x, y], &[grad.x, grad.y], &hand, |p| {
        with_constant(p[0], p[1])
    });
    // The callee's own gradient has no field for `n`.
    let b::ScaledPowerGrad { x: dx, scale } = b::scaled_power_grad(2.0, 3, 0.5).1;
    assert_eq!((dx, scale), (6.0, 8.0));
}

#[test]
fn hand_written_rule_called_from_a_function() {
    let (x, y) = (0.3, 1.2);
    let (value, grad) = smooth_max_product_grad(x, y);
    assert_eq!(value, smooth_max_product(x, y));
    let (ex, ey) = (x.exp(), (y * y).exp());
    let lse = (ex + ey).ln();
    let (wx, wy) = (ex / (ex + ey), ey / (ex + ey));
    let hand = [wx * x + lse, wy * 2.0 * y * x];
    assert_gradient(
        "smooth max product",
        &[x, y],
        &[grad.x, grad.y],
        &hand,
        |p| smooth_max_product(p[0], p[1]),
    );
}

#[test]
fn hand_written_rule_on_its_own() {
    use rules::{LogSumExpGrad, log_sum_exp, log_sum_exp_grad, log_sum_exp_vjp};

    // Large arguments that would overflow `exp` without the shift.
    let (value, grad) = log_sum_exp_grad(1000.0, 1000.0);
    assert_eq!(value, log_sum_exp(1000.0, 1000.0));
    assert_eq!(value, 1000.0 + std::f64::consts::LN_2);
    assert_eq!(grad, LogSumExpGrad { a: 0.5, b: 0.5 });
    let (_, pullback) = log_sum_exp_vjp(0.0, 2.0_f64.ln());
    let scaled = pullback(3.0);
    assert!((scaled.a - 1.0).abs() < 1e-12, "{scaled:?}");
    assert!((scaled.b - 2.0).abs() < 1e-12, "{scaled:?}");
}

#[test]
fn hand_written_rule_replaces_the_derivative() {
    let x = 0.45;
    let (value, grad) = rounded_square_grad(x);
    assert_eq!(value, rounded_square(x));
    // r = round(3x) = 1; the straight-through rule gives dr/dx = 3, so d(r²)/dx = 2 r · 3.
    assert_eq!(value, 1.0);
    assert_eq!(grad.x, 6.0);
    let trace = rules::straight_through_trace(2.4);
    assert_eq!(trace.value("straight_through"), Some(2.0));
    assert_eq!(trace.adjoint("x"), Some(1.0));
}

#[test]
fn hand_written_rule_with_a_constant_argument() {
    let x = 0.9;
    let (value, grad) = quantized_sine_grad(x);
    assert_eq!(value, quantized_sine(x));
    // q = round(4 sin x) / 4 with the straight-through derivative cos x.
    let q = (x.sin() * 4.0).round() / 4.0;
    assert_eq!(value, q * x);
    let expected = x.cos() * x + q;
    assert!(
        (grad.x - expected).abs() < 1e-12,
        "{} against {expected}",
        grad.x
    );
    let rules::QuantizeGrad { x: dq } = rules::quantize_grad(0.3, 10).1;
    assert_eq!(dq, 1.0);
}

#[test]
fn pullback_of_a_composition_called_twice() {
    let (x, y) = (0.6, -0.9);
    let (value, pullback) = product_vjp(x, y);
    assert_eq!(value, product(x, y));
    let once = pullback(1.0);
    let scaled = pullback(-2.0);
    assert_eq!(
        scaled,
        ProductGrad {
            x: -2.0 * once.x,
            y: -2.0 * once.y
        }
    );
    assert_eq!(pullback(1.0), once);
}

#[test]
fn trace_of_a_composition_records_calls() {
    let (x, y) = (0.6, -0.9);
    let trace = product_trace(x, y);
    let (value, grad) = product_grad(x, y);
    assert_eq!(trace.value("product"), Some(value));
    assert_eq!(trace.adjoint("x"), Some(grad.x));
    assert_eq!(trace.adjoint("y"), Some(grad.y));
}
