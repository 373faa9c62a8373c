use stagegrad::differentiable;

#[differentiable]
fn bumpy(x: f64, y: f64) -> f64 {
    let mut z = x;
    while z > y {
        z = z / 2.0;
    }
    z * y
}

#[differentiable]
fn caller(x: f64, y: f64) -> f64 {
    bumpy(x, y) + x
}

fn main() {
    let (value, gradient) = bumpy_grad(3.0, 1.0);
    let _ = value + gradient.x + gradient.y;
    let (_value, pullback) = bumpy_vjp(3.0, 1.0);
    let _ = pullback(1.0).y;
    let _ = bumpy_trace(3.0, 1.0);
    let (_value, gradient) = caller_grad(3.0, 1.0);
    let _ = gradient.x;
}
