use stagegrad::differentiable;

#[differentiable]
fn nothing(x: f64) {
    let _y = x * 2.0;
}

fn main() {
    nothing(3.0);
}
