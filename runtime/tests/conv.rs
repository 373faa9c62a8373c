//! Convolution: hand-derived values, the output-size rule, a direct loop reference,
//! the adjoint identity, central finite differences and the shape errors.

use approx::assert_abs_diff_eq;
use ndarray::{Array, Array1, Array2, Array3, Array4, ArrayD, Dimension, IxDyn, array, s};
use proptest::prelude::*;
use stagegrad_runtime::{
    Conv1dSettings, Conv2dSettings, Differentiable, NoTangent, Padding, PaddingMode, conv1d,
    conv1d_ncw, conv1d_ncw_vjp, conv1d_vjp, conv2d, conv2d_nchw, conv2d_nchw_input_grad,
    conv2d_nchw_vjp, conv2d_nchw_weight_grad, conv2d_vjp, output_len, try_conv1d, try_conv1d_ncw,
    try_conv2d, try_conv2d_nchw, try_conv2d_nchw_input_grad,
};

/// Deterministic values in [-1, 1) from a seed (xorshift), so proptest only draws shapes.
fn random<D: Dimension>(shape: D, seed: u64) -> Array<f64, D> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array::from_shape_simple_fn(shape, || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    })
}

/// Asserts equal shapes and elements within `tolerance`.
fn assert_close<D: Dimension>(actual: &Array<f64, D>, expected: &Array<f64, D>, tolerance: f64) {
    assert_eq!(actual.shape(), expected.shape(), "shapes differ");
    for ((index, a), e) in actual.indexed_iter().zip(expected) {
        assert!(
            (a - e).abs() <= tolerance,
            "at {index:?}: {a} differs from {e}"
        );
    }
}

fn dot<D: Dimension>(a: &Array<f64, D>, b: &Array<f64, D>) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The input element a padded position copies, written independently of the library.
fn padded_value(plane: &ndarray::ArrayView2<f64>, i: isize, j: isize, mode: PaddingMode) -> f64 {
    let (h, w) = (plane.nrows() as isize, plane.ncols() as isize);
    let map = |p: isize, n: isize| -> Option<isize> {
        match mode {
            _ if (0..n).contains(&p) => Some(p),
            PaddingMode::Zeros => None,
            PaddingMode::Reflect => Some(if p < 0 { -p } else { 2 * n - 2 - p }),
            PaddingMode::Replicate => Some(p.clamp(0, n - 1)),
            PaddingMode::Circular => Some(((p % n) + n) % n),
        }
    };
    match (map(i, h), map(j, w)) {
        (Some(r), Some(c)) => plane[[r as usize, c as usize]],
        _ => 0.0,
    }
}

/// Direct loops over every index: batch, output channel, output row and column, input
/// channel of the group, kernel row and column.
fn reference_nchw(
    x: &Array4<f64>,
    w: &Array4<f64>,
    b: Option<&Array1<f64>>,
    settings: &Conv2dSettings,
) -> Array4<f64> {
    let (n, _, h, wd) = x.dim();
    let (o, cg, kh, kw) = w.dim();
    let og = o / settings.groups;
    let [sh, sw] = settings.stride;
    let [dh, dw] = settings.dilation;
    let (top, bottom) = settings.padding[0].amounts(h, kh, sh, dh).unwrap();
    let (left, right) = settings.padding[1].amounts(wd, kw, sw, dw).unwrap();
    let oh = (h + top + bottom - dh * (kh - 1) - 1) / sh + 1;
    let ow = (wd + left + right - dw * (kw - 1) - 1) / sw + 1;
    let mut y = Array4::zeros((n, o, oh, ow));
    for ni in 0..n {
        for oi in 0..o {
            let group = oi / og;
            for i in 0..oh {
                for j in 0..ow {
                    let mut sum = b.map_or(0.0, |b| b[oi]);
                    for ci in 0..cg {
                        let plane = x.slice(s![ni, group * cg + ci, .., ..]);
                        for p in 0..kh {
                            for q in 0..kw {
                                let r = (i * sh + p * dh) as isize - top as isize;
                                let c = (j * sw + q * dw) as isize - left as isize;
                                sum += w[[oi, ci, p, q]]
                                    * padded_value(&plane, r, c, settings.padding_mode);
                            }
                        }
                    }
                    y[[ni, oi, i, j]] = sum;
                }
            }
        }
    }
    y
}

