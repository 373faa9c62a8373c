//! Every scalar derivative rule over random inputs in its domain: the generated gradient
//! against the derivative written out by hand and against central finite differences,
//! the pullback against a random cotangent, and the value against the original function.

#[allow(dead_code)] // each test crate uses a different part of the shared checks
mod scalar_support;

use proptest::prelude::*;
use scalar_support::{assert_all_close, assert_gradient, close};
use stagegrad::differentiable;

/// Checks a function of one variable at `x`: the value equals the original function's
/// bit for bit, the gradient equals `derivative` and finite differences, and the pullback
/// of `cotangent` is `cotangent · derivative`.
#[track_caller]
fn check_unary(
    what: &str,
    x: f64,
    cotangent: f64,
    primal: impl Fn(f64) -> f64,
    grad: impl Fn(f64) -> (f64, f64),
    pullback: impl Fn(f64, f64) -> f64,
    derivative: f64,
) {
    let (value, gradient) = grad(x);
    assert_eq!(value.to_bits(), primal(x).to_bits(), "{what}: value at {x}");
    assert_gradient(what, &[x], &[gradient], &[derivative], |p| primal(p[0]));
    assert_all_close(
        &format!("{what}: pullback of {cotangent}"),
        &[pullback(x, cotangent)],
        &[cotangent * derivative],
        1e-10,
        1e-12,
    );
}

/// [`check_unary`] for a function of two variables.
#[track_caller]
fn check_binary(
    what: &str,
    (x, y): (f64, f64),
    cotangent: f64,
    primal: impl Fn(f64, f64) -> f64,
    grad: impl Fn(f64, f64) -> (f64, [f64; 2]),
    pullback: impl Fn(f64, f64, f64) -> [f64; 2],
    derivative: [f64; 2],
) {
    let (value, gradient) = grad(x, y);
    assert_eq!(
        value.to_bits(),
        primal(x, y).to_bits(),
        "{what}: value at ({x}, {y})"
    );
    assert_gradient(what, &[x, y], &gradient, &derivative, |p| {
        primal(p[0], p[1])
    });
    assert_all_close(
        &format!("{what}: pullback of {cotangent}"),
        &pullback(x, y, cotangent),
        &derivative.map(|d| cotangent * d),
        1e-10,
        1e-12,
    );
}

/// A property test of the function of one variable `$name` over `$domain`, with the
/// derivative `$derivative` written in terms of `$x`.
///
/// The functions themselves are declared outside the macro, as a user would write them.
macro_rules! unary_rule {
    ($test:ident, $name:ident, $grad:ident, $vjp:ident, $domain:expr, |$x:ident| $derivative:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn $test($x in $domain, cotangent in -4.0..4.0_f64) {
                check_unary(
                    stringify!($name),
                    $x,
                    cotangent,
                    $name,
                    |x| {
                        let (value, gradient) = $grad(x);
                        (value, gradient.x)
                    },
                    |x, cotangent| $vjp(x).1(cotangent).x,
                    $derivative,
                );
            }
        }
    };
}

/// A property test of the function of two variables `$name` over `$domain`, with the two
/// partial derivatives written in terms of `$x` and `$y`.
macro_rules! binary_rule {
    ($test:ident, $name:ident, $grad:ident, $vjp:ident, $domain:expr, |$x:ident, $y:ident| $derivative:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn $test(($x, $y) in $domain, cotangent in -4.0..4.0_f64) {
                check_binary(
                    stringify!($name),
                    ($x, $y),
                    cotangent,
                    $name,
                    |x, y| {
                        let (value, gradient) = $grad(x, y);
                        (value, [gradient.x, gradient.y])
                    },
                    |x, y, cotangent| {
                        let gradient = $vjp(x, y).1(cotangent);
                        [gradient.x, gradient.y]
                    },
                    $derivative,
                );
            }
        }
    };
}

/// Values at least `margin` away from every multiple of `period`, where a piecewise
/// constant function jumps, so finite differences see a flat function.
fn away_from_multiples(
    range: std::ops::Range<f64>,
    period: f64,
    margin: f64,
) -> impl Strategy<Value = f64> {
    range.prop_filter("too close to a jump", move |x| {
        let offset = x.rem_euclid(period);
        offset > margin && offset < period - margin
    })
}

/// Pairs `(x, y)` with `|x - y| > margin`, so max and min have no tie nearby.
fn distinct_pair(margin: f64) -> impl Strategy<Value = (f64, f64)> {
    (-10.0..10.0_f64, -10.0..10.0_f64)
        .prop_filter("a near tie", move |(x, y)| (x - y).abs() > margin)
}

