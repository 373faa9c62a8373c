//! The convolutional network, its loss as one `#[differentiable]` function, and the
//! classifier that trains it with Adam. No gradient here is written by hand.

use ndarray::{Array1, Array2, Array4, ArrayView4, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use stagegrad::optim::Adam;
use stagegrad::{
    Conv2dSettings, Differentiable, Pool2dSettings, Scalar, conv2d_nchw, differentiable, flatten,
    max_pool2d, relu, softmax_cross_entropy,
};

/// A model that learns from mini-batches of images and predicts digit classes.
///
/// `T` is the floating-point type of the images (`f32` by default, `f64` with `--f64`).
pub trait Classifier<T> {
    /// Takes one training step on a batch (B x 1 x 8 x 8 images with their labels)
    /// and returns the batch's mean loss, measured before the step.
    fn train_batch(&mut self, images: ArrayView4<'_, T>, labels: &[usize]) -> f64;

    /// Returns the predicted class, in `0..10`, of each image of a B x 1 x 8 x 8 batch.
    fn predict(&self, images: ArrayView4<'_, T>) -> Vec<usize>;
}

/// Output channels of the convolution.
pub const CHANNELS: usize = 8;
/// Side of the pooled feature maps: 8 x 8 images, padding 1 keeps 8, pooling halves it.
const POOLED: usize = 4;
/// Inputs of the dense layer: the flattened pooled features.
pub const FEATURES: usize = CHANNELS * POOLED * POOLED;
/// Digit classes.
pub const CLASSES: usize = 10;

/// conv 3x3 (1 -> 8 channels, padding 1) -> relu -> max pool 2x2 -> flatten -> dense 128 -> 10.
#[derive(Differentiable, Clone, Debug)]
pub struct Cnn<A: Scalar> {
    /// Convolution kernels, 8 x 1 x 3 x 3.
    pub conv_weight: Array4<A>,
    /// One bias per output channel.
    pub conv_bias: Array1<A>,
    /// Dense layer, 128 x 10.
    pub dense_weight: Array2<A>,
    /// One bias per class.
    pub dense_bias: Array1<A>,
}

fn conv_settings() -> Conv2dSettings {
    Conv2dSettings::new().padding(1)
}

fn pool_settings() -> Pool2dSettings {
    Pool2dSettings::new(2)
}

/// Returns the mean cross-entropy of the network on a batch (N x 1 x 8 x 8 images).
#[differentiable(wrt(model))]
pub fn loss<A: Scalar>(model: &Cnn<A>, images: &Array4<A>, labels: &[usize]) -> A {
    let features = conv2d_nchw(
        images,
        &model.conv_weight,
        Some(&model.conv_bias),
        &conv_settings(),
    );
    let activated = relu(&features);
    let pooled = max_pool2d(&activated, &pool_settings());
    let flat = flatten(&pooled);
    let logits = flat.dot(&model.dense_weight) + &model.dense_bias;
    softmax_cross_entropy(&logits, labels)
}

/// Returns the class scores of a batch; the forward pass of [`loss`] without the loss.
pub fn logits<A: Scalar>(model: &Cnn<A>, images: &ArrayView4<'_, A>) -> Array2<A> {
    let features = conv2d_nchw(
        images,
        &model.conv_weight,
        Some(&model.conv_bias),
        &conv_settings(),
    );
    let pooled = max_pool2d(&relu(&features), &pool_settings());
    flatten(&pooled).dot(&model.dense_weight) + &model.dense_bias
}

impl<A: Scalar> Cnn<A> {
    /// Draws He-initialised weights (normal, variance 2 / fan-in) and biases of 0.01
    /// from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut normal = |scale: f64| A::from_f64_lossy(scale * standard_normal(&mut rng));
        let conv_scale = (2.0 / 9.0_f64).sqrt();
        let dense_scale = (2.0 / FEATURES as f64).sqrt();
        Cnn {
            conv_weight: Array4::from_shape_simple_fn((CHANNELS, 1, 3, 3), || normal(conv_scale)),
            conv_bias: Array1::from_elem(CHANNELS, A::from_f64_lossy(0.01)),
            dense_weight: Array2::from_shape_simple_fn((FEATURES, CLASSES), || normal(dense_scale)),
            dense_bias: Array1::from_elem(CLASSES, A::from_f64_lossy(0.01)),
        }
    }
}

/// Draws from the standard normal distribution with the Box-Muller transform.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The network with its optimiser.
pub struct CnnClassifier<A: Scalar> {
    model: Cnn<A>,
    optimizer: Adam<CnnTangent<A>>,
}

impl<A: Scalar> CnnClassifier<A> {
    pub fn new(seed: u64, learning_rate: f64) -> Self {
        CnnClassifier {
            model: Cnn::new(seed),
            optimizer: Adam::new(learning_rate),
        }
    }
}

impl<A: Scalar> Classifier<A> for CnnClassifier<A> {
    fn train_batch(&mut self, images: ArrayView4<'_, A>, labels: &[usize]) -> f64 {
        let images = images.to_owned();
        let (value, gradient) = loss_grad(&self.model, &images, labels);
        self.optimizer.step(&mut self.model, &gradient.model);
        value.to_f64_lossless()
    }

    fn predict(&self, images: ArrayView4<'_, A>) -> Vec<usize> {
        logits(&self.model, &images)
            .axis_iter(Axis(0))
            .map(|row| {
                (0..row.len())
                    .max_by(|&a, &b| {
                        row[a]
                            .partial_cmp(&row[b])
                            .unwrap_or(std::cmp::Ordering::Equal)
                    })
                    .expect("there are ten classes")
            })
            .collect()
    }
}

/// Compares the gradient of [`loss`] in f64 with central differences on every
/// parameter, for the given images, and returns the maximum relative error.
///
/// The relative error of one parameter is `|g - d| / max(|g| + |d|, 1e-3)`, where `g`
/// is the generated gradient and `d` a central difference. The floor keeps the
/// rounding error of the differences (about 1e-11) from dominating the ratio for
/// gradients near zero, so those are held to an absolute error of about 1e-9. Each parameter is tried with steps 1e-5, 1e-6 and 1e-7 and
/// keeps the smallest error. A step can carry a convolution output across the kink of
/// `relu` at 0, which makes that difference wrong while the gradient is right. A
/// smaller step stays on one side of the kink.
pub fn gradient_check(model: &Cnn<f64>, images: &Array4<f64>, labels: &[usize]) -> f64 {
    let (_, gradient) = loss_grad(model, images, labels);
    let mut worst: f64 = 0.0;
    let mut compare = |generated: f64, perturbed: &dyn Fn(f64) -> f64| {
        let error = [1e-5, 1e-6, 1e-7]
            .into_iter()
            .map(|step| {
                let difference = (perturbed(step) - perturbed(-step)) / (2.0 * step);
                (generated - difference).abs() / (generated.abs() + difference.abs()).max(1e-3)
            })
            .fold(f64::INFINITY, f64::min);
        worst = worst.max(error);
    };
    macro_rules! check_field {
        ($field:ident) => {
            for (index, &generated) in gradient.model.$field.indexed_iter() {
                compare(generated, &|delta| {
                    let mut moved = model.clone();
                    moved.$field[index.clone()] += delta;
                    loss(&moved, images, labels)
                });
            }
        };
    }
    check_field!(conv_weight);
    check_field!(conv_bias);
    check_field!(dense_weight);
    check_field!(dense_bias);
    worst
}
