//! Command-line options of the `train_digits` example.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// Number of passes over the training set when `--epochs` is not given.
pub const DEFAULT_EPOCHS: usize = 10;
/// Samples per mini-batch when `--batch-size` is not given.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Step size of gradient descent when `--lr` is not given.
pub const DEFAULT_LEARNING_RATE: f64 = 0.01;
/// Seed of the split, the shuffles and the model's initial weights when `--seed` is
/// not given.
pub const DEFAULT_SEED: u64 = 42;
/// Data file when `--data` is not given: the copy in this repository, found through
/// the path of the package at compile time so the example runs from any folder.
pub const DEFAULT_DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits.csv.gz");
/// Output folder when `--out` is not given, relative to the current directory.
pub const DEFAULT_OUT: &str = "out";

/// Floating-point type the model trains in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Single precision, the default.
    F32,
    /// Double precision, chosen with `--f64`.
    F64,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        })
    }
}

/// Settings of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Number of passes over the training set, at least 1.
    pub epochs: usize,
    /// Samples per mini-batch, at least 1.
    pub batch_size: usize,
    /// Step size of gradient descent, finite and positive.
    pub learning_rate: f64,
    /// Seed of every random choice of the run.
    pub seed: u64,
    /// Digits file, plain or gzip-compressed CSV.
    pub data: PathBuf,
    /// Folder that receives the plot and the metrics at the end of the run.
    pub out: PathBuf,
    /// Floating-point type of the model.
    pub precision: Precision,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            epochs: DEFAULT_EPOCHS,
            batch_size: DEFAULT_BATCH_SIZE,
            learning_rate: DEFAULT_LEARNING_RATE,
            seed: DEFAULT_SEED,
            data: PathBuf::from(DEFAULT_DATA),
            out: PathBuf::from(DEFAULT_OUT),
            precision: Precision::F32,
        }
    }
}

/// Action requested on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Train with these options.
    Train(Options),
    /// Print [`usage`] and exit.
    Help,
}

/// Error for a rejected command line, with a message naming the flag and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Returns the help text: every flag with its unit and default.
pub fn usage() -> String {
    format!(
        "Train a digit classifier on the UCI handwritten digits (8 x 8 images, 10 classes).

Usage: cargo run --release --example train_digits -- [OPTIONS]

Options:
  --epochs N        passes over the training set (default {DEFAULT_EPOCHS})
  --batch-size N    samples per mini-batch (default {DEFAULT_BATCH_SIZE})
  --lr X            learning rate, the step size of gradient descent (default {DEFAULT_LEARNING_RATE})
  --seed N          seed of the train/test split, the shuffles and the initial weights,
                    an integer in 0..=18446744073709551615 (default {DEFAULT_SEED})
  --data PATH       digits file, CSV or gzip-compressed CSV
                    (default {DEFAULT_DATA})
  --out DIR         folder for the plot and the metrics, written at the end
                    (default {DEFAULT_OUT}/, relative to the current directory)
  --f64             train in double precision (default: single precision, f32)
  -h, --help        print this help and exit
"
    )
}

/// Parses the arguments that follow the program name.
///
/// Each flag that takes a value accepts it as the next argument (`--epochs 5`) or
/// after an equals sign (`--epochs=5`).
///
/// # Errors
///
/// Returns a [`CliError`] for an unknown flag, a flag given twice, a missing value,
/// a value that does not parse or is out of range, and an argument that is not
/// valid UTF-8.
pub fn parse<I>(arguments: I) -> Result<Command, CliError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut options = Options::default();
    let mut seen: Vec<String> = Vec::new();
    let mut arguments = arguments.into_iter().map(Into::into);
    while let Some(argument) = arguments.next() {
        let argument = argument.into_string().map_err(|raw| {
            CliError(format!(
                "argument `{}` is not valid UTF-8",
                raw.to_string_lossy()
            ))
        })?;
        let (flag, inline_value) = match argument.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (argument.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        if !matches!(
            flag.as_str(),
            "--epochs" | "--batch-size" | "--lr" | "--seed" | "--data" | "--out" | "--f64"
        ) {
            return Err(CliError(if flag.starts_with('-') {
                format!(
                    "unknown flag `{flag}`; valid flags are `--epochs`, `--batch-size`, `--lr`, \
                     `--seed`, `--data`, `--out`, `--f64` and `--help`"
                )
            } else {
                format!("unexpected argument `{argument}`; this program takes only flags")
            }));
        }
        if seen.contains(&flag) {
            return Err(CliError(format!("flag `{flag}` is given more than once")));
        }
        seen.push(flag.clone());

        if flag == "--f64" {
            if let Some(value) = inline_value {
                return Err(CliError(format!(
                    "flag `--f64` takes no value, got `{value}`"
                )));
            }
            options.precision = Precision::F64;
            continue;
        }
        let value = match inline_value {
            Some(value) => value,
            None => arguments
                .next()
                .ok_or_else(|| CliError(format!("flag `{flag}` needs a value")))?
                .into_string()
                .map_err(|raw| {
                    CliError(format!(
                        "value `{}` of `{flag}` is not valid UTF-8",
                        raw.to_string_lossy()
                    ))
                })?,
        };
        match flag.as_str() {
            "--epochs" => options.epochs = parse_count(&flag, &value)?,
            "--batch-size" => options.batch_size = parse_count(&flag, &value)?,
            "--lr" => options.learning_rate = parse_learning_rate(&value)?,
            "--seed" => {
                options.seed = value.parse().map_err(|_| {
                    CliError(format!(
                        "invalid value `{value}` for `--seed`: expected an integer in \
                         0..=18446744073709551615"
                    ))
                })?;
            }
            "--data" => options.data = parse_path(&flag, value)?,
            "--out" => options.out = parse_path(&flag, value)?,
            _ => unreachable!("every known flag is handled above"),
        }
    }
    Ok(Command::Train(options))
}

