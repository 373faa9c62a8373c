//! Pooling: hand-derived values, PyTorch's `ceil_mode` rule, ties and padding in max
//! pooling, the adjoint identity, central finite differences and the errors.

use ndarray::{Array, Array2, Array3, Array4, Dimension, array};
use proptest::prelude::*;
use stagegrad_runtime::{
    NoTangent, Padding, Pool2dSettings, avg_pool2d, avg_pool2d_vjp, global_avg_pool,
    global_avg_pool_vjp, max_pool2d, max_pool2d_vjp, try_avg_pool2d, try_global_avg_pool,
    try_max_pool2d,
};

fn random<D: Dimension>(shape: D, seed: u64) -> Array<f64, D> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array::from_shape_simple_fn(shape, || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    })
}

fn dot<D: Dimension>(a: &Array<f64, D>, b: &Array<f64, D>) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assert_close<D: Dimension>(actual: &Array<f64, D>, expected: &Array<f64, D>, tolerance: f64) {
    assert_eq!(actual.shape(), expected.shape(), "shapes differ");
    for ((index, a), e) in actual.indexed_iter().zip(expected) {
        assert!(
            (a - e).abs() <= tolerance,
            "at {index:?}: {a} differs from {e}"
        );
    }
}

fn check_gradient<D: Dimension, E: Dimension>(
    x: &Array<f64, D>,
    f: impl Fn(&Array<f64, D>) -> Array<f64, E>,
    cotangent: &Array<f64, E>,
    gradient: &Array<f64, D>,
) {
    assert_eq!(
        x.shape(),
        gradient.shape(),
        "the gradient has the argument's shape"
    );
    let h = 1e-7;
    for index in 0..x.len() {
        let mut plus = x.clone();
        let mut minus = x.clone();
        plus.as_slice_mut().unwrap()[index] += h;
        minus.as_slice_mut().unwrap()[index] -= h;
        let numeric = (dot(&f(&plus), cotangent) - dot(&f(&minus), cotangent)) / (2.0 * h);
        let analytic = gradient.as_slice().unwrap()[index];
        assert!(
            (numeric - analytic).abs() <= 1e-6 * (1.0 + numeric.abs()),
            "element {index}: finite difference {numeric}, pullback {analytic}"
        );
    }
}

/// PyTorch's output length, written from its definition.
fn reference_len(
    input: usize,
    kernel: usize,
    stride: usize,
    before: usize,
    after: usize,
    dilation: usize,
    ceil: bool,
) -> usize {
    let span = (input + before + after) as f64 - (dilation * (kernel - 1) + 1) as f64;
    let steps = span / stride as f64;
    let mut output = if ceil { steps.ceil() } else { steps.floor() } as usize + 1;
    if ceil && (output - 1) * stride >= input + before {
        output -= 1;
    }
    output
}

/// Max and average pooling of one plane by direct loops over PyTorch's window bounds.
fn reference_plane(x: &Array2<f64>, s: &Pool2dSettings, max: bool) -> Array2<f64> {
    let (h, w) = x.dim();
    let (top, bottom) = s.padding[0]
        .amounts(h, s.kernel[0], s.stride[0], s.dilation[0])
        .unwrap();
    let (left, right) = s.padding[1]
        .amounts(w, s.kernel[1], s.stride[1], s.dilation[1])
        .unwrap();
    let oh = reference_len(
        h,
        s.kernel[0],
        s.stride[0],
        top,
        bottom,
        s.dilation[0],
        s.ceil_mode,
    );
    let ow = reference_len(
        w,
        s.kernel[1],
        s.stride[1],
        left,
        right,
        s.dilation[1],
        s.ceil_mode,
    );
    Array2::from_shape_fn((oh, ow), |(i, j)| {
        let r0 = (i * s.stride[0]) as isize - top as isize;
        let c0 = (j * s.stride[1]) as isize - left as isize;
        if max {
            let mut best = f64::NEG_INFINITY;
            for p in 0..s.kernel[0] {
                for q in 0..s.kernel[1] {
                    let r = r0 + (p * s.dilation[0]) as isize;
                    let c = c0 + (q * s.dilation[1]) as isize;
                    if r >= 0 && c >= 0 && (r as usize) < h && (c as usize) < w {
                        best = best.max(x[[r as usize, c as usize]]);
                    }
                }
            }
            best
        } else {
            let r1 = (r0 + s.kernel[0] as isize).min((h + bottom) as isize);
            let c1 = (c0 + s.kernel[1] as isize).min((w + right) as isize);
            let pool_size = (r1 - r0) * (c1 - c0);
            let (r0, c0, r1, c1) = (r0.max(0), c0.max(0), r1.min(h as isize), c1.min(w as isize));
            let mut sum = 0.0;
            for r in r0..r1 {
                for c in c0..c1 {
                    sum += x[[r as usize, c as usize]];
                }
            }
            let count = if s.count_include_pad {
                pool_size
            } else {
                (r1 - r0) * (c1 - c0)
            };
            sum / count as f64
        }
    })
}