/// Pairs `(x, y)` at least `radius` from the origin.
fn away_from_origin(radius: f64) -> impl Strategy<Value = (f64, f64)> {
    (-10.0..10.0_f64, -10.0..10.0_f64)
        .prop_filter("too near the origin", move |(x, y)| x.hypot(*y) > radius)
}

/// Values with `|x| >= low`, of either sign, up to `high`.
fn nonzero(low: f64, high: f64) -> impl Strategy<Value = f64> {
    (low..high, any::<bool>())
        .prop_map(|(magnitude, negative)| if negative { -magnitude } else { magnitude })
}

// Arithmetic.

#[differentiable]
fn negation(x: f64) -> f64 {
    -x
}
unary_rule!(
    negation_rule,
    negation,
    negation_grad,
    negation_vjp,
    -100.0..100.0_f64,
    |x| -1.0
);

#[differentiable]
fn addition(x: f64, y: f64) -> f64 {
    x + y
}
binary_rule!(
    addition_rule,
    addition,
    addition_grad,
    addition_vjp,
    (-100.0..100.0_f64, -100.0..100.0_f64),
    |x, y| [1.0, 1.0]
);

#[differentiable]
fn subtraction(x: f64, y: f64) -> f64 {
    x - y
}
binary_rule!(
    subtraction_rule,
    subtraction,
    subtraction_grad,
    subtraction_vjp,
    (-100.0..100.0_f64, -100.0..100.0_f64),
    |x, y| [1.0, -1.0]
);

#[differentiable]
fn product(x: f64, y: f64) -> f64 {
    x * y
}
binary_rule!(
    product_rule,
    product,
    product_grad,
    product_vjp,
    (-100.0..100.0_f64, -100.0..100.0_f64),
    |x, y| [y, x]
);

#[differentiable]
fn quotient(x: f64, y: f64) -> f64 {
    x / y
}
binary_rule!(
    quotient_rule,
    quotient,
    quotient_grad,
    quotient_vjp,
    (-100.0..100.0_f64, nonzero(0.1, 100.0)),
    |x, y| [1.0 / y, -x / (y * y)]
);

// Trigonometric functions and their inverses.

#[differentiable]
fn sine(x: f64) -> f64 {
    x.sin()
}
unary_rule!(sin_rule, sine, sine_grad, sine_vjp, -10.0..10.0_f64, |x| x
    .cos());

#[differentiable]
fn cosine(x: f64) -> f64 {
    x.cos()
}
unary_rule!(
    cos_rule,
    cosine,
    cosine_grad,
    cosine_vjp,
    -10.0..10.0_f64,
    |x| -x.sin()
);

#[differentiable]
fn tangent(x: f64) -> f64 {
    x.tan()
}
unary_rule!(
    tan_rule,
    tangent,
    tangent_grad,
    tangent_vjp,
    -1.4..1.4_f64,
    |x| 1.0 / (x.cos() * x.cos())
);

#[differentiable]
fn arcsine(x: f64) -> f64 {
    x.asin()
}
unary_rule!(
    asin_rule,
    arcsine,
    arcsine_grad,
    arcsine_vjp,
    -0.95..0.95_f64,
    |x| 1.0 / (1.0 - x * x).sqrt()
);

#[differentiable]
fn arccosine(x: f64) -> f64 {
    x.acos()
}
unary_rule!(
    acos_rule,
    arccosine,
    arccosine_grad,
    arccosine_vjp,
    -0.95..0.95_f64,
    |x| -1.0 / (1.0 - x * x).sqrt()
);

#[differentiable]
fn arctangent(x: f64) -> f64 {
    x.atan()
}
unary_rule!(
    atan_rule,
    arctangent,
    arctangent_grad,
    arctangent_vjp,
    -10.0..10.0_f64,
    |x| 1.0 / (1.0 + x * x)
);

// Hyperbolic functions.

#[differentiable]
fn hyperbolic_sine(x: f64) -> f64 {
    x.sinh()
}
unary_rule!(
    sinh_rule,
    hyperbolic_sine,
    hyperbolic_sine_grad,
    hyperbolic_sine_vjp,
    -5.0..5.0_f64,
    |x| x.cosh()
);

