//! A function generic over `T: num_traits::Float`, and functions that call each other
//! across modules.

use num_traits::Float;
use stagegrad::differentiable;

#[differentiable]
fn cube_plus<T: Float>(x: T, y: T) -> T {
    x * x * x + y
}

mod inner {
    use stagegrad::differentiable;

    #[differentiable]
    pub fn product(a: f64, b: f64) -> f64 {
        a * b
    }

    pub mod deeper {
        use stagegrad::differentiable;

        #[differentiable]
        pub fn wave(a: f64) -> f64 {
            a.sin()
        }
    }
}

#[differentiable]
fn composed(x: f64, y: f64) -> f64 {
    let p = inner::product(x, y);
    inner::deeper::wave(p) + x
}

fn main() {
    assert_eq!(cube_plus(2.0_f64, 1.0), 9.0);
    let (value, gradient) = cube_plus_grad(2.0_f64, 1.0);
    assert_eq!(value, 9.0);
    assert_eq!(gradient, CubePlusGrad { x: 12.0, y: 1.0 });
    let (value, gradient) = cube_plus_grad(2.0_f32, 1.0);
    assert_eq!(value, 9.0_f32);
    assert_eq!(
        gradient,
        CubePlusGrad {
            x: 12.0_f32,
            y: 1.0
        }
    );

    assert_eq!(inner::product(2.0, 3.0), 6.0);
    let (_, gradient) = inner::product_grad(2.0, 3.0);
    assert_eq!(gradient, inner::ProductGrad { a: 3.0, b: 2.0 });
    assert_eq!(inner::deeper::wave(0.0), 0.0);

    let (x, y) = (0.3_f64, 0.7_f64);
    let (value, gradient) = composed_grad(x, y);
    assert_eq!(value, composed(x, y));
    assert!((value - ((x * y).sin() + x)).abs() < 1e-15);
    assert!((gradient.x - ((x * y).cos() * y + 1.0)).abs() < 1e-15);
    assert!((gradient.y - (x * y).cos() * x).abs() < 1e-15);
}
