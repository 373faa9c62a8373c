//! The digits CNN: the generated loss gradient against a hand-written backpropagation
//! through the same runtime kernels and against the primal loss, and one training epoch.
//!
//! Run with `cargo bench --bench digits -- --warm-up-time 1 --measurement-time 3`.

#[path = "../examples/train_digits/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "../examples/train_digits/model.rs"]
#[allow(dead_code)]
mod model;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::{Array4, Axis, Ix4, s};
use stagegrad::{
    Conv2dSettings, Pool2dSettings, conv2d_nchw_vjp, flatten, max_pool2d_vjp, relu_vjp,
    softmax_cross_entropy_vjp,
};

use model::{Classifier, Cnn, CnnClassifier, CnnTangent, loss, loss_grad};

/// Backpropagates through [`loss`] by hand, calling the same kernels and pullbacks as
/// the generated code.
fn hand_written_grad(
    model: &Cnn<f32>,
    images: &Array4<f32>,
    labels: &[usize],
) -> (f32, CnnTangent<f32>) {
    let conv_settings = Conv2dSettings::new().padding(1);
    let (features, conv_pullback) = conv2d_nchw_vjp(
        images,
        &model.conv_weight,
        Some(&model.conv_bias),
        &conv_settings,
    );
    let (activated, relu_pullback) = relu_vjp(&features);
    let (pooled, pool_pullback) = max_pool2d_vjp(&activated, &Pool2dSettings::new(2));
    let flat = flatten(&pooled);
    let logits = flat.dot(&model.dense_weight) + &model.dense_bias;
    let (value, loss_pullback) = softmax_cross_entropy_vjp(&logits, labels);

    let (logits_gradient, _) = loss_pullback(1.0);
    let dense_weight = flat.t().dot(&logits_gradient);
    let dense_bias = logits_gradient.sum_axis(Axis(0));
    let flat_gradient = logits_gradient.dot(&model.dense_weight.t());
    let pooled_gradient = flat_gradient
        .into_shape_with_order(pooled.raw_dim())
        .expect("same element count")
        .into_dimensionality::<Ix4>()
        .expect("four axes");
    let (activated_gradient, _) = pool_pullback(pooled_gradient);
    let (features_gradient,) = relu_pullback(activated_gradient);
    let (_, conv_weight, conv_bias, _) = conv_pullback(features_gradient);
    (
        value,
        CnnTangent {
            conv_weight,
            conv_bias,
            dense_weight,
            dense_bias,
        },
    )
}

fn dataset() -> data::Dataset<f32> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz");
    let dataset = data::load(std::path::Path::new(path)).expect("the bundled data loads");
    dataset.split_stratified(0.2, 42).0.to_f32()
}

fn gradient(c: &mut Criterion) {
    let train = dataset();
    let images = train.images.slice(s![..32, .., .., ..]).to_owned();
    let labels = &train.labels[..32];
    let network = Cnn::<f32>::new(42);

    let (generated_value, generated) = loss_grad(&network, &images, labels);
    let (hand_value, hand) = hand_written_grad(&network, &images, labels);
    assert!((generated_value - hand_value).abs() < 1e-6);
    assert!(
        (&generated.model.dense_weight - &hand.dense_weight)
            .iter()
            .all(|d| d.abs() < 1e-5)
    );
    assert!(
        (&generated.model.conv_weight - &hand.conv_weight)
            .iter()
            .all(|d| d.abs() < 1e-5)
    );

    let mut group = c.benchmark_group("digits_loss_batch32");
    group.bench_function("generated_gradient", |b| {
        b.iter(|| loss_grad(black_box(&network), black_box(&images), black_box(labels)))
    });
    group.bench_function("hand_written_gradient", |b| {
        b.iter(|| hand_written_grad(black_box(&network), black_box(&images), black_box(labels)))
    });
    group.bench_function("primal", |b| {
        b.iter(|| loss(black_box(&network), black_box(&images), black_box(labels)))
    });
    group.finish();
}

fn epoch(c: &mut Criterion) {
    let train = dataset();
    let mut group = c.benchmark_group("digits_epoch");
    group.sample_size(20);
    group.bench_function("train_epoch_f32_batch32", |b| {
        let mut classifier = CnnClassifier::<f32>::new(42, 0.01);
        let mut epoch = 0;
        b.iter(|| {
            epoch += 1;
            let shuffled = train.shuffled(42, epoch);
            let mut total = 0.0;
            for (images, labels) in shuffled.batches(32) {
                total += classifier.train_batch(images, labels);
            }
            black_box(total)
        })
    });
    group.finish();
}

criterion_group!(benches, gradient, epoch);
criterion_main!(benches);
