//! Elementwise operations and their derivatives, written once over [`Scalar`].
//!
//! The conventions at points where the derivative does not exist live here, in one place:
//!
//! | function | point | derivative used |
//! | --- | --- | --- |
//! | `relu` | 0 | 0 |
//! | `abs` | 0 | 0 |
//! | `max`, `min` | `a == b` | 1/2 to each operand |
//! | `sqrt` | 0 | `+inf` |
//! | `powf` (`x^y`) | `x == 0` | d/dy = 0 |
//! | `powf`, `powi` | exponent 0 | d/dx = 0 (the function is constant) |
//! | `hypot` | (0, 0) | 0 for both |
//! | `atan2` | (0, 0) | 0 for both |
//! | `signum`, `floor`, `ceil`, `round` | everywhere | 0 |
//!
//! Max-pool ties are documented with the pooling rules: the whole gradient goes to the
//! first maximum in row-major order.

use crate::Scalar;

/// A function of one scalar, applied elementwise to arrays.
pub trait UnaryOp: Copy {
    /// The method name, as written in user code.
    const NAME: &'static str;

    /// Computes `f(x)`.
    fn value<S: Scalar>(&self, x: S) -> S;

    /// Computes `f'(x)`, given `y = f(x)` as well, since many derivatives are cheaper
    /// from the output.
    fn derivative<S: Scalar>(&self, x: S, y: S) -> S;
}

/// A function of two scalars, applied elementwise (with broadcasting) to arrays.
pub trait BinaryOp: Copy {
    /// The operator or method name, as written in user code.
    const NAME: &'static str;

    /// Computes `f(a, b)`.
    fn value<S: Scalar>(&self, a: S, b: S) -> S;

    /// Computes `df/da` at `(a, b)`, given `y = f(a, b)`.
    fn derivative_lhs<S: Scalar>(&self, a: S, b: S, y: S) -> S;

    /// Computes `df/db` at `(a, b)`, given `y = f(a, b)`.
    fn derivative_rhs<S: Scalar>(&self, a: S, b: S, y: S) -> S;
}

fn half<S: Scalar>() -> S {
    S::from_f64_lossy(0.5)
}

macro_rules! unary_op {
    ($(#[$doc:meta])* $name:ident, $method:literal, |$x:ident| $value:expr, |$dx:ident, $y:ident| $derivative:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl UnaryOp for $name {
            const NAME: &'static str = $method;

            #[inline(always)]
            fn value<S: Scalar>(&self, $x: S) -> S {
                $value
            }

            #[inline(always)]
            #[allow(unused_variables)]
            fn derivative<S: Scalar>(&self, $dx: S, $y: S) -> S {
                $derivative
            }
        }
    };
}

unary_op!(/// Negation, `-x`.
    Neg, "neg", |x| -x, |x, y| -S::one());
unary_op!(/// `x.sin()`.
    Sin, "sin", |x| x.sin(), |x, y| x.cos());
unary_op!(/// `x.cos()`.
    Cos, "cos", |x| x.cos(), |x, y| -x.sin());
unary_op!(/// `x.tan()`.
    Tan, "tan", |x| x.tan(), |x, y| S::one() + y * y);
unary_op!(/// `x.asin()`.
    Asin, "asin", |x| x.asin(), |x, y| (S::one() - x * x).sqrt().recip());
unary_op!(/// `x.acos()`.
    Acos, "acos", |x| x.acos(), |x, y| -(S::one() - x * x).sqrt().recip());
unary_op!(/// `x.atan()`.
    Atan, "atan", |x| x.atan(), |x, y| (S::one() + x * x).recip());
unary_op!(/// `x.sinh()`.
    Sinh, "sinh", |x| x.sinh(), |x, y| x.cosh());
unary_op!(/// `x.cosh()`.
    Cosh, "cosh", |x| x.cosh(), |x, y| x.sinh());
unary_op!(/// `x.tanh()`.
    Tanh, "tanh", |x| x.tanh(), |x, y| S::one() - y * y);
unary_op!(/// `x.exp()`.
    Exp, "exp", |x| x.exp(), |x, y| y);
unary_op!(/// `x.exp2()`.
    Exp2, "exp2", |x| x.exp2(), |x, y| y * S::LN_2());
unary_op!(/// `x.exp_m1()`.
    ExpM1, "exp_m1", |x| x.exp_m1(), |x, y| y + S::one());
unary_op!(/// `x.ln()`.
    Ln, "ln", |x| x.ln(), |x, y| x.recip());
unary_op!(/// `x.log2()`.
    Log2, "log2", |x| x.log2(), |x, y| (x * S::LN_2()).recip());
unary_op!(/// `x.log10()`.
    Log10, "log10", |x| x.log10(), |x, y| (x * S::LN_10()).recip());
unary_op!(/// `x.ln_1p()`.
    Ln1p, "ln_1p", |x| x.ln_1p(), |x, y| (S::one() + x).recip());
unary_op!(/// `x.sqrt()`; the derivative at 0 is `+inf`.
    Sqrt, "sqrt", |x| x.sqrt(), |x, y| half::<S>() / y);
unary_op!(/// `x.cbrt()`.
    Cbrt, "cbrt", |x| x.cbrt(), |x, y| (S::from_f64_lossy(3.0) * y * y).recip());
