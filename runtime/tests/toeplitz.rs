//! Convolution matrices: hand-derived matrices, `conv(x) == K x` for the dense and the
//! sparse builders, `Kᵀ dy` against the pullback, and the general Toeplitz forms.

use ndarray::{Array, Array1, Array2, Array3, Array4, Dimension, array, s};
use proptest::prelude::*;
use stagegrad_runtime::{
    Conv1dSettings, Conv2dSettings, Padding, PaddingMode, circulant, conv1d, conv1d_matrix,
    conv1d_matrix_sparse, conv1d_ncw, conv1d_ncw_matrix, conv1d_ncw_matrix_sparse, conv2d,
    conv2d_matrix, conv2d_matrix_sparse, conv2d_nchw_matrix, conv2d_nchw_matrix_sparse,
    conv2d_nchw_vjp, toeplitz, try_conv1d_ncw, try_conv2d_nchw, try_conv2d_nchw_matrix,
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

fn assert_close(actual: &Array1<f64>, expected: &Array1<f64>, tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!((a - e).abs() <= tolerance, "at {i}: {a} differs from {e}");
    }
}

fn flat<D: Dimension>(a: &Array<f64, D>) -> Array1<f64> {
    Array1::from_iter(a.iter().copied())
}

#[test]
fn seed_1d_matrix_is_7_by_9() {
    let k = array![1.0, 2.0, 3.0];
    let matrix = conv1d_matrix(&k, 9, &Conv1dSettings::new());
    assert_eq!(matrix.dim(), (7, 9));
    for i in 0..7 {
        let mut row = Array1::zeros(9);
        row.slice_mut(s![i..i + 3]).assign(&k);
        assert_eq!(matrix.row(i), row, "row {i}");
    }
}

