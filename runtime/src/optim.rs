//! Optimisers that move a model against its gradient: [`Sgd`] and [`Adam`].
//!
//! Both work on any [`Differentiable`] model. They build each update from the
//! [`TangentSpace`] operations of the gradient, move the model with
//! [`Differentiable::apply_step`], and keep their state (velocity, moments) in tangents
//! of the model, created at the first step. Hyperparameters and update rules follow
//! PyTorch's `torch.optim.SGD` and `torch.optim.Adam` without weight decay.
//!
//! An optimiser's state is tied to one model: stepping a second model of another shape
//! with the same optimiser panics on the shape mismatch. Call `reset` to start over.

use crate::{Differentiable, TangentSpace};

#[track_caller]
fn check_learning_rate(learning_rate: f64) {
    assert!(
        learning_rate.is_finite() && learning_rate >= 0.0,
        "invalid learning rate {learning_rate}: expected a finite value >= 0"
    );
}

/// Panics unless the gradient has as many elements as the optimiser's state.
#[track_caller]
fn check_state_len(state: &str, state_len: usize, gradient_len: usize) {
    assert!(
        state_len == gradient_len,
        "cannot step with a gradient of {gradient_len} elements: the optimiser's {state} has {state_len}; call `reset` before stepping another model"
    );
}

/// Stochastic gradient descent, with optional momentum.
///
/// Without momentum a step is `θ ← θ - η g` for the learning rate `η` and the gradient
/// `g`. With momentum `μ`, the velocity `v` (zero before the first step) accumulates
/// the gradients and the step follows it:
///
/// ```text
/// v ← μ v + g
/// θ ← θ - η v
/// ```
///
/// `T` is the model's tangent type, inferred from the first call of [`Sgd::step`].
///
/// ```
/// use stagegrad_runtime::optim::Sgd;
///
/// // Minimise x², whose gradient is 2x.
/// let mut x = 3.0_f64;
/// let mut sgd = Sgd::new(0.1).with_momentum(0.5);
/// for _ in 0..100 {
///     let gradient = 2.0 * x;
///     sgd.step(&mut x, &gradient);
/// }
/// assert!(x.abs() < 1e-6);
/// ```
#[derive(Debug, Clone)]
pub struct Sgd<T> {
    learning_rate: f64,
    momentum: f64,
    velocity: Option<T>,
}

impl<T> Sgd<T> {
    /// Creates plain gradient descent with the given learning rate and no momentum
    /// (PyTorch's default).
    ///
    /// # Panics
    ///
    /// Panics when `learning_rate` is negative or not finite.
    #[track_caller]
    pub fn new(learning_rate: f64) -> Self {
        check_learning_rate(learning_rate);
        Sgd {
            learning_rate,
            momentum: 0.0,
            velocity: None,
        }
    }

    /// Sets the momentum `μ`. A momentum of 0 turns it off.
    ///
    /// # Panics
    ///
    /// Panics when `momentum` is negative or not finite.
    #[track_caller]
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        assert!(
            momentum.is_finite() && momentum >= 0.0,
            "invalid momentum {momentum}: expected a finite value >= 0"
        );
        self.momentum = momentum;
        self
    }

    /// Returns the learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// Changes the learning rate for the following steps, as a schedule does. The
    /// velocity is kept.
    ///
    /// # Panics
    ///
    /// Panics when `learning_rate` is negative or not finite.
    #[track_caller]
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        check_learning_rate(learning_rate);
        self.learning_rate = learning_rate;
    }

    /// Returns the momentum.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// Forgets the velocity, so the next step starts from zero.
    pub fn reset(&mut self) {
        self.velocity = None;
    }
}

impl<T: TangentSpace> Sgd<T> {
    /// Moves `model` one step against `gradient`.
    ///
    /// # Panics
    ///
    /// Panics when `gradient` does not have the shape of `model`, or of the velocity
    /// kept from earlier steps.
    #[track_caller]
    pub fn step<M: Differentiable<Tangent = T> + ?Sized>(
        &mut self,
        model: &mut M,
        gradient: &M::Tangent,
    ) {
        if self.momentum == 0.0 {
            model.apply_step(gradient, -self.learning_rate);
            return;
        }
        let velocity = self.velocity.get_or_insert_with(|| model.zero_tangent());
        check_state_len("velocity", velocity.len(), gradient.len());
        velocity.scale(self.momentum);
        velocity.add_assign(gradient);
        model.apply_step(velocity, -self.learning_rate);
    }
}