unary_op!(/// `x.recip()`.
    Recip, "recip", |x| x.recip(), |x, y| -(y * y));
unary_op!(/// `x.abs()`; the derivative at 0 is 0.
    Abs, "abs", |x| x.abs(), |x, y| sign_or_zero(x));
unary_op!(/// `x.signum()`, with derivative 0.
    Signum, "signum", |x| x.signum(), |x, y| S::zero());
unary_op!(/// `x.floor()`, with derivative 0.
    Floor, "floor", |x| x.floor(), |x, y| S::zero());
unary_op!(/// `x.ceil()`, with derivative 0.
    Ceil, "ceil", |x| x.ceil(), |x, y| S::zero());
unary_op!(/// `x.round()`, with derivative 0.
    Round, "round", |x| x.round(), |x, y| S::zero());
unary_op!(/// The rectified linear unit `max(x, 0)`; the derivative at 0 is 0.
    Relu, "relu", |x| if x > S::zero() { x } else { S::zero() }, |x, y| if x > S::zero() { S::one() } else { S::zero() });
unary_op!(/// The logistic sigmoid `1 / (1 + e^-x)`, computed without overflow.
    Sigmoid, "sigmoid", |x| sigmoid(x), |x, y| y * (S::one() - y));
unary_op!(/// The identity, used by `as` casts between float types of the same width.
    Identity, "identity", |x| x, |x, y| S::one());

#[inline(always)]
fn sign_or_zero<S: Scalar>(x: S) -> S {
    if x > S::zero() {
        S::one()
    } else if x < S::zero() {
        -S::one()
    } else {
        S::zero()
    }
}

#[inline(always)]
fn sigmoid<S: Scalar>(x: S) -> S {
    if x >= S::zero() {
        (S::one() + (-x).exp()).recip()
    } else {
        let e = x.exp();
        e / (S::one() + e)
    }
}

/// `x.powi(n)` for an integer exponent, which is a constant of the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Powi(pub i32);

impl UnaryOp for Powi {
    const NAME: &'static str = "powi";

    #[inline(always)]
    fn value<S: Scalar>(&self, x: S) -> S {
        x.powi(self.0)
    }

    #[inline(always)]
    fn derivative<S: Scalar>(&self, x: S, _y: S) -> S {
        if self.0 == 0 {
            S::zero()
        } else {
            S::from_f64_lossy(f64::from(self.0)) * x.powi(self.0 - 1)
        }
    }
}

macro_rules! binary_op {
    ($(#[$doc:meta])* $name:ident, $method:literal, |$a:ident, $b:ident| $value:expr,
     |$da:ident, $db:ident, $y:ident| $lhs:expr, $rhs:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $name;

        impl BinaryOp for $name {
            const NAME: &'static str = $method;

            #[inline(always)]
            fn value<S: Scalar>(&self, $a: S, $b: S) -> S {
                $value
            }

            #[inline(always)]
            #[allow(unused_variables)]
            fn derivative_lhs<S: Scalar>(&self, $da: S, $db: S, $y: S) -> S {
                $lhs
            }

            #[inline(always)]
            #[allow(unused_variables)]
            fn derivative_rhs<S: Scalar>(&self, $da: S, $db: S, $y: S) -> S {
                $rhs
            }
        }
    };
}

binary_op!(/// `a + b`.
    Add, "+", |a, b| a + b, |a, b, y| S::one(), S::one());
binary_op!(/// `a - b`.
    Sub, "-", |a, b| a - b, |a, b, y| S::one(), -S::one());
binary_op!(/// `a * b`.
    Mul, "*", |a, b| a * b, |a, b, y| b, a);
binary_op!(/// `a / b`.
    Div, "/", |a, b| a / b, |a, b, y| b.recip(), -y / b);
binary_op!(/// `a.powf(b)`; d/db is 0 where `a == 0`, d/da is 0 where `b == 0`.
    Powf, "powf", |a, b| a.powf(b),
    |a, b, y| if b == S::zero() { S::zero() } else { b * a.powf(b - S::one()) },
    if a == S::zero() { S::zero() } else { y * a.ln() });
binary_op!(/// `a.max(b)`; a tie splits the gradient equally.
    Max, "max", |a, b| a.max(b),
    |a, b, y| if a > b { S::one() } else if a < b { S::zero() } else { half() },
    if b > a { S::one() } else if b < a { S::zero() } else { half() });
binary_op!(/// `a.min(b)`; a tie splits the gradient equally.
    Min, "min", |a, b| a.min(b),
    |a, b, y| if a < b { S::one() } else if a > b { S::zero() } else { half() },
    if b < a { S::one() } else if b > a { S::zero() } else { half() });
binary_op!(/// `a.hypot(b)`; both derivatives are 0 at the origin.
    Hypot, "hypot", |a, b| a.hypot(b),
    |a, b, y| if y == S::zero() { S::zero() } else { a / y },
    if y == S::zero() { S::zero() } else { b / y });
binary_op!(/// `a.atan2(b)`, the angle of the point `(b, a)`; both derivatives are 0 at the origin.
    Atan2, "atan2", |a, b| a.atan2(b),
    |a, b, y| { let r = a * a + b * b; if r == S::zero() { S::zero() } else { b / r } },
    { let r = a * a + b * b; if r == S::zero() { S::zero() } else { -a / r } });
