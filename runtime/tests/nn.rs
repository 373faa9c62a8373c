//! The neural-network primitives and their pullbacks, against central finite
//! differences and hand-derived values.

use ndarray::{Array, Array1, Array2, Array4, Dimension, ShapeBuilder, array};
use num_traits::Float;
use stagegrad_runtime::NoTangent;
use stagegrad_runtime::nn::{
    flatten, flatten_vjp, log_softmax, log_softmax_vjp, matmul, matmul_vjp, mse, mse_vjp, relu,
    relu_vjp, sigmoid, sigmoid_vjp, softmax_cross_entropy, softmax_cross_entropy_vjp, tanh,
    tanh_vjp,
};

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
        Array::from_shape_simple_fn(shape, || 2.0 * self.uniform())
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

#[test]
fn relu_gradient_is_zero_at_zero() {
    let x = array![[-1.0, 0.0], [2.0, -0.0]];
    let (output, pullback) = relu_vjp(&x);
    assert_eq!(output, array![[0.0, 0.0], [2.0, 0.0]]);
    assert_eq!(output, relu(&x));
    let (gradient,) = pullback(array![[5.0, 6.0], [7.0, 8.0]]);
    assert_eq!(gradient, array![[0.0, 0.0], [7.0, 0.0]]);
}

#[test]
fn activations_match_differences() {
    let mut rng = Rng(1);
    let x = rng.array((2, 3, 2));
    let cotangent = rng.array((2, 3, 2));

    let (output, pullback) = relu_vjp(&x);
    assert_eq!(output, x.mapv(|v| v.max(0.0)));
    let expected = numerical_gradient(&x, |x| inner(&cotangent, &relu(x)));
    assert_close(&pullback(cotangent.clone()).0, &expected);

    let (output, pullback) = sigmoid_vjp(&x);
    assert_close(&output, &x.mapv(|v| 1.0 / (1.0 + (-v).exp())));
    let expected = numerical_gradient(&x, |x| inner(&cotangent, &sigmoid(x)));
    assert_close(&pullback(cotangent.clone()).0, &expected);

    let (output, pullback) = tanh_vjp(&x);
    assert_eq!(output, x.mapv(f64::tanh));
    let expected = numerical_gradient(&x, |x| inner(&cotangent, &tanh(x)));
    assert_close(&pullback(cotangent.clone()).0, &expected);
}

#[test]
fn activations_on_scalars() {
    let (output, pullback) = relu_vjp(&-0.5_f64);
    assert_eq!((output, pullback(3.0)), (0.0, (0.0,)));
    let (output, pullback) = relu_vjp(&1.5_f32);
    assert_eq!((output, pullback(3.0)), (1.5, (3.0,)));

    let (output, pullback) = sigmoid_vjp(&0.0_f64);
    assert_eq!((output, pullback(2.0)), (0.5, (0.5,)));

    let (output, pullback) = tanh_vjp(&0.3_f64);
    let (gradient,) = pullback(1.0);
    assert_eq!(output, 0.3_f64.tanh());
    assert!((gradient - 1.0 / 0.3_f64.cosh().powi(2)).abs() < 1e-14);
}

#[test]
fn sigmoid_saturates_without_nan() {
    let x = array![-1e4, 1e4];
    let (output, pullback) = sigmoid_vjp(&x);
    assert_eq!(output, array![0.0, 1.0]);
    assert_eq!(pullback(array![1.0, 1.0]).0, array![0.0, 0.0]);
}

#[test]
fn pullback_outlives_its_arguments_and_repeats() {
    let pullback = {
        let logits = array![[1.0, 2.0, 3.0]];
        let labels = vec![2];
        softmax_cross_entropy_vjp(&logits, &labels).1
    };
    let first = pullback(1.0);
    let second = pullback(1.0);
    assert_eq!(first, second);

    let pullback = {
        let a = array![[1.0, 2.0]];
        let b = array![[3.0], [4.0]];
        matmul_vjp(&a, &b).1
    };
    assert_eq!(
        pullback(array![[1.0]]),
        (array![[3.0, 4.0]], array![[1.0], [2.0]])
    );
    assert_eq!(
        pullback(array![[2.0]]),
        (array![[6.0, 8.0]], array![[2.0], [4.0]])
    );
}

