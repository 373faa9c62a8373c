use stagegrad::Differentiable;

#[derive(Differentiable)]
struct Pair(f64, f64);

fn main() {
    let pair = Pair(1.0, 2.0);
    let _ = pair.0 + pair.1;
}
