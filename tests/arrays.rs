//! Gradients of array code: layers, a small CNN, broadcasting, model structs and a
//! user-defined array rule, checked against hand-derived values and central
//! differences in f64.

use approx::assert_abs_diff_eq;
use ndarray::{Array, Array1, Array2, Array4, Dimension, array};
use proptest::prelude::*;
use stagegrad::{
    Conv2dSettings, Differentiable, NoTangent, Pool2dSettings, conv2d_nchw, differentiable,
    flatten, max_pool2d, relu, softmax_cross_entropy,
};

/// Returns the central difference of `f` along every element of `x`.
fn numerical_gradient<D: Dimension>(
    x: &Array<f64, D>,
    f: impl Fn(&Array<f64, D>) -> f64,
) -> Array<f64, D> {
    let step = 1e-6;
    let mut gradient = Array::zeros(x.raw_dim());
    let slots = gradient.as_slice_mut().expect("a new array is contiguous");
    for (position, slot) in slots.iter_mut().enumerate() {
        let mut plus = x.to_owned();
        plus.as_slice_mut().expect("contiguous")[position] += step;
        let mut minus = x.to_owned();
        minus.as_slice_mut().expect("contiguous")[position] -= step;
        *slot = (f(&plus) - f(&minus)) / (2.0 * step);
    }
    gradient
}

