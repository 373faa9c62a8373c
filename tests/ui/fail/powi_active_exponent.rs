use stagegrad::differentiable;

#[differentiable]
fn power(x: f64, n: f64) -> f64 {
    x.powi(n as i32)
}

fn main() {
    let _ = power(3.0, 2.0);
}
