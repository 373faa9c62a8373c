use stagegrad::differentiable;

#[differentiable(speed = 3)]
fn f(x: f64) -> f64 {
    x * x
}

fn main() {
    let (_value, gradient) = f_grad(3.0);
    let _ = gradient.x;
}