#[test]
fn max_pool_values() {
    let image = array![
        [1.0, 2.0, 3.0, 4.0],
        [5.0, 6.0, 7.0, 8.0],
        [9.0, 10.0, 11.0, 12.0],
        [13.0, 14.0, 15.0, 16.0]
    ];
    assert_eq!(
        max_pool2d(&image, &Pool2dSettings::new(2)),
        array![[6.0, 8.0], [14.0, 16.0]]
    );
    assert_eq!(
        max_pool2d(&image, &Pool2dSettings::new(3).stride(1)),
        array![[11.0, 12.0], [15.0, 16.0]]
    );
    assert_eq!(
        max_pool2d(&image, &Pool2dSettings::new(2).dilation(2).stride(1)),
        array![[11.0, 12.0], [15.0, 16.0]]
    );
}

#[test]
fn max_pool_ties_go_to_first_maximum() {
    let image = array![[1.0, 1.0], [1.0, 1.0]];
    let (y, pullback) = max_pool2d_vjp(&image, &Pool2dSettings::new(2));
    assert_eq!(y, array![[1.0]]);
    let (dx, NoTangent) = pullback(array![[5.0]]);
    assert_eq!(dx, array![[5.0, 0.0], [0.0, 0.0]]);
    let row_tie = array![[0.0, 2.0], [2.0, 0.0]];
    let (_, pullback) = max_pool2d_vjp(&row_tie, &Pool2dSettings::new(2));
    assert_eq!(pullback(array![[1.0]]).0, array![[0.0, 1.0], [0.0, 0.0]]);
}

#[test]
fn max_pool_padding_never_wins() {
    let image = array![[-3.0, -2.0], [-5.0, -4.0]];
    let settings = Pool2dSettings::new(2).stride(1).padding(1);
    let (y, pullback) = max_pool2d_vjp(&image, &settings);
    assert_eq!(
        y,
        array![[-3.0, -2.0, -2.0], [-3.0, -2.0, -2.0], [-5.0, -4.0, -4.0]]
    );
    let (dx, _) = pullback(Array2::ones((3, 3)));
    assert_eq!(dx, array![[2.0, 4.0], [1.0, 2.0]]);
}

#[test]
fn window_of_only_padding_gives_negative_infinity() {
    // Input width 1, kernel 2 with dilation 2 and padding 1: the first window reads
    // positions -1 and 1, both padding.
    let x = array![[4.0]];
    let settings = Pool2dSettings::kernel_hw(1, 2)
        .dilation_hw(1, 2)
        .padding_hw(0, 1)
        .stride(1);
    let (y, pullback) = max_pool2d_vjp(&x, &settings);
    assert_eq!(y, array![[f64::NEG_INFINITY]]);
    assert_eq!(pullback(array![[1.0]]).0, array![[0.0]]);
}

#[test]
fn max_pool_overlapping_windows_sum_gradients() {
    let image = array![[0.0, 9.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]];
    let (_, pullback) = max_pool2d_vjp(&image, &Pool2dSettings::new(2).stride(1));
    let (dx, _) = pullback(array![[1.0, 2.0], [3.0, 4.0]]);
    assert_eq!(dx[[0, 1]], 3.0);
    assert_eq!(dx.sum(), 10.0);
}

#[test]
fn avg_pool_values() {
    let image = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
    assert_eq!(
        avg_pool2d(&image, &Pool2dSettings::new(2).stride(1)),
        array![[3.0, 4.0], [6.0, 7.0]]
    );
    let padded = Pool2dSettings::new(2).padding(1);
    assert_eq!(
        avg_pool2d(&image, &padded),
        array![[0.25, 1.25], [2.75, 7.0]]
    );
    assert_eq!(
        avg_pool2d(&image, &padded.count_include_pad(false)),
        array![[1.0, 2.5], [5.5, 7.0]]
    );
}