#[differentiable]
fn hyperbolic_cosine(x: f64) -> f64 {
    x.cosh()
}
unary_rule!(
    cosh_rule,
    hyperbolic_cosine,
    hyperbolic_cosine_grad,
    hyperbolic_cosine_vjp,
    -5.0..5.0_f64,
    |x| x.sinh()
);

#[differentiable]
fn hyperbolic_tangent(x: f64) -> f64 {
    x.tanh()
}
unary_rule!(
    tanh_rule,
    hyperbolic_tangent,
    hyperbolic_tangent_grad,
    hyperbolic_tangent_vjp,
    -5.0..5.0_f64,
    |x| 1.0 / (x.cosh() * x.cosh())
);

// Exponentials and logarithms.

#[differentiable]
fn exponential(x: f64) -> f64 {
    x.exp()
}
unary_rule!(
    exp_rule,
    exponential,
    exponential_grad,
    exponential_vjp,
    -5.0..5.0_f64,
    |x| x.exp()
);

#[differentiable]
fn exponential2(x: f64) -> f64 {
    x.exp2()
}
unary_rule!(
    exp2_rule,
    exponential2,
    exponential2_grad,
    exponential2_vjp,
    -5.0..5.0_f64,
    |x| std::f64::consts::LN_2 * x.exp2()
);

#[differentiable]
fn exponential_m1(x: f64) -> f64 {
    x.exp_m1()
}
unary_rule!(
    exp_m1_rule,
    exponential_m1,
    exponential_m1_grad,
    exponential_m1_vjp,
    -5.0..5.0_f64,
    |x| x.exp()
);

#[differentiable]
fn logarithm(x: f64) -> f64 {
    x.ln()
}
unary_rule!(
    ln_rule,
    logarithm,
    logarithm_grad,
    logarithm_vjp,
    0.05..20.0_f64,
    |x| 1.0 / x
);

#[differentiable]
fn logarithm2(x: f64) -> f64 {
    x.log2()
}
unary_rule!(
    log2_rule,
    logarithm2,
    logarithm2_grad,
    logarithm2_vjp,
    0.05..20.0_f64,
    |x| 1.0 / (x * std::f64::consts::LN_2)
);

#[differentiable]
fn logarithm10(x: f64) -> f64 {
    x.log10()
}
unary_rule!(
    log10_rule,
    logarithm10,
    logarithm10_grad,
    logarithm10_vjp,
    0.05..20.0_f64,
    |x| 1.0 / (x * std::f64::consts::LN_10)
);

#[differentiable]
fn logarithm_1p(x: f64) -> f64 {
    x.ln_1p()
}
unary_rule!(
    ln_1p_rule,
    logarithm_1p,
    logarithm_1p_grad,
    logarithm_1p_vjp,
    -0.9..20.0_f64,
    |x| 1.0 / (1.0 + x)
);

// Roots, reciprocal, absolute value.

#[differentiable]
fn square_root(x: f64) -> f64 {
    x.sqrt()
}
unary_rule!(
    sqrt_rule,
    square_root,
    square_root_grad,
    square_root_vjp,
    0.01..20.0_f64,
    |x| 0.5 / x.sqrt()
);

#[differentiable]
fn cube_root(x: f64) -> f64 {
    x.cbrt()
}
unary_rule!(
    cbrt_rule,
    cube_root,
    cube_root_grad,
    cube_root_vjp,
    nonzero(0.05, 20.0),
    |x| 1.0 / (3.0 * x.cbrt() * x.cbrt())
);

#[differentiable]
fn reciprocal(x: f64) -> f64 {
    x.recip()
}
unary_rule!(
    recip_rule,
    reciprocal,
    reciprocal_grad,
    reciprocal_vjp,
    nonzero(0.1, 10.0),
    |x| -1.0 / (x * x)
);

#[differentiable]
fn absolute(x: f64) -> f64 {
    x.abs()
}
unary_rule!(
    abs_rule,
    absolute,
    absolute_grad,
    absolute_vjp,
    nonzero(1e-3, 100.0),
    |x| x.signum()
);

// Piecewise constant functions: zero away from their jumps.

#[differentiable]
fn sign(x: f64) -> f64 {
    x.signum()
}
unary_rule!(
    signum_rule,
    sign,
    sign_grad,
    sign_vjp,
    nonzero(1e-3, 100.0),
    |x| 0.0
);

#[differentiable]
fn floored(x: f64) -> f64 {
    x.floor()
}
unary_rule!(
    floor_rule,
    floored,
    floored_grad,
    floored_vjp,
    away_from_multiples(-100.0..100.0, 1.0, 1e-3),
    |x| 0.0
);

