//! Tests of the data module of the `train_digits` example: loading and its errors,
//! the stratified split and the mini-batches.

// The example uses the items that these tests leave out.
#[allow(dead_code)]
#[path = "../examples/train_digits/data.rs"]
mod data;

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use data::{CLASSES, DataError, Dataset, SplitMix64};
use flate2::Compression;
use flate2::write::GzEncoder;
use ndarray::Array4;

/// A folder under the system's temporary directory, unique to one test, removed on drop.
struct TempFolder(PathBuf);

impl TempFolder {
    fn new(test: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "stagegrad-train-digits-{}-{}-{test}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("the temporary folder can be created");
        Self(path)
    }

    fn write(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("the test file can be written");
        path
    }
}

impl Drop for TempFolder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// Formats a valid CSV line: pixel `i` is `(i + offset) % 17`, then `label`.
fn row(offset: usize, label: usize) -> String {
    let mut fields: Vec<String> = (0..64).map(|i| ((i + offset) % 17).to_string()).collect();
    fields.push(label.to_string());
    fields.join(",")
}

/// Formats a valid line with field `column` (counting from 1) replaced by `value`.
fn row_with(column: usize, value: &str) -> String {
    let mut fields: Vec<String> = row(0, 3).split(',').map(str::to_string).collect();
    fields[column - 1] = value.to_string();
    fields.join(",")
}

/// Loads `lines` written as a plain CSV file and returns the error.
fn load_error(folder: &TempFolder, lines: &[String]) -> (PathBuf, DataError) {
    let path = folder.write("digits.csv", lines.join("\n").as_bytes());
    let error = data::load(&path).expect_err("the file is invalid");
    (path, error)
}

fn assert_names(error: &DataError, path: &Path, fragments: &[&str]) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "message `{message}` does not name `{}`",
        path.display()
    );
    for fragment in fragments {
        assert!(
            message.contains(fragment),
            "message `{message}` lacks `{fragment}`"
        );
    }
}

/// Builds a dataset whose pixel (0, 0, 0) is the sample's index and whose label is
/// `labels[index]`, so tests can tell which samples a part contains.
fn indexed_dataset(labels: Vec<usize>) -> Dataset {
    let mut images = Array4::zeros((labels.len(), 1, 8, 8));
    for index in 0..labels.len() {
        images[[index, 0, 0, 0]] = index as f64;
    }
    Dataset { images, labels }
}

fn indices(dataset: &Dataset) -> Vec<usize> {
    (0..dataset.len())
        .map(|index| dataset.images[[index, 0, 0, 0]] as usize)
        .collect()
}

fn real_digits() -> Dataset {
    data::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz"))
        .expect("the digits file loads")
}

#[test]
fn load_scales_pixels_and_reads_labels() {
    let folder = TempFolder::new("scales");
    let path = folder.write(
        "digits.csv",
        format!("{}\n{}\n", row(0, 7), row(5, 0)).as_bytes(),
    );
    let dataset = data::load(&path).unwrap();

    assert_eq!(dataset.images.shape(), &[2, 1, 8, 8]);
    assert_eq!(dataset.labels, vec![7, 0]);
    // Row-major: pixel 9 of the first row is at row 1, column 1, with value 9 / 16.
    assert_eq!(dataset.images[[0, 0, 1, 1]], 9.0 / 16.0);
    // Pixel 11 of the second row is (11 + 5) % 17 = 16, the maximum.
    assert_eq!(dataset.images[[1, 0, 1, 3]], 1.0);
    assert_eq!(dataset.images[[1, 0, 7, 7]], ((63 + 5) % 17) as f64 / 16.0);
}

#[test]
fn load_reads_gzip_like_plain_text() {
    let folder = TempFolder::new("gzip");
    let text = format!("{}\n{}\n{}\n", row(1, 1), row(2, 2), row(3, 9));
    let plain = data::load(folder.write("plain.csv", text.as_bytes())).unwrap();
    // The name does not matter: the loader detects gzip by its magic bytes.
    let compressed = data::load(folder.write("compressed.csv", &gzip(text.as_bytes()))).unwrap();
    assert_eq!(plain, compressed);
    assert_eq!(plain.len(), 3);
}

#[test]
fn load_accepts_crlf_spaces_and_blank_lines() {
    let folder = TempFolder::new("crlf");
    let spaced = row(4, 6).replace(',', ", ");
    let text = format!("\r\n{}\r\n\r\n{spaced}\r\n\r\n", row(4, 6));
    let dataset = data::load(folder.write("digits.csv", text.as_bytes())).unwrap();
    assert_eq!(dataset.labels, vec![6, 6]);
    assert_eq!(
        dataset.images.index_axis(ndarray::Axis(0), 0),
        dataset.images.index_axis(ndarray::Axis(0), 1)
    );
}

