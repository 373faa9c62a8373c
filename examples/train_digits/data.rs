//! Loading, splitting and batching the UCI handwritten digits.
//!
//! The data file contains one sample per line: 64 comma-separated integers in `0..=16`
//! (an 8 x 8 image, row-major) followed by the class label `0..=9`. It may be plain
//! text or gzip-compressed, and the loader detects gzip by its magic bytes.
//!
//! Every random choice here (the train/test split and the per-epoch shuffle) draws
//! from [`SplitMix64`], a generator written in this file, so a seed gives the same
//! split and the same batches on every platform and with every version of `rand`.

use std::error::Error;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayView4, Axis, s};

/// Side length of a square digit image, in pixels.
pub const IMAGE_SIDE: usize = 8;
/// Number of pixels per image.
pub const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes (the digits 0 to 9).
pub const CLASSES: usize = 10;
/// Largest pixel value in the file, which [`load`] maps to 1.0.
pub const MAX_PIXEL: u32 = 16;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const COLUMNS: usize = PIXELS + 1;

/// A set of labelled digit images.
///
/// `images` has shape N x 1 x 8 x 8 (batch, channel, height, width) with pixels in
/// `[0, 1]`, and `labels[i]` in `0..CLASSES` is the digit shown by image `i`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset<T = f64> {
    /// Images, N x 1 x 8 x 8, pixel values in `[0, 1]`.
    pub images: Array4<T>,
    /// Class label of each image, in `0..CLASSES`.
    pub labels: Vec<usize>,
}

/// Error from loading a data file.
///
/// Line and column numbers count from 1; the label is column 65.
#[derive(Debug)]
pub enum DataError {
    /// The file could not be opened or read (for example, it does not exist).
    Read { path: PathBuf, source: io::Error },
    /// The file starts with the gzip magic bytes but does not decompress.
    Gzip { path: PathBuf, source: io::Error },
    /// The (decompressed) text is not valid UTF-8.
    NotUtf8 { path: PathBuf, line: usize },
    /// The file contains no samples.
    Empty { path: PathBuf },
    /// A line does not have 64 pixel columns plus a label.
    ColumnCount {
        path: PathBuf,
        line: usize,
        found: usize,
    },
    /// A field is not a decimal integer.
    NotAnInteger {
        path: PathBuf,
        line: usize,
        column: usize,
        value: String,
    },
    /// A pixel value lies outside `0..=16`.
    PixelOutOfRange {
        path: PathBuf,
        line: usize,
        column: usize,
        value: String,
    },
    /// A label lies outside `0..=9`.
    LabelOutOfRange {
        path: PathBuf,
        line: usize,
        value: String,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, source } => {
                write!(f, "failed to read `{}`: {source}", path.display())
            }
            Self::Gzip { path, source } => write!(
                f,
                "`{}` is not a valid gzip stream: {source}",
                path.display()
            ),
            Self::NotUtf8 { path, line } => {
                write!(
                    f,
                    "`{}` line {line}: the text is not valid UTF-8",
                    path.display()
                )
            }
            Self::Empty { path } => write!(
                f,
                "`{}` contains no samples; expected lines of {PIXELS} pixel values and a label",
                path.display()
            ),
            Self::ColumnCount { path, line, found } => write!(
                f,
                "`{}` line {line}: found {found} columns, expected {COLUMNS} \
                 ({PIXELS} pixel values and a label)",
                path.display()
            ),
            Self::NotAnInteger {
                path,
                line,
                column,
                value,
            } => write!(
                f,
                "`{}` line {line} column {column}: `{value}` is not an integer",
                path.display()
            ),
            Self::PixelOutOfRange {
                path,
                line,
                column,
                value,
            } => write!(
                f,
                "`{}` line {line} column {column}: pixel value `{value}` is outside 0..={MAX_PIXEL}",
                path.display()
            ),
            Self::LabelOutOfRange { path, line, value } => write!(
                f,
                "`{}` line {line} column {COLUMNS}: label `{value}` is not a digit 0-9",
                path.display()
            ),
        }
    }
}

impl Error for DataError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Gzip { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Loads a digits file, plain CSV or gzip-compressed CSV.
///
/// Pixels are divided by [`MAX_PIXEL`], so they lie in `[0, 1]`. Blank lines are
/// skipped; every other line must hold 64 integers in `0..=16` and a label in `0..=9`.
///
/// # Errors
///
/// Returns a [`DataError`] naming the file, and the line and column where that
/// applies, when the file is missing or unreadable, is a corrupt gzip stream, is not
/// UTF-8, contains no samples, or has a line with the wrong number of columns, a
/// field that is not an integer, a pixel outside `0..=16` or a label outside `0..=9`.
pub fn load(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes = if bytes.starts_with(&GZIP_MAGIC) {
        let mut decompressed = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut decompressed)
            .map_err(|source| DataError::Gzip {
                path: path.to_path_buf(),
                source,
            })?;
        decompressed
    } else {
        bytes
    };
    let text = String::from_utf8(bytes).map_err(|error| {
        let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&byte| byte == b'\n').count() + 1;
        DataError::NotUtf8 {
            path: path.to_path_buf(),
            line,
        }
    })?;
    parse_csv(&text, path)
}

