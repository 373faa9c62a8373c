//! Gradients of the array method rules (`sum`, `mean`, `sum_axis`, `mean_axis`,
//! transposes, reshapes, `insert_axis`, `to_owned`, `dot`, `unwrap`) against central
//! finite differences, and hand-derived gradients of the broadcasting elementwise rules.

use approx::assert_abs_diff_eq;
use ndarray::{
    Array, Array1, Array2, ArrayD, Axis, Dimension, IxDyn, Order, ShapeBuilder, ShapeError, array,
};
use proptest::prelude::*;
use stagegrad_runtime::rules::methods;
use stagegrad_runtime::rules::ops::{Add, Mul};
use stagegrad_runtime::rules::{BinaryRule, MethodRule, MethodRule2};

/// A deterministic splitmix64 generator for random test inputs.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a value uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    fn array<Sh: ShapeBuilder>(&mut self, shape: Sh) -> Array<f64, Sh::Dim> {
        Array::from_shape_simple_fn(shape, || self.uniform())
    }
}

/// Returns the gradient of `f` at `x` by central differences with step `1e-6`.
fn numerical_gradient<D: Dimension>(
    x: &Array<f64, D>,
    f: impl Fn(&Array<f64, D>) -> f64,
) -> Array<f64, D> {
    let step = 1e-6;
    let mut probe = x.as_standard_layout().into_owned();
    let mut gradient = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let original = probe.as_slice().unwrap()[i];
        probe.as_slice_mut().unwrap()[i] = original + step;
        let above = f(&probe);
        probe.as_slice_mut().unwrap()[i] = original - step;
        let below = f(&probe);
        probe.as_slice_mut().unwrap()[i] = original;
        gradient.push((above - below) / (2.0 * step));
    }
    Array::from_shape_vec(x.raw_dim(), gradient).unwrap()
}

/// Returns the inner product of two arrays of the same shape.
fn inner<D: Dimension>(a: &Array<f64, D>, b: &Array<f64, D>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[track_caller]
fn assert_close<D: Dimension>(actual: &Array<f64, D>, expected: &Array<f64, D>) {
    assert_eq!(
        actual.shape(),
        expected.shape(),
        "the gradient has the wrong shape"
    );
    for ((index, &a), &e) in actual.indexed_iter().zip(expected) {
        assert!(
            (a - e).abs() <= 1e-6 * (1.0 + e.abs()),
            "element {index:?} is {a}, expected {e}\nactual {actual}\nexpected {expected}"
        );
    }
}

/// Checks the rule's gradient of `<cotangent, f(x)>` against finite differences.
#[track_caller]
fn check_against_differences<D: Dimension, E: Dimension>(
    x: &Array<f64, D>,
    cotangent: &Array<f64, E>,
    forward: impl Fn(&Array<f64, D>) -> Array<f64, E>,
    rule_gradient: &Array<f64, D>,
) {
    let expected = numerical_gradient(x, |x| inner(cotangent, &forward(x)));
    assert_close(rule_gradient, &expected);
}

#[test]
fn sum_gradient_is_cotangent_everywhere() {
    let x = Rng(1).array((3, 4));
    let total: f64 = MethodRule::forward(&x, &methods::Sum);
    assert_abs_diff_eq!(total, x.sum(), epsilon = 1e-12);

    let gradient = MethodRule::backward(&x, &methods::Sum, &total, &2.5);
    assert_eq!(gradient, Array2::from_elem((3, 4), 2.5));
    let expected = numerical_gradient(&x, |x| 2.5 * x.sum());
    assert_close(&gradient, &expected);
}

#[test]
fn mean_matches_ndarray_and_differences() {
    let x = Rng(2).array((2, 5));
    let mean: Option<f64> = MethodRule::forward(&x, &methods::Mean);
    assert_eq!(mean, x.mean());

    let gradient = MethodRule::backward(&x, &methods::Mean, &mean, &3.0);
    assert_eq!(gradient, Array2::from_elem((2, 5), 0.3));
    let expected = numerical_gradient(&x, |x| 3.0 * x.mean().unwrap());
    assert_close(&gradient, &expected);
}

#[test]
fn mean_of_empty_array_is_none() {
    let x = Array2::<f64>::zeros((0, 3));
    let mean: Option<f64> = MethodRule::forward(&x, &methods::Mean);
    assert_eq!(mean, None);
    let gradient = MethodRule::backward(&x, &methods::Mean, &mean, &1.0);
    assert_eq!(gradient.shape(), &[0, 3]);
}

#[test]
fn sum_axis_gradient_on_every_axis() {
    let mut rng = Rng(3);
    let x = rng.array((2, 3, 4));
    for axis in 0..3 {
        let op = methods::SumAxis(Axis(axis));
        let output = MethodRule::forward(&x, &op);
        assert_eq!(output, x.sum_axis(Axis(axis)));

        let cotangent = rng.array(output.raw_dim());
        let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
        check_against_differences(&x, &cotangent, |x| x.sum_axis(Axis(axis)), &gradient);
    }
}

#[test]
fn mean_axis_gradient_on_every_axis() {
    let mut rng = Rng(4);
    let x = rng.array((3, 2, 2));
    for axis in 0..3 {
        let op = methods::MeanAxis(Axis(axis));
        let output = MethodRule::forward(&x, &op);
        assert_eq!(output, x.mean_axis(Axis(axis)));

        let cotangent = rng.array(output.as_ref().unwrap().raw_dim());
        let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
        check_against_differences(
            &x,
            &cotangent,
            |x| x.mean_axis(Axis(axis)).unwrap(),
            &gradient,
        );
    }
}

#[test]
fn mean_axis_of_empty_axis_is_none() {
    let x = Array2::<f64>::zeros((0, 3));
    let op = methods::MeanAxis(Axis(0));
    let output = MethodRule::forward(&x, &op);
    assert_eq!(output, None);
    let gradient = MethodRule::backward(&x, &op, &output, &Array1::zeros(3));
    assert_eq!(gradient.shape(), &[0, 3]);
}

#[test]
#[should_panic(
    expected = "cannot apply `sum_axis` along axis 2 of a 2-dimensional array of shape [2, 3]: expected an axis in 0..2"
)]
fn sum_axis_out_of_bounds_panics() {
    let x = Array2::<f64>::zeros((2, 3));
    let _ = MethodRule::forward(&x, &methods::SumAxis(Axis(2)));
}

