use stagegrad::differentiable;

struct Line {
    slope: f64,
}

impl Line {
    #[differentiable]
    fn at(&self, x: f64) -> f64 {
        self.slope * x
    }
}

fn main() {
    let line = Line { slope: 2.0 };
    let _ = line.at(3.0);
}