/// Adam: gradient descent scaled by running estimates of the first and second moments
/// of the gradient (Kingma and Ba, "Adam: A Method for Stochastic Optimization", 2015).
///
/// With the gradient `g` at step `t` (counting from 1), and `m` and `v` zero before the
/// first step, elementwise:
///
/// ```text
/// m ← β₁ m + (1 - β₁) g
/// v ← β₂ v + (1 - β₂) g²
/// θ ← θ - η (m / (1 - β₁ᵗ)) / (sqrt(v / (1 - β₂ᵗ)) + ε)
/// ```
///
/// The defaults are PyTorch's: `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e-8`. `T` is the model's
/// tangent type, inferred from the first call of [`Adam::step`]. The arithmetic is done
/// in `f64` whatever the element type.
///
/// ```
/// use stagegrad_runtime::optim::Adam;
///
/// // Minimise (x - 2)², whose gradient is 2(x - 2).
/// let mut x = -1.0_f64;
/// let mut adam = Adam::new(0.1);
/// for _ in 0..500 {
///     let gradient = 2.0 * (x - 2.0);
///     adam.step(&mut x, &gradient);
/// }
/// assert!((x - 2.0).abs() < 1e-3);
/// ```
#[derive(Debug, Clone)]
pub struct Adam<T> {
    learning_rate: f64,
    beta1: f64,
    beta2: f64,
    epsilon: f64,
    steps: u64,
    first_moment: Option<T>,
    second_moment: Option<T>,
}

impl<T> Adam<T> {
    /// Creates Adam with the given learning rate and PyTorch's defaults for the rest:
    /// `β₁ = 0.9`, `β₂ = 0.999`, `ε = 1e-8`. PyTorch's default learning rate is `1e-3`.
    ///
    /// # Panics
    ///
    /// Panics when `learning_rate` is negative or not finite.
    #[track_caller]
    pub fn new(learning_rate: f64) -> Self {
        check_learning_rate(learning_rate);
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            steps: 0,
            first_moment: None,
            second_moment: None,
        }
    }

    /// Sets the decay rates `β₁` of the first moment and `β₂` of the second.
    ///
    /// # Panics
    ///
    /// Panics when either is outside `[0, 1)`.
    #[track_caller]
    pub fn with_betas(mut self, beta1: f64, beta2: f64) -> Self {
        for (name, beta) in [("beta1", beta1), ("beta2", beta2)] {
            assert!(
                (0.0..1.0).contains(&beta),
                "invalid `{name}` {beta}: expected a value in [0, 1)"
            );
        }
        self.beta1 = beta1;
        self.beta2 = beta2;
        self
    }

    /// Sets `ε`, which keeps the denominator away from zero.
    ///
    /// # Panics
    ///
    /// Panics when `epsilon` is negative or not finite.
    #[track_caller]
    pub fn with_epsilon(mut self, epsilon: f64) -> Self {
        assert!(
            epsilon.is_finite() && epsilon >= 0.0,
            "invalid epsilon {epsilon}: expected a finite value >= 0"
        );
        self.epsilon = epsilon;
        self
    }

    /// Returns the learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.learning_rate
    }

    /// Changes the learning rate for the following steps, as a schedule does. The
    /// moments and the step count are kept.
    ///
    /// # Panics
    ///
    /// Panics when `learning_rate` is negative or not finite.
    #[track_caller]
    pub fn set_learning_rate(&mut self, learning_rate: f64) {
        check_learning_rate(learning_rate);
        self.learning_rate = learning_rate;
    }

    /// Returns `(β₁, β₂)`.
    pub fn betas(&self) -> (f64, f64) {
        (self.beta1, self.beta2)
    }

    /// Returns `ε`.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// Returns the number of steps taken since creation or the last [`Adam::reset`].
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Forgets the moments and the step count, so the next step is a first step again.
    pub fn reset(&mut self) {
        self.steps = 0;
        self.first_moment = None;
        self.second_moment = None;
    }
}

impl<T: TangentSpace> Adam<T> {
    /// Moves `model` one step, updating the moment estimates with `gradient` first.
    ///
    /// # Panics
    ///
    /// Panics when `gradient` does not have the shape of `model`, or of the moments
    /// kept from earlier steps.
    #[track_caller]
    pub fn step<M: Differentiable<Tangent = T> + ?Sized>(
        &mut self,
        model: &mut M,
        gradient: &M::Tangent,
    ) {
        let (beta1, beta2, epsilon) = (self.beta1, self.beta2, self.epsilon);
        self.steps += 1;

        let first = self
            .first_moment
            .get_or_insert_with(|| model.zero_tangent());
        check_state_len("first moment", first.len(), gradient.len());
        first.scale(beta1);
        first.axpy(1.0 - beta1, gradient);

        let second = self
            .second_moment
            .get_or_insert_with(|| model.zero_tangent());
        second.zip_map(gradient, &mut |v, g| beta2 * v + (1.0 - beta2) * g * g);

        let steps = self.steps as f64;
        let first_correction = 1.0 - beta1.powf(steps);
        let second_correction = 1.0 - beta2.powf(steps);
        let mut update = first.clone();
        update.zip_map(second, &mut |m, v| {
            (m / first_correction) / ((v / second_correction).sqrt() + epsilon)
        });
        model.apply_step(&update, -self.learning_rate);
    }
}