#[test]
fn seed_1d_matrix_with_padding_and_stride() {
    let k = array![1.0, 2.0, 3.0];
    let matrix = conv1d_matrix(&k, 9, &Conv1dSettings::new().padding(1).stride(2));
    assert_eq!(matrix.dim(), (5, 9));
    assert_eq!(
        matrix.row(0),
        array![2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        matrix.row(1),
        array![0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        matrix.row(4),
        array![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0]
    );
}

#[test]
fn box_filter_matrix_is_doubly_block_toeplitz() {
    let matrix = conv2d_matrix(
        &Array2::from_elem((2, 2), 0.25),
        (3, 3),
        &Conv2dSettings::new(),
    );
    let q = 0.25;
    let expected = array![
        [q, q, 0.0, q, q, 0.0, 0.0, 0.0, 0.0],
        [0.0, q, q, 0.0, q, q, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, q, q, 0.0, q, q, 0.0],
        [0.0, 0.0, 0.0, 0.0, q, q, 0.0, q, q],
    ];
    assert_eq!(matrix, expected);
    let image = array![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
    assert_eq!(matrix.dot(&image), array![3.0, 4.0, 6.0, 7.0]);
}

#[test]
fn reflect_padding_folds_columns() {
    let matrix = conv1d_matrix(
        &array![1.0, 10.0, 100.0],
        4,
        &Conv1dSettings::new()
            .padding(1)
            .padding_mode(PaddingMode::Reflect),
    );
    // Padded signal: [x1, x0, x1, x2, x3, x2]; the first window reads x1, x0, x1.
    assert_eq!(matrix.row(0), array![10.0, 101.0, 0.0, 0.0]);
    assert_eq!(matrix.row(3), array![0.0, 0.0, 101.0, 10.0]);
    let sparse = conv1d_matrix_sparse(
        &array![1.0, 10.0, 100.0],
        4,
        &Conv1dSettings::new()
            .padding(1)
            .padding_mode(PaddingMode::Reflect),
    );
    assert_eq!(sparse.to_dense(), matrix);
    assert_eq!(sparse.nnz(), 2 + 3 + 3 + 2);
}

#[test]
fn toeplitz_takes_diagonal_from_column() {
    let t = toeplitz(&array![1.0, 2.0, 3.0], &array![9.0, 4.0]);
    assert_eq!(t, array![[1.0, 4.0], [2.0, 1.0], [3.0, 2.0]]);
    let empty = toeplitz(&Array1::<f64>::zeros(0), &array![1.0]);
    assert_eq!(empty.dim(), (0, 1));
}

#[test]
fn valid_conv_matrix_is_a_toeplitz_matrix() {
    let k = array![1.0, 2.0, 3.0];
    let mut column = Array1::zeros(7);
    column[0] = k[0];
    let mut row = Array1::zeros(9);
    row.slice_mut(s![..3]).assign(&k);
    assert_eq!(
        conv1d_matrix(&k, 9, &Conv1dSettings::new()),
        toeplitz(&column, &row)
    );
}

#[test]
fn circulant_is_circular_convolution() {
    let c = array![1.0, 2.0, 3.0, 4.0];
    let x = array![0.5, -1.0, 2.0, 3.0];
    let matrix = circulant(&c);
    assert_eq!(matrix.row(1), array![2.0, 1.0, 4.0, 3.0]);
    let n = c.len();
    let expected = Array1::from_shape_fn(n, |i| {
        (0..n).map(|j| c[(i + n - j) % n] * x[j]).sum::<f64>()
    });
    assert_eq!(matrix.dot(&x), expected);
    // Circular padding with the reversed kernel gives the same product.
    let reversed = Array1::from_iter(c.iter().rev().copied());
    let settings = Conv1dSettings::new()
        .padding((3, 0))
        .padding_mode(PaddingMode::Circular);
    assert_eq!(conv1d(&x, &reversed, &settings), expected);
}

#[test]
fn sparse_224_by_224_has_expected_structure() {
    let kernel = random(ndarray::Ix2(3, 3), 1);
    let settings = Conv2dSettings::new().padding(1);
    let matrix = conv2d_matrix_sparse(&kernel, (224, 224), &settings);
    assert_eq!(matrix.shape(), (224 * 224, 224 * 224));
    let per_axis = 224 * 3 - 2;
    assert_eq!(matrix.nnz(), per_axis * per_axis);
    assert_eq!(matrix.data().len(), matrix.nnz());
    let image = random(ndarray::Ix2(224, 224), 2);
    let product = &matrix * &flat(&image);
    assert_close(&product, &flat(&conv2d(&image, &kernel, &settings)), 1e-12);
}

#[test]
fn matrix_errors_name_shapes() {
    let weight = Array4::<f64>::zeros((2, 1, 5, 5));
    let text = try_conv2d_nchw_matrix(&weight, (3, 3), &Conv2dSettings::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        text,
        "invalid arguments to `conv2d_nchw_matrix`: height axis: dilated kernel extent 5 exceeds the padded input length 3: input 3, padding 0 + 0, kernel 5, dilation 1 (weight [2, 1, 5, 5], input [3, 3])"
    );
}

#[test]
#[should_panic(
    expected = "invalid arguments to `conv1d_matrix`: width axis: stride must be positive, found 0 (kernel [3], input [9])"
)]
fn conv1d_matrix_panics_on_zero_stride() {
    let _ = conv1d_matrix(&array![1.0, 2.0, 3.0], 9, &Conv1dSettings::new().stride(0));
}

fn settings_2d() -> impl Strategy<Value = Conv2dSettings> {
    let padding = prop_oneof![
        Just(Padding::Valid),
        Just(Padding::SameUpper),
        (0usize..3).prop_map(Padding::Symmetric),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Padding::Explicit(a, b)),
    ];
    let mode = prop_oneof![
        Just(PaddingMode::Zeros),
        Just(PaddingMode::Reflect),
        Just(PaddingMode::Replicate),
        Just(PaddingMode::Circular),
    ];
    (
        padding.clone(),
        padding,
        mode,
        1usize..4,
        1usize..4,
        1usize..3,
        1usize..3,
        1usize..3,
    )
        .prop_map(|(ph, pw, mode, sh, sw, dh, dw, groups)| {
            Conv2dSettings::new()
                .padding_hw(ph, pw)
                .padding_mode(mode)
                .stride_hw(sh, sw)
                .dilation_hw(dh, dw)
                .groups(groups)
        })
}