fn parse_csv(text: &str, path: &Path) -> Result<Dataset, DataError> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != COLUMNS {
            return Err(DataError::ColumnCount {
                path: path.to_path_buf(),
                line: line_number,
                found: fields.len(),
            });
        }
        for (column_index, field) in fields.iter().enumerate() {
            let column = column_index + 1;
            let value = parse_integer(field).ok_or_else(|| DataError::NotAnInteger {
                path: path.to_path_buf(),
                line: line_number,
                column,
                value: (*field).to_string(),
            })?;
            if column == COLUMNS {
                match usize::try_from(value) {
                    Ok(label) if label < CLASSES => labels.push(label),
                    _ => {
                        return Err(DataError::LabelOutOfRange {
                            path: path.to_path_buf(),
                            line: line_number,
                            value: (*field).to_string(),
                        });
                    }
                }
            } else {
                match u32::try_from(value) {
                    Ok(pixel) if pixel <= MAX_PIXEL => {
                        pixels.push(f64::from(pixel) / f64::from(MAX_PIXEL));
                    }
                    _ => {
                        return Err(DataError::PixelOutOfRange {
                            path: path.to_path_buf(),
                            line: line_number,
                            column,
                            value: (*field).to_string(),
                        });
                    }
                }
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
        });
    }
    let images = Array4::from_shape_vec((labels.len(), 1, IMAGE_SIDE, IMAGE_SIDE), pixels)
        .expect("each accepted line adds exactly 64 pixels");
    Ok(Dataset { images, labels })
}

/// Parses an optionally signed decimal integer. Values beyond `i64` saturate, so
/// the range check that follows reports them as out of range, not as non-integers.
fn parse_integer(field: &str) -> Option<i64> {
    let digits = field.strip_prefix(['+', '-']).unwrap_or(field);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(field.parse().unwrap_or(if field.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    }))
}

impl<T: Copy> Dataset<T> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Returns whether the set has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of samples of each class, indexed by label.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &label in &self.labels {
            counts[label] += 1;
        }
        counts
    }

    /// Copies the samples at `indices`, in that order.
    ///
    /// # Panics
    ///
    /// Panics if an index is not below [`Dataset::len`].
    #[track_caller]
    pub fn select(&self, indices: &[usize]) -> Self {
        if let Some(&bad) = indices.iter().find(|&&index| index >= self.len()) {
            panic!(
                "sample index {bad} is out of range for a dataset of {} samples",
                self.len()
            );
        }
        Self {
            images: self.images.select(Axis(0), indices),
            labels: indices.iter().map(|&index| self.labels[index]).collect(),
        }
    }

    /// Splits the samples into a training and a test set, stratified by label.
    ///
    /// Within each class the samples are shuffled with `seed`, and
    /// `round(count * test_fraction)` of them go to the test set, but at least one
    /// and at most `count - 1`, so that a class with two or more samples appears in
    /// both parts (a class with one sample goes to the training set). Both parts keep
    /// the original order of the samples.
    ///
    /// # Panics
    ///
    /// Panics if `test_fraction` is not strictly between 0 and 1.
    #[track_caller]
    pub fn split_stratified(&self, test_fraction: f64, seed: u64) -> (Self, Self) {
        assert!(
            test_fraction > 0.0 && test_fraction < 1.0,
            "test fraction {test_fraction} must lie strictly between 0 and 1"
        );
        let mut rng = SplitMix64::for_stream(seed, SPLIT_STREAM);
        let mut train = Vec::with_capacity(self.len());
        let mut test = Vec::new();
        for class in 0..CLASSES {
            let mut members: Vec<usize> = (0..self.len())
                .filter(|&index| self.labels[index] == class)
                .collect();
            if members.len() < 2 {
                train.extend(members);
                continue;
            }
            rng.shuffle(&mut members);
            let wanted = (members.len() as f64 * test_fraction).round() as usize;
            let test_count = wanted.clamp(1, members.len() - 1);
            test.extend_from_slice(&members[..test_count]);
            train.extend_from_slice(&members[test_count..]);
        }
        train.sort_unstable();
        test.sort_unstable();
        (self.select(&train), self.select(&test))
    }

    /// Returns the samples in the order of epoch `epoch`, a permutation drawn from
    /// `seed` and `epoch`: the same pair always gives the same order, and each epoch
    /// gets its own.
    pub fn shuffled(&self, seed: u64, epoch: usize) -> Self {
        let mut order: Vec<usize> = (0..self.len()).collect();
        SplitMix64::for_stream(seed, FIRST_EPOCH_STREAM.wrapping_add(epoch as u64))
            .shuffle(&mut order);
        self.select(&order)
    }

    /// Iterates over consecutive mini-batches of `batch_size` samples, in the stored
    /// order; the last batch contains the remainder and may be smaller. Call
    /// [`Dataset::shuffled`] first for a new order each epoch.
    ///
    /// # Panics
    ///
    /// Panics if `batch_size` is 0.
    #[track_caller]
    pub fn batches(&self, batch_size: usize) -> Batches<'_, T> {
        assert!(batch_size > 0, "batch size must be at least 1, got 0");
        Batches {
            dataset: self,
            batch_size,
            start: 0,
        }
    }

    /// Number of batches that [`Dataset::batches`] yields for `batch_size`.
    pub fn batch_count(&self, batch_size: usize) -> usize {
        self.len().div_ceil(batch_size)
    }
}

