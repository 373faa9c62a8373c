use stagegrad::differentiable;

#[differentiable]
fn logged(x: f64, y: f64) -> f64 {
    let product = x * y;
    println!("product = {product}");
    product + x
}

fn main() {
    let _ = logged(2.0, 3.0);
}
