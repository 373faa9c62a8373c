//! A short training run of the digits CNN with generated gradients.

#[path = "../examples/train_digits/data.rs"]
#[allow(dead_code)]
mod data;
#[path = "../examples/train_digits/model.rs"]
#[allow(dead_code)]
mod model;

use model::{Classifier, CnnClassifier};

fn accuracy(classifier: &CnnClassifier<f32>, dataset: &data::Dataset<f32>) -> f64 {
    let predictions = classifier.predict(dataset.images.view());
    let correct = predictions
        .iter()
        .zip(&dataset.labels)
        .filter(|(a, b)| a == b)
        .count();
    correct as f64 / dataset.len() as f64
}

#[test]
fn short_training_learns() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz");
    let dataset = data::load(std::path::Path::new(path)).expect("the bundled data loads");
    let (train, test) = dataset.split_stratified(0.2, 7);
    let subset: Vec<usize> = (0..400).collect();
    let train = train.select(&subset).to_f32();
    let test = test.to_f32();

    let mut classifier = CnnClassifier::<f32>::new(7, 0.01);
    let before = accuracy(&classifier, &test);
    let mut epoch_losses = Vec::new();
    for epoch in 1..=3 {
        let shuffled = train.shuffled(7, epoch);
        let mut total = 0.0;
        let mut batches = 0.0;
        for (images, labels) in shuffled.batches(32) {
            total += classifier.train_batch(images, labels);
            batches += 1.0;
        }
        epoch_losses.push(total / batches);
    }
    let after = accuracy(&classifier, &test);

    assert!(
        epoch_losses[2] < epoch_losses[0] * 0.6,
        "losses per epoch: {epoch_losses:?}"
    );
    assert!(
        after > 0.8,
        "test accuracy {after} after 3 epochs on 400 images (chance is 0.1)"
    );
    assert!(
        after > before + 0.4,
        "test accuracy went from {before} to {after}"
    );
}

#[test]
fn gradient_check_passes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz");
    let dataset = data::load(std::path::Path::new(path)).expect("the bundled data loads");
    let samples: Vec<usize> = (0..4).collect();
    let batch = dataset.select(&samples);
    let network = model::Cnn::<f64>::new(3);
    let error = model::gradient_check(&network, &batch.images, &batch.labels);
    assert!(error < 1e-6, "max relative error {error}");
}
