use stagegrad::differentiable;

#[differentiable]
fn messy(x: f64, mode: u8) -> f64 {
    let mut y = x;
    while y > 1.0 {
        y = y / 2.0;
    }
    let z = match mode {
        0 => y * y,
        _ => y,
    };
    println!("z = {z}");
    z + x
}

fn main() {
    let _ = messy(3.0, 0);
}