fn parse_count(flag: &str, value: &str) -> Result<usize, CliError> {
    match value.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(CliError(format!(
            "invalid value `{value}` for `{flag}`: expected a positive integer"
        ))),
    }
}

fn parse_learning_rate(value: &str) -> Result<f64, CliError> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(CliError(format!(
            "invalid value `{value}` for `--lr`: expected a positive number such as 0.01"
        ))),
    }
}

fn parse_path(flag: &str, value: String) -> Result<PathBuf, CliError> {
    if value.is_empty() {
        return Err(CliError(format!("flag `{flag}` needs a non-empty path")));
    }
    Ok(PathBuf::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_options(arguments: &[&str]) -> Options {
        match parse(arguments.iter().copied()) {
            Ok(Command::Train(options)) => options,
            other => panic!("expected options for {arguments:?}, got {other:?}"),
        }
    }

    fn parse_error(arguments: &[&str]) -> String {
        parse(arguments.iter().copied())
            .expect_err("the arguments are invalid")
            .to_string()
    }

    #[test]
    fn no_arguments_give_defaults() {
        let options = parse_options(&[]);
        assert_eq!(options, Options::default());
        assert_eq!(options.epochs, 10);
        assert_eq!(options.batch_size, 32);
        assert_eq!(options.learning_rate, 0.01);
        assert_eq!(options.seed, 42);
        assert_eq!(options.out, PathBuf::from("out"));
        assert_eq!(options.precision, Precision::F32);
        assert!(options.data.is_absolute(), "{}", options.data.display());
        assert!(options.data.ends_with("data/digits.csv.gz"));
    }

    #[test]
    fn every_flag_is_parsed() {
        let options = parse_options(&[
            "--epochs",
            "3",
            "--batch-size=7",
            "--lr",
            "0.5",
            "--seed",
            "18446744073709551615",
            "--data",
            "a.csv",
            "--out=results",
            "--f64",
        ]);
        assert_eq!(options.epochs, 3);
        assert_eq!(options.batch_size, 7);
        assert_eq!(options.learning_rate, 0.5);
        assert_eq!(options.seed, u64::MAX);
        assert_eq!(options.data, PathBuf::from("a.csv"));
        assert_eq!(options.out, PathBuf::from("results"));
        assert_eq!(options.precision, Precision::F64);
    }

    #[test]
    fn help_wins_over_other_flags() {
        for arguments in [&["--help"][..], &["-h"], &["--epochs", "3", "--help"]] {
            assert_eq!(parse(arguments.iter().copied()), Ok(Command::Help));
        }
    }

    #[test]
    fn usage_lists_every_flag_with_its_default() {
        let text = usage();
        for fragment in [
            "--epochs N",
            "(default 10)",
            "--batch-size N",
            "(default 32)",
            "--lr X",
            "(default 0.01)",
            "--seed N",
            "(default 42)",
            "--data PATH",
            "data/digits.csv.gz",
            "--out DIR",
            "(default out/",
            "--f64",
            "--help",
        ] {
            assert!(text.contains(fragment), "usage lacks `{fragment}`:\n{text}");
        }
    }

    #[test]
    fn bad_arguments_are_rejected() {
        let cases: [(&[&str], &str); 13] = [
            (&["--epoch", "3"], "unknown flag `--epoch`"),
            (&["-x"], "unknown flag `-x`"),
            (&["data.csv"], "unexpected argument `data.csv`"),
            (&["--epochs"], "flag `--epochs` needs a value"),
            (&["--epochs", "0"], "invalid value `0` for `--epochs`"),
            (&["--epochs", "-2"], "invalid value `-2` for `--epochs`"),
            (
                &["--batch-size", "1.5"],
                "invalid value `1.5` for `--batch-size`",
            ),
            (&["--lr", "0"], "invalid value `0` for `--lr`"),
            (&["--lr", "inf"], "invalid value `inf` for `--lr`"),
            (&["--seed", "-1"], "invalid value `-1` for `--seed`"),
            (&["--f64=yes"], "flag `--f64` takes no value"),
            (
                &["--seed", "1", "--seed=2"],
                "flag `--seed` is given more than once",
            ),
            (&["--out", ""], "flag `--out` needs a non-empty path"),
        ];
        for (arguments, expected) in cases {
            let message = parse_error(arguments);
            assert!(
                message.contains(expected),
                "{arguments:?}: `{message}` lacks `{expected}`"
            );
        }
    }
}
