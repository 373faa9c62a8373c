use stagegrad::differentiable;

#[differentiable(wrt(x, z))]
fn f(x: f64, y: f64) -> f64 {
    x * y
}

fn main() {
    let (_value, gradient) = f_grad(3.0, 4.0);
    let _ = gradient.x;
}
