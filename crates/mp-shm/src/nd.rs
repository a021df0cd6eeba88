//! `ndarray` views of shared memory (feature `ndarray`): numpy's
//! `np.frombuffer(arr.get_obj(), dtype).reshape(shape)` and
//! `np.ndarray(shape, dtype, buffer=shm.buf)`.
//!
//! The rules are in the crate docs (`# ndarray views`).

use ndarray::{ArrayView, ArrayViewMut, Dimension, StrideShape};

use crate::array::{Array, ArrayGuard};
use crate::error::Error;
use crate::raw::RawArray;
use crate::shared_memory::SharedMemory;
use crate::shm_safe::{AtomicShmSafe, ShmSafe};

fn shape_err(e: ndarray::ShapeError) -> Error {
    Error::Shape(e.to_string())
}

/// Checks that a view covers `len` elements exactly.
fn exact<V: HasLen>(v: V, len: usize) -> Result<V, Error> {
    if v.n() == len {
        Ok(v)
    } else {
        Err(Error::Shape(format!(
            "the shape has {} elements, the array {len}",
            v.n()
        )))
    }
}

trait HasLen {
    fn n(&self) -> usize;
}

impl<T, D: Dimension> HasLen for ArrayView<'_, T, D> {
    fn n(&self) -> usize {
        self.len()
    }
}

