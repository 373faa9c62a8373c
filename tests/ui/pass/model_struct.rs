//! A `#[derive(Differentiable)]` model whose fields a differentiable loss reads.

use ndarray::{Array1, array};
use stagegrad::{Differentiable, differentiable};

#[derive(Differentiable, Clone, Debug)]
struct Model {
    w: Array1<f64>,
    b: f64,
}

#[differentiable]
fn loss(model: &Model, x: &Array1<f64>) -> f64 {
    let prediction = &model.w * x + model.b;
    (prediction.clone() * prediction).sum()
}

fn main() {
    let model = Model {
        w: array![1.0, 2.0],
        b: 0.5,
    };
    let x = array![3.0, -1.0];
    // prediction = [3.5, -1.5], loss = 12.25 + 2.25
    assert_eq!(loss(&model, &x), 14.5);
    let (value, gradient) = loss_grad(&model, &x);
    assert_eq!(value, 14.5);
    // d loss / d prediction = 2 * prediction = [7, -3]
    assert_eq!(gradient.model.w, array![21.0, 3.0]);
    assert_eq!(gradient.model.b, 4.0);
    assert_eq!(gradient.x, array![7.0, -6.0]);
}