impl Dataset<f64> {
    /// Converts the images to `f32`, for training in single precision.
    pub fn to_f32(&self) -> Dataset<f32> {
        Dataset {
            images: self.images.mapv(|pixel| pixel as f32),
            labels: self.labels.clone(),
        }
    }
}

/// Iterator over the mini-batches of a [`Dataset`], from [`Dataset::batches`].
///
/// Each item is a view of the batch's images (B x 1 x 8 x 8) and their labels.
#[derive(Debug, Clone)]
pub struct Batches<'a, T> {
    dataset: &'a Dataset<T>,
    batch_size: usize,
    start: usize,
}

impl<'a, T> Iterator for Batches<'a, T> {
    type Item = (ArrayView4<'a, T>, &'a [usize]);

    fn next(&mut self) -> Option<Self::Item> {
        let total = self.dataset.labels.len();
        if self.start >= total {
            return None;
        }
        let end = (self.start + self.batch_size).min(total);
        let images = self.dataset.images.slice(s![self.start..end, .., .., ..]);
        let labels = &self.dataset.labels[self.start..end];
        self.start = end;
        Some((images, labels))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self
            .dataset
            .labels
            .len()
            .saturating_sub(self.start)
            .div_ceil(self.batch_size);
        (remaining, Some(remaining))
    }
}

impl<T> ExactSizeIterator for Batches<'_, T> {}

const SPLIT_STREAM: u64 = 0;
const FIRST_EPOCH_STREAM: u64 = 1;

/// The SplitMix64 pseudo-random generator: a 64-bit counter advanced by a fixed odd
/// increment and passed through a bit mixer.
///
/// It is fast and passes common statistical test batteries, but it is not
/// cryptographically secure. It implements [`rand::RngCore`], so the methods of
/// [`rand::Rng`] work on it too, with the sequence fixed by this file.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Mixes the bits of `value`: the SplitMix64 output function.
fn mix64(value: u64) -> u64 {
    let mut z = value;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SplitMix64 {
    /// Creates a generator whose sequence is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Creates a generator for one of several independent uses of the same seed,
    /// numbered by `stream`.
    ///
    /// The stream number is mixed into the seed instead of added to it, because with
    /// `seed + stream` the pairs (42, 1) and (43, 0) would give the same sequence.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        Self::new(mix64(seed) ^ mix64(stream.wrapping_add(GOLDEN_GAMMA)))
    }

    /// Returns the next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Returns an integer drawn uniformly from `0..bound`, without modulo bias
    /// (multiply-and-shift with rejection of the few biased draws).
    ///
    /// # Panics
    ///
    /// Panics if `bound` is 0.
    #[track_caller]
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(
            bound > 0,
            "the upper bound of a random integer must be positive"
        );
        // 2^64 mod bound: a low half under this threshold would over-represent some outputs.
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if product as u64 >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// Shuffles `items` in place with the Fisher-Yates algorithm, so every
    /// permutation is equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for last in (1..items.len()).rev() {
            let pick = self.below(last as u64 + 1) as usize;
            items.swap(last, pick);
        }
    }
}

impl rand::RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (SplitMix64::next_u64(self) >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        SplitMix64::next_u64(self)
    }

    fn fill_bytes(&mut self, destination: &mut [u8]) {
        for chunk in destination.chunks_mut(8) {
            let bytes = SplitMix64::next_u64(self).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}