#[test]
#[should_panic(
    expected = "cannot apply `mean_axis` along axis 1 of a 1-dimensional array of shape [4]: expected an axis in 0..1"
)]
fn mean_axis_out_of_bounds_panics() {
    let x = Array1::<f64>::zeros(4);
    let _ = MethodRule::forward(&x, &methods::MeanAxis(Axis(1)));
}

#[test]
fn transpose_is_owned_and_reverses_axes() {
    let mut rng = Rng(5);
    let matrix = rng.array((2, 3));
    let transposed = MethodRule::forward(&matrix, &methods::Transpose);
    assert_eq!(transposed, matrix.t());

    let cube = rng.array((2, 3, 4));
    let output = MethodRule::forward(&cube.view(), &methods::Transpose);
    assert_eq!(output.shape(), &[4, 3, 2]);
    let cotangent = rng.array(output.raw_dim());
    let gradient = MethodRule::backward(&cube.view(), &methods::Transpose, &output, &cotangent);
    check_against_differences(&cube, &cotangent, |x| x.t().to_owned(), &gradient);
}

#[test]
fn into_shape_reads_row_major_and_reshapes_back() {
    let mut rng = Rng(6);
    let x = rng.array((2, 6));
    let op = methods::IntoShape((3, 4));
    let output = MethodRule::forward(&x, &op);
    assert_eq!(output.as_ref().unwrap(), &x.to_shape((3, 4)).unwrap());

    let cotangent = rng.array((3, 4));
    let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
    assert_eq!(gradient, cotangent.to_shape((2, 6)).unwrap());
    check_against_differences(
        &x,
        &cotangent,
        |x| x.to_shape((3, 4)).unwrap().into_owned(),
        &gradient,
    );
}

#[test]
fn into_shape_copies_a_transposed_view() {
    let mut rng = Rng(7);
    let x = rng.array((3, 2));
    let view = x.t();
    let op = methods::IntoShape(6);
    let output = MethodRule::forward(&view, &op).unwrap();
    let expected: Vec<f64> = view.iter().copied().collect();
    assert_eq!(output, Array1::from(expected));

    let cotangent = rng.array(6);
    let gradient = MethodRule::backward(&view, &op, &Ok(output), &cotangent);
    assert_eq!(gradient.shape(), &[2, 3]);
    assert_eq!(gradient, cotangent.to_shape((2, 3)).unwrap());
}

