//! The matrix product behind the packed convolution path, and the per-thread scratch
//! buffers it packs into.
//!
//! Every operand lives in a `Vec<A>` (a scratch buffer or a copy of the weight) so that
//! the backend can be chosen per element type without `unsafe`: a `&Vec<A>` downcasts
//! to `&Vec<f32>` through `Any` when `A` is `f32`.

use std::any::Any;
use std::cell::RefCell;

use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};

use crate::Scalar;

/// A strided matrix inside a vector: element `(i, j)` is
/// `data[offset + i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct Matrix<'a, A> {
    pub data: &'a Vec<A>,
    pub offset: usize,
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, A> Matrix<'a, A> {
    /// A row-major block of `rows x cols` starting at `offset`, rows `row_stride` apart.
    pub fn row_major(
        data: &'a Vec<A>,
        offset: usize,
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        Self {
            data,
            offset,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transposed matrix, sharing the data.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    fn view(&self) -> ArrayView2<'a, A> {
        ArrayView2::from_shape(
            (self.rows, self.cols).strides((self.row_stride, self.col_stride)),
            &self.data[self.offset..self.end()],
        )
        .expect("strides stay inside the buffer")
    }

    fn end(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            self.offset
        } else {
            self.offset + (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }

    /// Returns the same matrix over `data`: this matrix's buffer, downcast to the
    /// concrete element type.
    fn retyped<'b, T>(&self, data: &'b Vec<T>) -> Matrix<'b, T> {
        Matrix {
            data,
            offset: self.offset,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        }
    }
}

impl<'a, T: faer::traits::ComplexField> Matrix<'a, T> {
    fn faer(&self) -> faer::MatRef<'a, T> {
        let slice = &self.data[self.offset..self.end()];
        if self.col_stride == 1 || self.cols <= 1 {
            faer::MatRef::from_row_major_slice_with_stride(
                slice,
                self.rows,
                self.cols,
                self.row_stride.max(self.cols),
            )
        } else {
            debug_assert_eq!(self.row_stride, 1, "one of the strides is 1");
            faer::MatRef::from_row_major_slice_with_stride(
                slice,
                self.cols,
                self.rows,
                self.col_stride,
            )
            .transpose()
        }
    }
}

/// Computes `c = a b` into the first `a.rows * b.cols` elements of `c`, row-major.
///
/// `f32` and `f64` go to faer's matrix product, which uses AVX-512 where the processor
/// has it; any other `Scalar` goes to ndarray's.
pub(crate) fn matmul<A: Scalar>(c: &mut Vec<A>, a: Matrix<'_, A>, b: Matrix<'_, A>) {
    debug_assert_eq!(a.cols, b.rows);
    let (m, n) = (a.rows, b.cols);
    if c.len() < m * n {
        c.resize(m * n, A::zero());
    }
    if m == 0 || n == 0 {
        return;
    }
    if !try_faer::<A, f32>(c, a, b) && !try_faer::<A, f64>(c, a, b) {
        let mut c_view = ArrayViewMut2::from_shape((m, n), &mut c[..m * n])
            .expect("the buffer has room for m x n elements");
        general_mat_mul(A::one(), &a.view(), &b.view(), A::zero(), &mut c_view);
    }
}

/// Runs the product with faer when `A` is `T`; returns whether it did.
// The buffers stay `Vec`s because a `Vec<A>` downcasts through `Any` and a slice does not.
#[allow(clippy::ptr_arg)]
fn try_faer<A: Scalar, T: faer::traits::ComplexField + 'static>(
    c: &mut Vec<A>,
    a: Matrix<'_, A>,
    b: Matrix<'_, A>,
) -> bool {
    let (Some(c), Some(a_data), Some(b_data)) = (
        (c as &mut dyn Any).downcast_mut::<Vec<T>>(),
        (a.data as &dyn Any).downcast_ref::<Vec<T>>(),
        (b.data as &dyn Any).downcast_ref::<Vec<T>>(),
    ) else {
        return false;
    };
    let (m, n) = (a.rows, b.cols);
    let c = faer::MatMut::from_row_major_slice_mut(&mut c[..m * n], m, n);
    let (a, b) = (a.retyped(a_data), b.retyped(b_data));
    faer::linalg::matmul::matmul(
        c,
        faer::Accum::Replace,
        a.faer(),
        b.faer(),
        T::one_impl(),
        faer::Par::Seq,
    );
    true
}

/// Three growable buffers per element type and thread: packed columns, a staged
/// operand and the product.
#[derive(Default)]
struct Buffers {
    f32: [Vec<f32>; 3],
    f64: [Vec<f64>; 3],
}

thread_local! {
    static SCRATCH: RefCell<Buffers> = RefCell::default();
}

/// Runs `body` with this thread's three scratch buffers for `A`. The buffers keep their
/// capacity between calls, so a warm thread allocates nothing; their contents are
/// stale, so `body` must write before it reads.
pub(crate) fn with_scratch<A: Scalar, R>(body: impl FnOnce(&mut [Vec<A>; 3]) -> R) -> R {
    SCRATCH.with(|cell| {
        // A nested call on the same thread (not expected) gets fresh buffers.
        let mut guard = cell.try_borrow_mut().ok();
        let mut fresh: [Vec<A>; 3] = Default::default();
        let typed: &mut [Vec<A>; 3] = match guard.as_deref_mut() {
            Some(buffers) => {
                if let Some(typed) = (&mut buffers.f32 as &mut dyn Any).downcast_mut() {
                    typed
                } else if let Some(typed) = (&mut buffers.f64 as &mut dyn Any).downcast_mut() {
                    typed
                } else {
                    &mut fresh
                }
            }
            None => &mut fresh,
        };
        body(typed)
    })
}
