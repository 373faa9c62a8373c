//! The generated gradient of scalar functions against a hand-written gradient and the
//! primal, for functions of about 3, 10 and 50 stages.
//!
//! Run with `cargo bench --bench scalar -- --warm-up-time 1 --measurement-time 3`. After
//! criterion has measured every benchmark, the median times are read back from
//! `target/criterion/<group>/<id>/new/estimates.json`, the ratios are printed, and the
//! "Scalar gradients" section of `docs/benchmarks.md` is rewritten with them.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use criterion::{Criterion, criterion_group};
use stagegrad::differentiable;

// The three functions, written once for the macro; the originals are the primals.

/// Three stages: a product, a sum and a sine.
#[differentiable]
fn small(x: f64, y: f64, z: f64) -> f64 {
    (x * y + z).sin()
}

/// Ten stages of exponentials, quotients and products.
#[differentiable]
fn medium(x: f64, y: f64, z: f64) -> f64 {
    let a = x * y;
    let b = a + z;
    let c = b.exp();
    let d = 1.0 + c;
    let e = x / d;
    let f = y.tanh();
    let g = e * f;
    let h = g - z;
    let k = h * h;
    k.ln_1p()
}

/// Fifty-three stages: five explicit Euler steps of a damped pendulum with stiffness `k`
/// and damping `c`, time step 0.1, summing the squared position after every step.
#[differentiable]
fn large(x0: f64, v0: f64, k: f64, c: f64) -> f64 {
    let mut x = x0;
    let mut v = v0;
    let mut energy = x * x;

    let s = x.sin();
    let a = k * s;
    let d = c * v;
    let acc = a + d;
    let dv = 0.1 * acc;
    v -= dv;
    let dx = 0.1 * v;
    x += dx;
    let e = x * x;
    energy += e;

    let s = x.sin();
    let a = k * s;
    let d = c * v;
    let acc = a + d;
    let dv = 0.1 * acc;
    v -= dv;
    let dx = 0.1 * v;
    x += dx;
    let e = x * x;
    energy += e;

    let s = x.sin();
    let a = k * s;
    let d = c * v;
    let acc = a + d;
    let dv = 0.1 * acc;
    v -= dv;
    let dx = 0.1 * v;
    x += dx;
    let e = x * x;
    energy += e;

    let s = x.sin();
    let a = k * s;
    let d = c * v;
    let acc = a + d;
    let dv = 0.1 * acc;
    v -= dv;
    let dx = 0.1 * v;
    x += dx;
    let e = x * x;
    energy += e;

    let s = x.sin();
    let a = k * s;
    let d = c * v;
    let acc = a + d;
    let dv = 0.1 * acc;
    v -= dv;
    let dx = 0.1 * v;
    x += dx;
    let e = x * x;
    energy += e;

    energy + v * v
}

// The gradients as a person would write them: the forward pass keeping what the
// backward pass needs, then the chain rule from the output back.

/// Returns `small` and its gradient with respect to `(x, y, z)`.
#[inline]
fn small_by_hand(x: f64, y: f64, z: f64) -> (f64, [f64; 3]) {
    let u = x * y + z;
    let value = u.sin();
    let du = u.cos();
    (value, [du * y, du * x, du])
}

/// Returns `medium` and its gradient with respect to `(x, y, z)`.
#[inline]
fn medium_by_hand(x: f64, y: f64, z: f64) -> (f64, [f64; 3]) {
    let c = (x * y + z).exp();
    let d = 1.0 + c;
    let e = x / d;
    let f = y.tanh();
    let h = e * f - z;
    let k = h * h;
    let value = k.ln_1p();

    let dh = 2.0 * h / (1.0 + k);
    let de = dh * f;
    let df = dh * e;
    let db = -de * e / d * c;
    let dx = de / d + db * y;
    let dy = df * (1.0 - f * f) + db * x;
    let dz = db - dh;
    (value, [dx, dy, dz])
}