#[test]
fn log_softmax_rows_are_normalised() {
    let logits = array![[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]];
    let output = log_softmax(&logits);
    for row in output.rows() {
        assert!((row.mapv(f64::exp).sum() - 1.0).abs() < 1e-14);
    }
    // The first row: 3 - ln(e + e² + e³) for the last class.
    let expected = 3.0 - (1.0_f64.exp() + 2.0_f64.exp() + 3.0_f64.exp()).ln();
    assert!((output[[0, 2]] - expected).abs() < 1e-14);
    assert!((output[[1, 0]] + 3.0_f64.ln()).abs() < 1e-14);
}

#[test]
fn log_softmax_is_stable_for_huge_logits() {
    let logits = array![[1e4, 1e4 - 1.0, -1e4]];
    let output = log_softmax(&logits);
    assert!(output.iter().all(|value| value.is_finite()));
    let log_sum = (1.0 + (-1.0_f64).exp()).ln();
    assert!((output[[0, 0]] + log_sum).abs() < 1e-12);
    assert!((output[[0, 1]] + 1.0 + log_sum).abs() < 1e-12);
}

#[test]
fn log_softmax_matches_differences() {
    let mut rng = Rng(2);
    let logits = rng.array((3, 4));
    let cotangent = rng.array((3, 4));
    let (output, pullback) = log_softmax_vjp(&logits);
    assert_eq!(output, log_softmax(&logits));
    let expected = numerical_gradient(&logits, |x| inner(&cotangent, &log_softmax(x)));
    assert_close(&pullback(cotangent).0, &expected);
}

#[test]
fn cross_entropy_hand_values() {
    // One sample with two equal logits: the loss is ln 2 and the gradient
    // softmax - onehot = [0.5 - 1, 0.5].
    let (loss, pullback) = softmax_cross_entropy_vjp(&array![[0.0, 0.0]], &[0]);
    assert!((loss - 2.0_f64.ln()).abs() < 1e-15);
    let (gradient, labels) = pullback(1.0);
    assert_eq!(gradient, array![[-0.5, 0.5]]);
    assert_eq!(labels, NoTangent);

    // Two samples: the gradient is divided by the batch size and scaled by the cotangent.
    let logits = array![[0.0, 0.0], [0.0, 0.0]];
    let (gradient, _) = softmax_cross_entropy_vjp(&logits, &[0, 1]).1(4.0);
    assert_eq!(gradient, array![[-1.0, 1.0], [1.0, -1.0]]);
}

#[test]
fn cross_entropy_matches_differences() {
    let mut rng = Rng(3);
    let logits = rng.array((4, 3));
    let labels = [2, 0, 1, 2];
    let (loss, pullback) = softmax_cross_entropy_vjp(&logits, &labels);
    let plain = softmax_cross_entropy(&logits, &labels);
    assert!((loss - plain).abs() < 1e-14);

    let expected = numerical_gradient(&logits, |x| 0.7 * softmax_cross_entropy(x, &labels));
    assert_close(&pullback(0.7).0, &expected);
}

#[test]
fn cross_entropy_is_finite_for_huge_logits() {
    let logits = array![[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]];
    let labels = [0, 0];
    let (loss, pullback) = softmax_cross_entropy_vjp(&logits, &labels);
    // Sample 0 is right with certainty (loss 0), and sample 1 has loss 1e4 - 0.
    assert_eq!(loss, 5000.0);
    assert_eq!(softmax_cross_entropy(&logits, &labels), 5000.0);
    let (gradient, _) = pullback(1.0);
    assert!(gradient.iter().all(|value| value.is_finite()));
    assert_eq!(gradient, array![[0.0, 0.0, 0.0], [-0.5, 0.5, 0.0]]);

    let logits = logits.mapv(|value| value as f32);
    let loss = softmax_cross_entropy(&logits, &labels);
    assert_eq!(loss, 5000.0_f32);
    let (_, pullback) = softmax_cross_entropy_vjp(&logits, &labels);
    assert!(pullback(1.0).0.iter().all(|value| value.is_finite()));
}