#[differentiable]
fn ceiled(x: f64) -> f64 {
    x.ceil()
}
unary_rule!(
    ceil_rule,
    ceiled,
    ceiled_grad,
    ceiled_vjp,
    away_from_multiples(-100.0..100.0, 1.0, 1e-3),
    |x| 0.0
);

// `round` jumps at the half-integers: shift them onto the multiples of 1.
#[differentiable]
fn rounded(x: f64) -> f64 {
    x.round()
}
unary_rule!(
    round_rule,
    rounded,
    rounded_grad,
    rounded_vjp,
    away_from_multiples(-100.0..100.0, 1.0, 1e-3).prop_map(|x| x + 0.5),
    |x| 0.0
);

// Powers.

#[differentiable]
fn cubed(x: f64) -> f64 {
    x.powi(3)
}
unary_rule!(
    powi_rule,
    cubed,
    cubed_grad,
    cubed_vjp,
    -5.0..5.0_f64,
    |x| 3.0 * x * x
);

#[differentiable]
fn inverse_square(x: f64) -> f64 {
    x.powi(-2)
}
unary_rule!(
    negative_powi_rule,
    inverse_square,
    inverse_square_grad,
    inverse_square_vjp,
    nonzero(0.1, 5.0),
    |x| -2.0 / (x * x * x)
);

#[differentiable]
fn real_power(x: f64, y: f64) -> f64 {
    x.powf(y)
}
binary_rule!(
    powf_rule,
    real_power,
    real_power_grad,
    real_power_vjp,
    (0.1..5.0_f64, -3.0..3.0_f64),
    |x, y| [y * x.powf(y - 1.0), x.powf(y) * x.ln()]
);