#[test]
fn ceil_mode_follows_pytorch() {
    let row = Array2::from_shape_vec((1, 6), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let settings = Pool2dSettings::kernel_hw(1, 3)
        .stride_hw(1, 2)
        .ceil_mode(true);
    // The last window starts at 4 and is clipped to [4, 5].
    assert_eq!(avg_pool2d(&row, &settings), array![[1.0, 3.0, 4.5]]);
    assert_eq!(max_pool2d(&row, &settings), array![[2.0, 4.0, 5.0]]);
    assert_eq!(
        avg_pool2d(&row, &settings.ceil_mode(false)),
        array![[1.0, 3.0]]
    );
    // Input 5, kernel 2, stride 2, padding 1: a fourth window would start in the
    // trailing padding, so it is dropped.
    let x = Array2::from_shape_vec((1, 5), vec![1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
    let settings = Pool2dSettings::kernel_hw(1, 2)
        .padding_hw(0, 1)
        .ceil_mode(true);
    assert_eq!(max_pool2d(&x, &settings), array![[1.0, 3.0, 5.0]]);
    assert_eq!(avg_pool2d(&x, &settings), array![[0.5, 2.5, 4.5]]);
}

#[test]
fn pooling_accepts_two_three_and_four_axes() {
    let x4 = random(ndarray::Ix4(2, 3, 6, 5), 1);
    let settings = Pool2dSettings::new(2);
    let y4 = max_pool2d(&x4, &settings);
    assert_eq!(y4.shape(), &[2, 3, 3, 2]);
    let x3: Array3<f64> = x4.index_axis(ndarray::Axis(0), 1).to_owned();
    assert_eq!(
        max_pool2d(&x3, &settings),
        y4.index_axis(ndarray::Axis(0), 1)
    );
    let x2: Array2<f64> = x3.index_axis(ndarray::Axis(0), 2).to_owned();
    assert_eq!(
        avg_pool2d(&x2, &settings),
        avg_pool2d(&x4, &settings).slice(ndarray::s![1, 2, .., ..])
    );
}

#[test]
fn global_avg_pool_and_gradient() {
    let input =
        Array4::from_shape_vec((1, 2, 2, 2), vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0]).unwrap();
    let (y, pullback) = global_avg_pool_vjp(&input);
    assert_eq!(y, array![[2.5, 2.0]]);
    let (dx,) = pullback(array![[4.0, -8.0]]);
    assert_eq!(
        dx,
        Array4::from_shape_vec(
            (1, 2, 2, 2),
            vec![1.0, 1.0, 1.0, 1.0, -2.0, -2.0, -2.0, -2.0]
        )
        .unwrap()
    );
    let x = random(ndarray::Ix4(2, 3, 3, 2), 4);
    let (y, pullback) = global_avg_pool_vjp(&x);
    let dy = random(y.raw_dim(), 5);
    let (dx,) = pullback(dy.clone());
    assert!((dot(&y, &dy) - dot(&x, &dx)).abs() <= 1e-12);
    check_gradient(&x, global_avg_pool, &dy, &dx);
}

#[test]
fn pooling_errors_name_shapes() {
    let x = Array4::<f64>::zeros((1, 2, 5, 5));
    let text = try_max_pool2d(&x, &Pool2dSettings::new(2).stride(0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid arguments to `max_pool2d`: height axis: stride must be positive, found 0 (input [1, 2, 5, 5], kernel [2, 2])"
    );
    let text = try_max_pool2d(&x, &Pool2dSettings::new(3).padding(2))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("padding (2, 2) exceeds half the dilated window 1"),
        "{text}"
    );
    let text = try_avg_pool2d(&x, &Pool2dSettings::new(2).dilation(2))
        .unwrap_err()
        .to_string();
    assert!(text.contains("dilation must be 1, found [2, 2]"), "{text}");
    let text = try_avg_pool2d(&x, &Pool2dSettings::new(6))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("dilated kernel extent 6 exceeds the padded input length 5"),
        "{text}"
    );
    let empty = Array4::<f64>::zeros((1, 2, 0, 5));
    let text = try_global_avg_pool(&empty).unwrap_err().to_string();
    assert_eq!(
        text,
        "invalid arguments to `global_avg_pool`: the planes to average are empty (input [1, 2, 0, 5])"
    );
}

#[test]
#[should_panic(
    expected = "invalid arguments to `avg_pool2d`: width axis: kernel length must be positive, found 0"
)]
fn avg_pool_panics_on_zero_kernel() {
    let _ = avg_pool2d(
        &Array2::<f64>::zeros((4, 4)),
        &Pool2dSettings::kernel_hw(2, 0).stride(1),
    );
}