#[test]
fn into_shape_column_major_order() {
    let mut rng = Rng(8);
    let x = rng.array((2, 3));
    let op = methods::IntoShape(((3, 2), Order::ColumnMajor));
    let output = MethodRule::forward(&x, &op);
    assert_eq!(
        output.as_ref().unwrap(),
        &x.to_shape(((3, 2), Order::ColumnMajor)).unwrap()
    );

    let cotangent = rng.array((3, 2));
    let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
    check_against_differences(
        &x,
        &cotangent,
        |x| {
            x.to_shape(((3, 2), Order::ColumnMajor))
                .unwrap()
                .into_owned()
        },
        &gradient,
    );
}

#[test]
fn into_shape_count_mismatch_is_an_error() {
    let x = Array2::<f64>::zeros((2, 3));
    let output: Result<Array2<f64>, ShapeError> =
        MethodRule::forward(&x, &methods::IntoShape((4, 2)));
    let error = output.unwrap_err();
    assert_eq!(error.kind(), ndarray::ErrorKind::IncompatibleShape);
}

#[test]
fn reshape_to_dynamic_shape() {
    let mut rng = Rng(9);
    let x = rng.array((2, 2, 3));
    let op = methods::Reshape(vec![4, 3]);
    let output: ArrayD<f64> = MethodRule::forward(&x, &op);
    assert_eq!(output.shape(), &[4, 3]);

    let cotangent = rng.array(IxDyn(&[4, 3]));
    let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
    check_against_differences(
        &x,
        &cotangent,
        |x| x.to_shape(IxDyn(&[4, 3])).unwrap().into_owned(),
        &gradient,
    );
}

#[test]
#[should_panic(
    expected = "cannot `reshape` an array of shape [2, 3] to shape [4, 2]: they have 6 and 8 elements"
)]
fn reshape_count_mismatch_panics() {
    let x = Array2::<f64>::zeros((2, 3));
    let _ = MethodRule::forward(&x, &methods::Reshape((4, 2)));
}

#[test]
fn insert_axis_gradient_removes_the_axis() {
    let mut rng = Rng(10);
    let x = rng.array((3, 4));
    for axis in 0..3 {
        let op = methods::InsertAxis(Axis(axis));
        let output = MethodRule::forward(&x, &op);
        assert_eq!(output, x.clone().insert_axis(Axis(axis)));

        let cotangent = rng.array(output.raw_dim());
        let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
        check_against_differences(
            &x,
            &cotangent,
            |x| x.clone().insert_axis(Axis(axis)),
            &gradient,
        );
    }
}

#[test]
#[should_panic(
    expected = "cannot apply `insert_axis` at axis 3 of a 2-dimensional array of shape [3, 4]: expected an axis in 0..=2"
)]
fn insert_axis_out_of_bounds_panics() {
    let x = Array2::<f64>::zeros((3, 4));
    let _ = MethodRule::forward(&x, &methods::InsertAxis(Axis(3)));
}

#[test]
fn to_owned_passes_the_cotangent() {
    let mut rng = Rng(11);
    let x = rng.array((2, 3));
    let output = MethodRule::forward(&x.view(), &methods::ToOwned);
    assert_eq!(output, x);
    let cotangent = rng.array((2, 3));
    assert_eq!(
        MethodRule::backward(&x.view(), &methods::ToOwned, &output, &cotangent),
        cotangent
    );

    let scalar: f64 = MethodRule::forward(&1.5, &methods::ToOwned);
    assert_eq!(scalar, 1.5);
    assert_eq!(
        MethodRule::backward(&1.5, &methods::ToOwned, &scalar, &-2.0),
        -2.0
    );
}

#[test]
fn unwrap_passes_the_cotangent() {
    let value = Some(array![1.0, 2.0]);
    let output = MethodRule::forward(&value, &methods::Unwrap);
    assert_eq!(output, array![1.0, 2.0]);
    let gradient = MethodRule::backward(&value, &methods::Unwrap, &output, &array![3.0, 4.0]);
    assert_eq!(gradient, array![3.0, 4.0]);

    let reshaped: Result<Array2<f64>, ShapeError> = Ok(array![[1.0]]);
    let output = MethodRule::forward(&reshaped, &methods::Expect("reshape failed"));
    assert_eq!(output, array![[1.0]]);
    let gradient = MethodRule::backward(
        &reshaped,
        &methods::Expect("reshape failed"),
        &output,
        &array![[5.0]],
    );
    assert_eq!(gradient, array![[5.0]]);
}

