//! `if` / `else` and `for` loops over a range inside a differentiable function.

use stagegrad::differentiable;

#[differentiable]
fn clipped(x: f64) -> f64 {
    if x > 0.0 { x * x } else { 0.0 * x }
}

#[differentiable]
fn repeated_square(x: f64) -> f64 {
    let mut y = x;
    for _ in 0..3 {
        y = y * y;
    }
    y
}

fn main() {
    assert_eq!(clipped(1.5), 2.25);
    assert_eq!(clipped_grad(1.5), (2.25, ClippedGrad { x: 3.0 }));
    assert_eq!(clipped_grad(-1.0), (0.0, ClippedGrad { x: 0.0 }));

    // y = x^8, dy/dx = 8 x^7
    assert_eq!(repeated_square(1.5), 1.5_f64.powi(8));
    let (value, gradient) = repeated_square_grad(1.5);
    assert_eq!(value, 1.5_f64.powi(8));
    assert!((gradient.x - 8.0 * 1.5_f64.powi(7)).abs() < 1e-12);
}
