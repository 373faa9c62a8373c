//! Trains a classifier on the UCI handwritten digits and reports its accuracy.
//!
//! ```text
//! cargo run --release --example train_digits -- --epochs 10 --lr 0.01
//! ```
//!
//! The program loads `data/digits.csv.gz` (1,797 8 x 8 images), splits it 80/20 into
//! training and test sets stratified by label, trains for the requested number of
//! epochs with a progress bar per epoch, prints the test accuracy and the confusion
//! matrix, and writes a loss and accuracy plot (`training.svg`) and the per-epoch
//! metrics (`metrics.csv`) to the output folder. Run with `--help` for the flags.

mod cli;
mod data;
mod model;
mod report;

use std::error::Error;
use std::process::ExitCode;
use std::time::Instant;

use ndarray::Axis;
use stagegrad::Scalar;

use cli::{Command, Options, Precision};
use data::{CLASSES, Dataset};
use model::Classifier;
use report::{ConfusionMatrix, EpochProgress, EpochRecord};

/// Fraction of each class held out for testing.
const TEST_FRACTION: f64 = 0.2;
/// Images per forward pass when measuring accuracy; it bounds memory, not results.
const EVALUATION_BATCH: usize = 256;
/// Relative error above which the gradient check stops the program. Over the seeds 1
/// to 1000 the check measured 1.8e-8 to 5.2e-7 (seed 655), all below it.
const GRADIENT_TOLERANCE: f64 = 1e-6;
/// Training samples the gradient check uses.
const GRADIENT_CHECK_SAMPLES: usize = 8;

// ---------------------------------------------------------------------------------
// MODEL SLOT: the classifier that the program trains. Replace `build_model` (and, if
// needed, `check_gradient`) to plug in another model; nothing else needs to change.
// ---------------------------------------------------------------------------------

/// Creates the model to train, with its initial weights drawn from `options.seed`.
fn build_model<T: Scalar>(options: &Options) -> impl Classifier<T> {
    model::CnnClassifier::new(options.seed, options.learning_rate)
}

/// Compares the generated gradient of the loss with central finite differences in
/// f64 on the first few training samples, over every parameter, and returns the
/// maximum relative error.
fn check_gradient(train: &Dataset, seed: u64) -> Option<f64> {
    let samples = GRADIENT_CHECK_SAMPLES.min(train.len());
    let images = train
        .images
        .slice(ndarray::s![..samples, .., .., ..])
        .to_owned();
    let network = model::Cnn::<f64>::new(seed);
    Some(model::gradient_check(
        &network,
        &images,
        &train.labels[..samples],
    ))
}

// ---------------------------------------------------------------------------------
// End of the model slot.
// ---------------------------------------------------------------------------------

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Train(options)) => options,
        Ok(Command::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("error: {error}\nrun with `--help` to list the flags");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), Box<dyn Error>> {
    // The outputs are written only at the end, so catch an unusable folder before training.
    if options.out.exists() && !options.out.is_dir() {
        return Err(format!(
            "output folder `{}` exists but is not a folder; choose another with `--out`",
            options.out.display()
        )
        .into());
    }
    let dataset = data::load(&options.data)?;
    let (train, test) = dataset.split_stratified(TEST_FRACTION, options.seed);
    if test.is_empty() {
        return Err(format!(
            "`{}` has {} samples, too few to hold out a test set, which needs a class with 2 or more",
            options.data.display(),
            dataset.len()
        )
        .into());
    }
    println!(
        "loaded {} samples from `{}`: {} for training, {} for testing",
        dataset.len(),
        options.data.display(),
        train.len(),
        test.len()
    );
    println!("samples per class (0-9): {:?}", dataset.class_counts());
    println!(
        "training in {} for {} epochs, batch size {}, learning rate {}, seed {}",
        options.precision, options.epochs, options.batch_size, options.learning_rate, options.seed
    );

    match check_gradient(&train, options.seed) {
        Some(error) if error <= GRADIENT_TOLERANCE => {
            println!("gradient check: max relative error {error:.2e} against central differences")
        }
        Some(error) => {
            return Err(format!(
                "gradient check failed: max relative error {error:.2e} against central \
                 differences, above {GRADIENT_TOLERANCE:.0e}"
            )
            .into());
        }
        None => println!("gradient check: skipped, the model has no gradient to check"),
    }

    let (history, test_predictions) = match options.precision {
        Precision::F32 => train_model(
            build_model::<f32>(options),
            &train.to_f32(),
            &test.to_f32(),
            options,
        )?,
        Precision::F64 => train_model(build_model::<f64>(options), &train, &test, options)?,
    };

    let confusion = ConfusionMatrix::new(&test.labels, &test_predictions);
    println!(
        "\ntest accuracy: {:.2}% ({} of {})\n",
        100.0 * confusion.correct() as f64 / confusion.total() as f64,
        confusion.correct(),
        confusion.total()
    );
    print!("{confusion}");
    let written = report::write_outputs(&options.out, &history)?;
    for path in written {
        println!("wrote `{}`", path.display());
    }
    Ok(())
}