/// Central differences of `y -> <f(x), cotangent>` at every element of `x`, compared with
/// the gradient the pullback returned.
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
    let h = 1e-6;
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

#[test]
fn seed_1d_valid_gives_seven_outputs() {
    let x = array![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let k = array![2.0, -1.0, 0.5];
    let y = conv1d(&x, &k, &Conv1dSettings::new());
    assert_eq!(y.len(), 7);
    for i in 0..7 {
        assert_eq!(y[i], 2.0 * x[i] - x[i + 1] + 0.5 * x[i + 2]);
    }
}

#[test]
fn seed_1d_padding_one_stride_two() {
    let x = array![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    let k = array![2.0, -1.0, 0.5];
    let y = conv1d(&x, &k, &Conv1dSettings::new().padding(1).stride(2));
    assert_eq!(y.len(), 5);
    // Padded: [0, x1, ..., x9, 0]; window i starts at padded position 2i.
    assert_eq!(y[0], -x[0] + 0.5 * x[1]);
    assert_eq!(y[1], 2.0 * x[1] - x[2] + 0.5 * x[3]);
    assert_eq!(y[4], 2.0 * x[7] - x[8]);
}

#[test]
fn seed_2d_box_filter() {
    let image = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
    let box_filter = Array2::from_elem((2, 2), 0.25);
    assert_eq!(
        conv2d(&image, &box_filter, &Conv2dSettings::new()),
        array![[3.0, 4.0], [6.0, 7.0]]
    );
}

#[test]
fn box_filter_in_f32() {
    let image = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
    let box_filter = Array2::from_elem((2, 2), 0.25f32);
    assert_eq!(
        conv2d(&image, &box_filter, &Conv2dSettings::new()),
        array![[3.0f32, 4.0], [6.0, 7.0]]
    );
}

#[test]
fn conv2d_accepts_strided_views() {
    let big = random(ndarray::Ix2(8, 10), 3);
    let view = big.slice(s![..;2, 1..;2]);
    let transposed = big.t();
    let kernel = random(ndarray::Ix2(2, 3), 4);
    let settings = Conv2dSettings::new().padding(1);
    assert_eq!(
        conv2d(&view, &kernel, &settings),
        conv2d(&view.to_owned(), &kernel, &settings)
    );
    assert_eq!(
        conv2d(&transposed, &kernel.t(), &settings),
        conv2d(&transposed.to_owned(), &kernel.t().to_owned(), &settings)
    );
}

#[test]
fn output_len_table() {
    use Padding::*;
    // (input, kernel, padding, stride, dilation, expected)
    let cases = [
        (9, 3, Valid, 1, 1, 7),
        (9, 3, Symmetric(1), 2, 1, 5),
        (9, 3, Symmetric(1), 1, 1, 9),
        (10, 3, Symmetric(1), 2, 1, 5),
        (9, 4, Same, 1, 1, 9),
        (8, 2, Same, 1, 1, 8),
        (5, 6, Same, 1, 1, 5),
        (9, 3, Same, 1, 3, 9),
        (9, 3, Valid, 1, 2, 5),
        (9, 3, Valid, 1, 4, 1),
        (9, 3, Explicit(0, 2), 1, 1, 9),
        (9, 3, Explicit(2, 0), 3, 1, 3),
        (2, 5, Symmetric(2), 1, 1, 2),
        (7, 3, SameUpper, 2, 1, 4),
        (8, 4, SameUpper, 3, 1, 3),
        (1, 3, SameUpper, 2, 1, 1),
        (9, 9, Valid, 1, 1, 1),
        (9, 1, Valid, 4, 1, 3),
    ];
    for (input, kernel, padding, stride, dilation, expected) in cases {
        assert_eq!(
            output_len(input, kernel, padding, stride, dilation).unwrap(),
            expected,
            "output_len({input}, {kernel}, {padding:?}, {stride}, {dilation})"
        );
    }
}

#[test]
fn same_padding_puts_odd_element_after() {
    assert_eq!(Padding::Same.amounts(9, 4, 1, 1).unwrap(), (1, 2));
    assert_eq!(Padding::Same.amounts(9, 3, 1, 2).unwrap(), (2, 2));
    assert_eq!(Padding::SameUpper.amounts(7, 3, 2, 1).unwrap(), (1, 1));
    assert_eq!(Padding::SameUpper.amounts(8, 4, 3, 1).unwrap(), (1, 1));
    assert_eq!(Padding::SameUpper.amounts(6, 2, 2, 1).unwrap(), (0, 0));
}

#[test]
fn output_len_errors() {
    let cases = [
        (
            3,
            5,
            Padding::Valid,
            1,
            1,
            "dilated kernel extent 5 exceeds the padded input length 3",
        ),
        (
            5,
            3,
            Padding::Valid,
            1,
            3,
            "dilated kernel extent 7 exceeds the padded input length 5",
        ),
        (
            5,
            3,
            Padding::Valid,
            0,
            1,
            "stride must be positive, found 0",
        ),
        (
            5,
            3,
            Padding::Valid,
            1,
            0,
            "dilation must be positive, found 0",
        ),
        (
            5,
            0,
            Padding::Valid,
            1,
            1,
            "kernel length must be positive, found 0",
        ),
        (
            5,
            3,
            Padding::Same,
            2,
            1,
            "padding `Same` requires stride 1, found stride 2",
        ),
        (
            0,
            3,
            Padding::Same,
            1,
            1,
            "exceeds the padded input length 2",
        ),
    ];
    for (input, kernel, padding, stride, dilation, message) in cases {
        let error = output_len(input, kernel, padding, stride, dilation).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(message), "{text}");
        assert!(text.contains(&format!("input [{input}]")), "{text}");
        assert!(text.contains(&format!("kernel [{kernel}]")), "{text}");
    }
}

#[test]
fn gradient_has_full_input_shape_when_stride_skips_tail() {
    // (10 + 0 - 3) is not a multiple of 2: the last input is never read.
    let x = Array1::from_iter((1..=10).map(f64::from));
    let k = array![1.0, 2.0, 3.0];
    let settings = Conv1dSettings::new().stride(2);
    let (y, pullback) = conv1d_vjp(&x, &k, &settings);
    assert_eq!(y.len(), 4);
    let (dx, dk, NoTangent) = pullback(Array1::ones(4));
    assert_eq!(dx, array![1.0, 2.0, 4.0, 2.0, 4.0, 2.0, 4.0, 2.0, 3.0, 0.0]);
    assert_eq!(
        dk,
        array![
            1.0 + 3.0 + 5.0 + 7.0,
            2.0 + 4.0 + 6.0 + 8.0,
            3.0 + 5.0 + 7.0 + 9.0
        ]
    );
    // The pullback can run twice.
    assert_eq!(pullback(Array1::ones(4)).0, dx);
}

#[test]
fn conv2d_gradient_tail_rows_are_zero() {
    let x = random(ndarray::Ix2(7, 6), 1);
    let k = random(ndarray::Ix2(2, 2), 2);
    let (y, pullback) = conv2d_vjp(&x, &k, &Conv2dSettings::new().stride(3));
    assert_eq!(y.dim(), (2, 2));
    let (dx, _, _) = pullback(Array2::ones((2, 2)));
    assert_eq!(dx.dim(), (7, 6));
    assert!(dx.slice(s![5.., ..]).iter().all(|&v| v == 0.0));
    assert!(dx.slice(s![.., 5..]).iter().all(|&v| v == 0.0));
}

#[test]
fn reflect_padding_values() {
    let x = array![1.0, 2.0, 3.0, 4.0];
    let k = array![1.0, 0.0, 0.0];
    let pick_first = |mode| conv1d(&x, &k, &Conv1dSettings::new().padding(2).padding_mode(mode));
    assert_eq!(
        pick_first(PaddingMode::Zeros),
        array![0.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        pick_first(PaddingMode::Reflect),
        array![3.0, 2.0, 1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        pick_first(PaddingMode::Replicate),
        array![1.0, 1.0, 1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(
        pick_first(PaddingMode::Circular),
        array![3.0, 4.0, 1.0, 2.0, 3.0, 4.0]
    );
}

#[test]
fn padding_mode_limits_are_errors() {
    let x = Array1::<f64>::zeros(3);
    let k = Array1::<f64>::ones(3);
    let reflect = Conv1dSettings::new()
        .padding(3)
        .padding_mode(PaddingMode::Reflect);
    let text = try_conv1d(&x, &k, &reflect).unwrap_err().to_string();
    assert!(text.contains("`Reflect` padding (3, 3) on the width axis needs each side smaller than the input length 3"), "{text}");
    assert!(
        try_conv1d(
            &x,
            &k,
            &Conv1dSettings::new()
                .padding(2)
                .padding_mode(PaddingMode::Reflect)
        )
        .is_ok()
    );
    let circular = Conv1dSettings::new()
        .padding(4)
        .padding_mode(PaddingMode::Circular);
    assert!(
        try_conv1d(&x, &k, &circular)
            .unwrap_err()
            .to_string()
            .contains("no larger than the input length 3")
    );
    assert!(
        try_conv1d(
            &x,
            &k,
            &Conv1dSettings::new()
                .padding(3)
                .padding_mode(PaddingMode::Circular)
        )
        .is_ok()
    );
    assert!(
        try_conv1d(
            &x,
            &k,
            &Conv1dSettings::new()
                .padding(7)
                .padding_mode(PaddingMode::Replicate)
        )
        .is_ok()
    );
}

#[test]
fn mismatched_channels_name_every_shape() {
    let x = Array4::<f64>::zeros((2, 3, 5, 5));
    let w = Array4::<f64>::zeros((4, 2, 3, 3));
    let text = try_conv2d_nchw(&x, &w, None, &Conv2dSettings::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid arguments to `conv2d_nchw`: the input has 3 channels but the weight expects 2 (2 per group x 1 groups) (input [2, 3, 5, 5], weight [4, 2, 3, 3])"
    );
}

#[test]
fn groups_must_divide_channels() {
    let x = Array4::<f64>::zeros((1, 6, 5, 5));
    let w = Array4::<f64>::zeros((4, 2, 3, 3));
    let error = try_conv2d_nchw(&x, &w, None, &Conv2dSettings::new().groups(4)).unwrap_err();
    assert_eq!(
        error.reason(),
        "groups 4 does not divide the 6 input channels"
    );
    assert_eq!(error.shapes()[0], ("input", vec![1, 6, 5, 5]));
    assert_eq!(error.shapes()[1], ("weight", vec![4, 2, 3, 3]));
    let error = try_conv2d_nchw(&x, &w, None, &Conv2dSettings::new().groups(3)).unwrap_err();
    assert_eq!(
        error.reason(),
        "groups 3 does not divide the 4 output channels of the weight"
    );
    let error = try_conv2d_nchw(&x, &w, None, &Conv2dSettings::new().groups(0)).unwrap_err();
    assert_eq!(error.reason(), "groups must be positive, found 0");
}

#[test]
fn wrong_bias_length_names_bias() {
    let x = Array3::<f64>::zeros((2, 3, 8));
    let w = Array3::<f64>::zeros((4, 3, 3));
    let bias = Array1::zeros(5);
    let text = try_conv1d_ncw(&x, &w, Some(&bias), &Conv1dSettings::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid arguments to `conv1d_ncw`: the bias has length 5 but the weight has 4 output channels (input [2, 3, 8], weight [4, 3, 3], bias [5])"
    );
}

#[test]
fn zero_stride_is_an_error() {
    let x = Array2::<f64>::zeros((5, 5));
    let k = Array2::<f64>::zeros((3, 3));
    let text = try_conv2d(&x, &k, &Conv2dSettings::new().stride_hw(1, 0))
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid arguments to `conv2d`: width axis: stride must be positive, found 0 (input [5, 5], kernel [3, 3])"
    );
}

#[test]
#[should_panic(
    expected = "invalid arguments to `conv2d_nchw`: the input has 3 channels but the weight expects 2"
)]
fn conv2d_nchw_panics_on_channel_mismatch() {
    let x = Array4::<f64>::zeros((2, 3, 5, 5));
    let w = Array4::<f64>::zeros((4, 2, 3, 3));
    let _ = conv2d_nchw(&x, &w, None, &Conv2dSettings::new());
}

#[test]
#[should_panic(expected = "stride must be positive, found 0 (input [9], kernel [3])")]
fn conv1d_panics_on_zero_stride() {
    let _ = conv1d(
        &Array1::<f64>::zeros(9),
        &Array1::<f64>::zeros(3),
        &Conv1dSettings::new().stride(0),
    );
}

#[test]
#[should_panic(
    expected = "the cotangent passed to the pullback of `conv2d_nchw` has shape [1, 2, 3, 3] but the output has shape [1, 2, 4, 4]"
)]
fn pullback_rejects_wrong_cotangent_shape() {
    let x = Array4::<f64>::zeros((1, 1, 6, 6));
    let w = Array4::<f64>::zeros((2, 1, 3, 3));
    let (_, pullback) = conv2d_nchw_vjp(&x, &w, None, &Conv2dSettings::new());
    let _ = pullback(Array4::zeros((1, 2, 3, 3)));
}

