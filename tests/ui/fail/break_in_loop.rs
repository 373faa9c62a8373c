use stagegrad::differentiable;

#[differentiable]
fn capped_sum(x: f64, n: usize) -> f64 {
    let mut total = 0.0;
    for _ in 0..n {
        if total > 10.0 {
            break;
        }
        total += x;
    }
    total
}

fn main() {
    let _ = capped_sum_grad(1.0, 3);
}
