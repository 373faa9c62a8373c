use stagegrad::differentiable;

#[differentiable]
struct Point {
    x: f64,
    y: f64,
}

fn main() {
    let point = Point { x: 1.0, y: 2.0 };
    let _ = point.x + point.y;
}
