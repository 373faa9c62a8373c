use stagegrad::differentiable;

#[differentiable]
fn count(x: f64) -> usize {
    x as usize
}

fn main() {
    let _ = count(3.0);
}