impl<T, D: Dimension> HasLen for ArrayViewMut<'_, T, D> {
    fn n(&self) -> usize {
        self.len()
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
impl<T: ShmSafe> ArrayGuard<'_, T> {
    /// The locked elements as an `ndarray` view of `shape` (feature
    /// `ndarray`); it lives no longer than the guard, so no other process
    /// touches the array meanwhile.
    ///
    /// ```
    /// use mp_shm::Array;
    ///
    /// let a = Array::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    /// let g = a.lock();
    /// let m = g.view((2, 3))?;
    /// assert_eq!(m[[1, 0]], 4.0);
    /// assert_eq!(m.sum(), 21.0);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the shape's element count is not `len()` (or
    /// its strides reach outside the array).
    pub fn view<D: Dimension>(
        &self,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ArrayView<'_, T, D>, Error> {
        let s: &[T] = self;
        exact(ArrayView::from_shape(shape, s).map_err(shape_err)?, s.len())
    }

    /// The locked elements as a mutable `ndarray` view of `shape`.
    ///
    /// ```
    /// use mp_shm::Array;
    ///
    /// let a = Array::<i32>::zeroed(6)?;
    /// {
    ///     let mut g = a.lock();
    ///     let mut m = g.view_mut((2, 3))?;
    ///     m.row_mut(1).fill(7);
    /// }
    /// assert_eq!(a.to_vec(), [0, 0, 0, 7, 7, 7]);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`view`](ArrayGuard::view).
    pub fn view_mut<D: Dimension>(
        &mut self,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ArrayViewMut<'_, T, D>, Error> {
        let s: &mut [T] = self;
        let len = s.len();
        exact(ArrayViewMut::from_shape(shape, s).map_err(shape_err)?, len)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
impl<T: ShmSafe> Array<T> {
    /// Copies the elements, under the lock, into an owned `ndarray` of
    /// `shape` (feature `ndarray`). For a view without a copy, lock and use
    /// [`ArrayGuard::view`].
    ///
    /// ```
    /// let a = mp_shm::Array::from_slice(&[1u8, 2, 3, 4])?;
    /// let m = a.to_ndarray((2, 2))?;
    /// assert_eq!(m, ndarray::array![[1, 2], [3, 4]]);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ArrayGuard::view`].
    ///
    /// # Panics
    ///
    /// When an [`ArrayGuard`] of this thread is alive.
    pub fn to_ndarray<D: Dimension>(
        &self,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ndarray::Array<T, D>, Error> {
        Ok(self.lock().view(shape)?.to_owned())
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
impl<T: ShmSafe> RawArray<T> {
    /// The elements as an `ndarray` view of `shape` (feature `ndarray`).
    ///
    /// ```
    /// let a = mp_shm::RawArray::from_slice(&[1i64, 2, 3, 4, 5, 6])?;
    /// // SAFETY: nobody else holds this array.
    /// let m = unsafe { a.view((3, 2))? };
    /// assert_eq!(m.column(1).to_vec(), [2, 4, 6]);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// As [`as_slice`](RawArray::as_slice): no thread of any process writes
    /// the elements while the view lives (order the processes with a lock,
    /// a barrier, a hand-off through a queue, or by joining the writers).
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the shape's element count is not `len()`.
    pub unsafe fn view<D: Dimension>(
        &self,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ArrayView<'_, T, D>, Error> {
        // SAFETY: the caller's contract is as_slice's.
        let s = unsafe { self.as_slice() };
        exact(ArrayView::from_shape(shape, s).map_err(shape_err)?, s.len())
    }

    /// The elements as a mutable `ndarray` view of `shape`.
    ///
    /// ```
    /// let a = mp_shm::RawArray::<f32>::zeroed(4)?;
    /// // SAFETY: nobody else holds this array.
    /// let mut m = unsafe { a.view_mut((2, 2))? };
    /// m.diag_mut().fill(1.0);
    /// assert_eq!(a.to_vec(), [1.0, 0.0, 0.0, 1.0]);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// As [`as_mut_slice`](RawArray::as_mut_slice): no other thread of any
    /// process reads or writes the elements while the view lives, and this
    /// thread makes no other reference to them.
    ///
    /// # Errors
    ///
    /// As [`view`](RawArray::view).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn view_mut<D: Dimension>(
        &self,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ArrayViewMut<'_, T, D>, Error> {
        // SAFETY: the caller's contract is as_mut_slice's.
        let s = unsafe { self.as_mut_slice() };
        let len = s.len();
        exact(ArrayViewMut::from_shape(shape, s).map_err(shape_err)?, len)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
impl<T: AtomicShmSafe> RawArray<T> {
    /// Copies the elements, each with a relaxed atomic load (so not a
    /// snapshot of one instant while others write), into an owned
    /// `ndarray` of `shape` (feature `ndarray`). Safe, unlike the views.
    ///
    /// ```
    /// let a = mp_shm::RawArray::from_slice(&[1u16, 2, 3, 4, 5, 6])?;
    /// assert_eq!(a.to_ndarray((3, 2))?, ndarray::array![[1, 2], [3, 4], [5, 6]]);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Shape`] when the shape's element count is not `len()`.
    pub fn to_ndarray<D: Dimension>(
        &self,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ndarray::Array<T, D>, Error> {
        let v = self.to_vec();
        let len = v.len();
        let a = ndarray::Array::from_shape_vec(shape, v).map_err(shape_err)?;
        if a.len() != len {
            return Err(Error::Shape(format!(
                "the shape has {} elements, the array {len}",
                a.len()
            )));
        }
        Ok(a)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
impl SharedMemory {
    /// Checks that `shape` of `T` fits at `offset` and returns the number
    /// of whole `T`s from `offset` to the end.
    fn elements_at<T>(&self, offset: usize) -> Result<usize, Error> {
        let (size, align) = (size_of::<T>(), align_of::<T>());
        if offset > self.size() {
            return Err(Error::OutOfBounds {
                offset,
                end: offset,
                size: self.size(),
            });
        }
        if !(self.as_ptr() as usize + offset).is_multiple_of(align) {
            return Err(Error::Misaligned { offset, align });
        }
        Ok((self.size() - offset).checked_div(size).unwrap_or(0))
    }

    /// The memory from byte `offset` on as an `ndarray` view of `shape`
    /// with elements of type `T` (feature `ndarray`; numpy's
    /// `np.ndarray(shape, dtype, buffer=shm.buf, offset=offset)`).
    ///
    /// ```
    /// use mp_shm::SharedMemory;
    ///
    /// let shm = SharedMemory::create_unique(4096)?;
    /// shm.write_at(8, &2.5f64.to_ne_bytes())?;
    /// // SAFETY: no other handle writes meanwhile.
    /// let m = unsafe { shm.view::<f64, _>(8, (2, 2))? };
    /// assert_eq!(m[[0, 0]], 2.5);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// As [`as_slice`](SharedMemory::as_slice): no thread of any process
    /// writes the memory the view covers while it lives. `T` is
    /// [`ShmSafe`], so any bytes there are a valid `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Misaligned`] when `offset` is not a multiple of `T`'s
    /// alignment; [`Error::OutOfBounds`] when `offset` is past the end;
    /// [`Error::Shape`] when the shape does not fit between `offset` and
    /// the end.
    pub unsafe fn view<T: ShmSafe, D: Dimension>(
        &self,
        offset: usize,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ArrayView<'_, T, D>, Error> {
        let n = self.elements_at::<T>(offset)?;
        // SAFETY: `n` whole, aligned `T`s lie inside the mapping from
        // `offset` (checked); every bit pattern is a valid `T`; no writer
        // by the caller's contract; the mapping lives as long as `self`.
        let s = unsafe { std::slice::from_raw_parts(self.as_ptr().add(offset).cast::<T>(), n) };
        ArrayView::from_shape(shape, s).map_err(shape_err)
    }

    /// The memory from byte `offset` on as a mutable `ndarray` view.
    ///
    /// ```
    /// use mp_shm::SharedMemory;
    ///
    /// let shm = SharedMemory::create_unique(64)?;
    /// // SAFETY: no other handle accesses the memory meanwhile.
    /// let mut m = unsafe { shm.view_mut::<u32, _>(0, [4, 4])? };
    /// m.fill(1);
    /// let mut word = [0u8; 4];
    /// shm.read_at(60, &mut word)?;
    /// assert_eq!(u32::from_ne_bytes(word), 1);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// As [`as_mut_slice`](SharedMemory::as_mut_slice): no other thread of
    /// any process reads or writes the memory the view covers while it
    /// lives, and this thread makes no other reference to it.
    ///
    /// # Errors
    ///
    /// As [`view`](SharedMemory::view).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn view_mut<T: ShmSafe, D: Dimension>(
        &self,
        offset: usize,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ArrayViewMut<'_, T, D>, Error> {
        let n = self.elements_at::<T>(offset)?;
        // SAFETY: as in `view`; exclusive by the caller's contract.
        let s = unsafe { std::slice::from_raw_parts_mut(self.as_ptr().add(offset).cast::<T>(), n) };
        ArrayViewMut::from_shape(shape, s).map_err(shape_err)
    }

    /// Copies the memory from byte `offset` on into an owned `ndarray` of
    /// `shape` (relaxed atomic loads, as [`read_at`](SharedMemory::read_at):
    /// safe, but not a snapshot of one instant while others write).
    ///
    /// ```
    /// let shm = mp_shm::SharedMemory::create_unique(16)?;
    /// shm.write_at(0, &[1, 2, 3, 4])?;
    /// assert_eq!(shm.to_ndarray::<u8, _>(0, (2, 2))?, ndarray::array![[1, 2], [3, 4]]);
    /// # Ok::<(), mp_shm::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`view`](SharedMemory::view).
    pub fn to_ndarray<T: ShmSafe, D: Dimension>(
        &self,
        offset: usize,
        shape: impl Into<StrideShape<D>>,
    ) -> Result<ndarray::Array<T, D>, Error> {
        let shape: StrideShape<D> = shape.into();
        let n = self.elements_at::<T>(offset)?;
        // The shape checked against the `n` elements there, over zero-sized
        // stand-ins; its strides tell how many elements it reaches.
        let units = vec![(); n];
        let probe = ArrayView::from_shape(shape.clone(), &units[..]).map_err(shape_err)?;
        let reach = if probe.is_empty() {
            0
        } else {
            1 + probe
                .shape()
                .iter()
                .zip(probe.strides())
                .map(|(&d, &s)| (d - 1) * s.unsigned_abs())
                .sum::<usize>()
        };
        let reach = reach.min(n);
        let mut v: Vec<T> = Vec::with_capacity(reach);
        // SAFETY: the spare capacity holds `reach` `T`s. It is zeroed through
        // the raw pointer first, so the byte slice made over it afterwards
        // covers initialized memory; read_at then overwrites it, and any
        // bytes are a valid `T` (ShmSafe), so the length can be set.
        unsafe {
            let base = v.as_mut_ptr().cast::<u8>();
            std::ptr::write_bytes(base, 0, reach * size_of::<T>());
            let bytes = std::slice::from_raw_parts_mut(base, reach * size_of::<T>());
            self.read_at(offset, bytes)?;
            v.set_len(reach);
        }
        let full = ArrayView::from_shape(shape, &v[..]).map_err(shape_err)?;
        Ok(full.to_owned())
    }
}
