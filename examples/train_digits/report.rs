//! Progress display, metrics and output files of the `train_digits` example.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;

use crate::data::CLASSES;

/// File name of the loss and accuracy plot in the output folder.
pub const PLOT_FILE: &str = "training.svg";
/// File name of the per-epoch metrics table in the output folder.
pub const METRICS_FILE: &str = "metrics.csv";

/// Metrics of one finished epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochRecord {
    /// Epoch number, counting from 1.
    pub epoch: usize,
    /// Mean loss over the epoch's training samples, measured while training.
    pub train_loss: f64,
    /// Fraction of the training set classified correctly after the epoch, in `[0, 1]`.
    pub train_accuracy: f64,
    /// Fraction of the test set classified correctly after the epoch, in `[0, 1]`.
    pub test_accuracy: f64,
    /// Wall-clock time of the epoch's shuffle and training steps, in seconds
    /// (evaluation excluded).
    pub seconds: f64,
}

impl EpochRecord {
    /// Formats the one-line summary printed after the epoch, out of `epochs` epochs.
    pub fn summary(&self, epochs: usize) -> String {
        let width = epochs.to_string().len();
        format!(
            "epoch {:>width$}/{epochs}  train loss {:.4}  train accuracy {:6.2}%  \
             test accuracy {:6.2}%  {:.2} s",
            self.epoch,
            self.train_loss,
            100.0 * self.train_accuracy,
            100.0 * self.test_accuracy,
            self.seconds,
        )
    }
}

/// Progress bar of one epoch, showing the batches done and the running mean loss.
///
/// The bar draws on standard error and stays hidden when that is not a terminal.
#[derive(Debug)]
pub struct EpochProgress {
    bar: ProgressBar,
    loss_sum: f64,
    samples: usize,
}

impl EpochProgress {
    /// Starts the bar of epoch `epoch` out of `epochs`, which has `batches` batches.
    pub fn start(epoch: usize, epochs: usize, batches: usize) -> Self {
        let width = epochs.to_string().len();
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} batches  loss {msg}  {elapsed}",
        )
        .expect("the progress bar template is valid")
        .progress_chars("=> ");
        let bar = ProgressBar::new(batches as u64)
            .with_style(style)
            .with_prefix(format!("epoch {epoch:>width$}/{epochs}"))
            .with_message("-");
        Self {
            bar,
            loss_sum: 0.0,
            samples: 0,
        }
    }

    /// Adds a finished batch of `batch_len` samples whose mean loss was `loss`.
    pub fn record_batch(&mut self, loss: f64, batch_len: usize) {
        self.loss_sum += loss * batch_len as f64;
        self.samples += batch_len;
        self.bar.set_message(format!("{:.4}", self.mean_loss()));
        self.bar.inc(1);
    }

    /// Mean loss per sample over the batches recorded so far, weighting each batch by
    /// its size (NaN before the first batch).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }

    /// Removes the bar from the terminal and returns the epoch's mean loss.
    pub fn finish(self) -> f64 {
        self.bar.finish_and_clear();
        self.mean_loss()
    }
}

/// Fraction of `predictions` equal to `labels`, in `[0, 1]`.
///
/// # Panics
///
/// Panics if the two slices differ in length or are empty.
#[track_caller]
pub fn accuracy(labels: &[usize], predictions: &[usize]) -> f64 {
    assert_eq!(
        labels.len(),
        predictions.len(),
        "{} labels but {} predictions",
        labels.len(),
        predictions.len()
    );
    assert!(
        !labels.is_empty(),
        "the accuracy of an empty set is undefined"
    );
    let correct = labels
        .iter()
        .zip(predictions)
        .filter(|(label, prediction)| label == prediction)
        .count();
    correct as f64 / labels.len() as f64
}

/// Counts of (true label, predicted label) pairs over the ten digit classes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    /// `counts[true_label][predicted_label]`.
    pub counts: [[usize; CLASSES]; CLASSES],
}