#[test]
fn wrong_column_count_is_rejected() {
    let folder = TempFolder::new("columns");
    let short = row(0, 1).split(',').skip(1).collect::<Vec<_>>().join(",");
    let long = format!("{},0", row(0, 1));
    for (line, found) in [(short, 64), (long, 66), ("1,2,3".to_string(), 3)] {
        let (path, error) = load_error(&folder, &[row(0, 2), line]);
        match &error {
            DataError::ColumnCount {
                line,
                found: actual,
                ..
            } => {
                assert_eq!(*line, 2);
                assert_eq!(*actual, found);
            }
            other => panic!("expected a column count error, got {other:?}"),
        }
        assert_names(
            &error,
            &path,
            &["line 2", &format!("found {found} columns"), "expected 65"],
        );
    }
}

#[test]
fn non_integer_value_is_rejected() {
    let folder = TempFolder::new("integer");
    for (column, value) in [
        (1, "3.5"),
        (10, "abc"),
        (64, ""),
        (65, "2.0"),
        (20, "1e3"),
        (30, "-"),
    ] {
        let (path, error) = load_error(&folder, &[row(0, 0), row(1, 1), row_with(column, value)]);
        match &error {
            DataError::NotAnInteger {
                line,
                column: actual_column,
                value: actual_value,
                ..
            } => {
                assert_eq!(*line, 3);
                assert_eq!(*actual_column, column);
                assert_eq!(actual_value, value);
            }
            other => panic!("expected a non-integer error for `{value}`, got {other:?}"),
        }
        assert_names(
            &error,
            &path,
            &["line 3", &format!("column {column}"), "is not an integer"],
        );
    }
}

#[test]
fn pixel_out_of_range_is_rejected() {
    let folder = TempFolder::new("pixel");
    for (column, value) in [
        (1, "17"),
        (33, "-1"),
        (64, "255"),
        (5, "99999999999999999999999"),
    ] {
        let (path, error) = load_error(&folder, &[row_with(column, value)]);
        match &error {
            DataError::PixelOutOfRange {
                line,
                column: actual_column,
                value: actual_value,
                ..
            } => {
                assert_eq!(*line, 1);
                assert_eq!(*actual_column, column);
                assert_eq!(actual_value, value);
            }
            other => panic!("expected a pixel range error for `{value}`, got {other:?}"),
        }
        assert_names(
            &error,
            &path,
            &["line 1", &format!("column {column}"), "outside 0..=16"],
        );
    }
}

#[test]
fn label_out_of_range_is_rejected() {
    let folder = TempFolder::new("label");
    for value in ["10", "-1", "16"] {
        let (path, error) = load_error(&folder, &[row(0, 9), row_with(65, value)]);
        match &error {
            DataError::LabelOutOfRange {
                line,
                value: actual,
                ..
            } => {
                assert_eq!(*line, 2);
                assert_eq!(actual, value);
            }
            other => panic!("expected a label range error for `{value}`, got {other:?}"),
        }
        assert_names(&error, &path, &["line 2", "not a digit 0-9"]);
    }
}

