//! The optimisers against hand-computed steps, and Adam on a quadratic.

use ndarray::{Array1, array};
use stagegrad_runtime::Differentiable;
use stagegrad_runtime::optim::{Adam, Sgd};

/// A model with one array of weights, implemented by hand the way
/// `#[derive(Differentiable)]` would.
#[derive(Debug, Clone, PartialEq)]
struct Weights {
    w: Array1<f64>,
}

impl Differentiable for Weights {
    type Tangent = Array1<f64>;
    type Slot = Option<Array1<f64>>;

    fn zero_tangent(&self) -> Array1<f64> {
        Array1::zeros(self.w.len())
    }

    fn finish(&self, slot: Option<Array1<f64>>) -> Array1<f64> {
        slot.unwrap_or_else(|| self.zero_tangent())
    }

    fn apply_step(&mut self, step: &Array1<f64>, scale: f64) {
        self.w.scaled_add(scale, step);
    }
}

fn weights(values: [f64; 2]) -> Weights {
    Weights {
        w: Array1::from(values.to_vec()),
    }
}

#[track_caller]
fn assert_weights(model: &Weights, expected: [f64; 2]) {
    for (index, (&actual, expected)) in model.w.iter().zip(expected).enumerate() {
        assert!(
            (actual - expected).abs() < 1e-12,
            "weight {index} is {actual}, expected {expected}"
        );
    }
}

// Both tests start at w = [1, -2] and take the gradients [2, -4], then [1, 0.5].

#[test]
fn sgd_two_steps() {
    let mut model = weights([1.0, -2.0]);
    let mut sgd = Sgd::new(0.1);
    sgd.step(&mut model, &array![2.0, -4.0]);
    assert_weights(&model, [0.8, -1.6]);
    sgd.step(&mut model, &array![1.0, 0.5]);
    assert_weights(&model, [0.7, -1.65]);
}

#[test]
fn sgd_momentum_two_steps() {
    let mut model = weights([1.0, -2.0]);
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    // v = [2, -4]
    sgd.step(&mut model, &array![2.0, -4.0]);
    assert_weights(&model, [0.8, -1.6]);
    // v = 0.9 [2, -4] + [1, 0.5] = [2.8, -3.1]
    sgd.step(&mut model, &array![1.0, 0.5]);
    assert_weights(&model, [0.52, -1.29]);
}

#[test]
fn sgd_momentum_zero_is_plain_sgd() {
    let gradients = [array![2.0, -4.0], array![1.0, 0.5], array![-3.0, 0.25]];
    let mut plain_model = weights([1.0, -2.0]);
    let mut zero_model = weights([1.0, -2.0]);
    let mut plain = Sgd::new(0.05);
    let mut zero_momentum = Sgd::new(0.05).with_momentum(0.0);
    for gradient in &gradients {
        plain.step(&mut plain_model, gradient);
        zero_momentum.step(&mut zero_model, gradient);
        assert_eq!(plain_model, zero_model);
    }
}

#[test]
fn adam_two_steps() {
    let mut model = weights([1.0, -2.0]);
    let mut adam = Adam::new(0.1);
    assert_eq!(adam.betas(), (0.9, 0.999));
    assert_eq!(adam.epsilon(), 1e-8);

    // m = [0.2, -0.4] and v = [0.004, 0.016]. After bias correction m = g and v = g²,
    // so each weight moves by 0.1 g / (|g| + 1e-8).
    adam.step(&mut model, &array![2.0, -4.0]);
    assert_weights(
        &model,
        [
            1.0 - 0.1 * 2.0 / (2.0 + 1e-8),
            -2.0 + 0.1 * 4.0 / (4.0 + 1e-8),
        ],
    );
    assert_weights(&model, [0.900_000_000_5, -1.900_000_000_25]);

    // m = [0.28, -0.31] and v = [0.004996, 0.016234], with the bias corrections
    // 1 - 0.9² = 0.19 and 1 - 0.999² = 0.001999.
    adam.step(&mut model, &array![1.0, 0.5]);
    let update = |m: f64, v: f64| (m / 0.19) / ((v / 0.001999).sqrt() + 1e-8);
    assert_weights(
        &model,
        [
            0.900_000_000_5 - 0.1 * update(0.28, 0.004996),
            -1.900_000_000_25 - 0.1 * update(-0.31, 0.016234),
        ],
    );
    assert_weights(&model, [0.806_782_037_208_510_4, -1.842_746_542_878_048_3]);
    assert_eq!(adam.steps(), 2);
}