#[test]
fn pullback_without_bias_gives_empty_bias_gradient() {
    let x = random(ndarray::Ix4(1, 2, 4, 4), 5);
    let w = random(ndarray::Ix4(3, 2, 2, 2), 6);
    let (y, pullback) = conv2d_nchw_vjp(&x, &w, None, &Conv2dSettings::new());
    let (_, _, db, NoTangent) = pullback(Array4::ones(y.raw_dim()));
    assert_eq!(db.len(), 0);
}

#[test]
fn settings_are_constants() {
    let settings = Conv2dSettings::new().padding(Padding::Same);
    assert_eq!(settings.zero_tangent(), NoTangent);
    assert_eq!(Conv2dSettings::default(), Conv2dSettings::new());
    assert_eq!(Conv1dSettings::default().groups, 1);
}

/// Random settings for 2-D convolutions of small shapes.
fn settings_2d() -> impl Strategy<Value = Conv2dSettings> {
    let padding = prop_oneof![
        Just(Padding::Valid),
        Just(Padding::Same),
        Just(Padding::SameUpper),
        (0usize..3).prop_map(Padding::Symmetric),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Padding::Explicit(a, b)),
    ];
    let mode = prop_oneof![
        3 => Just(PaddingMode::Zeros),
        1 => Just(PaddingMode::Reflect),
        1 => Just(PaddingMode::Replicate),
        1 => Just(PaddingMode::Circular),
    ];
    (
        padding.clone(),
        padding,
        mode,
        1usize..4,
        1usize..4,
        1usize..3,
        1usize..3,
        1usize..4,
    )
        .prop_map(|(ph, pw, mode, sh, sw, dh, dw, groups)| {
            let mut settings = Conv2dSettings::new()
                .padding_hw(ph, pw)
                .padding_mode(mode)
                .stride_hw(sh, sw)
                .dilation_hw(dh, dw)
                .groups(groups);
            // `Same` requires stride 1; keep the case by dropping the stride.
            for axis in 0..2 {
                if settings.padding[axis] == Padding::Same {
                    settings.stride[axis] = 1;
                }
            }
            settings
        })
}

