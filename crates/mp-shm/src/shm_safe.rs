//! The marker traits for types that may live in shared memory.

/// A type that may live in memory shared with other processes.
///
/// In the spirit of iceoryx2's `ZeroCopySend`: the value is copied in and
/// out of a mapping that other processes (maybe other builds of the same
/// program) see at other addresses, and they may write any bytes there.
///
/// # Safety
///
/// Implement it only for a type that is
///
/// * `#[repr(C)]` or `#[repr(transparent)]` (or a primitive), so that every
///   process agrees on its layout;
/// * free of pointers, references, `Box`/`Vec`/`String`, file descriptors
///   and anything else whose meaning is local to one process;
/// * valid for **every** bit pattern of its non-padding bytes (no `bool`,
///   `char`, enums, `NonZero*`, ...): another process, or a process that
///   died half-way through a write, may leave any bytes behind.
///
/// It is implemented for every integer type, `f32`, `f64` and arrays
/// `[T; N]` of `ShmSafe` types. For your own type:
///
/// ```
/// use mp_shm::{ShmSafe, Value};
///
/// #[repr(C)]
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// struct Point {
///     x: f64,
///     y: f64,
///     tag: [u8; 8],
/// }
///
/// // SAFETY: repr(C); only floats and bytes, valid for every bit pattern;
/// // no pointers or descriptors.
/// unsafe impl ShmSafe for Point {}
///
/// let p = Value::new(Point { x: 1.0, y: 2.0, tag: *b"origin\0\0" })?;
/// p.update(|p| p.x += 1.0);
/// assert_eq!(p.get().x, 2.0);
/// # Ok::<(), mp_shm::Error>(())
/// ```
pub unsafe trait ShmSafe: Copy + 'static {}

/// A [`ShmSafe`] type that can be loaded and stored whole with one atomic
/// instruction: size 1, 2, 4 or 8 bytes and alignment equal to its size.
/// [`RawValue`](crate::RawValue) and [`RawArray`](crate::RawArray) offer
/// safe `get`/`set` (relaxed atomics, so no data race) only for these.
///
/// Implemented for the integer types up to 64 bits, `isize`, `usize`, `f32`
/// and `f64`.
///
/// # Safety
///
/// `size_of::<Self>()` is 1, 2, 4 or 8 and `align_of::<Self>()` equals it
/// (checked at compile time where it is used), and `Self` is `ShmSafe`.
pub unsafe trait AtomicShmSafe: ShmSafe {}

macro_rules! impls {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive number: no pointers, every bit pattern valid.
        unsafe impl ShmSafe for $t {}
    )*};
}
impls!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

macro_rules! atomic_impls {
    ($($t:ty),*) => {$(
        // SAFETY: size 1, 2, 4 or 8 with alignment equal to size on every
        // 64-bit Linux target.
        unsafe impl AtomicShmSafe for $t {}
    )*};
}
atomic_impls!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize, f32, f64);

// SAFETY: an array of ShmSafe elements has no padding between them and is
// valid whenever each element is.
unsafe impl<T: ShmSafe, const N: usize> ShmSafe for [T; N] {}

/// Relaxed atomic load of a whole element.
///
/// # Safety
///
/// `p` is valid for reads of `T`, aligned, and only accessed atomically by
/// concurrent threads.
#[inline]
pub(crate) unsafe fn atomic_load<T: AtomicShmSafe>(p: *const T) -> T {
    use std::mem::{align_of, size_of, transmute_copy};
    use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
    const { assert!(matches!(size_of::<T>(), 1 | 2 | 4 | 8) && align_of::<T>() == size_of::<T>()) };
    // SAFETY: size and alignment match the atomic type (checked above); the
    // caller guarantees validity; `T` is valid for every bit pattern.
    unsafe {
        match size_of::<T>() {
            1 => transmute_copy(&(*p.cast::<AtomicU8>()).load(Relaxed)),
            2 => transmute_copy(&(*p.cast::<AtomicU16>()).load(Relaxed)),
            4 => transmute_copy(&(*p.cast::<AtomicU32>()).load(Relaxed)),
            _ => transmute_copy(&(*p.cast::<AtomicU64>()).load(Relaxed)),
        }
    }
}

/// Relaxed atomic store of a whole element.
///
/// # Safety
///
/// As [`atomic_load`], for writes.
#[inline]
pub(crate) unsafe fn atomic_store<T: AtomicShmSafe>(p: *mut T, v: T) {
    use std::mem::{align_of, size_of, transmute_copy};
    use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};
    const { assert!(matches!(size_of::<T>(), 1 | 2 | 4 | 8) && align_of::<T>() == size_of::<T>()) };
    // SAFETY: as in atomic_load; `v` has exactly the size of the integer.
    unsafe {
        match size_of::<T>() {
            1 => (*p.cast::<AtomicU8>()).store(transmute_copy(&v), Relaxed),
            2 => (*p.cast::<AtomicU16>()).store(transmute_copy(&v), Relaxed),
            4 => (*p.cast::<AtomicU32>()).store(transmute_copy(&v), Relaxed),
            _ => (*p.cast::<AtomicU64>()).store(transmute_copy(&v), Relaxed),
        }
    }
}