fn assert_close<D: Dimension>(generated: &Array<f64, D>, expected: &Array<f64, D>) {
    assert_eq!(generated.shape(), expected.shape());
    for (a, b) in generated.iter().zip(expected) {
        assert!(
            (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
            "generated {generated}\nexpected {expected}"
        );
    }
}

/// Deterministic pseudo-random values in [-1, 1).
fn values<D: Dimension>(shape: D, seed: u64) -> Array<f64, D> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    Array::from_shape_simple_fn(shape, || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}

#[differentiable(wrt(w, b))]
fn linear_loss(w: &Array2<f64>, b: &Array1<f64>, x: &Array2<f64>, labels: &[usize]) -> f64 {
    let logits = x.dot(w) + b;
    softmax_cross_entropy(&logits, labels)
}

#[test]
fn linear_layer_matches_central_differences() {
    let (w, b, x) = (
        values((4, 3).into_dimension(), 1),
        values(ndarray::Ix1(3), 2),
        values((5, 4).into_dimension(), 3),
    );
    let labels = [0, 2, 1, 1, 0];
    let (_, gradient) = linear_loss_grad(&w, &b, &x, &labels);
    assert_close(
        &gradient.w,
        &numerical_gradient(&w, |w| linear_loss(w, &b, &x, &labels)),
    );
    assert_close(
        &gradient.b,
        &numerical_gradient(&b, |b| linear_loss(&w, b, &x, &labels)),
    );
}

#[derive(Differentiable, Clone, Debug)]
struct Mlp {
    w1: Array2<f64>,
    b1: Array1<f64>,
    w2: Array2<f64>,
    b2: Array1<f64>,
}

#[differentiable(wrt(model))]
fn mlp_loss(model: &Mlp, x: &Array2<f64>, labels: &[usize]) -> f64 {
    let hidden = stagegrad::tanh(&(x.dot(&model.w1) + &model.b1));
    let logits = hidden.dot(&model.w2) + &model.b2;
    softmax_cross_entropy(&logits, labels)
}

#[test]
fn two_layer_mlp_matches_central_differences() {
    let model = Mlp {
        w1: values((4, 6).into_dimension(), 4),
        b1: values(ndarray::Ix1(6), 5),
        w2: values((6, 3).into_dimension(), 6),
        b2: values(ndarray::Ix1(3), 7),
    };
    let x = values((5, 4).into_dimension(), 8);
    let labels = [2, 0, 1, 2, 1];
    let (_, gradient) = mlp_loss_grad(&model, &x, &labels);
    let g = gradient.model;
    assert_close(
        &g.w1,
        &numerical_gradient(&model.w1, |w1| {
            mlp_loss(
                &Mlp {
                    w1: w1.clone(),
                    ..model.clone()
                },
                &x,
                &labels,
            )
        }),
    );
    assert_close(
        &g.b1,
        &numerical_gradient(&model.b1, |b1| {
            mlp_loss(
                &Mlp {
                    b1: b1.clone(),
                    ..model.clone()
                },
                &x,
                &labels,
            )
        }),
    );
    assert_close(
        &g.w2,
        &numerical_gradient(&model.w2, |w2| {
            mlp_loss(
                &Mlp {
                    w2: w2.clone(),
                    ..model.clone()
                },
                &x,
                &labels,
            )
        }),
    );
    assert_close(
        &g.b2,
        &numerical_gradient(&model.b2, |b2| {
            mlp_loss(
                &Mlp {
                    b2: b2.clone(),
                    ..model.clone()
                },
                &x,
                &labels,
            )
        }),
    );
}

#[derive(Differentiable, Clone, Debug)]
struct SmallCnn {
    kernel: Array4<f64>,
    kernel_bias: Array1<f64>,
    dense: Array2<f64>,
    dense_bias: Array1<f64>,
}

#[differentiable(wrt(model))]
fn cnn_loss(model: &SmallCnn, images: &Array4<f64>, labels: &[usize]) -> f64 {
    let features = conv2d_nchw(
        images,
        &model.kernel,
        Some(&model.kernel_bias),
        &Conv2dSettings::new().padding(1),
    );
    let pooled = max_pool2d(&relu(&features), &Pool2dSettings::new(2));
    let logits = flatten(&pooled).dot(&model.dense) + &model.dense_bias;
    softmax_cross_entropy(&logits, labels)
}

#[test]
fn small_cnn_matches_central_differences() {
    let model = SmallCnn {
        kernel: values((2, 1, 3, 3).into_dimension(), 9),
        kernel_bias: values(ndarray::Ix1(2), 10),
        dense: values((8, 3).into_dimension(), 11),
        dense_bias: values(ndarray::Ix1(3), 12),
    };
    let images = values((3, 1, 4, 4).into_dimension(), 13);
    let labels = [1, 0, 2];
    let (value, gradient) = cnn_loss_grad(&model, &images, &labels);
    assert_abs_diff_eq!(value, cnn_loss(&model, &images, &labels), epsilon = 1e-12);
    let g = gradient.model;
    let with = |change: &dyn Fn(&mut SmallCnn)| {
        let mut moved = model.clone();
        change(&mut moved);
        cnn_loss(&moved, &images, &labels)
    };
    assert_close(
        &g.kernel,
        &numerical_gradient(&model.kernel, |k| with(&|m| m.kernel = k.clone())),
    );
    assert_close(
        &g.kernel_bias,
        &numerical_gradient(&model.kernel_bias, |b| with(&|m| m.kernel_bias = b.clone())),
    );
    assert_close(
        &g.dense,
        &numerical_gradient(&model.dense, |d| with(&|m| m.dense = d.clone())),
    );
    assert_close(
        &g.dense_bias,
        &numerical_gradient(&model.dense_bias, |b| with(&|m| m.dense_bias = b.clone())),
    );
}

#[differentiable]
fn row_broadcast(a: &Array2<f64>, row: &Array1<f64>) -> f64 {
    ((a + row) * a).sum()
}

#[differentiable]
fn column_broadcast(a: &Array2<f64>, column: &Array2<f64>) -> f64 {
    (a * column).sum()
}

#[differentiable]
fn scalar_broadcast(a: &Array2<f64>, s: f64) -> f64 {
    (s * a + a / s).sum()
}

#[test]
fn broadcasting_sums_back_to_each_shape() {
    let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    // d/da sum((a + r) * a) = 2a + r; d/dr = column sums of a.
    let row = array![10.0, 20.0, 30.0];
    let (_, g) = row_broadcast_grad(&a, &row);
    assert_eq!(g.a, array![[12.0, 24.0, 36.0], [18.0, 30.0, 42.0]]);
    assert_eq!(g.row, array![5.0, 7.0, 9.0]);

    // d/da sum(a * c) = c broadcast; d/dc = row sums of a, shape (2, 1).
    let column = array![[2.0], [3.0]];
    let (_, g) = column_broadcast_grad(&a, &column);
    assert_eq!(g.a, array![[2.0, 2.0, 2.0], [3.0, 3.0, 3.0]]);
    assert_eq!(g.column, array![[6.0], [15.0]]);

    // d/da sum(s a + a / s) = s + 1/s; d/ds = sum(a) - sum(a) / s^2.
    let (_, g) = scalar_broadcast_grad(&a, 2.0);
    assert_eq!(g.a, Array2::from_elem((2, 3), 2.5));
    assert_eq!(g.s, 21.0 - 21.0 / 4.0);
}

#[test]
#[should_panic(expected = "cannot broadcast shapes [2, 3] and [2]")]
fn shape_mismatch_names_both_shapes() {
    let a = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
    let _ = row_broadcast_grad(&a, &array![1.0, 2.0]);
}

/// Computes the squared norm and its pullback, whose gradient is 2x: a user-defined rule.
fn squared_norm_rule(x: &Array1<f64>) -> (f64, impl Fn(f64) -> (Array1<f64>,) + use<>) {
    let saved = x.clone();
    (x.dot(x), move |cotangent: f64| {
        (saved.mapv(|v| 2.0 * v * cotangent),)
    })
}

#[differentiable(vjp = squared_norm_rule)]
fn squared_norm(x: &Array1<f64>) -> f64 {
    x.dot(x)
}

#[differentiable]
fn uses_custom_rule(x: &Array1<f64>, y: &Array1<f64>) -> f64 {
    squared_norm(&(x * y)) + squared_norm(x)
}

#[test]
fn user_defined_array_rule_composes() {
    let (x, y) = (array![1.0, -2.0], array![3.0, 0.5]);
    let (value, g) = uses_custom_rule_grad(&x, &y);
    assert_eq!(value, 9.0 + 1.0 + 5.0);
    // d/dx = 2 (x y) y + 2x; d/dy = 2 (x y) x.
    assert_eq!(g.x, array![2.0 * 3.0 * 3.0 + 2.0, -2.0 * 0.5 - 4.0]);
    assert_eq!(g.y, array![2.0 * 3.0 * 1.0, -2.0 * -2.0]);
    let (_, direct) = squared_norm_grad(&x);
    assert_eq!(direct.x, array![2.0, -4.0]);
}

#[differentiable]
fn used_twice(x: &Array1<f64>) -> f64 {
    let y = x * x;
    (y.clone() + x).sum() + x.sum()
}

#[test]
fn repeated_use_accumulates() {
    let x = array![1.0, -3.0];
    let (_, g) = used_twice_grad(&x);
    assert_eq!(g.x, array![4.0, -4.0]);
    let _ = NoTangent;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn linear_gradient_random_shapes(rows in 1usize..5, inputs in 1usize..5, classes in 2usize..5, seed in 0u64..1000) {
        let w = values((inputs, classes).into_dimension(), seed);
        let b = values(ndarray::Ix1(classes), seed + 1);
        let x = values((rows, inputs).into_dimension(), seed + 2);
        let labels: Vec<usize> = (0..rows).map(|i| (i + seed as usize) % classes).collect();
        let (_, gradient) = linear_loss_grad(&w, &b, &x, &labels);
        assert_close(&gradient.w, &numerical_gradient(&w, |w| linear_loss(w, &b, &x, &labels)));
        assert_close(&gradient.b, &numerical_gradient(&b, |b| linear_loss(&w, b, &x, &labels)));
    }
}

use ndarray::IntoDimension;

#[differentiable]
fn elementwise_methods(x: ndarray::ArrayView1<f64>, y: &Array1<f64>) -> f64 {
    let a = x.exp() * y.sqrt();
    let b = (x.powi(3) - y.ln()).abs();
    let c = x.powf(2.5) / y;
    (a + b + c).mean().unwrap()
}

#[test]
fn elementwise_methods_on_views() {
    let x = array![0.5, 1.5, 0.25];
    let y = array![2.0, 0.5, 1.25];
    let (value, g) = elementwise_methods_grad(x.view(), &y);
    assert!((value - elementwise_methods(x.view(), &y)).abs() < 1e-12);
    assert_close(
        &g.x,
        &numerical_gradient(&x, |x| elementwise_methods(x.view(), &y)),
    );
    assert_close(
        &g.y,
        &numerical_gradient(&y, |y| elementwise_methods(x.view(), y)),
    );
}

#[test]
fn array_trace_shows_shapes() {
    let w = values((4, 3).into_dimension(), 1);
    let b = values(ndarray::Ix1(3), 2);
    let x = values((5, 4).into_dimension(), 3);
    let trace = linear_loss_trace(&w, &b, &x, &[0, 1, 2, 0, 1]);
    let logits = trace.node("logits").expect("the stage is recorded");
    assert_eq!(logits.value.shape(), Some(&[5usize, 3][..]));
    let text = trace.to_string();
    assert!(text.contains("[5, 3]"), "{text}");
    assert!(trace.adjoint("linear_loss").is_some());
}

#[test]
fn optimisers_step_a_derived_model() {
    let mut model = Mlp {
        w1: values((4, 6).into_dimension(), 14),
        b1: values(ndarray::Ix1(6), 15),
        w2: values((6, 3).into_dimension(), 16),
        b2: values(ndarray::Ix1(3), 17),
    };
    let x = values((8, 4).into_dimension(), 18);
    let labels = [0, 1, 2, 0, 1, 2, 0, 1];
    let start = mlp_loss(&model, &x, &labels);

    let mut sgd = stagegrad::optim::Sgd::new(0.1).with_momentum(0.9);
    let before = model.w2.clone();
    let (_, gradient) = mlp_loss_grad(&model, &x, &labels);
    sgd.step(&mut model, &gradient.model);
    assert_close(&model.w2, &(&before - &(0.1 * &gradient.model.w2)));

    let mut adam = stagegrad::optim::Adam::new(0.05);
    for _ in 0..50 {
        let (_, gradient) = mlp_loss_grad(&model, &x, &labels);
        adam.step(&mut model, &gradient.model);
    }
    let end = mlp_loss(&model, &x, &labels);
    assert!(end < 0.2 * start, "loss went from {start} to {end}");
}

#[differentiable]
fn polar(r: f64, theta: f64) -> (f64, f64) {
    (r * theta.cos(), r * theta.sin())
}

#[test]
fn tuple_result_pulls_back_each_element() {
    let (r, theta) = (2.0_f64, 0.5_f64);
    let (value, pullback) = polar_vjp(r, theta);
    assert_eq!(value, (r * theta.cos(), r * theta.sin()));
    // The cotangent (1, 0) picks the x coordinate, (0, 1) the y coordinate.
    let x = pullback((1.0, 0.0));
    assert!((x.r - theta.cos()).abs() < 1e-12);
    assert!((x.theta + r * theta.sin()).abs() < 1e-12);
    let y = pullback((0.0, 1.0));
    assert!((y.r - theta.sin()).abs() < 1e-12);
    assert!((y.theta - r * theta.cos()).abs() < 1e-12);
}

#[differentiable]
fn edge_energy(image: &Array2<f64>, kernel: &Array2<f64>) -> f64 {
    let settings = stagegrad::Conv2dSettings::new().padding(1).stride(2);
    let edges = stagegrad::conv2d(image, kernel, &settings);
    (edges.clone() * edges).mean().unwrap()
}

#[test]
fn single_channel_conv2d_matches_central_differences() {
    let image = values((5, 6).into_dimension(), 21);
    let kernel = values((3, 3).into_dimension(), 22);
    let (value, g) = edge_energy_grad(&image, &kernel);
    assert!((value - edge_energy(&image, &kernel)).abs() < 1e-12);
    assert_close(
        &g.image,
        &numerical_gradient(&image, |image| edge_energy(image, &kernel)),
    );
    assert_close(
        &g.kernel,
        &numerical_gradient(&kernel, |kernel| edge_energy(&image, kernel)),
    );
}