impl ConfusionMatrix {
    /// Tallies `predictions` against `labels`.
    ///
    /// # Panics
    ///
    /// Panics if the slices differ in length or a value is not below [`CLASSES`].
    #[track_caller]
    pub fn new(labels: &[usize], predictions: &[usize]) -> Self {
        assert_eq!(
            labels.len(),
            predictions.len(),
            "{} labels but {} predictions",
            labels.len(),
            predictions.len()
        );
        let mut counts = [[0; CLASSES]; CLASSES];
        for (&label, &prediction) in labels.iter().zip(predictions) {
            assert!(
                label < CLASSES && prediction < CLASSES,
                "label {label} or prediction {prediction} is not a class in 0..{CLASSES}"
            );
            counts[label][prediction] += 1;
        }
        Self { counts }
    }

    /// Number of samples tallied.
    pub fn total(&self) -> usize {
        self.counts.iter().flatten().sum()
    }

    /// Number of samples on the diagonal, classified correctly.
    pub fn correct(&self) -> usize {
        (0..CLASSES).map(|class| self.counts[class][class]).sum()
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Prints the matrix with rows for true labels and columns for predicted labels,
    /// each column as wide as its widest count, and the row's recall at the end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let largest = self.counts.iter().flatten().copied().max().unwrap_or(0);
        let width = largest.to_string().len().max(1) + 2;
        writeln!(f, "true \\ predicted")?;
        write!(f, "{:>5}", "")?;
        for class in 0..CLASSES {
            write!(f, "{class:>width$}")?;
        }
        writeln!(f, "{:>9}", "recall")?;
        for (class, row) in self.counts.iter().enumerate() {
            write!(f, "{class:>5}")?;
            for count in row {
                write!(f, "{count:>width$}")?;
            }
            let row_total: usize = row.iter().sum();
            if row_total == 0 {
                writeln!(f, "{:>9}", "-")?;
            } else {
                let recall = 100.0 * row[class] as f64 / row_total as f64;
                writeln!(f, "{:>8.1}%", recall)?;
            }
        }
        Ok(())
    }
}

/// Writes the plot ([`PLOT_FILE`]) and the metrics table ([`METRICS_FILE`]) of
/// `history` into `out_dir`, creating the folder if needed, and returns their paths.
///
/// Both files are first written completely under temporary names in `out_dir`, and
/// only then renamed to their final names, so a failed or interrupted write leaves no
/// partial file under a final name.
///
/// # Errors
///
/// Returns an error naming the path when the folder cannot be created, a file
/// cannot be written or renamed, or the plot cannot be drawn.
pub fn write_outputs(out_dir: &Path, history: &[EpochRecord]) -> io::Result<Vec<PathBuf>> {
    let plot = render_plot(history).map_err(io::Error::other)?;
    let metrics = metrics_csv(history);
    fs::create_dir_all(out_dir).map_err(|error| annotate(error, "create", out_dir))?;

    let files = [(PLOT_FILE, plot), (METRICS_FILE, metrics)];
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (name, contents) in &files {
        let temporary = out_dir.join(format!(".{name}.{}.tmp", std::process::id()));
        if let Err(error) = write_synced(&temporary, contents.as_bytes()) {
            remove_temporary(
                staged
                    .iter()
                    .map(|(temporary, _)| temporary)
                    .chain([&temporary]),
            );
            return Err(annotate(error, "write", &temporary));
        }
        staged.push((temporary, out_dir.join(name)));
    }
    for (index, (temporary, path)) in staged.iter().enumerate() {
        if let Err(error) = fs::rename(temporary, path) {
            remove_temporary(staged[index..].iter().map(|(temporary, _)| temporary));
            return Err(annotate(error, "rename a temporary file to", path));
        }
    }
    Ok(staged.into_iter().map(|(_, path)| path).collect())
}

fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Deletes leftover temporary files, ignoring failures because the error that made
/// them leftovers is the one worth reporting.
fn remove_temporary<'a>(paths: impl Iterator<Item = &'a PathBuf>) {
    for path in paths {
        let _ = fs::remove_file(path);
    }
}

fn annotate(error: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("failed to {action} `{}`: {error}", path.display()),
    )
}

/// Formats `history` as CSV with a header line; accuracies are fractions in `[0, 1]`.
pub fn metrics_csv(history: &[EpochRecord]) -> String {
    let mut csv = String::from("epoch,train_loss,train_accuracy,test_accuracy,seconds\n");
    for record in history {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            record.epoch,
            record.train_loss,
            record.train_accuracy,
            record.test_accuracy,
            record.seconds
        ));
    }
    csv
}