/// `x.powi(n)` for an exponent `n` drawn at random too.
#[differentiable]
fn integer_power(x: f64, n: i32) -> f64 {
    x.powi(n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn powi_with_a_constant_argument_rule(x in nonzero(0.2, 3.0), n in -4..=6_i32, cotangent in -4.0..4.0_f64) {
        let derivative = if n == 0 { 0.0 } else { f64::from(n) * x.powi(n - 1) };
        check_unary(
            &format!("x.powi({n})"),
            x,
            cotangent,
            |x| integer_power(x, n),
            |x| {
                let (value, gradient) = integer_power_grad(x, n);
                (value, gradient.x)
            },
            |x, cotangent| integer_power_vjp(x, n).1(cotangent).x,
            derivative,
        );
    }
}

// Functions of two arguments.

#[differentiable]
fn radius(x: f64, y: f64) -> f64 {
    x.hypot(y)
}
binary_rule!(
    hypot_rule,
    radius,
    radius_grad,
    radius_vjp,
    away_from_origin(0.1),
    |x, y| [x / x.hypot(y), y / x.hypot(y)]
);

#[differentiable]
fn angle(x: f64, y: f64) -> f64 {
    x.atan2(y)
}
binary_rule!(
    atan2_rule,
    angle,
    angle_grad,
    angle_vjp,
    away_from_origin(0.1),
    |x, y| [y / (x * x + y * y), -x / (x * x + y * y)]
);

#[differentiable]
fn maximum(x: f64, y: f64) -> f64 {
    x.max(y)
}
binary_rule!(
    max_rule,
    maximum,
    maximum_grad,
    maximum_vjp,
    distinct_pair(1e-3),
    |x, y| if x > y { [1.0, 0.0] } else { [0.0, 1.0] }
);

#[differentiable]
fn minimum(x: f64, y: f64) -> f64 {
    x.min(y)
}
binary_rule!(
    min_rule,
    minimum,
    minimum_grad,
    minimum_vjp,
    distinct_pair(1e-3),
    |x, y| if x < y { [1.0, 0.0] } else { [0.0, 1.0] }
);

#[differentiable]
fn fused(x: f64, y: f64, z: f64) -> f64 {
    x.mul_add(y, z)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn mul_add_rule(x in -10.0..10.0_f64, y in -10.0..10.0_f64, z in -10.0..10.0_f64, cotangent in -4.0..4.0_f64) {
        let (value, grad) = fused_grad(x, y, z);
        prop_assert_eq!(value.to_bits(), fused(x, y, z).to_bits());
        assert_gradient("mul_add", &[x, y, z], &[grad.x, grad.y, grad.z], &[y, x, 1.0], |p| fused(p[0], p[1], p[2]));
        let scaled = fused_vjp(x, y, z).1(cotangent);
        assert_all_close("mul_add pullback", &[scaled.x, scaled.y, scaled.z], &[cotangent * y, cotangent * x, cotangent], 1e-12, 1e-12);
    }
}

// Casts between float types: the gradient is converted back to the argument's type.

#[differentiable]
fn narrowed(x: f64) -> f64 {
    let y = x as f32;
    (y * y) as f64
}

#[differentiable]
fn widened(x: f32) -> f32 {
    let y = x as f64;
    (y * y.sin()) as f32
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn cast_rule(x in -10.0..10.0_f64, cotangent in -4.0..4.0_f64) {
        let y = x as f32;
        let (value, grad) = narrowed_grad(x);
        prop_assert_eq!(value, narrowed(x));
        prop_assert_eq!(grad.x, f64::from(2.0 * y));
        prop_assert_eq!(narrowed_vjp(x).1(cotangent).x, f64::from(cotangent as f32 * 2.0 * y));

        let w = f64::from(y);
        let (value, grad) = widened_grad(y);
        prop_assert_eq!(value, widened(y));
        prop_assert_eq!(grad.x, (w.sin() + w * w.cos()) as f32);
    }
}

// Properties of whole functions rather than of one rule.

#[differentiable]
fn mixture(x: f64, y: f64, z: f64) -> f64 {
    let a = (x * y).sin() + z.exp() / (1.0 + x * x);
    let b = a.tanh() * y.hypot(z) - x.atan2(z);
    a * b + b.max(x) - (y * z).cos().powi(2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pullback_is_linear_and_reusable(
        x in -2.0..2.0_f64,
        y in -2.0..2.0_f64,
        z in -2.0..2.0_f64,
        first in -4.0..4.0_f64,
        second in -4.0..4.0_f64,
    ) {
        let (value, pullback) = mixture_vjp(x, y, z);
        prop_assert_eq!(value.to_bits(), mixture(x, y, z).to_bits());
        let one = pullback(1.0);
        let a = pullback(first);
        let b = pullback(second);
        let sum = pullback(first + second);
        let as_vec = |g: &MixtureGrad| [g.x, g.y, g.z];
        // Scaling the cotangent scales the gradient.
        assert_all_close("pullback(first)", &as_vec(&a), &as_vec(&one).map(|g| first * g), 1e-12, 1e-12);
        assert_all_close("pullback(second)", &as_vec(&b), &as_vec(&one).map(|g| second * g), 1e-12, 1e-12);
        // Additivity.
        let added: Vec<f64> = as_vec(&a).iter().zip(as_vec(&b)).map(|(p, q)| p + q).collect();
        assert_all_close("pullback(first + second)", &as_vec(&sum), &added, 1e-12, 1e-12);
        // Calling it again gives the same result, because nothing inside was consumed.
        prop_assert_eq!(pullback(first), a);
        prop_assert_eq!(mixture_grad(x, y, z), (value, one));
    }

    #[test]
    fn gradient_matches_finite_differences(x in -2.0..2.0_f64, y in -2.0..2.0_f64, z in -2.0..2.0_f64) {
        let a = (x * y).sin() + z.exp() / (1.0 + x * x);
        let b = a.tanh() * y.hypot(z) - x.atan2(z);
        // Stay clear of the kinks of `max` and `atan2`, where differences are not derivatives.
        prop_assume!((b - x).abs() > 1e-3 && z.hypot(x) > 1e-2 && y.hypot(z) > 1e-2);
        let grad = mixture_grad(x, y, z).1;
        let numeric = scalar_support::central_differences(|p| mixture(p[0], p[1], p[2]), &[x, y, z]);
        assert_all_close("mixture", &[grad.x, grad.y, grad.z], &numeric, 1e-5, 1e-6);
    }

    #[test]
    fn trace_agrees_with_the_gradient(x in -2.0..2.0_f64, y in -2.0..2.0_f64, z in -2.0..2.0_f64) {
        let (value, grad) = mixture_grad(x, y, z);
        let trace = mixture_trace(x, y, z);
        prop_assert_eq!(trace.value("mixture"), Some(value));
        prop_assert_eq!(trace.adjoint("mixture"), Some(1.0));
        for (name, expected) in [("x", grad.x), ("y", grad.y), ("z", grad.z)] {
            let adjoint = trace.adjoint(name).unwrap_or(f64::NAN);
            prop_assert!(close(adjoint, expected, 1e-12, 1e-12), "adjoint of {name}: {adjoint} against {expected}");
        }
    }
}
