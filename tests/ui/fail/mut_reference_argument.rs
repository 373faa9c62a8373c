use stagegrad::differentiable;

#[differentiable]
fn scale(x: &mut f64, k: f64) -> f64 {
    *x * k
}

fn main() {
    let mut x = 2.0;
    let _ = scale(&mut x, 3.0);
    let (_value, gradient) = scale_grad(&mut x, 3.0);
    let _ = gradient.k;
}