/// Draws the mean training loss (left) and the train and test accuracy (right) per
/// epoch as an SVG document.
///
/// # Errors
///
/// Returns plotters' error message if drawing fails.
pub fn render_plot(history: &[EpochRecord]) -> Result<String, String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1000, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|error| error.to_string())?;
        let (left, right) = root.split_horizontally(500);
        draw_loss(&left, history).map_err(|error| error.to_string())?;
        draw_accuracy(&right, history).map_err(|error| error.to_string())?;
        root.present().map_err(|error| error.to_string())?;
    }
    Ok(svg)
}

type PlotResult = Result<(), DrawingAreaErrorKind<io::Error>>;

/// Returns the x range of both charts: epochs 1 to the last, widened to 1..2 for a
/// single epoch so the axis is not empty.
fn epoch_range(history: &[EpochRecord]) -> std::ops::Range<u32> {
    let last = history.last().map_or(1, |record| record.epoch as u32);
    1..last.max(2)
}

fn draw_loss(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    history: &[EpochRecord],
) -> PlotResult {
    let finite_losses = history
        .iter()
        .map(|record| record.train_loss)
        .filter(|loss| loss.is_finite());
    let top = finite_losses.fold(0.0_f64, f64::max);
    let top = if top > 0.0 { top * 1.1 } else { 1.0 };
    let epochs = epoch_range(history);
    let mut chart = ChartBuilder::on(area)
        .caption("training loss", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(epochs.clone(), 0.0..top)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("mean cross-entropy")
        .x_labels((epochs.end - epochs.start + 1).min(12) as usize)
        .draw()?;
    let points: Vec<(u32, f64)> = history
        .iter()
        .map(|record| (record.epoch as u32, record.train_loss))
        .collect();
    chart.draw_series(LineSeries::new(
        points.iter().copied(),
        BLUE.stroke_width(2),
    ))?;
    chart.draw_series(
        points
            .iter()
            .map(|&point| Circle::new(point, 3, BLUE.filled())),
    )?;
    Ok(())
}

fn draw_accuracy(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    history: &[EpochRecord],
) -> PlotResult {
    let epochs = epoch_range(history);
    let mut chart = ChartBuilder::on(area)
        .caption("accuracy", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(epochs.clone(), 0.0..100.0)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy (%)")
        .y_label_formatter(&|percent| format!("{percent:.0}"))
        .x_labels((epochs.end - epochs.start + 1).min(12) as usize)
        .draw()?;
    let percent_points = |metric: fn(&EpochRecord) -> f64| -> Vec<(u32, f64)> {
        history
            .iter()
            .map(|record| (record.epoch as u32, 100.0 * metric(record)))
            .collect()
    };
    let series = [
        (
            "train",
            BLUE,
            percent_points(|record| record.train_accuracy),
        ),
        ("test", RED, percent_points(|record| record.test_accuracy)),
    ];
    for (name, color, points) in series {
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 3, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, train_loss: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss,
            train_accuracy: 0.5 + 0.1 * epoch as f64,
            test_accuracy: 0.25,
            seconds: 1.5,
        }
    }

    /// A folder under the system's temporary directory, unique to one test, removed on drop.
    struct TempFolder(PathBuf);

    impl TempFolder {
        fn new(test: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "stagegrad-train-digits-report-{}-{test}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&path);
            Self(path)
        }
    }

    impl Drop for TempFolder {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn accuracy_counts_matches() {
        assert_eq!(accuracy(&[1, 2, 3, 4], &[1, 0, 3, 0]), 0.5);
        assert_eq!(accuracy(&[7], &[7]), 1.0);
    }

    #[test]
    #[should_panic(expected = "3 labels but 2 predictions")]
    fn accuracy_rejects_length_mismatch() {
        accuracy(&[1, 2, 3], &[1, 2]);
    }

    #[test]
    fn confusion_matrix_counts_pairs() {
        let matrix = ConfusionMatrix::new(&[0, 0, 1, 9, 9, 9], &[0, 1, 1, 9, 9, 4]);
        assert_eq!(matrix.counts[0][0], 1);
        assert_eq!(matrix.counts[0][1], 1);
        assert_eq!(matrix.counts[1][1], 1);
        assert_eq!(matrix.counts[9][9], 2);
        assert_eq!(matrix.counts[9][4], 1);
        assert_eq!(matrix.total(), 6);
        assert_eq!(matrix.correct(), 4);
    }

    #[test]
    fn confusion_matrix_prints_aligned_rows() {
        let mut labels = vec![3; 120];
        labels.push(5);
        let mut predictions = vec![3; 119];
        predictions.extend([8, 5]);
        let text = ConfusionMatrix::new(&labels, &predictions).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 12, "{text}");
        assert_eq!(lines[0], "true \\ predicted");
        // Every count column is as wide as the largest count (3 digits) plus 2 spaces.
        assert_eq!(
            lines[1],
            "         0    1    2    3    4    5    6    7    8    9   recall"
        );
        assert_eq!(
            lines[5],
            "    3    0    0    0  119    0    0    0    0    1    0    99.2%"
        );
        assert_eq!(
            lines[7],
            "    5    0    0    0    0    0    1    0    0    0    0   100.0%"
        );
        assert_eq!(
            lines[2],
            "    0    0    0    0    0    0    0    0    0    0    0        -"
        );
        assert!(
            lines[1..].iter().all(|line| line.len() == lines[1].len()),
            "{text}"
        );
    }

    #[test]
    fn summary_line_shows_every_metric() {
        let line = record(3, 0.123456).summary(12);
        assert_eq!(
            line,
            "epoch  3/12  train loss 0.1235  train accuracy  80.00%  test accuracy  25.00%  1.50 s"
        );
    }

    #[test]
    fn mean_loss_weights_batches_by_size() {
        let mut progress = EpochProgress::start(1, 1, 2);
        progress.record_batch(1.0, 30);
        progress.record_batch(4.0, 10);
        assert_eq!(progress.finish(), (30.0 + 40.0) / 40.0);
    }

    #[test]
    fn metrics_csv_lines_per_epoch() {
        let csv = metrics_csv(&[record(1, 2.5), record(2, 0.75)]);
        assert_eq!(
            csv,
            "epoch,train_loss,train_accuracy,test_accuracy,seconds\n\
             1,2.5,0.6,0.25,1.5\n\
             2,0.75,0.7,0.25,1.5\n"
        );
    }

    #[test]
    fn outputs_are_written_without_temporary_files() {
        let folder = TempFolder::new("outputs");
        let out = folder.0.join("nested").join("out");
        let written = write_outputs(&out, &[record(1, 2.0), record(2, 1.0)]).unwrap();
        assert_eq!(written, vec![out.join(PLOT_FILE), out.join(METRICS_FILE)]);

        let svg = fs::read_to_string(out.join(PLOT_FILE)).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("training loss") && svg.contains("accuracy"));
        assert!(
            fs::read_to_string(out.join(METRICS_FILE))
                .unwrap()
                .starts_with("epoch,")
        );

        let mut names: Vec<String> = fs::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [METRICS_FILE, PLOT_FILE]);
    }

    #[test]
    fn output_folder_blocked_by_file() {
        let folder = TempFolder::new("blocked");
        fs::create_dir_all(&folder.0).unwrap();
        let blocker = folder.0.join("file");
        fs::write(&blocker, "x").unwrap();
        let error = write_outputs(&blocker.join("out"), &[record(1, 1.0)]).unwrap_err();
        assert!(error.to_string().contains("failed to create"), "{error}");
        assert!(
            error.to_string().contains(&blocker.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn rename_failure_removes_temporary_files() {
        let folder = TempFolder::new("rename");
        // A non-empty folder under the final name of the metrics makes its rename fail.
        let blocker = folder.0.join(METRICS_FILE);
        fs::create_dir_all(blocker.join("inside")).unwrap();

        let error = write_outputs(&folder.0, &[record(1, 1.0)]).unwrap_err();
        assert!(error.to_string().contains("failed to rename"), "{error}");
        assert!(
            error.to_string().contains(&blocker.display().to_string()),
            "{error}"
        );

        let leftovers: Vec<String> = fs::read_dir(&folder.0)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn plot_handles_single_epoch_and_nan_loss() {
        assert!(render_plot(&[record(1, 0.5)]).unwrap().contains("<svg"));
        assert!(
            render_plot(&[record(1, f64::NAN), record(2, 0.5)])
                .unwrap()
                .contains("<svg")
        );
    }
}