#[test]
#[should_panic(expected = "called `Option::unwrap()` on a `None` value")]
fn unwrap_of_none_panics() {
    let _: f64 = MethodRule::forward(&None::<f64>, &methods::Unwrap);
}

#[test]
#[should_panic(expected = "the mean of an empty array")]
fn expect_panics_with_the_message() {
    let _: f64 = MethodRule::forward(&None::<f64>, &methods::Expect("the mean of an empty array"));
}

#[test]
#[should_panic(expected = "called `Result::unwrap()` on an `Err` value")]
fn unwrap_of_shape_error_panics() {
    let x = Array2::<f64>::zeros((2, 3));
    let reshaped = MethodRule::forward(&x, &methods::IntoShape(7));
    let _ = MethodRule::forward(&reshaped, &methods::Unwrap);
}

#[test]
fn dot_matrix_matrix_gradients() {
    let mut rng = Rng(12);
    let a = rng.array((2, 3));
    let b = rng.array((3, 4));
    let output = MethodRule2::forward(&a, &methods::Dot, &b);
    assert_eq!(output, a.dot(&b));

    let cotangent = rng.array((2, 4));
    let lhs = MethodRule2::backward_lhs(&a, &methods::Dot, &b, &output, &cotangent);
    let rhs = MethodRule2::backward_rhs(&a, &methods::Dot, &b, &output, &cotangent);
    check_against_differences(&a, &cotangent, |a| a.dot(&b), &lhs);
    check_against_differences(&b, &cotangent, |b| a.dot(b), &rhs);
}

#[test]
fn dot_matrix_vector_gradients() {
    let mut rng = Rng(13);
    let a = rng.array((3, 2));
    let x = rng.array(2);
    let output = MethodRule2::forward(&a.view(), &methods::Dot, &x.view());
    assert_eq!(output, a.dot(&x));

    let cotangent = rng.array(3);
    let lhs = MethodRule2::backward_lhs(&a.view(), &methods::Dot, &x.view(), &output, &cotangent);
    let rhs = MethodRule2::backward_rhs(&a.view(), &methods::Dot, &x.view(), &output, &cotangent);
    check_against_differences(&a, &cotangent, |a| a.dot(&x), &lhs);
    check_against_differences(&x, &cotangent, |x| a.dot(x), &rhs);
}

#[test]
fn dot_vector_matrix_gradients() {
    let mut rng = Rng(14);
    let x = rng.array(3);
    let b = rng.array((3, 2));
    let output = MethodRule2::forward(&x, &methods::Dot, &b);
    assert_eq!(output, x.dot(&b));

    let cotangent = rng.array(2);
    let lhs = MethodRule2::backward_lhs(&x, &methods::Dot, &b, &output, &cotangent);
    let rhs = MethodRule2::backward_rhs(&x, &methods::Dot, &b, &output, &cotangent);
    check_against_differences(&x, &cotangent, |x| x.dot(&b), &lhs);
    check_against_differences(&b, &cotangent, |b| x.dot(b), &rhs);
}

#[test]
fn dot_vector_vector_gradients() {
    let x = array![1.0, -2.0, 3.0];
    let y = array![0.5, 4.0, -1.0];
    let output: f64 = MethodRule2::forward(&x, &methods::Dot, &y);
    assert_eq!(output, 0.5 - 8.0 - 3.0);

    let lhs = MethodRule2::backward_lhs(&x, &methods::Dot, &y, &output, &2.0);
    let rhs = MethodRule2::backward_rhs(&x, &methods::Dot, &y, &output, &2.0);
    assert_eq!(lhs, array![1.0, 8.0, -2.0]);
    assert_eq!(rhs, array![2.0, -4.0, 6.0]);
}

#[test]
fn dot_of_transposed_view() {
    let mut rng = Rng(15);
    let a = rng.array((3, 2));
    let b = rng.array((3, 4));
    let output = MethodRule2::forward(&a.t(), &methods::Dot, &b);
    assert_eq!(output, a.t().dot(&b));

    let cotangent = rng.array((2, 4));
    let lhs = MethodRule2::backward_lhs(&a.t(), &methods::Dot, &b, &output, &cotangent);
    let expected = numerical_gradient(&a.t().to_owned(), |at| inner(&cotangent, &at.dot(&b)));
    assert_close(&lhs, &expected);
}