#[test]
#[should_panic(
    expected = "cannot compute `softmax_cross_entropy` of logits of shape [2, 3] with 3 labels: expected one label per row"
)]
fn cross_entropy_label_count_mismatch_panics() {
    let _ = softmax_cross_entropy(&Array2::<f64>::zeros((2, 3)), &[0, 1, 2]);
}

#[test]
#[should_panic(
    expected = "label 3 of row 1 is out of range for logits of shape [2, 3]: expected a class in 0..3"
)]
fn cross_entropy_label_out_of_range_panics() {
    let _ = softmax_cross_entropy_vjp(&Array2::<f64>::zeros((2, 3)), &[0, 3]);
}

#[test]
#[should_panic(
    expected = "cannot compute `softmax_cross_entropy` of an empty batch: logits of shape [0, 3]"
)]
fn cross_entropy_empty_batch_panics() {
    let _ = softmax_cross_entropy(&Array2::<f64>::zeros((0, 3)), &[]);
}

#[test]
fn mse_hand_values() {
    let prediction = array![[1.0, 2.0], [3.0, 4.0]];
    let target = array![[1.0, 0.0], [5.0, 4.0]];
    // (0 + 4 + 4 + 0) / 4
    assert_eq!(mse(&prediction, &target), 2.0);
    let (loss, pullback) = mse_vjp(&prediction, &target);
    assert_eq!(loss, 2.0);
    // 2 (p - t) / 4, scaled by the cotangent 2
    let (prediction_gradient, target_gradient) = pullback(2.0);
    assert_eq!(prediction_gradient, array![[0.0, 2.0], [-2.0, 0.0]]);
    assert_eq!(target_gradient, array![[0.0, -2.0], [2.0, 0.0]]);
}

#[test]
fn mse_matches_differences() {
    let mut rng = Rng(4);
    let prediction = rng.array((2, 2, 3));
    let target = rng.array((2, 2, 3));
    let (_, pullback) = mse_vjp(&prediction.view(), &target);
    let (prediction_gradient, target_gradient) = pullback(1.3);
    let expected = numerical_gradient(&prediction, |p| 1.3 * mse(p, &target));
    assert_close(&prediction_gradient, &expected);
    let expected = numerical_gradient(&target, |t| 1.3 * mse(&prediction, t));
    assert_close(&target_gradient, &expected);
}

#[test]
#[should_panic(
    expected = "cannot compute `mse` of a prediction of shape [2, 3] and a target of shape [3, 2]: the shapes differ"
)]
fn mse_shape_mismatch_panics() {
    let _ = mse(&Array2::<f64>::zeros((2, 3)), &Array2::<f64>::zeros((3, 2)));
}

#[test]
#[should_panic(expected = "cannot compute `mse` of empty arrays of shape [0]")]
fn mse_of_empty_arrays_panics() {
    let _ = mse(&Array1::<f64>::zeros(0), &Array1::<f64>::zeros(0));
}

#[test]
fn matmul_matches_differences() {
    let mut rng = Rng(5);
    let a = rng.array((3, 2));
    let b = rng.array((2, 4));
    let cotangent = rng.array((3, 4));
    let (output, pullback) = matmul_vjp(&a, &b);
    assert_eq!(output, a.dot(&b));
    assert_eq!(output, matmul(&a, &b));
    let (a_gradient, b_gradient) = pullback(cotangent.clone());
    assert_close(
        &a_gradient,
        &numerical_gradient(&a, |a| inner(&cotangent, &matmul(a, &b))),
    );
    assert_close(
        &b_gradient,
        &numerical_gradient(&b, |b| inner(&cotangent, &matmul(&a, b))),
    );
}