#[test]
fn adam_converges_on_a_quadratic() {
    // f(w) = sum_i c_i (w_i - t_i)², with gradient 2 c (w - t) and minimum at t.
    let target = array![3.0, -1.0];
    let curvature = array![1.0, 10.0];
    let mut model = weights([0.0, 0.0]);
    let mut adam = Adam::new(0.05);
    for _ in 0..2000 {
        let gradient = 2.0 * &curvature * (&model.w - &target);
        adam.step(&mut model, &gradient);
    }
    assert_weights_near(&model, &target, 1e-4);
}

#[track_caller]
fn assert_weights_near(model: &Weights, target: &Array1<f64>, tolerance: f64) {
    for (index, (&actual, &expected)) in model.w.iter().zip(target).enumerate() {
        assert!(
            (actual - expected).abs() < tolerance,
            "weight {index} is {actual}, expected {expected} within {tolerance}"
        );
    }
}

#[test]
fn reset_forgets_the_state() {
    let mut first = weights([1.0, -2.0]);
    let mut second = weights([1.0, -2.0]);
    let mut adam = Adam::new(0.1);
    adam.step(&mut first, &array![5.0, 5.0]);
    adam.reset();
    assert_eq!(adam.steps(), 0);
    adam.step(&mut first, &array![2.0, -4.0]);

    let mut fresh = Adam::new(0.1);
    fresh.step(&mut second, &array![5.0, 5.0]);
    let mut fresh = Adam::new(0.1);
    fresh.step(&mut second, &array![2.0, -4.0]);
    assert_eq!(first, second);
}

#[test]
fn scalar_models_step() {
    let mut x = 2.0_f32;
    let mut sgd = Sgd::new(0.25);
    sgd.step(&mut x, &4.0);
    assert_eq!(x, 1.0);

    let mut y = 1.0_f64;
    let mut adam = Adam::new(0.5).with_betas(0.5, 0.75).with_epsilon(0.0);
    adam.step(&mut y, &-3.0);
    assert_eq!(y, 1.5);
}

#[test]
fn learning_rate_can_change_between_steps() {
    let mut x = 1.0_f64;
    let mut sgd = Sgd::new(0.5);
    sgd.step(&mut x, &1.0);
    sgd.set_learning_rate(0.25);
    assert_eq!(sgd.learning_rate(), 0.25);
    sgd.step(&mut x, &1.0);
    assert_eq!(x, 0.25);
}

#[test]
#[should_panic(
    expected = "cannot step with a gradient of 3 elements: the optimiser's velocity has 2"
)]
fn sgd_gradient_of_another_model_panics() {
    let mut model = weights([1.0, -2.0]);
    let mut sgd = Sgd::new(0.1).with_momentum(0.9);
    sgd.step(&mut model, &array![1.0, 1.0]);
    sgd.step(&mut model, &array![1.0, 1.0, 1.0]);
}

#[test]
#[should_panic(expected = "invalid learning rate -0.1: expected a finite value >= 0")]
fn negative_learning_rate_panics() {
    let _ = Adam::<f64>::new(-0.1);
}

#[test]
#[should_panic(expected = "invalid `beta2` 1: expected a value in [0, 1)")]
fn beta_of_one_panics() {
    let _ = Adam::<f64>::new(0.1).with_betas(0.9, 1.0);
}

#[test]
#[should_panic(expected = "invalid momentum NaN: expected a finite value >= 0")]
fn nan_momentum_panics() {
    let _ = Sgd::<f64>::new(0.1).with_momentum(f64::NAN);
}