/// Returns `large` and its gradient with respect to `(x0, v0, k, c)`.
#[inline]
fn large_by_hand(x0: f64, v0: f64, k: f64, c: f64) -> (f64, [f64; 4]) {
    const STEPS: usize = 5;
    const DT: f64 = 0.1;
    let mut x = [0.0; STEPS + 1];
    let mut v = [0.0; STEPS + 1];
    x[0] = x0;
    v[0] = v0;
    let mut value = x0 * x0;
    for i in 0..STEPS {
        let acc = k * x[i].sin() + c * v[i];
        v[i + 1] = v[i] - DT * acc;
        x[i + 1] = x[i] + DT * v[i + 1];
        value += x[i + 1] * x[i + 1];
    }
    value += v[STEPS] * v[STEPS];

    let mut dx = 2.0 * x[STEPS];
    let mut dv = 2.0 * v[STEPS];
    let (mut dk, mut dc) = (0.0, 0.0);
    for i in (0..STEPS).rev() {
        // Through x' = x + dt v', then v' = v - dt (k sin x + c v).
        let dv_next = dv + DT * dx;
        let dacc = -DT * dv_next;
        dk += dacc * x[i].sin();
        dc += dacc * v[i];
        dx += dacc * k * x[i].cos() + 2.0 * x[i];
        dv = dv_next + dacc * c;
    }
    (value, [dx, dv, dk, dc])
}

// Inputs, and a check that the three ways agree before anything is timed.

const SMALL_AT: (f64, f64, f64) = (0.3, -1.2, 0.5);
const MEDIUM_AT: (f64, f64, f64) = (0.7, 0.4, -0.3);
const LARGE_AT: (f64, f64, f64, f64) = (0.9, -0.2, 2.5, 0.3);

/// Panics unless the generated and hand-written gradients agree and both values equal
/// the primal's, so the timings compare equal work.
fn check_agreement() {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs().max(b.abs()));

    let (x, y, z) = SMALL_AT;
    let (value, grad) = small_grad(x, y, z);
    let (hand_value, hand) = small_by_hand(x, y, z);
    assert_eq!(value, small(x, y, z));
    assert!(close(value, hand_value));
    for (generated, by_hand) in [grad.x, grad.y, grad.z].into_iter().zip(hand) {
        assert!(
            close(generated, by_hand),
            "small: {generated} against {by_hand}"
        );
    }

    let (x, y, z) = MEDIUM_AT;
    let (value, grad) = medium_grad(x, y, z);
    let (hand_value, hand) = medium_by_hand(x, y, z);
    assert_eq!(value, medium(x, y, z));
    assert!(close(value, hand_value));
    for (generated, by_hand) in [grad.x, grad.y, grad.z].into_iter().zip(hand) {
        assert!(
            close(generated, by_hand),
            "medium: {generated} against {by_hand}"
        );
    }

    let (x0, v0, k, c) = LARGE_AT;
    let (value, grad) = large_grad(x0, v0, k, c);
    let (hand_value, hand) = large_by_hand(x0, v0, k, c);
    assert_eq!(value, large(x0, v0, k, c));
    assert!(close(value, hand_value));
    for (generated, by_hand) in [grad.x0, grad.v0, grad.k, grad.c].into_iter().zip(hand) {
        assert!(
            close(generated, by_hand),
            "large: {generated} against {by_hand}"
        );
    }
}

// The benchmarks.

/// The criterion groups, with the number of stages of each function.
const GROUPS: [(&str, usize); 3] = [
    ("scalar_small", 3),
    ("scalar_medium", 10),
    ("scalar_large", 53),
];
const IDS: [&str; 3] = ["generated", "hand_written", "primal"];

fn bench_small(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group(GROUPS[0].0);
    let (x, y, z) = SMALL_AT;
    group.bench_function(IDS[0], |b| {
        b.iter(|| small_grad(black_box(x), black_box(y), black_box(z)))
    });
    group.bench_function(IDS[1], |b| {
        b.iter(|| small_by_hand(black_box(x), black_box(y), black_box(z)))
    });
    group.bench_function(IDS[2], |b| {
        b.iter(|| small(black_box(x), black_box(y), black_box(z)))
    });
    group.finish();
}