fn case_2d() -> impl Strategy<Value = (Array3<f64>, Array4<f64>, Conv2dSettings)> {
    (
        settings_2d(),
        1usize..3,
        1usize..3,
        2usize..7,
        2usize..7,
        1usize..4,
        1usize..4,
        any::<u64>(),
    )
        .prop_filter_map(
            "settings that fit the shapes",
            |(settings, cg, og, h, w, kh, kw, seed)| {
                let g = settings.groups;
                let x = random(ndarray::Ix3(cg * g, h, w), seed);
                let weight = random(ndarray::Ix4(og * g, cg, kh, kw), seed ^ 1);
                try_conv2d_nchw(
                    &x.clone().insert_axis(ndarray::Axis(0)),
                    &weight,
                    None,
                    &settings,
                )
                .ok()?;
                Some((x, weight, settings))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conv2d_nchw_equals_matrix_product((x, w, settings) in case_2d(), seed in any::<u64>()) {
        let (_, h, width) = x.dim();
        let batch = x.clone().insert_axis(ndarray::Axis(0));
        let (y, pullback) = conv2d_nchw_vjp(&batch, &w, None, &settings);
        let dense = conv2d_nchw_matrix(&w, (h, width), &settings);
        let sparse = conv2d_nchw_matrix_sparse(&w, (h, width), &settings);
        prop_assert_eq!(sparse.to_dense(), dense.clone());
        assert_close(&dense.dot(&flat(&x)), &flat(&y), 1e-12);
        assert_close(&(&sparse * &flat(&x)), &flat(&y), 1e-12);
        // Kᵀ applied to an output gradient is the input gradient.
        let dy = random(y.raw_dim(), seed);
        let (dx, _, _, _) = pullback(dy.clone());
        assert_close(&dense.t().dot(&flat(&dy)), &flat(&dx), 1e-12);
        assert_close(&(&sparse.transpose_view() * &flat(&dy)), &flat(&dx), 1e-12);
    }

    #[test]
    fn conv1d_equals_matrix_product((x, w, settings) in case_2d()) {
        let x1 = x.slice(s![.., 0, ..]).to_owned();
        let w1 = w.slice(s![.., .., 0, ..]).to_owned();
        let settings1 = Conv1dSettings::new()
            .padding(settings.padding[1])
            .padding_mode(settings.padding_mode)
            .stride(settings.stride[1])
            .dilation(settings.dilation[1])
            .groups(settings.groups);
        let batch = x1.clone().insert_axis(ndarray::Axis(0));
        prop_assume!(try_conv1d_ncw(&batch, &w1, None, &settings1).is_ok());
        let y = conv1d_ncw(&batch, &w1, None, &settings1);
        let dense = conv1d_ncw_matrix(&w1, x1.ncols(), &settings1);
        let sparse = conv1d_ncw_matrix_sparse(&w1, x1.ncols(), &settings1);
        assert_close(&dense.dot(&flat(&x1)), &flat(&y), 1e-12);
        assert_close(&(&sparse * &flat(&x1)), &flat(&y), 1e-12);

        let signal = x1.row(0).to_owned();
        let taps = w1.slice(s![0, 0, ..]).to_owned();
        let single = settings1.groups(1);
        let y = conv1d(&signal, &taps, &single);
        assert_close(&conv1d_matrix(&taps, signal.len(), &single).dot(&signal), &y, 1e-12);
        assert_close(&(&conv1d_matrix_sparse(&taps, signal.len(), &single) * &signal), &y, 1e-12);

        let image = x.slice(s![0, .., ..]).to_owned();
        let kernel = w.slice(s![0, 0, .., ..]).to_owned();
        let single = settings.groups(1);
        let y = flat(&conv2d(&image, &kernel, &single));
        assert_close(&conv2d_matrix(&kernel, image.dim(), &single).dot(&flat(&image)), &y, 1e-12);
        assert_close(&(&conv2d_matrix_sparse(&kernel, image.dim(), &single) * &flat(&image)), &y, 1e-12);
    }
}