fn settings() -> impl Strategy<Value = Pool2dSettings> {
    let padding = prop_oneof![
        Just(Padding::Valid),
        Just(Padding::SameUpper),
        (0usize..2).prop_map(Padding::Symmetric),
        (0usize..2, 0usize..2).prop_map(|(a, b)| Padding::Explicit(a, b)),
    ];
    (
        1usize..4,
        1usize..4,
        1usize..4,
        1usize..4,
        padding.clone(),
        padding,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kh, kw, sh, sw, ph, pw, ceil_mode, count_include_pad)| {
            Pool2dSettings::kernel_hw(kh, kw)
                .stride_hw(sh, sw)
                .padding_hw(ph, pw)
                .ceil_mode(ceil_mode)
                .count_include_pad(count_include_pad)
        })
}

/// A random input with settings for average pooling and dilated settings for max pooling.
fn case() -> impl Strategy<Value = (Array4<f64>, Pool2dSettings, Pool2dSettings)> {
    (
        settings(),
        1usize..3,
        1usize..3,
        1usize..8,
        1usize..8,
        1usize..3,
        1usize..3,
        any::<u64>(),
    )
        .prop_filter_map(
            "settings that fit the shape",
            |(settings, n, c, h, w, dh, dw, seed)| {
                let x = random(ndarray::Ix4(n, c, h, w), seed);
                let dilated = settings.dilation_hw(dh, dw);
                try_avg_pool2d(&x, &settings).ok()?;
                let max = try_max_pool2d(&x, &dilated).ok()?;
                // A dilated window can step over a short input and read only padding; that
                // case has its own test.
                if max.iter().any(|v| v.is_infinite()) {
                    return None;
                }
                Some((x, settings, dilated))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pooling_matches_reference((x, settings, dilated) in case()) {
        let max = max_pool2d(&x, &dilated);
        let avg = avg_pool2d(&x, &settings);
        for n in 0..x.shape()[0] {
            for c in 0..x.shape()[1] {
                let plane = x.slice(ndarray::s![n, c, .., ..]).to_owned();
                assert_close(&max.slice(ndarray::s![n, c, .., ..]).to_owned(), &reference_plane(&plane, &dilated, true), 0.0);
                assert_close(&avg.slice(ndarray::s![n, c, .., ..]).to_owned(), &reference_plane(&plane, &settings, false), 1e-12);
            }
        }
    }

    #[test]
    fn pooling_adjoint_identity((x, settings, dilated) in case(), seed in any::<u64>()) {
        let (y, pullback) = max_pool2d_vjp(&x, &dilated);
        let dy = random(y.raw_dim(), seed);
        let (dx, NoTangent) = pullback(dy.clone());
        // Max pooling selects one input per window: <S x, dy> = <x, Sᵀ dy>.
        assert!((dot(&y, &dy) - dot(&x, &dx)).abs() <= 1e-9);
        let (y, pullback) = avg_pool2d_vjp(&x, &settings);
        let dy = random(y.raw_dim(), seed);
        let (dx, NoTangent) = pullback(dy.clone());
        assert!((dot(&y, &dy) - dot(&x, &dx)).abs() <= 1e-9);
    }

    #[test]
    fn pooling_finite_differences((x, settings, dilated) in case(), seed in any::<u64>()) {
        let (y, pullback) = avg_pool2d_vjp(&x, &settings);
        let dy = random(y.raw_dim(), seed);
        check_gradient(&x, |x| avg_pool2d(x, &settings), &dy, &pullback(dy.clone()).0);
        let (y, pullback) = max_pool2d_vjp(&x, &dilated);
        let dy = random(y.raw_dim(), seed);
        check_gradient(&x, |x| max_pool2d(x, &dilated), &dy, &pullback(dy.clone()).0);
    }
}

#[test]
fn large_pooling_runs_in_parallel_and_matches_serial() {
    let x = random(ndarray::Ix4(4, 16, 32, 32), 9);
    let settings = Pool2dSettings::new(3).stride(2).padding(1);
    let (y, pullback) = max_pool2d_vjp(&x, &settings);
    let dy = random(y.raw_dim(), 10);
    let (dx, _) = pullback(dy.clone());
    for (n, c) in [(0, 0), (3, 15)] {
        let plane = x.slice(ndarray::s![n..n + 1, c..c + 1, .., ..]).to_owned();
        let (y_plane, pullback_plane) = max_pool2d_vjp(&plane, &settings);
        assert_eq!(
            y_plane.slice(ndarray::s![0, 0, .., ..]),
            y.slice(ndarray::s![n, c, .., ..])
        );
        let (dx_plane, _) =
            pullback_plane(dy.slice(ndarray::s![n..n + 1, c..c + 1, .., ..]).to_owned());
        assert_eq!(
            dx_plane.slice(ndarray::s![0, 0, .., ..]),
            dx.slice(ndarray::s![n, c, .., ..])
        );
    }
    assert!((dot(&y, &dy) - dot(&x, &dx)).abs() <= 1e-9);
}
