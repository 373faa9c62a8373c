//! Ways of writing a differentiable function that must all work: inside
//! `macro_rules!`, associated-function call syntax, and `mut` arguments.

use stagegrad::differentiable;

macro_rules! declare_sine {
    ($name:ident, $x:ident) => {
        #[differentiable]
        fn $name($x: f64) -> f64 {
            let y = $x.sin();
            if y > 0.0 { y * $x } else { y }
        }
    };
}

declare_sine!(sine_times, x);

#[test]
fn function_declared_by_macro_rules() {
    let x = 1.2_f64;
    let (value, gradient) = sine_times_grad(x);
    assert_eq!(value, x.sin() * x);
    assert!((gradient.x - (x.cos() * x + x.sin())).abs() < 1e-12);
}

#[differentiable]
fn path_calls(x: f64, y: f64) -> f64 {
    f64::sin(x) * f64::max(x, y) + f64::powi(y, 2)
}

#[test]
fn associated_function_syntax() {
    let (value, gradient) = path_calls_grad(0.5, 2.0);
    assert_eq!(value, 0.5_f64.sin() * 2.0 + 4.0);
    assert!((gradient.x - 0.5_f64.cos() * 2.0).abs() < 1e-12);
    assert!((gradient.y - (0.5_f64.sin() + 4.0)).abs() < 1e-12);
}

#[differentiable]
fn doubled(mut x: f64) -> f64 {
    x *= 2.0;
    x * x
}

#[test]
fn mut_argument() {
    assert_eq!(doubled_grad(3.0), (36.0, DoubledGrad { x: 24.0 }));
}

const BAD_ADD_LINE: u32 = line!() + 3;
#[differentiable]
fn bad_add(a: &ndarray::Array2<f64>, b: &ndarray::Array2<f64>) -> f64 {
    (a + b).sum()
}

#[test]
fn shape_panic_reports_user_line() {
    use std::sync::{Arc, Mutex};

    let location = Arc::new(Mutex::new(None));
    let seen = Arc::clone(&location);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        *seen.lock().unwrap() = info.location().map(|at| (at.file().to_owned(), at.line()));
    }));
    let result = std::panic::catch_unwind(|| {
        bad_add_grad(
            &ndarray::Array2::zeros((2, 3)),
            &ndarray::Array2::zeros((3, 2)),
        )
    });
    std::panic::set_hook(previous);

    assert!(result.is_err());
    let (file, line) = location
        .lock()
        .unwrap()
        .clone()
        .expect("the panic was seen");
    assert!(file.ends_with("syntax.rs"), "{file}");
    assert_eq!(line, BAD_ADD_LINE);
}