#[test]
fn matmul_of_transposed_views() {
    let mut rng = Rng(6);
    let a = rng.array((2, 3));
    let b = rng.array((4, 2));
    let (output, pullback) = matmul_vjp(&a.t(), &b.t());
    assert_eq!(output, a.t().dot(&b.t()));
    let cotangent = rng.array((3, 4));
    let (a_gradient, _) = pullback(cotangent.clone());
    let bt = b.t().to_owned();
    let expected = numerical_gradient(&a.t().to_owned(), |at| inner(&cotangent, &matmul(at, &bt)));
    assert_close(&a_gradient, &expected);
}

#[test]
#[should_panic(
    expected = "cannot compute `matmul` of shapes [2, 3] and [2, 3]: the inner lengths 3 and 2 differ"
)]
fn matmul_shape_mismatch_panics() {
    let _ = matmul(&Array2::<f64>::zeros((2, 3)), &Array2::<f64>::zeros((2, 3)));
}

#[test]
#[should_panic(
    expected = "the pullback of `matmul` expected a cotangent of shape [1, 1], found [2, 2]"
)]
fn matmul_pullback_checks_the_cotangent() {
    let (_, pullback) = matmul_vjp(&array![[1.0]], &array![[2.0]]);
    let _ = pullback(Array2::zeros((2, 2)));
}

#[test]
fn flatten_keeps_the_batch_axis() {
    let x = Array4::from_shape_vec((2, 2, 1, 3), (0..12).map(f64::from).collect()).unwrap();
    let flat = flatten(&x);
    assert_eq!(flat.dim(), (2, 6));
    assert_eq!(flat.row(1), Array1::from_iter((6..12).map(f64::from)));

    let vector = array![1.0, 2.0, 3.0];
    assert_eq!(flatten(&vector), array![[1.0], [2.0], [3.0]]);
}

#[test]
fn flatten_matches_differences() {
    let mut rng = Rng(7);
    let x = rng.array((2, 3, 2, 2));
    let cotangent = rng.array((2, 12));
    let (output, pullback) = flatten_vjp(&x);
    assert_eq!(output, flatten(&x));
    let (gradient,) = pullback(cotangent.clone());
    assert_eq!(gradient.shape(), x.shape());
    assert_close(
        &gradient,
        &numerical_gradient(&x, |x| inner(&cotangent, &flatten(x))),
    );
}

#[test]
fn flatten_of_a_permuted_view_reads_row_major() {
    let x = Array::from_shape_vec((2, 3, 2), (0..12).map(f64::from).collect()).unwrap();
    let view = x.view().permuted_axes([0, 2, 1]);
    let flat = flatten(&view);
    assert_eq!(flat.row(0), array![0.0, 2.0, 4.0, 1.0, 3.0, 5.0]);

    let (_, pullback) = flatten_vjp(&view);
    let (gradient,) = pullback(flat.clone());
    assert_eq!(gradient, view);
}

#[test]
#[should_panic(expected = "cannot `flatten` a 0-dimensional array: it has no batch axis to keep")]
fn flatten_of_a_scalar_array_panics() {
    let _ = flatten(&ndarray::arr0(1.0));
}

#[test]
fn log_softmax_of_f32_view() {
    let logits: Array2<f32> = array![[1.0, 2.0], [3.0, 5.0]];
    let (output, pullback) = log_softmax_vjp(&logits.view());
    assert!((output[[0, 1]] - (-(1.0_f32 + (-1.0_f32).exp()).ln())).abs() < 1e-6);
    let (gradient,) = pullback(Array2::ones((2, 2)));
    // 1 - 2 softmax: each row of the gradient sums to 0.
    let first = 1.0_f32 / (1.0 + 1.0_f32.exp());
    assert!((gradient[[0, 0]] - (1.0 - 2.0 * first)).abs() < 1e-6);
    for row in gradient.rows() {
        assert!(row.sum().abs() < 1e-6);
    }
}