/// Trains `model` for `options.epochs` epochs and returns the metrics of each epoch
/// and the final predictions on the test set.
fn train_model<T, M>(
    mut model: M,
    train: &Dataset<T>,
    test: &Dataset<T>,
    options: &Options,
) -> Result<(Vec<EpochRecord>, Vec<usize>), Box<dyn Error>>
where
    T: Copy,
    M: Classifier<T>,
{
    let mut history = Vec::with_capacity(options.epochs);
    let mut test_predictions = Vec::new();
    for epoch in 1..=options.epochs {
        let started = Instant::now();
        let epoch_data = train.shuffled(options.seed, epoch);
        let mut progress = EpochProgress::start(
            epoch,
            options.epochs,
            epoch_data.batch_count(options.batch_size),
        );
        for (batch, (images, labels)) in epoch_data.batches(options.batch_size).enumerate() {
            let loss = model.train_batch(images, labels);
            if !loss.is_finite() {
                progress.finish();
                return Err(format!(
                    "training diverged: the loss of batch {} in epoch {epoch} is {loss}; \
                     try a smaller `--lr` (now {})",
                    batch + 1,
                    options.learning_rate
                )
                .into());
            }
            progress.record_batch(loss, labels.len());
        }
        let train_loss = progress.finish();
        let seconds = started.elapsed().as_secs_f64();

        let train_predictions = predict_all(&model, train)?;
        test_predictions = predict_all(&model, test)?;
        let record = EpochRecord {
            epoch,
            train_loss,
            train_accuracy: report::accuracy(&train.labels, &train_predictions),
            test_accuracy: report::accuracy(&test.labels, &test_predictions),
            seconds,
        };
        println!("{}", record.summary(options.epochs));
        history.push(record);
    }
    Ok((history, test_predictions))
}

/// Predicts every sample of `dataset`, checking that the model returns one class in
/// `0..10` per image.
fn predict_all<T: Copy>(
    model: &impl Classifier<T>,
    dataset: &Dataset<T>,
) -> Result<Vec<usize>, Box<dyn Error>> {
    let mut predictions = Vec::with_capacity(dataset.len());
    for (images, _) in dataset.batches(EVALUATION_BATCH) {
        let batch_predictions = model.predict(images.view());
        if batch_predictions.len() != images.len_of(Axis(0)) {
            return Err(format!(
                "the model returned {} predictions for a batch of shape {:?}",
                batch_predictions.len(),
                images.shape()
            )
            .into());
        }
        if let Some(bad) = batch_predictions.iter().find(|&&class| class >= CLASSES) {
            return Err(format!("the model predicted class {bad}, outside 0..{CLASSES}").into());
        }
        predictions.extend(batch_predictions);
    }
    Ok(predictions)
}
