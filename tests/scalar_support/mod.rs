//! Checks shared by the scalar tests: central finite differences and a comparison that
//! prints every coordinate when it fails.

/// Returns the step of the central difference at `x`: `1e-6`, scaled by `|x|` where that is larger
/// than 1, so the step stays well above the spacing of floats around `x`.
pub fn step(x: f64) -> f64 {
    1e-6 * x.abs().max(1.0)
}

/// Central finite differences of `f` at `point`, one partial derivative per coordinate:
/// `(f(x + h eᵢ) - f(x - h eᵢ)) / 2h`, with `2h` taken as the distance the perturbed
/// coordinates really are apart after rounding.
pub fn central_differences(f: impl Fn(&[f64]) -> f64, point: &[f64]) -> Vec<f64> {
    central_differences_with(f, point, step)
}

/// [`central_differences`] with the step chosen by `step`, for functions that compute in
/// `f32`, where a step of `1e-6` is below the rounding noise.
pub fn central_differences_with(
    f: impl Fn(&[f64]) -> f64,
    point: &[f64],
    step: impl Fn(f64) -> f64,
) -> Vec<f64> {
    (0..point.len())
        .map(|index| {
            let h = step(point[index]);
            let mut above = point.to_vec();
            let mut below = point.to_vec();
            above[index] += h;
            below[index] -= h;
            (f(&above) - f(&below)) / (above[index] - below[index])
        })
        .collect()
}

/// Returns whether `actual` is within `absolute + relative · max(|actual|, |expected|)` of
/// `expected`; two infinities of the same sign count as equal.
pub fn close(actual: f64, expected: f64, relative: f64, absolute: f64) -> bool {
    if actual == expected {
        return true;
    }
    let scale = actual.abs().max(expected.abs());
    (actual - expected).abs() <= absolute + relative * scale
}

/// Asserts that every coordinate of `actual` is close to `expected`, naming the check and
/// printing both vectors when one is not.
#[track_caller]
pub fn assert_all_close(
    what: &str,
    actual: &[f64],
    expected: &[f64],
    relative: f64,
    absolute: f64,
) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{what}: {} values against {} expected",
        actual.len(),
        expected.len()
    );
    let bad: Vec<usize> = (0..actual.len())
        .filter(|&index| !close(actual[index], expected[index], relative, absolute))
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: coordinates {bad:?} differ\n  actual   {actual:?}\n  expected {expected:?}"
    );
}

/// Asserts that a generated gradient equals the hand-derived one (up to rounding) and
/// matches central finite differences of `primal` at `point`.
///
/// The finite differences are trusted to `1e-5` relative, plus an absolute allowance for
/// cancellation that grows with the size of the function's value.
#[track_caller]
pub fn assert_gradient(
    what: &str,
    point: &[f64],
    generated: &[f64],
    hand: &[f64],
    primal: impl Fn(&[f64]) -> f64,
) {
    assert_all_close(
        &format!("{what}: generated against hand-derived"),
        generated,
        hand,
        1e-10,
        1e-12,
    );
    let value = primal(point);
    let numeric = central_differences(&primal, point);
    let absolute = 1e-7 * (1.0 + value.abs());
    assert_all_close(
        &format!("{what}: generated against finite differences at {point:?}"),
        generated,
        &numeric,
        1e-5,
        absolute,
    );
}
