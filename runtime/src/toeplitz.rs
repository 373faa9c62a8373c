//! Convolution as a matrix: the matrix `K` with `conv(x) == K x` on the flattened input,
//! dense or sparse (CSR), and the general Toeplitz and circulant forms.
//!
//! For a 1-D convolution without padding, `K` is a Toeplitz matrix whose rows are the
//! kernel shifted by the stride; for a 2-D convolution of a row-major flattened image it
//! is doubly-block Toeplitz: blocks of Toeplitz matrices, one per pair of output row and
//! kernel row. Padding removes columns (zeros) or folds them onto the input elements it
//! copies (reflect, replicate, circular), so every padding mode has its matrix. Since
//! `K` is the Jacobian of the convolution with respect to its input, `Kᵀ dy` is the
//! input gradient the convolution's pullback returns.
//!
//! The sparse builders write the CSR arrays row by row, so their time and memory are
//! proportional to the number of non-zeros: about `OH * OW * C/groups * KH * KW` for
//! each output channel.

use ndarray::{Array2, ArrayBase, Data, Ix1, Ix2, Ix3, Ix4};
use sprs::CsMat;

use crate::Scalar;
use crate::conv::{Conv1dSettings, Conv2dSettings, ConvPlan, Shapes};
use crate::error::ShapeError;