#[test]
fn line_numbers_count_blank_lines() {
    let folder = TempFolder::new("blank");
    let (_, error) = load_error(
        &folder,
        &[row(0, 1), String::new(), String::new(), row_with(65, "x")],
    );
    assert!(
        matches!(
            error,
            DataError::NotAnInteger {
                line: 4,
                column: 65,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn empty_file_is_rejected() {
    let folder = TempFolder::new("empty");
    let cases: [(&str, Vec<u8>); 3] = [
        ("empty.csv", Vec::new()),
        ("blank.csv", b"\n  \n\r\n".to_vec()),
        ("empty.csv.gz", gzip(b"")),
    ];
    for (name, contents) in cases {
        let path = folder.write(name, &contents);
        let error = data::load(&path).expect_err("an empty file is invalid");
        assert!(
            matches!(error, DataError::Empty { .. }),
            "{name}: {error:?}"
        );
        assert_names(&error, &path, &["contains no samples"]);
    }
}

#[test]
fn missing_file_is_rejected() {
    let folder = TempFolder::new("missing");
    let path = folder.0.join("absent.csv.gz");
    let error = data::load(&path).expect_err("the file does not exist");
    match &error {
        DataError::Read { source, .. } => assert_eq!(source.kind(), ErrorKind::NotFound),
        other => panic!("expected a read error, got {other:?}"),
    }
    assert_names(&error, &path, &["failed to read"]);
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn corrupt_gzip_is_rejected() {
    let folder = TempFolder::new("gzip-corrupt");
    let valid = gzip(format!("{}\n{}\n", row(0, 1), row(1, 2)).as_bytes());

    let truncated = valid[..valid.len() / 2].to_vec();
    let mut flipped = valid.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let mut bad_checksum = valid.clone();
    let crc_start = bad_checksum.len() - 8;
    bad_checksum[crc_start] ^= 0x01;
    let header_only = valid[..2].to_vec();

    for (name, contents) in [
        ("truncated", truncated),
        ("flipped", flipped),
        ("checksum", bad_checksum),
        ("header", header_only),
    ] {
        let path = folder.write(&format!("{name}.csv.gz"), &contents);
        let error = data::load(&path).expect_err("the gzip stream is corrupt");
        assert!(matches!(error, DataError::Gzip { .. }), "{name}: {error:?}");
        assert_names(&error, &path, &["is not a valid gzip stream"]);
    }
}

#[test]
fn invalid_utf8_is_rejected() {
    let folder = TempFolder::new("utf8");
    let mut contents = format!("{}\n{}\n", row(0, 1), row(1, 2)).into_bytes();
    contents.extend_from_slice(&[b'1', 0xff, b'\n']);
    let path = folder.write("digits.csv", &contents);
    let error = data::load(&path).expect_err("the file is not UTF-8");
    assert!(
        matches!(error, DataError::NotUtf8 { line: 3, .. }),
        "{error:?}"
    );
    assert_names(&error, &path, &["line 3", "not valid UTF-8"]);
}

#[test]
fn real_file_has_1797_samples_in_ten_classes() {
    let dataset = real_digits();
    assert_eq!(dataset.len(), 1797);
    assert_eq!(dataset.images.shape(), &[1797, 1, 8, 8]);
    // The class sizes of the UCI test set as shipped with scikit-learn.
    assert_eq!(
        dataset.class_counts(),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );

    let smallest = dataset.images.iter().copied().fold(f64::INFINITY, f64::min);
    let largest = dataset
        .images
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(smallest, 0.0);
    assert_eq!(largest, 1.0);

    // The first line of the file starts `0,0,5,13,9,1,0,0` and ends in the label 0.
    assert_eq!(dataset.labels[0], 0);
    assert_eq!(dataset.images[[0, 0, 0, 2]], 5.0 / 16.0);
    assert_eq!(dataset.images[[0, 0, 0, 3]], 13.0 / 16.0);
}

#[test]
fn to_f32_keeps_values_and_labels() {
    let dataset = real_digits();
    let single = dataset.to_f32();
    assert_eq!(single.labels, dataset.labels);
    assert_eq!(single.images.shape(), dataset.images.shape());
    // Multiples of 1/16 are exact in f32.
    assert!(
        single
            .images
            .iter()
            .zip(&dataset.images)
            .all(|(&a, &b)| f64::from(a) == b)
    );
}

#[test]
fn split_is_stratified_80_20() {
    let dataset = real_digits();
    let (train, test) = dataset.split_stratified(0.2, 42);
    assert_eq!(train.len() + test.len(), dataset.len());

    let all = dataset.class_counts();
    let train_counts = train.class_counts();
    let test_counts = test.class_counts();
    for class in 0..CLASSES {
        assert!(
            train_counts[class] > 0,
            "class {class} is missing from the training set"
        );
        assert!(
            test_counts[class] > 0,
            "class {class} is missing from the test set"
        );
        assert_eq!(
            train_counts[class] + test_counts[class],
            all[class],
            "class {class}"
        );
        let expected = 0.2 * all[class] as f64;
        assert!(
            (test_counts[class] as f64 - expected).abs() <= 1.0,
            "class {class}: {} test samples, expected about {expected}",
            test_counts[class]
        );
    }
}

#[test]
fn split_partitions_samples_in_order() {
    let labels: Vec<usize> = (0..503)
        .map(|index| (index * 7 + index / 13) % CLASSES)
        .collect();
    let dataset = indexed_dataset(labels.clone());
    let (train, test) = dataset.split_stratified(0.2, 7);

    let train_indices = indices(&train);
    let test_indices = indices(&test);
    assert!(
        train_indices.is_sorted(),
        "the training set lost the original order"
    );
    assert!(
        test_indices.is_sorted(),
        "the test set lost the original order"
    );

    let mut all: Vec<usize> = train_indices.iter().chain(&test_indices).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..503).collect::<Vec<_>>(),
        "the parts do not partition the samples"
    );

    for (part, part_indices) in [(&train, &train_indices), (&test, &test_indices)] {
        let expected: Vec<usize> = part_indices.iter().map(|&index| labels[index]).collect();
        assert_eq!(part.labels, expected, "labels no longer match their images");
    }
}

#[test]
fn split_is_deterministic_per_seed() {
    let dataset = real_digits();
    let first = dataset.split_stratified(0.2, 42);
    let second = dataset.split_stratified(0.2, 42);
    assert_eq!(first, second);

    let other = dataset.split_stratified(0.2, 43);
    assert_ne!(
        first.1.labels, other.1.labels,
        "seeds 42 and 43 gave the same test set"
    );
}

#[test]
fn split_keeps_small_classes_in_both_parts() {
    // Class 0 has 2 samples, class 1 has 3 and class 2 has 1: round(0.2 * n) is 0 for
    // the first two, but each still gets one test sample; the lone sample trains.
    let dataset = indexed_dataset(vec![0, 1, 0, 1, 1, 2]);
    let (train, test) = dataset.split_stratified(0.2, 1);
    assert_eq!(train.class_counts()[..3], [1, 2, 1]);
    assert_eq!(test.class_counts()[..3], [1, 1, 0]);
}

#[test]
#[should_panic(expected = "test fraction 1 must lie strictly between 0 and 1")]
fn split_rejects_fraction_of_one() {
    indexed_dataset(vec![0, 1]).split_stratified(1.0, 0);
}

#[test]
fn batches_cover_training_set_once_per_epoch() {
    let labels: Vec<usize> = (0..103).map(|index| index % CLASSES).collect();
    let dataset = indexed_dataset(labels);
    let batch_size = 10;
    let mut orders = Vec::new();
    for epoch in 1..=3 {
        let shuffled = dataset.shuffled(5, epoch);
        let batches = shuffled.batches(batch_size);
        assert_eq!(batches.len(), 11);
        assert_eq!(shuffled.batch_count(batch_size), 11);

        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        for (images, labels) in batches {
            assert_eq!(images.shape()[1..], [1, 8, 8]);
            assert_eq!(images.shape()[0], labels.len());
            sizes.push(labels.len());
            for (row, &label) in labels.iter().enumerate() {
                let index = images[[row, 0, 0, 0]] as usize;
                assert_eq!(
                    label,
                    index % CLASSES,
                    "label of sample {index} is misplaced"
                );
                seen.push(index);
            }
        }
        assert_eq!(sizes, [10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 3]);

        let order = seen.clone();
        seen.sort_unstable();
        assert_eq!(
            seen,
            (0..103).collect::<Vec<_>>(),
            "epoch {epoch} did not visit each sample once"
        );
        orders.push(order);
    }
    assert_ne!(orders[0], orders[1], "epochs 1 and 2 have the same order");
    assert_ne!(orders[1], orders[2], "epochs 2 and 3 have the same order");
    assert_ne!(
        orders[0],
        (0..103).collect::<Vec<_>>(),
        "epoch 1 is not shuffled"
    );
}

#[test]
fn shuffle_is_deterministic_per_seed_and_epoch() {
    let dataset = indexed_dataset((0..50).map(|index| index % CLASSES).collect());
    assert_eq!(dataset.shuffled(9, 4), dataset.shuffled(9, 4));
    assert_ne!(
        indices(&dataset.shuffled(9, 4)),
        indices(&dataset.shuffled(10, 4))
    );
}

#[test]
fn batch_size_larger_than_dataset_gives_one_batch() {
    let dataset = indexed_dataset(vec![3, 1, 4]);
    let batches: Vec<_> = dataset.batches(32).collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].1, [3, 1, 4]);
}

#[test]
#[should_panic(expected = "batch size must be at least 1")]
fn batches_reject_size_zero() {
    let _ = indexed_dataset(vec![0]).batches(0);
}

#[test]
fn splitmix64_matches_reference_sequence() {
    // The first outputs of the reference SplitMix64 for seed 0.
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
    assert_eq!(rng.next_u64(), 0x06c4_5d18_8009_454f);
}

#[test]
fn splitmix64_below_is_in_range_and_covers_it() {
    let mut rng = SplitMix64::new(3);
    let mut hits = [0usize; 7];
    for _ in 0..7000 {
        let value = rng.below(7) as usize;
        assert!(value < 7);
        hits[value] += 1;
    }
    // Each value expects 1000 hits with a standard deviation of about 29.
    for (value, &count) in hits.iter().enumerate() {
        assert!(
            (850..=1150).contains(&count),
            "value {value} drawn {count} times of 7000"
        );
    }
}
