use stagegrad::differentiable;

#[differentiable]
fn squared(x: f64) -> f64 {
    let square = |v: f64| v * v;
    square(x)
}

fn main() {
    let _ = squared(3.0);
}
