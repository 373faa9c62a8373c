use ndarray::Array1;
use stagegrad::differentiable;

#[differentiable]
fn through_macros(x: f64) -> f64 {
    let y = x * 2.0;
    let digits = format!("{y}").len() as f64;
    let total = Array1::from(vec![x, x * x]).sum();
    y * digits + total
}

fn main() {
    let _ = through_macros(3.0);
}
