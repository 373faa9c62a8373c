use stagegrad::differentiable;

#[differentiable]
fn first_small(x: f64) -> f64 {
    let mut y = x;
    loop {
        y = y / 2.0;
        if y < 1.0 {
            break;
        }
    }
    y
}

fn main() {
    let _ = first_small(10.0);
}