fn bench_medium(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group(GROUPS[1].0);
    let (x, y, z) = MEDIUM_AT;
    group.bench_function(IDS[0], |b| {
        b.iter(|| medium_grad(black_box(x), black_box(y), black_box(z)))
    });
    group.bench_function(IDS[1], |b| {
        b.iter(|| medium_by_hand(black_box(x), black_box(y), black_box(z)))
    });
    group.bench_function(IDS[2], |b| {
        b.iter(|| medium(black_box(x), black_box(y), black_box(z)))
    });
    group.finish();
}

fn bench_large(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group(GROUPS[2].0);
    let (x0, v0, k, c) = LARGE_AT;
    group.bench_function(IDS[0], |b| {
        b.iter(|| large_grad(black_box(x0), black_box(v0), black_box(k), black_box(c)))
    });
    group.bench_function(IDS[1], |b| {
        b.iter(|| large_by_hand(black_box(x0), black_box(v0), black_box(k), black_box(c)))
    });
    group.bench_function(IDS[2], |b| {
        b.iter(|| large(black_box(x0), black_box(v0), black_box(k), black_box(c)))
    });
    group.finish();
}

criterion_group!(benches, bench_small, bench_medium, bench_large);

// The report.

/// Returns the directory criterion writes its results to: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else `criterion/` in the target directory that contains
/// this executable (`target/release/deps/scalar-...`).
fn criterion_directory() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(Path::new(&target).join("criterion"));
    }
    let executable = std::env::current_exe().ok()?;
    Some(executable.parent()?.parent()?.parent()?.join("criterion"))
}

