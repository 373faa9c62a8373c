use stagegrad::differentiable;

fn helper(x: f64) -> f64 {
    x * x
}

#[differentiable]
fn outer(x: f64) -> f64 {
    helper(x) + x
}

fn main() {
    let _ = outer(3.0);
}