#[test]
#[should_panic(
    expected = "cannot compute `dot` of shapes [2, 3] and [4, 5]: the inner lengths 3 and 4 differ"
)]
fn dot_shape_mismatch_panics() {
    let a = Array2::<f64>::zeros((2, 3));
    let b = Array2::<f64>::zeros((4, 5));
    let _ = MethodRule2::forward(&a, &methods::Dot, &b);
}

#[test]
#[should_panic(
    expected = "cannot compute `dot` of shapes [3] and [2]: the inner lengths 3 and 2 differ"
)]
fn dot_vector_length_mismatch_panics() {
    let x = Array1::<f64>::zeros(3);
    let y = Array1::<f64>::zeros(2);
    let _: f64 = MethodRule2::forward(&x, &methods::Dot, &y);
}

// Broadcasting cases of the elementwise rules, with gradients derived by hand: an
// operand broadcast along an axis receives the cotangent summed along that axis.

#[test]
fn row_vector_plus_matrix_sums_columns() {
    let row = array![10.0, 20.0, 30.0];
    let matrix = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let output = BinaryRule::forward(&row, &Add, &matrix);
    assert_eq!(output, array![[11.0, 22.0, 33.0], [14.0, 25.0, 36.0]]);

    let cotangent = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let row_gradient = BinaryRule::backward_lhs(&row, &Add, &matrix, &output, &cotangent);
    let matrix_gradient = BinaryRule::backward_rhs(&row, &Add, &matrix, &output, &cotangent);
    assert_eq!(row_gradient, array![5.0, 7.0, 9.0]);
    assert_eq!(matrix_gradient, cotangent);
}

#[test]
fn matrix_plus_one_row_matrix_keeps_its_shape() {
    let matrix = array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]];
    let row = array![[0.5, -0.5]];
    let output = BinaryRule::forward(&matrix, &Add, &row);
    assert_eq!(output, array![[1.5, 1.5], [3.5, 3.5], [5.5, 5.5]]);

    let cotangent = array![[1.0, 0.0], [2.0, 1.0], [3.0, -1.0]];
    let row_gradient = BinaryRule::backward_rhs(&matrix, &Add, &row, &output, &cotangent);
    assert_eq!(row_gradient, array![[6.0, 0.0]]);
}

#[test]
fn column_vector_plus_matrix_sums_rows() {
    let column = array![[100.0], [200.0]];
    let matrix = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let output = BinaryRule::forward(&column, &Add, &matrix);
    assert_eq!(output, array![[101.0, 102.0, 103.0], [204.0, 205.0, 206.0]]);

    let cotangent = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let column_gradient = BinaryRule::backward_lhs(&column, &Add, &matrix, &output, &cotangent);
    let matrix_gradient = BinaryRule::backward_rhs(&column, &Add, &matrix, &output, &cotangent);
    assert_eq!(column_gradient, array![[6.0], [15.0]]);
    assert_eq!(matrix_gradient, cotangent);
}

#[test]
fn scalar_times_matrix_sums_to_a_scalar() {
    let scale = 2.0;
    let matrix = array![[1.0, -2.0], [3.0, 0.5]];
    let output = BinaryRule::forward(&scale, &Mul, &matrix);
    assert_eq!(output, array![[2.0, -4.0], [6.0, 1.0]]);

    let cotangent = array![[1.0, 1.0], [2.0, -1.0]];
    let scale_gradient: f64 = BinaryRule::backward_lhs(&scale, &Mul, &matrix, &output, &cotangent);
    let matrix_gradient = BinaryRule::backward_rhs(&scale, &Mul, &matrix, &output, &cotangent);
    // d/ds sum(c * s * M) = sum(c * M) = 1 - 2 + 6 - 0.5
    assert_eq!(scale_gradient, 4.5);
    assert_eq!(matrix_gradient, array![[2.0, 2.0], [4.0, -2.0]]);

    let matrix_times_scale: f64 =
        BinaryRule::backward_rhs(&matrix, &Mul, &scale, &output, &cotangent);
    assert_eq!(matrix_times_scale, 4.5);
}