/// Calls `entry(row, column, value)` for each tap of each output that reads an input
/// element, row by row. Within a row, columns come in increasing order for zero
/// padding; the other modes can repeat or reorder them.
fn for_each_entry<A: Scalar>(
    weight: &[A],
    plan: &ConvPlan,
    mut entry: impl FnMut(usize, usize, A),
) {
    let (h, w) = (plan.height, plan.width);
    let (in_group, out_group) = (plan.in_per_group(), plan.out_per_group());
    let taps = h.kernel * w.kernel;
    let mut row = 0;
    for o in 0..plan.out_channels {
        let group = o / out_group;
        for oh in 0..h.output {
            for ow in 0..w.output {
                for ci in 0..in_group {
                    let c = group * in_group + ci;
                    let kernel = &weight[(o * in_group + ci) * taps..][..taps];
                    for kh in 0..h.kernel {
                        let Some(r) = plan.mode.source(h.position(oh, kh), h.input) else {
                            continue;
                        };
                        for kw in 0..w.kernel {
                            if let Some(q) = plan.mode.source(w.position(ow, kw), w.input) {
                                entry(
                                    row,
                                    (c * h.input + r) * w.input + q,
                                    kernel[kh * w.kernel + kw],
                                );
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

fn matrix_shape(plan: &ConvPlan) -> (usize, usize) {
    let rows = plan.out_channels * plan.height.output * plan.width.output;
    let cols = plan.in_channels * plan.height.input * plan.width.input;
    (rows, cols)
}

fn dense<A: Scalar>(weight: &[A], plan: &ConvPlan) -> Array2<A> {
    let mut matrix = Array2::zeros(matrix_shape(plan));
    for_each_entry(weight, plan, |row, col, value| matrix[[row, col]] += value);
    matrix
}

/// Appends one row's entries to the CSR arrays, sorted by column, duplicates summed.
fn push_row<A: Scalar>(entries: &mut Vec<(usize, A)>, indices: &mut Vec<usize>, data: &mut Vec<A>) {
    if !entries.is_sorted_by_key(|&(col, _)| col) {
        entries.sort_unstable_by_key(|&(col, _)| col);
    }
    let mut last = None;
    for &(col, value) in entries.iter() {
        if last == Some(col) {
            *data.last_mut().expect("the previous entry of this row") += value;
        } else {
            indices.push(col);
            data.push(value);
            last = Some(col);
        }
    }
    entries.clear();
}

fn sparse<A: Scalar>(weight: &[A], plan: &ConvPlan) -> CsMat<A> {
    let (rows, cols) = matrix_shape(plan);
    let per_row = plan.in_per_group() * plan.height.kernel * plan.width.kernel;
    let mut indptr = Vec::with_capacity(rows + 1);
    let mut indices = Vec::with_capacity(rows * per_row);
    let mut data = Vec::with_capacity(rows * per_row);
    let mut entries: Vec<(usize, A)> = Vec::with_capacity(per_row);
    let mut current = 0;
    indptr.push(0);
    for_each_entry(weight, plan, |row, col, value| {
        if row != current {
            push_row(&mut entries, &mut indices, &mut data);
            // Rows without entries (outputs that read only zero padding) repeat the offset.
            indptr.extend(std::iter::repeat_n(indices.len(), row - current));
            current = row;
        }
        entries.push((col, value));
    });
    push_row(&mut entries, &mut indices, &mut data);
    indptr.extend(std::iter::repeat_n(indices.len(), rows + 1 - indptr.len()));
    CsMat::new((rows, cols), indptr, indices, data)
}

fn plan(
    operation: &'static str,
    weight: [usize; 4],
    input: [usize; 2],
    settings: &Conv2dSettings,
    named: &[(&'static str, &[usize])],
) -> Result<ConvPlan, ShapeError> {
    let shapes = Shapes { operation, named };
    let channels = weight[1] * settings.groups;
    ConvPlan::new(
        [1, channels, input[0], input[1]],
        weight,
        None,
        settings,
        &shapes,
    )
}

fn standard<A: Scalar, S: Data<Elem = A>, D: ndarray::Dimension>(
    array: &ArrayBase<S, D>,
) -> Vec<A> {
    array.iter().copied().collect()
}

fn plan_1d<A, S: Data<Elem = A>>(
    operation: &'static str,
    kernel: &ArrayBase<S, Ix1>,
    input_len: usize,
    settings: &Conv1dSettings,
) -> Result<ConvPlan, ShapeError> {
    let named: &[(&str, &[usize])] = &[("kernel", kernel.shape()), ("input", &[input_len])];
    plan(
        operation,
        [1, 1, 1, kernel.len()],
        [1, input_len],
        &settings.to_2d(),
        named,
    )
}

fn plan_2d<A, S: Data<Elem = A>>(
    operation: &'static str,
    kernel: &ArrayBase<S, Ix2>,
    (height, width): (usize, usize),
    settings: &Conv2dSettings,
) -> Result<ConvPlan, ShapeError> {
    let named: &[(&str, &[usize])] = &[("kernel", kernel.shape()), ("input", &[height, width])];
    let (kh, kw) = kernel.dim();
    plan(operation, [1, 1, kh, kw], [height, width], settings, named)
}

fn plan_ncw<A, S: Data<Elem = A>>(
    operation: &'static str,
    weight: &ArrayBase<S, Ix3>,
    input_len: usize,
    settings: &Conv1dSettings,
) -> Result<ConvPlan, ShapeError> {
    let named: &[(&str, &[usize])] = &[("weight", weight.shape()), ("input", &[input_len])];
    let (o, c, k) = weight.dim();
    plan(
        operation,
        [o, c, 1, k],
        [1, input_len],
        &settings.to_2d(),
        named,
    )
}

fn plan_nchw<A, S: Data<Elem = A>>(
    operation: &'static str,
    weight: &ArrayBase<S, Ix4>,
    (height, width): (usize, usize),
    settings: &Conv2dSettings,
) -> Result<ConvPlan, ShapeError> {
    let named: &[(&str, &[usize])] = &[("weight", weight.shape()), ("input", &[height, width])];
    let (o, c, kh, kw) = weight.dim();
    plan(operation, [o, c, kh, kw], [height, width], settings, named)
}

/// Returns the dense matrix `K` of a 1-D convolution: `conv1d(x, kernel, settings) == K x`
/// for every `x` of length `input_len`. `K` is `output_len x input_len`.
///
/// Without padding and with stride 1, row `i` contains the kernel starting at column `i`:
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::{Conv1dSettings, conv1d_matrix};
///
/// let k = conv1d_matrix(&array![1.0, 2.0, 3.0], 5, &Conv1dSettings::new());
/// assert_eq!(k, array![[1.0, 2.0, 3.0, 0.0, 0.0], [0.0, 1.0, 2.0, 3.0, 0.0], [0.0, 0.0, 1.0, 2.0, 3.0]]);
/// ```
///
/// # Panics
///
/// When the settings do not fit the lengths, as [`conv1d`](crate::conv1d) does.
#[track_caller]
pub fn conv1d_matrix<A: Scalar, S: Data<Elem = A>>(
    kernel: &ArrayBase<S, Ix1>,
    input_len: usize,
    settings: &Conv1dSettings,
) -> Array2<A> {
    let plan = or_panic(plan_1d("conv1d_matrix", kernel, input_len, settings));
    dense(&standard(kernel), &plan)
}

/// Returns [`conv1d_matrix`] as a CSR matrix.
///
/// # Panics
///
/// As [`conv1d_matrix`].
#[track_caller]
pub fn conv1d_matrix_sparse<A: Scalar, S: Data<Elem = A>>(
    kernel: &ArrayBase<S, Ix1>,
    input_len: usize,
    settings: &Conv1dSettings,
) -> CsMat<A> {
    let plan = or_panic(plan_1d("conv1d_matrix_sparse", kernel, input_len, settings));
    sparse(&standard(kernel), &plan)
}

/// Returns the dense doubly-block Toeplitz matrix `K` of a 2-D convolution on the
/// row-major flattened image: `conv2d(x, kernel, settings)` flattened equals `K` times
/// `x` flattened, for every `x` of shape `(height, width)`. `K` is
/// `(OH * OW) x (height * width)`.
///
/// ```
/// use ndarray::{Array2, array};
/// use stagegrad_runtime::{Conv2dSettings, conv2d_matrix};
///
/// let k = conv2d_matrix(&Array2::from_elem((2, 2), 0.25), (3, 3), &Conv2dSettings::new());
/// let x = array![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
/// assert_eq!(k.dot(&x), array![3.0, 4.0, 6.0, 7.0]);
/// ```
///
/// # Panics
///
/// When the settings do not fit the shapes, as [`conv2d`](crate::conv2d) does.
#[track_caller]
pub fn conv2d_matrix<A: Scalar, S: Data<Elem = A>>(
    kernel: &ArrayBase<S, Ix2>,
    input_shape: (usize, usize),
    settings: &Conv2dSettings,
) -> Array2<A> {
    let plan = or_panic(plan_2d("conv2d_matrix", kernel, input_shape, settings));
    dense(&standard(kernel), &plan)
}

/// Returns [`conv2d_matrix`] as a CSR matrix, built in time and memory proportional to
/// its non-zeros (`OH * OW * KH * KW` at most).
///
/// ```
/// use ndarray::Array2;
/// use stagegrad_runtime::{Conv2dSettings, conv2d_matrix_sparse};
///
/// let k = conv2d_matrix_sparse(&Array2::<f32>::ones((3, 3)), (224, 224), &Conv2dSettings::new().padding(1));
/// assert_eq!(k.shape(), (224 * 224, 224 * 224));
/// assert_eq!(k.nnz(), 224 * 224 * 9 - 4 * 224 * 3 + 4);
/// ```
///
/// # Panics
///
/// As [`conv2d_matrix`].
#[track_caller]
pub fn conv2d_matrix_sparse<A: Scalar, S: Data<Elem = A>>(
    kernel: &ArrayBase<S, Ix2>,
    input_shape: (usize, usize),
    settings: &Conv2dSettings,
) -> CsMat<A> {
    let plan = or_panic(plan_2d(
        "conv2d_matrix_sparse",
        kernel,
        input_shape,
        settings,
    ));
    sparse(&standard(kernel), &plan)
}

/// Returns the dense matrix of a multi-channel 1-D convolution of one `C x W` sample
/// (with `C = weight.shape[1] * groups` and `W = input_len`) by an `O x C/groups x K`
/// weight: `K` maps the row-major flattened `C x W` input to the flattened `O x OW`
/// output, as [`conv1d_ncw`](crate::conv1d_ncw) without bias on each sample.
///
/// # Panics
///
/// When the settings do not fit the shapes, as [`conv1d_ncw`](crate::conv1d_ncw) does.
#[track_caller]
pub fn conv1d_ncw_matrix<A: Scalar, S: Data<Elem = A>>(
    weight: &ArrayBase<S, Ix3>,
    input_len: usize,
    settings: &Conv1dSettings,
) -> Array2<A> {
    let plan = or_panic(plan_ncw("conv1d_ncw_matrix", weight, input_len, settings));
    dense(&standard(weight), &plan)
}

/// Returns [`conv1d_ncw_matrix`] as a CSR matrix.
///
/// # Panics
///
/// As [`conv1d_ncw_matrix`].
#[track_caller]
pub fn conv1d_ncw_matrix_sparse<A: Scalar, S: Data<Elem = A>>(
    weight: &ArrayBase<S, Ix3>,
    input_len: usize,
    settings: &Conv1dSettings,
) -> CsMat<A> {
    let plan = or_panic(plan_ncw(
        "conv1d_ncw_matrix_sparse",
        weight,
        input_len,
        settings,
    ));
    sparse(&standard(weight), &plan)
}

/// Returns the dense matrix of a multi-channel 2-D convolution of one `C x H x W` sample
/// (with `C = weight.shape[1] * groups` and `(H, W) = input_shape`) by an
/// `O x C/groups x KH x KW` weight: `K` maps the row-major flattened `C x H x W` input to
/// the flattened `O x OH x OW` output, as [`conv2d_nchw`](crate::conv2d_nchw) without
/// bias on each sample. `K` has `O * OH * OW` rows and `C * H * W` columns.
///
/// # Panics
///
/// When the settings do not fit the shapes; [`try_conv2d_nchw_matrix`] returns the
/// error instead.
#[track_caller]
pub fn conv2d_nchw_matrix<A: Scalar, S: Data<Elem = A>>(
    weight: &ArrayBase<S, Ix4>,
    input_shape: (usize, usize),
    settings: &Conv2dSettings,
) -> Array2<A> {
    or_panic(try_conv2d_nchw_matrix(weight, input_shape, settings))
}

/// Returns [`conv2d_nchw_matrix`], or an error when the settings do not fit the shapes.
///
/// # Errors
///
/// A [`ShapeError`] naming the weight and input shapes when `groups` is 0, a stride or
/// dilation is 0, the dilated kernel exceeds the padded input, or a padding mode's limit
/// is exceeded.
pub fn try_conv2d_nchw_matrix<A: Scalar, S: Data<Elem = A>>(
    weight: &ArrayBase<S, Ix4>,
    input_shape: (usize, usize),
    settings: &Conv2dSettings,
) -> Result<Array2<A>, ShapeError> {
    let plan = plan_nchw("conv2d_nchw_matrix", weight, input_shape, settings)?;
    Ok(dense(&standard(weight), &plan))
}

/// Returns [`conv2d_nchw_matrix`] as a CSR matrix.
///
/// # Panics
///
/// When the settings do not fit the shapes; [`try_conv2d_nchw_matrix_sparse`] returns
/// the error instead.
#[track_caller]
pub fn conv2d_nchw_matrix_sparse<A: Scalar, S: Data<Elem = A>>(
    weight: &ArrayBase<S, Ix4>,
    input_shape: (usize, usize),
    settings: &Conv2dSettings,
) -> CsMat<A> {
    or_panic(try_conv2d_nchw_matrix_sparse(weight, input_shape, settings))
}

/// Returns [`conv2d_nchw_matrix_sparse`], or an error when the settings do not fit the
/// shapes.
///
/// # Errors
///
/// As [`try_conv2d_nchw_matrix`].
pub fn try_conv2d_nchw_matrix_sparse<A: Scalar, S: Data<Elem = A>>(
    weight: &ArrayBase<S, Ix4>,
    input_shape: (usize, usize),
    settings: &Conv2dSettings,
) -> Result<CsMat<A>, ShapeError> {
    let plan = plan_nchw("conv2d_nchw_matrix_sparse", weight, input_shape, settings)?;
    Ok(sparse(&standard(weight), &plan))
}

/// Returns the Toeplitz matrix with the given first column and first row:
/// `T[i, j] = first_column[i - j]` for `i >= j` and `first_row[j - i]` for `i < j`. It
/// is `first_column.len() x first_row.len()`. As in SciPy, the diagonal comes from
/// `first_column[0]` and `first_row[0]` is not read.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::toeplitz;
///
/// let t = toeplitz(&array![1, 2, 3], &array![1, 4, 5, 6]);
/// assert_eq!(t, array![[1, 4, 5, 6], [2, 1, 4, 5], [3, 2, 1, 4]]);
/// ```
pub fn toeplitz<A, S1, S2>(
    first_column: &ArrayBase<S1, Ix1>,
    first_row: &ArrayBase<S2, Ix1>,
) -> Array2<A>
where
    A: Clone,
    S1: Data<Elem = A>,
    S2: Data<Elem = A>,
{
    Array2::from_shape_fn((first_column.len(), first_row.len()), |(i, j)| {
        if i >= j {
            first_column[i - j].clone()
        } else {
            first_row[j - i].clone()
        }
    })
}

/// Returns the circulant matrix with the given first column:
/// `C[i, j] = first_column[(i - j) mod n]`, so `C x` is the circular convolution of
/// `first_column` with `x`.
///
/// ```
/// use ndarray::array;
/// use stagegrad_runtime::circulant;
///
/// assert_eq!(circulant(&array![1, 2, 3]), array![[1, 3, 2], [2, 1, 3], [3, 2, 1]]);
/// ```
pub fn circulant<A: Clone, S: Data<Elem = A>>(first_column: &ArrayBase<S, Ix1>) -> Array2<A> {
    let n = first_column.len();
    Array2::from_shape_fn((n, n), |(i, j)| first_column[(i + n - j) % n].clone())
}

#[track_caller]
fn or_panic<T>(result: Result<T, ShapeError>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{error}"),
    }
}