/// A random batched case: input, weight, bias and settings that fit together.
fn case_2d() -> impl Strategy<
    Value = (
        Array4<f64>,
        Array4<f64>,
        Option<Array1<f64>>,
        Conv2dSettings,
    ),
> {
    (
        settings_2d(),
        1usize..3,
        1usize..3,
        1usize..3,
        2usize..8,
        2usize..8,
        1usize..4,
        1usize..4,
        any::<u64>(),
        any::<bool>(),
    )
        .prop_filter_map(
            "settings that fit the shapes",
            |(settings, n, cg, og, h, w, kh, kw, seed, with_bias)| {
                let g = settings.groups;
                let x = random(ndarray::Ix4(n, cg * g, h, w), seed);
                let weight = random(ndarray::Ix4(og * g, cg, kh, kw), seed ^ 1);
                let bias = with_bias.then(|| random(ndarray::Ix1(og * g), seed ^ 2));
                try_conv2d_nchw(&x, &weight, bias.as_ref(), &settings).ok()?;
                Some((x, weight, bias, settings))
            },
        )
}

fn flatten<D: Dimension>(a: &Array<f64, D>) -> ArrayD<f64> {
    a.clone()
        .into_dyn()
        .into_shape_with_order(IxDyn(&[a.len()]))
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv2d_nchw_matches_reference((x, w, b, settings) in case_2d()) {
        let expected = reference_nchw(&x, &w, b.as_ref(), &settings);
        let actual = conv2d_nchw(&x, &w, b.as_ref(), &settings);
        prop_assert_eq!(actual.shape(), expected.shape());
        assert_close(&actual, &expected, 1e-12);
    }

    #[test]
    fn conv2d_nchw_adjoint_identity((x, w, b, settings) in case_2d(), seed in any::<u64>()) {
        // Without the bias, the convolution is linear in x and in w separately.
        let (y, pullback) = conv2d_nchw_vjp(&x, &w, b.as_ref(), &settings);
        let dy = random(y.raw_dim(), seed);
        let (dx, dw, db, NoTangent) = pullback(dy.clone());
        let y0 = conv2d_nchw(&x, &w, None, &settings);
        assert_abs_diff_eq!(dot(&y0, &dy), dot(&x, &dx), epsilon = 1e-9);
        assert_abs_diff_eq!(dot(&y0, &dy), dot(&w, &dw), epsilon = 1e-9);
        if let Some(b) = &b {
            let shift = &y - &y0;
            assert_abs_diff_eq!(dot(&shift, &dy), dot(b, &db), epsilon = 1e-9);
        }
    }

    #[test]
    fn conv2d_nchw_finite_differences((x, w, b, settings) in case_2d(), seed in any::<u64>()) {
        let (y, pullback) = conv2d_nchw_vjp(&x, &w, b.as_ref(), &settings);
        let dy = random(y.raw_dim(), seed);
        let (dx, dw, db, _) = pullback(dy.clone());
        check_gradient(&x, |x| conv2d_nchw(x, &w, b.as_ref(), &settings), &dy, &dx);
        check_gradient(&w, |w| conv2d_nchw(&x, w, b.as_ref(), &settings), &dy, &dw);
        if let Some(b) = &b {
            check_gradient(b, |b| conv2d_nchw(&x, &w, Some(b), &settings), &dy, &db);
        }
    }

    #[test]
    fn conv1d_ncw_matches_2d_with_unit_height((x, w, b, settings) in case_2d()) {
        // Keep row 0 only and a one-row kernel: the 1-D convolution of the rows.
        let x1 = x.slice(s![.., .., 0, ..]).to_owned();
        let w1 = w.slice(s![.., .., 0, ..]).to_owned();
        let settings1 = Conv1dSettings::new()
            .padding(settings.padding[1])
            .padding_mode(settings.padding_mode)
            .stride(settings.stride[1])
            .dilation(settings.dilation[1])
            .groups(settings.groups);
        prop_assume!(try_conv1d_ncw(&x1, &w1, b.as_ref(), &settings1).is_ok());
        let as_2d = Conv2dSettings { padding: [Padding::Valid, settings.padding[1]], stride: [1, settings.stride[1]], dilation: [1, settings.dilation[1]], ..settings };
        let expected = reference_nchw(&x1.clone().insert_axis(ndarray::Axis(2)), &w1.clone().insert_axis(ndarray::Axis(2)), b.as_ref(), &as_2d)
            .remove_axis(ndarray::Axis(2));
        let (y, pullback) = conv1d_ncw_vjp(&x1, &w1, b.as_ref(), &settings1);
        assert_close(&y, &expected, 1e-12);
        let dy = random(y.raw_dim(), 7);
        let (dx, dw, db, NoTangent) = pullback(dy.clone());
        let y0 = conv1d_ncw(&x1, &w1, None, &settings1);
        assert_abs_diff_eq!(dot(&y0, &dy), dot(&x1, &dx), epsilon = 1e-9);
        assert_abs_diff_eq!(dot(&y0, &dy), dot(&w1, &dw), epsilon = 1e-9);
        check_gradient(&x1, |x| conv1d_ncw(x, &w1, b.as_ref(), &settings1), &dy, &dx);
        check_gradient(&w1, |w| conv1d_ncw(&x1, w, b.as_ref(), &settings1), &dy, &dw);
        if let Some(b) = &b {
            check_gradient(b, |b| conv1d_ncw(&x1, &w1, Some(b), &settings1), &dy, &db);
        }
    }

    #[test]
    fn single_channel_rules((x, w, _b, settings) in case_2d(), seed in any::<u64>()) {
        let image = x.slice(s![0, 0, .., ..]).to_owned();
        let kernel = w.slice(s![0, 0, .., ..]).to_owned();
        let settings = settings.groups(1);
        prop_assume!(try_conv2d(&image, &kernel, &settings).is_ok());
        let (y, pullback) = conv2d_vjp(&image, &kernel, &settings);
        let reference = reference_nchw(
            &image.clone().insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            &kernel.clone().insert_axis(ndarray::Axis(0)).insert_axis(ndarray::Axis(0)),
            None,
            &settings,
        );
        assert_close(&flatten(&y), &flatten(&reference), 1e-12);
        let dy = random(y.raw_dim(), seed);
        let (dx, dk, NoTangent) = pullback(dy.clone());
        check_gradient(&image, |x| conv2d(x, &kernel, &settings), &dy, &dx);
        check_gradient(&kernel, |k| conv2d(&image, k, &settings), &dy, &dk);
        assert_abs_diff_eq!(dot(&y, &dy), dot(&image, &dx), epsilon = 1e-9);
        assert_abs_diff_eq!(dot(&y, &dy), dot(&kernel, &dk), epsilon = 1e-9);

        let signal = image.row(0).to_owned();
        let taps = kernel.row(0).to_owned();
        let settings1 = Conv1dSettings::new().padding(settings.padding[1]).padding_mode(settings.padding_mode).stride(settings.stride[1]).dilation(settings.dilation[1]);
        prop_assume!(try_conv1d(&signal, &taps, &settings1).is_ok());
        let (y, pullback) = conv1d_vjp(&signal, &taps, &settings1);
        let dy = random(y.raw_dim(), seed ^ 3);
        let (dx, dk, NoTangent) = pullback(dy.clone());
        assert_abs_diff_eq!(dot(&y, &dy), dot(&signal, &dx), epsilon = 1e-9);
        assert_abs_diff_eq!(dot(&y, &dy), dot(&taps, &dk), epsilon = 1e-9);
        check_gradient(&signal, |x| conv1d(x, &taps, &settings1), &dy, &dx);
        check_gradient(&taps, |k| conv1d(&signal, k, &settings1), &dy, &dk);
    }
}