#[test]
fn column_times_row_is_an_outer_product() {
    let column = array![[1.0], [2.0]];
    let row = array![[3.0, 4.0, 5.0]];
    let output = BinaryRule::forward(&column, &Mul, &row);
    assert_eq!(output, array![[3.0, 4.0, 5.0], [6.0, 8.0, 10.0]]);

    let cotangent = array![[1.0, 0.0, -1.0], [2.0, 1.0, 1.0]];
    let column_gradient = BinaryRule::backward_lhs(&column, &Mul, &row, &output, &cotangent);
    let row_gradient = BinaryRule::backward_rhs(&column, &Mul, &row, &output, &cotangent);
    // column_i gets sum_j c_ij row_j, and row_j gets sum_i c_ij column_i.
    assert_eq!(column_gradient, array![[3.0 - 5.0], [6.0 + 4.0 + 5.0]]);
    assert_eq!(row_gradient, array![[1.0 + 4.0, 2.0, -1.0 + 2.0]]);
}

#[test]
#[should_panic(
    expected = "cannot broadcast shapes [2, 3] and [2] for `+`: axis 1 has lengths 3 and 2"
)]
fn incompatible_broadcast_panics() {
    let matrix = Array2::<f64>::zeros((2, 3));
    let vector = Array1::<f64>::zeros(2);
    let _ = BinaryRule::forward(&matrix, &Add, &vector);
}

fn array_of(shape: Vec<usize>) -> impl Strategy<Value = ArrayD<f64>> {
    let len: usize = shape.iter().product();
    prop::collection::vec(-2.0..2.0_f64, len)
        .prop_map(move |values| ArrayD::from_shape_vec(shape.clone(), values).unwrap())
}

fn shape(max_ndim: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..4_usize, 1..=max_ndim)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn dot_gradients_on_random_shapes(
        (a, b, cotangent) in (1..5_usize, 1..5_usize, 1..5_usize).prop_flat_map(|(m, k, n)| {
            (array_of(vec![m, k]), array_of(vec![k, n]), array_of(vec![m, n]))
        })
    ) {
        let a = a.into_dimensionality::<ndarray::Ix2>().unwrap();
        let b = b.into_dimensionality::<ndarray::Ix2>().unwrap();
        let cotangent = cotangent.into_dimensionality::<ndarray::Ix2>().unwrap();
        let output = MethodRule2::forward(&a, &methods::Dot, &b);
        let lhs = MethodRule2::backward_lhs(&a, &methods::Dot, &b, &output, &cotangent);
        let rhs = MethodRule2::backward_rhs(&a, &methods::Dot, &b, &output, &cotangent);
        check_against_differences(&a, &cotangent, |a| a.dot(&b), &lhs);
        check_against_differences(&b, &cotangent, |b| a.dot(b), &rhs);
    }

    #[test]
    fn sum_axis_gradient_on_random_shapes(
        (x, axis, cotangent_seed) in shape(3).prop_flat_map(|shape| {
            let ndim = shape.len();
            (array_of(shape), 0..ndim, any::<u64>())
        })
    ) {
        let op = methods::SumAxis(Axis(axis));
        let output = MethodRule::forward(&x, &op);
        let cotangent = Rng(cotangent_seed).array(output.raw_dim());
        let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
        check_against_differences(&x, &cotangent, |x| x.sum_axis(Axis(axis)), &gradient);
    }

    #[test]
    fn reshape_gradient_on_random_shapes(
        (x, target, cotangent_seed) in shape(3).prop_flat_map(|shape| {
            let len: usize = shape.iter().product();
            let reversed: Vec<usize> = shape.iter().rev().copied().collect();
            let target = prop_oneof![Just(reversed), Just(vec![len]), Just(vec![1, len, 1])];
            (array_of(shape), target, any::<u64>())
        })
    ) {
        let op = methods::Reshape(target.clone());
        let output = MethodRule::forward(&x, &op);
        prop_assert_eq!(output.shape(), &target[..]);
        let cotangent = Rng(cotangent_seed).array(output.raw_dim());
        let gradient = MethodRule::backward(&x, &op, &output, &cotangent);
        check_against_differences(
            &x,
            &cotangent,
            |x| x.to_shape(target.clone()).unwrap().into_owned(),
            &gradient,
        );
    }
}
