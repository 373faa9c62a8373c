use stagegrad::Differentiable;

#[derive(Differentiable)]
enum Shape {
    Circle { radius: f64 },
    Square { side: f64 },
}

fn main() {
    let _ = Shape::Circle { radius: 1.0 };
    let _ = Shape::Square { side: 1.0 };
}
