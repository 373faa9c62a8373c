use stagegrad::differentiable;

#[differentiable]
fn mixed(x: f32, y: f64) -> f64 {
    x * y
}

fn main() {
    let _ = mixed(2.0, 3.0);
}
