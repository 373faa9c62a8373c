use stagegrad::differentiable;

#[differentiable]
fn piecewise(x: f64, mode: u8) -> f64 {
    match mode {
        0 => x * x,
        _ => x,
    }
}

fn main() {
    let _ = piecewise(3.0, 0);
}
