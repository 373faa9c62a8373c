//! Neural-network primitives: activations, losses, the matrix product and flattening,
//! each with a hand-written pullback.
//!
//! Every primitive `foo` has a companion `foo_vjp` that takes the same arguments and
//! returns the value together with a pullback. The pullback maps a cotangent of the
//! output (of the output's type) to a tuple with one gradient per argument, in order:
//! an owned array of the argument's dimension, or [`NoTangent`] for a constant such as
//! the class labels. It owns copies of what it needs rather than borrowing the
//! arguments, and it can be called more than once.
//!
//! NOTE: Rust requires a returned `impl Fn` to capture every type parameter. For an
//! argument that is a view (`ArrayView`, whose storage type carries a lifetime), the
//! pullback therefore cannot outlive the viewed array, although it keeps no reference
//! to it. For owned arrays it outlives the arguments.
//!
//! ```
//! use ndarray::array;
//! use stagegrad_runtime::nn::{softmax_cross_entropy, softmax_cross_entropy_vjp};
//!
//! let logits = array![[2.0, 0.0], [0.0, 0.0]];
//! let (loss, pullback) = softmax_cross_entropy_vjp(&logits, &[0, 1]);
//! assert_eq!(loss, softmax_cross_entropy(&logits, &[0, 1]));
//! let (gradient, _labels) = pullback(1.0);
//! assert_eq!(gradient.dim(), (2, 2));
//! ```

use ndarray::{Array, Array2, ArrayBase, Axis, Data, Dimension, Ix2, Zip};

use crate::rules::UnaryRule;
use crate::rules::methods::check_inner_lengths;
use crate::rules::ops::{Relu, Sigmoid, Tanh, UnaryOp};
use crate::{Differentiable, NoTangent, Scalar};

/// Panics unless a pullback received a cotangent of the output's shape.
#[track_caller]
fn check_cotangent(operation: &str, output_shape: &[usize], cotangent_shape: &[usize]) {
    assert!(
        output_shape == cotangent_shape,
        "the pullback of `{operation}` expected a cotangent of shape {output_shape:?}, found {cotangent_shape:?}"
    );
}

/// Runs an activation and returns a pullback that keeps only the output. The
/// derivatives of relu, sigmoid and tanh are functions of the output alone (relu's
/// output is positive exactly where its input is), so the pullback evaluates them at
/// the output in place of the input.
fn activation_vjp<O, T>(
    op: O,
    x: &T,
) -> (T::Output, impl Fn(T::Tangent) -> (T::Tangent,) + use<O, T>)
where
    O: UnaryOp,
    T: UnaryRule<O>,
    T::Output: UnaryRule<O, Output = T::Output> + Differentiable<Tangent = T::Tangent> + Clone,
{
    let output = x.forward(&op);
    let kept = output.clone();
    let pullback = move |cotangent: T::Tangent| (kept.backward(&op, &kept, &cotangent),);
    (output, pullback)
}

/// Computes the rectified linear unit `max(x, 0)` elementwise, on a scalar or an array
/// of any dimension.
///
/// The derivative at 0 is taken as 0.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::nn::relu;
///
/// assert_eq!(relu(&array![-1.0, 0.0, 2.5]), array![0.0, 0.0, 2.5]);
/// assert_eq!(relu(&-3.0_f64), 0.0);
/// ```
#[stagegrad_macros::differentiable(vjp = relu_vjp, crate = crate)]
pub fn relu<T>(x: &T) -> T::Output
where
    T: UnaryRule<Relu>,
    T::Output: UnaryRule<Relu, Output = T::Output> + Differentiable<Tangent = T::Tangent> + Clone,
{
    x.forward(&Relu)
}

/// Computes [`relu`] and returns its pullback, which multiplies the cotangent by 1
/// where the output is positive and by 0 elsewhere.
pub fn relu_vjp<T>(x: &T) -> (T::Output, impl Fn(T::Tangent) -> (T::Tangent,) + use<T>)
where
    T: UnaryRule<Relu>,
    T::Output: UnaryRule<Relu, Output = T::Output> + Differentiable<Tangent = T::Tangent> + Clone,
{
    activation_vjp(Relu, x)
}

/// Computes the logistic sigmoid `1 / (1 + e^-x)` elementwise, on a scalar or an array
/// of any dimension, without overflow for large `|x|`.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::nn::sigmoid;
///
/// assert_eq!(sigmoid(&array![0.0, -1000.0, 1000.0]), array![0.5, 0.0, 1.0]);
/// ```
#[stagegrad_macros::differentiable(vjp = sigmoid_vjp, crate = crate)]
pub fn sigmoid<T>(x: &T) -> T::Output
where
    T: UnaryRule<Sigmoid>,
    T::Output:
        UnaryRule<Sigmoid, Output = T::Output> + Differentiable<Tangent = T::Tangent> + Clone,
{
    x.forward(&Sigmoid)
}

