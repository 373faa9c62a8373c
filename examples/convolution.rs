//! Convolution by hand: output sizes, outputs, the matrix `K` with `conv(x) = K x`, the
//! box filter, and a check that `Kᵀ` applied to an output gradient is the input
//! gradient the convolution's pullback returns.
//!
//! Run with `cargo run --example convolution`.

use ndarray::{Array1, Array2, array};
use stagegrad::{
    Conv1dSettings, Conv2dSettings, Padding, conv1d, conv1d_matrix, conv1d_vjp, conv2d,
    conv2d_matrix, conv2d_matrix_sparse, conv2d_vjp, output_len,
};

fn max_abs_difference(a: &Array1<f64>, b: &Array1<f64>) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

fn one_dimensional() {
    let x = Array1::from_iter((1..=9).map(f64::from));
    let k = array![1.0, -2.0, 3.0];
    println!("1-D: x = {x}, kernel [k1, k2, k3] = {k}");

    let valid = Conv1dSettings::new();
    let n = output_len(x.len(), k.len(), Padding::Valid, 1, 1).expect("the kernel fits");
    let y = conv1d(&x, &k, &valid);
    println!("\nno padding, stride 1: floor((9 - 3) / 1) + 1 = {n} outputs");
    println!("y = {y}");
    println!(
        "first y1 = k1 x1 + k2 x2 + k3 x3 = {} (computed {})",
        k[0] * x[0] + k[1] * x[1] + k[2] * x[2],
        y[0]
    );
    println!(
        "last  y7 = k1 x7 + k2 x8 + k3 x9 = {} (computed {})",
        k[0] * x[6] + k[1] * x[7] + k[2] * x[8],
        y[6]
    );
    let matrix = conv1d_matrix(&k, x.len(), &valid);
    println!(
        "K ({} x {}), rows of the kernel shifted by one:\n{matrix:5.1}",
        matrix.nrows(),
        matrix.ncols()
    );
    println!("K x = {}", matrix.dot(&x));

    let strided = Conv1dSettings::new().padding(1).stride(2);
    let n = output_len(x.len(), k.len(), Padding::Symmetric(1), 2, 1).expect("the kernel fits");
    let y = conv1d(&x, &k, &strided);
    println!("\npadding 1, stride 2: floor((9 + 2 - 3) / 2) + 1 = {n} outputs");
    println!("y = {y}");
    println!(
        "first y1 = k2 x1 + k3 x2 = {} (computed {})",
        k[1] * x[0] + k[2] * x[1],
        y[0]
    );
    println!(
        "last  y5 = k1 x8 + k2 x9 = {} (computed {})",
        k[0] * x[7] + k[1] * x[8],
        y[4]
    );
    let matrix = conv1d_matrix(&k, x.len(), &strided);
    println!(
        "K ({} x {}), rows shifted by the stride:\n{matrix:5.1}",
        matrix.nrows(),
        matrix.ncols()
    );

    let (_, pullback) = conv1d_vjp(&x, &k, &strided);
    let dy = array![1.0, -2.0, 0.5, 3.0, -1.0];
    let (dx, dk, _) = pullback(dy.clone());
    let kt_dy = matrix.t().dot(&dy);
    println!("\noutput gradient dy = {dy}");
    println!("pullback dx = {dx}");
    println!("K^T dy      = {kt_dy}");
    println!(
        "largest difference: {:.1e}",
        max_abs_difference(&dx, &kt_dy)
    );
    println!("pullback dk = {dk}");
}

fn two_dimensional() {
    let image = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]];
    let box_filter = Array2::from_elem((2, 2), 0.25);
    let settings = Conv2dSettings::new();
    println!("\n2-D: image\n{image}\nbox filter of 1/4\n{box_filter}");
    let y = conv2d(&image, &box_filter, &settings);
    println!(
        "output ({} x {}): the mean of each 2 x 2 window\n{y}",
        y.nrows(),
        y.ncols()
    );

    let matrix = conv2d_matrix(&box_filter, image.dim(), &settings);
    println!("K (4 x 9) on the row-major flattened image, doubly-block Toeplitz:\n{matrix:5.2}");
    let flat = Array1::from_iter(image.iter().copied());
    println!("K x = {}", matrix.dot(&flat));

    let (_, pullback) = conv2d_vjp(&image, &box_filter, &settings);
    let dy = array![[1.0, 2.0], [3.0, 4.0]];
    let (dx, _, _) = pullback(dy.clone());
    let kt_dy = matrix.t().dot(&Array1::from_iter(dy.iter().copied()));
    let dx_flat = Array1::from_iter(dx.iter().copied());
    println!("pullback dx for dy = [[1, 2], [3, 4]]:\n{dx}");
    println!("K^T dy = {kt_dy}");
    println!(
        "largest difference: {:.1e}",
        max_abs_difference(&dx_flat, &kt_dy)
    );

    let sparse = conv2d_matrix_sparse(
        &Array2::<f64>::ones((3, 3)),
        (224, 224),
        &Conv2dSettings::new().padding(1),
    );
    println!(
        "\nsparse K of a 3 x 3 kernel on a 224 x 224 image with padding 1: {} x {}, {} non-zeros",
        sparse.rows(),
        sparse.cols(),
        sparse.nnz()
    );
}

fn main() {
    one_dimensional();
    two_dimensional();
}
