use stagegrad::differentiable;

struct Line;

impl Line {
    #[differentiable]
    fn at(slope: f64, x: f64) -> f64 {
        slope * x
    }
}

fn main() {
    let _ = Line::at(2.0, 3.0);
}