#[test]
fn large_conv_matches_reference_in_both_precisions() {
    // Large enough for the packed matrix-product path.
    let settings = Conv2dSettings::new().padding(1).stride_hw(1, 2).groups(2);
    let x = random(ndarray::Ix4(2, 16, 16, 15), 11);
    let w = random(ndarray::Ix4(16, 8, 3, 3), 12);
    let b = random(ndarray::Ix1(16), 13);
    let expected = reference_nchw(&x, &w, Some(&b), &settings);
    let (y, pullback) = conv2d_nchw_vjp(&x, &w, Some(&b), &settings);
    assert_close(&y, &expected, 1e-11);
    let dy = random(y.raw_dim(), 14);
    let (dx, dw, _, _) = pullback(dy.clone());
    let y0 = conv2d_nchw(&x, &w, None, &settings);
    assert_abs_diff_eq!(dot(&y0, &dy), dot(&x, &dx), epsilon = 1e-9);
    assert_abs_diff_eq!(dot(&y0, &dy), dot(&w, &dw), epsilon = 1e-9);

    let y32 = conv2d_nchw(
        &x.mapv(|v| v as f32),
        &w.mapv(|v| v as f32),
        Some(&b.mapv(|v| v as f32)),
        &settings,
    );
    assert_close(&y32.mapv(f64::from), &expected, 1e-4);
}