/// Computes [`sigmoid`] and returns its pullback, which multiplies the cotangent by
/// `y (1 - y)` at each output `y`.
pub fn sigmoid_vjp<T>(x: &T) -> (T::Output, impl Fn(T::Tangent) -> (T::Tangent,) + use<T>)
where
    T: UnaryRule<Sigmoid>,
    T::Output:
        UnaryRule<Sigmoid, Output = T::Output> + Differentiable<Tangent = T::Tangent> + Clone,
{
    activation_vjp(Sigmoid, x)
}

/// Computes the hyperbolic tangent elementwise, on a scalar or an array of any
/// dimension.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::nn::tanh;
///
/// assert_eq!(tanh(&array![0.0]), array![0.0]);
/// ```
#[stagegrad_macros::differentiable(vjp = tanh_vjp, crate = crate)]
pub fn tanh<T>(x: &T) -> T::Output
where
    T: UnaryRule<Tanh>,
    T::Output: UnaryRule<Tanh, Output = T::Output> + Differentiable<Tangent = T::Tangent> + Clone,
{
    x.forward(&Tanh)
}

/// Computes [`tanh`] and returns its pullback, which multiplies the cotangent by
/// `1 - y²` at each output `y`.
pub fn tanh_vjp<T>(x: &T) -> (T::Output, impl Fn(T::Tangent) -> (T::Tangent,) + use<T>)
where
    T: UnaryRule<Tanh>,
    T::Output: UnaryRule<Tanh, Output = T::Output> + Differentiable<Tangent = T::Tangent> + Clone,
{
    activation_vjp(Tanh, x)
}

/// Computes the log-softmax of each row, the samples being rows and the classes
/// columns: `y[i, j] = x[i, j] - ln(sum_k e^x[i, k])`.
///
/// Each row is shifted by its maximum before exponentiating, so large logits neither
/// overflow nor lose the small differences between them. A row whose logits are all
/// `-inf` gives NaN.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::nn::log_softmax;
///
/// let y = log_softmax(&array![[0.0, 0.0], [1e4, 1e4]]);
/// assert!(y.iter().all(|&value| (value - 0.5_f64.ln()).abs() < 1e-12));
/// ```
#[stagegrad_macros::differentiable(vjp = log_softmax_vjp, crate = crate)]
pub fn log_softmax<A: Scalar, S: Data<Elem = A>>(logits: &ArrayBase<S, Ix2>) -> Array2<A> {
    let mut output = logits.to_owned();
    for mut row in output.rows_mut() {
        let max = row_max(row.view());
        row.mapv_inplace(|x| x - max);
        let log_sum = row
            .fold(A::zero(), |sum, &shifted| sum + shifted.exp())
            .ln();
        row.mapv_inplace(|shifted| shifted - log_sum);
    }
    output
}

/// Computes [`log_softmax`] and returns its pullback: for a cotangent `g`, the
/// gradient is `g[i, j] - softmax[i, j] * sum_k g[i, k]`.
pub fn log_softmax_vjp<A: Scalar, S: Data<Elem = A>>(
    logits: &ArrayBase<S, Ix2>,
) -> (Array2<A>, impl Fn(Array2<A>) -> (Array2<A>,) + use<A, S>) {
    let output = log_softmax(logits);
    let probabilities = output.mapv(A::exp);
    let pullback = move |cotangent: Array2<A>| {
        check_cotangent("log_softmax", probabilities.shape(), cotangent.shape());
        let row_sums = cotangent.sum_axis(Axis(1)).insert_axis(Axis(1));
        let gradient = &cotangent - &(&probabilities * &row_sums);
        (gradient,)
    };
    (output, pullback)
}

fn row_max<A: Scalar>(row: ndarray::ArrayView1<'_, A>) -> A {
    row.fold(A::neg_infinity(), |max, &x| max.max(x))
}

/// Panics unless there is one label per row of `logits_shape`, each a valid class.
#[track_caller]
fn check_labels(logits_shape: &[usize], labels: &[usize]) {
    let (rows, classes) = (logits_shape[0], logits_shape[1]);
    assert!(
        labels.len() == rows,
        "cannot compute `softmax_cross_entropy` of logits of shape {logits_shape:?} with {} labels: expected one label per row",
        labels.len()
    );
    assert!(
        rows > 0,
        "cannot compute `softmax_cross_entropy` of an empty batch: logits of shape {logits_shape:?}"
    );
    if let Some((row, label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &label)| label >= classes)
    {
        panic!(
            "label {label} of row {row} is out of range for logits of shape {logits_shape:?}: expected a class in 0..{classes}"
        );
    }
}

