//! Convolution throughput: `conv2d_nchw` forward and both backward rules against direct
//! loops, on a 64 -> 64 channel 3 x 3 layer (padding 1, 56 x 56, batch 8) in `f32` and
//! `f64`, and on the digits network's small layer (8 x 8 images, 1 -> 8 channels, 3 x 3,
//! padding 1, batch 32).
//!
//! Run with `cargo bench --bench conv`. Criterion's throughput line reads in FLOP/s:
//! each benchmark declares `2 * N * O * OH * OW * C * KH * KW` elements, one multiply
//! and one add per weight tap. After measuring, the bench prints the heap allocations of
//! one call on the small layer, counted on the calling thread.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array, Array1, Array4, Dimension};
use stagegrad::{
    Conv2dSettings, Scalar, conv2d_nchw, conv2d_nchw_input_grad, conv2d_nchw_vjp,
    conv2d_nchw_weight_grad,
};

fn random<A: Scalar, D: Dimension>(shape: D, seed: u64) -> Array<A, D> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array::from_shape_simple_fn(shape, || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        A::from_f64_lossy((state >> 11) as f64 / (1u64 << 52) as f64 - 1.0)
    })
}

/// Zero-padded stride-1 convolution by seven nested loops, the baseline.
fn naive<A: Scalar>(x: &Array4<A>, w: &Array4<A>, padding: usize) -> Array4<A> {
    let (n, c, h, wd) = x.dim();
    let (o, _, kh, kw) = w.dim();
    let (oh, ow) = (h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1);
    let mut y = Array4::zeros((n, o, oh, ow));
    for ni in 0..n {
        for oi in 0..o {
            for i in 0..oh {
                for j in 0..ow {
                    let mut sum = A::zero();
                    for ci in 0..c {
                        for p in 0..kh {
                            for q in 0..kw {
                                let (r, s) = (i + p, j + q);
                                if r >= padding
                                    && s >= padding
                                    && r - padding < h
                                    && s - padding < wd
                                {
                                    sum +=
                                        w[[oi, ci, p, q]] * x[[ni, ci, r - padding, s - padding]];
                                }
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

struct Layer {
    name: &'static str,
    input: (usize, usize, usize, usize),
    weight: (usize, usize, usize, usize),
    padding: usize,
}

impl Layer {
    fn flops(&self) -> u64 {
        let (n, c, h, w) = self.input;
        let (o, _, kh, kw) = self.weight;
        let (oh, ow) = (h + 2 * self.padding - kh + 1, w + 2 * self.padding - kw + 1);
        2 * (n * o * oh * ow * c * kh * kw) as u64
    }
}

const RESNET: Layer = Layer {
    name: "64x64_3x3_56x56_b8",
    input: (8, 64, 56, 56),
    weight: (64, 64, 3, 3),
    padding: 1,
};

const DIGITS: Layer = Layer {
    name: "digits_1x8_3x3_8x8_b32",
    input: (32, 1, 8, 8),
    weight: (8, 1, 3, 3),
    padding: 1,
};

fn bench_layer<A: Scalar>(c: &mut Criterion, layer: &Layer, with_naive: bool) {
    let x: Array4<A> = random(ndarray::Dim(layer.input), 1);
    let w: Array4<A> = random(ndarray::Dim(layer.weight), 2);
    let b: Array1<A> = random(ndarray::Ix1(layer.weight.0), 3);
    let settings = Conv2dSettings::new().padding(layer.padding);
    let y = conv2d_nchw(&x, &w, Some(&b), &settings);
    let dy: Array4<A> = random(y.raw_dim(), 4);
    let (h, wd) = (layer.input.2, layer.input.3);
    let kernel = (layer.weight.2, layer.weight.3);

    let mut group = c.benchmark_group(format!("conv2d_nchw/{}", layer.name));
    group.throughput(Throughput::Elements(layer.flops()));
    group.bench_function(BenchmarkId::new("forward", A::NAME), |bencher| {
        bencher.iter(|| conv2d_nchw(black_box(&x), black_box(&w), Some(&b), &settings))
    });
    group.bench_function(BenchmarkId::new("input_grad", A::NAME), |bencher| {
        bencher.iter(|| conv2d_nchw_input_grad(black_box(&dy), black_box(&w), (h, wd), &settings))
    });
    group.bench_function(BenchmarkId::new("weight_grad", A::NAME), |bencher| {
        bencher.iter(|| conv2d_nchw_weight_grad(black_box(&dy), black_box(&x), kernel, &settings))
    });
    if with_naive {
        group.sample_size(10);
        group.bench_function(BenchmarkId::new("naive_forward", A::NAME), |bencher| {
            bencher.iter(|| naive(black_box(&x), black_box(&w), layer.padding))
        });
    }
    group.finish();
}

fn bench_small_vjp(c: &mut Criterion) {
    let layer = &DIGITS;
    let x: Array4<f32> = random(ndarray::Dim(layer.input), 1);
    let w: Array4<f32> = random(ndarray::Dim(layer.weight), 2);
    let b: Array1<f32> = random(ndarray::Ix1(layer.weight.0), 3);
    let settings = Conv2dSettings::new().padding(layer.padding);
    let dy: Array4<f32> = random(conv2d_nchw(&x, &w, None, &settings).raw_dim(), 4);
    let mut group = c.benchmark_group(format!("conv2d_nchw/{}", layer.name));
    group.throughput(Throughput::Elements(3 * layer.flops()));
    group.bench_function("vjp_and_pullback/f32", |bencher| {
        bencher.iter(|| {
            let (y, pullback) = conv2d_nchw_vjp(black_box(&x), black_box(&w), Some(&b), &settings);
            (y, pullback(dy.clone()))
        })
    });
    group.finish();
}

/// Prints the heap allocations of one call of each rule on the small layer.
fn report_allocations() {
    let layer = &DIGITS;
    let x: Array4<f32> = random(ndarray::Dim(layer.input), 1);
    let w: Array4<f32> = random(ndarray::Dim(layer.weight), 2);
    let b: Array1<f32> = random(ndarray::Ix1(layer.weight.0), 3);
    let settings = Conv2dSettings::new().padding(layer.padding);
    let dy: Array4<f32> = random(conv2d_nchw(&x, &w, None, &settings).raw_dim(), 4);
    let count = |work: &dyn Fn()| allocation_counter::measure(work).count_total;
    println!("heap allocations per call on {} (f32):", layer.name);
    println!(
        "  conv2d_nchw: {}",
        count(&|| drop(conv2d_nchw(&x, &w, Some(&b), &settings)))
    );
    println!(
        "  conv2d_nchw_input_grad: {}",
        count(&|| drop(conv2d_nchw_input_grad(&dy, &w, (8, 8), &settings)))
    );
    println!(
        "  conv2d_nchw_weight_grad: {}",
        count(&|| drop(conv2d_nchw_weight_grad(&dy, &x, (3, 3), &settings)))
    );
    println!(
        "  conv2d_nchw_vjp: {}",
        count(&|| drop(conv2d_nchw_vjp(&x, &w, Some(&b), &settings)))
    );
    let (_, pullback) = conv2d_nchw_vjp(&x, &w, Some(&b), &settings);
    let cotangent = dy.clone();
    let pullback_count = allocation_counter::measure(move || drop(pullback(cotangent))).count_total;
    println!("  its pullback: {pullback_count}");
}

fn benches(c: &mut Criterion) {
    bench_layer::<f32>(c, &RESNET, true);
    bench_layer::<f64>(c, &RESNET, true);
    bench_layer::<f32>(c, &DIGITS, false);
    bench_layer::<f64>(c, &DIGITS, false);
    bench_small_vjp(c);
    report_allocations();
}

criterion_group!(conv, benches);
criterion_main!(conv);