#[test]
fn parallel_conv_matches_reference() {
    // Each case is just above the 2^21 multiply-adds where passes go parallel: a batch
    // split, then channel blocks for a single image.
    let cases = [
        (
            (2, 8, 24, 24),
            (32, 8, 3, 3),
            Conv2dSettings::new().padding(1),
        ),
        (
            (1, 32, 22, 22),
            (32, 16, 3, 3),
            Conv2dSettings::new().padding(Padding::SameUpper).groups(2),
        ),
        (
            (1, 16, 16, 16),
            (64, 16, 3, 3),
            Conv2dSettings::new()
                .dilation(2)
                .padding_mode(PaddingMode::Reflect)
                .padding(2),
        ),
    ];
    for (index, (input_shape, weight_shape, settings)) in cases.into_iter().enumerate() {
        let seed = 20 + 3 * index as u64;
        let x = random(ndarray::Dim(input_shape), seed);
        let w = random(ndarray::Dim(weight_shape), seed + 1);
        let b = random(ndarray::Ix1(weight_shape.0), seed + 2);
        let (y, pullback) = conv2d_nchw_vjp(&x, &w, Some(&b), &settings);
        assert_close(&y, &reference_nchw(&x, &w, Some(&b), &settings), 1e-10);
        let dy = random(y.raw_dim(), seed + 3);
        let (dx, dw, db, _) = pullback(dy.clone());
        let y0 = conv2d_nchw(&x, &w, None, &settings);
        let scale = dot(&y0, &dy).abs().max(1.0);
        assert!(
            (dot(&y0, &dy) - dot(&x, &dx)).abs() <= 1e-10 * scale,
            "case {index}: input gradient"
        );
        assert!(
            (dot(&y0, &dy) - dot(&w, &dw)).abs() <= 1e-10 * scale,
            "case {index}: weight gradient"
        );
        assert!(
            (dot(&(&y - &y0), &dy) - dot(&b, &db)).abs() <= 1e-10 * scale,
            "case {index}: bias gradient"
        );
    }
}