/// Computes the cross entropy of the softmax of each row of `logits` against the class
/// in `labels`, averaged over the batch:
/// `loss = -(1/N) sum_i ln softmax(x[i])[labels[i]]`.
///
/// The rows are samples and the columns classes. The computation shifts each row by its
/// maximum, so logits as large as `1e4` give a finite loss and gradient.
///
/// # Panics
///
/// Panics, naming the shape of `logits`, when the number of labels differs from the
/// number of rows, when the batch is empty, or when a label is not a valid column.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::nn::softmax_cross_entropy;
///
/// let loss = softmax_cross_entropy(&array![[0.0, 0.0], [1e4, 0.0]], &[1, 0]);
/// assert!((loss - 0.5 * 2.0_f64.ln()).abs() < 1e-12);
/// ```
#[track_caller]
#[stagegrad_macros::differentiable(vjp = softmax_cross_entropy_vjp, crate = crate)]
pub fn softmax_cross_entropy<A: Scalar, S: Data<Elem = A>>(
    logits: &ArrayBase<S, Ix2>,
    labels: &[usize],
) -> A {
    check_labels(logits.shape(), labels);
    let mut total = A::zero();
    for (row, &label) in logits.rows().into_iter().zip(labels) {
        let max = row_max(row);
        let log_sum = row.fold(A::zero(), |sum, &x| sum + (x - max).exp()).ln();
        total += log_sum - (row[label] - max);
    }
    total / A::from_usize(labels.len()).expect("every `usize` converts to a float")
}

/// Computes [`softmax_cross_entropy`] and returns its pullback: for a cotangent `g`,
/// the gradient with respect to the logits is `g (softmax(x) - onehot(labels)) / N`,
/// and the labels get [`NoTangent`].
///
/// # Panics
///
/// As [`softmax_cross_entropy`].
#[track_caller]
pub fn softmax_cross_entropy_vjp<A: Scalar, S: Data<Elem = A>>(
    logits: &ArrayBase<S, Ix2>,
    labels: &[usize],
) -> (A, impl Fn(A) -> (Array2<A>, NoTangent) + use<A, S>) {
    check_labels(logits.shape(), labels);
    let log_probabilities = log_softmax(logits);
    let batch = A::from_usize(labels.len()).expect("every `usize` converts to a float");
    let total = labels
        .iter()
        .enumerate()
        .fold(A::zero(), |total, (row, &label)| {
            total - log_probabilities[[row, label]]
        });
    let loss = total / batch;

    let probabilities = log_probabilities.mapv(A::exp);
    let labels = labels.to_vec();
    let pullback = move |cotangent: A| {
        let mut gradient = probabilities.clone();
        for (row, &label) in labels.iter().enumerate() {
            gradient[[row, label]] -= A::one();
        }
        let factor = cotangent / batch;
        gradient.mapv_inplace(|g| g * factor);
        (gradient, NoTangent)
    };
    (loss, pullback)
}

/// Panics unless `prediction` and `target` have the same, non-empty shape.
#[track_caller]
fn check_mse_shapes(prediction: &[usize], target: &[usize]) {
    assert!(
        prediction == target,
        "cannot compute `mse` of a prediction of shape {prediction:?} and a target of shape {target:?}: the shapes differ"
    );
    assert!(
        prediction.iter().product::<usize>() > 0,
        "cannot compute `mse` of empty arrays of shape {prediction:?}"
    );
}

/// Computes the mean squared error `(1/n) sum (prediction - target)²` over all `n`
/// elements.
///
/// # Panics
///
/// Panics, naming both shapes, when the shapes differ or the arrays are empty.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::nn::mse;
///
/// assert_eq!(mse(&array![1.0, 2.0], &array![1.0, 4.0]), 2.0);
/// ```
#[track_caller]
#[stagegrad_macros::differentiable(vjp = mse_vjp, crate = crate)]
pub fn mse<A, S1, S2, D>(prediction: &ArrayBase<S1, D>, target: &ArrayBase<S2, D>) -> A
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
    D: Dimension,
{
    check_mse_shapes(prediction.shape(), target.shape());
    let mut sum = A::zero();
    Zip::from(prediction)
        .and(target)
        .for_each(|&p, &t| sum += (p - t) * (p - t));
    sum / A::from_usize(prediction.len()).expect("every `usize` converts to a float")
}