/// Reads the median time in nanoseconds of one benchmark from criterion's estimates,
/// which must have been written at `since` or later.
///
/// # Errors
///
/// Returns a message naming the file when it is missing, older than `since` (the
/// benchmark was filtered out of this run) or contains no median.
fn median_nanoseconds(
    directory: &Path,
    group: &str,
    id: &str,
    since: SystemTime,
) -> Result<f64, String> {
    let path = directory
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let modified = std::fs::metadata(&path)
        .and_then(|metadata| metadata.modified())
        .map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
    if modified < since {
        return Err(format!(
            "`{}` is from an earlier run; run every benchmark of the file",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|error| format!("cannot read `{}`: {error}", path.display()))?;
    let estimates: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| format!("cannot parse `{}`: {error}", path.display()))?;
    estimates["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("`{}` has no `median.point_estimate`", path.display()))
}

/// One row of the report: the medians of one group, in the order of [`IDS`].
struct Row {
    group: &'static str,
    stages: usize,
    generated: f64,
    hand_written: f64,
    primal: f64,
}

impl Row {
    fn against_hand_written(&self) -> f64 {
        self.generated / self.hand_written
    }

    fn against_primal(&self) -> f64 {
        self.generated / self.primal
    }
}

/// Ratio targets: generated code within 1.1x of hand-written code and at most 3x the
/// primal.
const TARGET_HAND_WRITTEN: f64 = 1.1;
const TARGET_PRIMAL: f64 = 3.0;

/// Renders the "Scalar gradients" section of `docs/benchmarks.md`.
fn render_section(rows: &[Row]) -> String {
    let mut text = String::from("## Scalar gradients\n\n");
    text.push_str(
        "Written by `cargo bench --bench scalar -- --warm-up-time 1 --measurement-time 3` \
         (benches/scalar.rs): median times of the generated `f_grad`, a gradient written by \
         hand for the same function, and the primal function alone, with inputs behind \
         `black_box`. Targets: generated within 1.1x of hand-written, at most 3x the primal.\n\n",
    );
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(
        text,
        "Machine: {} on {cores} cores.\n",
        std::env::consts::ARCH
    );
    text.push_str(
        "NOTE: single runs are noisy on a machine shared with builds. In five runs on the \
         2-core development machine, the medium function's generated / hand-written ratio \
         ranged from 0.93x to 1.17x and the small function's generated / primal ratio from \
         1.37x to 2.18x, so compare several runs before reading a miss.\n\n",
    );
    text.push_str("| function | stages | generated (ns) | hand-written (ns) | primal (ns) | generated / hand-written | generated / primal |\n");
    text.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        let mark = |ratio: f64, target: f64| if ratio <= target { "" } else { " (missed)" };
        let _ = writeln!(
            text,
            "| `{}` | {} | {:.2} | {:.2} | {:.2} | {:.2}x{} | {:.2}x{} |",
            row.group,
            row.stages,
            row.generated,
            row.hand_written,
            row.primal,
            row.against_hand_written(),
            mark(row.against_hand_written(), TARGET_HAND_WRITTEN),
            row.against_primal(),
            mark(row.against_primal(), TARGET_PRIMAL),
        );
    }
    text
}

/// Replaces the "Scalar gradients" section of `document` (up to the next `## ` heading)
/// with `section`, or appends it where there is none, leaving other sections alone.
fn replace_section(document: &str, section: &str) -> String {
    const HEADING: &str = "## Scalar gradients";
    let lines: Vec<&str> = document.lines().collect();
    let Some(start) = lines.iter().position(|line| line.trim_end() == HEADING) else {
        let mut text = document.trim_end().to_owned();
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str(section);
        return text;
    };
    let end = lines[start + 1..]
        .iter()
        .position(|line| line.starts_with("## "))
        .map_or(lines.len(), |offset| start + 1 + offset);
    let mut text = lines[..start].join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(section);
    if end < lines.len() {
        text.push('\n');
        text.push_str(&lines[end..].join("\n"));
        text.push('\n');
    }
    text
}

/// Reads the estimates written since `start`, prints the ratios and rewrites the section
/// of the report.
///
/// # Errors
///
/// Returns a message when an estimate is missing or stale (a filtered run) or the report
/// cannot be written.
fn report(start: SystemTime) -> Result<(), String> {
    let directory = criterion_directory().ok_or("cannot find criterion's output directory")?;
    let mut rows = Vec::new();
    for (group, stages) in GROUPS {
        let [generated, hand_written, primal] =
            [IDS[0], IDS[1], IDS[2]].map(|id| median_nanoseconds(&directory, group, id, start));
        rows.push(Row {
            group,
            stages,
            generated: generated?,
            hand_written: hand_written?,
            primal: primal?,
        });
    }
    for row in &rows {
        println!(
            "{:<14} {:>3} stages: generated/hand-written {:.3}x (target {TARGET_HAND_WRITTEN}x), generated/primal {:.3}x (target {TARGET_PRIMAL}x)",
            row.group,
            row.stages,
            row.against_hand_written(),
            row.against_primal(),
        );
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join("benchmarks.md");
    let document = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            String::from("# Benchmarks\n")
        }
        Err(error) => return Err(format!("cannot read `{}`: {error}", path.display())),
    };
    let updated = replace_section(&document, &render_section(&rows));
    std::fs::create_dir_all(path.parent().expect("the report has a parent directory"))
        .and_then(|()| std::fs::write(&path, updated))
        .map_err(|error| format!("cannot write `{}`: {error}", path.display()))?;
    println!(
        "wrote the \"Scalar gradients\" section of {}",
        path.display()
    );
    Ok(())
}

fn main() {
    let start = SystemTime::now();
    check_agreement();
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench` passes `--bench`; under `cargo test --benches` each benchmark runs
    // once, untimed, so there is nothing to report.
    if std::env::args().any(|argument| argument == "--bench") {
        if let Err(message) = report(start) {
            eprintln!("failed to write the report: {message}");
        }
    }
}