#[test]
fn standalone_gradients_match_pullback() {
    for settings in [
        Conv2dSettings::new().padding(1).stride(2),
        Conv2dSettings::new()
            .padding(1)
            .padding_mode(PaddingMode::Circular)
            .groups(2),
    ] {
        let x = random(ndarray::Ix4(2, 4, 7, 6), 30);
        let w = random(ndarray::Ix4(6, 4 / settings.groups, 3, 3), 31);
        let (y, pullback) = conv2d_nchw_vjp(&x, &w, None, &settings);
        let dy = random(y.raw_dim(), 32);
        let (dx, dw, _, _) = pullback(dy.clone());
        assert_close(
            &conv2d_nchw_input_grad(&dy, &w, (7, 6), &settings),
            &dx,
            1e-12,
        );
        assert_close(
            &conv2d_nchw_weight_grad(&dy, &x, (3, 3), &settings),
            &dw,
            1e-12,
        );
    }
    let w = Array4::<f64>::zeros((6, 4, 3, 3));
    let text = try_conv2d_nchw_input_grad(
        &Array4::<f64>::zeros((2, 6, 4, 4)),
        &w,
        (7, 6),
        &Conv2dSettings::new(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        text,
        "invalid arguments to `conv2d_nchw_input_grad`: the output gradient has shape [2, 6, 4, 4] but the convolution gives [2, 6, 5, 4] (output_grad [2, 6, 4, 4], weight [6, 4, 3, 3], input_size [7, 6])"
    );
}