/// Computes [`mse`] and returns its pullback: for a cotangent `g`, the gradient with
/// respect to the prediction is `2 g (prediction - target) / n`, and its negative with
/// respect to the target.
///
/// # Panics
///
/// As [`mse`].
#[track_caller]
#[allow(clippy::type_complexity)] // one gradient per argument, as every pullback returns
pub fn mse_vjp<A, S1, S2, D>(
    prediction: &ArrayBase<S1, D>,
    target: &ArrayBase<S2, D>,
) -> (
    A,
    impl Fn(A) -> (Array<A, D>, Array<A, D>) + use<A, S1, S2, D>,
)
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
    D: Dimension,
{
    check_mse_shapes(prediction.shape(), target.shape());
    let difference = prediction - target;
    let count = A::from_usize(difference.len()).expect("every `usize` converts to a float");
    let loss = difference.fold(A::zero(), |sum, &d| sum + d * d) / count;
    let pullback = move |cotangent: A| {
        let factor = (cotangent + cotangent) / count;
        let prediction_gradient = difference.mapv(|d| d * factor);
        let target_gradient = prediction_gradient.mapv(|g| -g);
        (prediction_gradient, target_gradient)
    };
    (loss, pullback)
}

/// Computes the matrix product `a b` of an `m × k` and a `k × n` matrix.
///
/// # Panics
///
/// Panics, naming both shapes, when the inner lengths differ.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::nn::matmul;
///
/// let product = matmul(&array![[1.0, 2.0]], &array![[3.0], [4.0]]);
/// assert_eq!(product, array![[11.0]]);
/// ```
#[track_caller]
#[stagegrad_macros::differentiable(vjp = matmul_vjp, crate = crate)]
pub fn matmul<A, S1, S2>(a: &ArrayBase<S1, Ix2>, b: &ArrayBase<S2, Ix2>) -> Array2<A>
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    check_inner_lengths("matmul", a.shape(), b.shape(), a.ncols(), b.nrows());
    a.dot(b)
}

/// Computes [`matmul`] and returns its pullback: for a cotangent `G`, the gradients are
/// `G bᵀ` and `aᵀ G`. The pullback keeps copies of `a` and `b`.
///
/// # Panics
///
/// As [`matmul`].
#[track_caller]
#[allow(clippy::type_complexity)] // one gradient per argument, as every pullback returns
pub fn matmul_vjp<A, S1, S2>(
    a: &ArrayBase<S1, Ix2>,
    b: &ArrayBase<S2, Ix2>,
) -> (
    Array2<A>,
    impl Fn(Array2<A>) -> (Array2<A>, Array2<A>) + use<A, S1, S2>,
)
where
    A: Scalar,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    let output = matmul(a, b);
    let output_shape = output.raw_dim();
    let a = a.to_owned();
    let b = b.to_owned();
    let pullback = move |cotangent: Array2<A>| {
        check_cotangent("matmul", output_shape.slice(), cotangent.shape());
        (cotangent.dot(&b.t()), a.t().dot(&cotangent))
    };
    (output, pullback)
}

/// Returns the 2-D shape that keeps axis 0 and merges the other axes.
#[track_caller]
fn flattened_shape(shape: &[usize]) -> (usize, usize) {
    let Some((&batch, rest)) = shape.split_first() else {
        panic!("cannot `flatten` a 0-dimensional array: it has no batch axis to keep");
    };
    (batch, rest.iter().product())
}

/// Flattens every axis but the first, in row-major order: an `N × C × H × W` array
/// becomes `N × (C·H·W)`, and a vector of length `N` becomes `N × 1`.
///
/// # Panics
///
/// Panics on a 0-dimensional array, which has no batch axis.
///
/// ```
/// use ndarray::{array, Array};
/// use stagegrad_runtime::nn::flatten;
///
/// let x = Array::from_shape_vec((2, 2, 2), (0..8).map(f64::from).collect()).unwrap();
/// assert_eq!(flatten(&x), array![[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]);
/// ```
#[track_caller]
#[stagegrad_macros::differentiable(vjp = flatten_vjp, crate = crate)]
pub fn flatten<A: Scalar, S: Data<Elem = A>, D: Dimension>(x: &ArrayBase<S, D>) -> Array2<A> {
    let shape = flattened_shape(x.shape());
    x.to_shape(shape)
        .expect("the flattened shape has the same number of elements")
        .into_owned()
}

/// Computes [`flatten`] and returns its pullback, which reshapes the cotangent back to
/// the shape of `x`.
///
/// # Panics
///
/// As [`flatten`].
#[track_caller]
#[allow(clippy::type_complexity)] // one gradient per argument, as every pullback returns
pub fn flatten_vjp<A: Scalar, S: Data<Elem = A>, D: Dimension>(
    x: &ArrayBase<S, D>,
) -> (
    Array2<A>,
    impl Fn(Array2<A>) -> (Array<A, D>,) + use<A, S, D>,
) {
    let output = flatten(x);
    let output_shape = output.raw_dim();
    let source_shape = x.raw_dim();
    let pullback = move |cotangent: Array2<A>| {
        check_cotangent("flatten", output_shape.slice(), cotangent.shape());
        let gradient = cotangent
            .to_shape(source_shape.clone())
            .expect("the cotangent has as many elements as the source")
            .into_owned();
        (gradient,)
    };
    (output, pullback)
}
