//! Shared memory for processes: [`Value`], [`Array`], [`RawValue`],
//! [`RawArray`] and named [`SharedMemory`] — Python's
//! `multiprocessing.Value/Array/RawValue/RawArray` and
//! `multiprocessing.shared_memory.SharedMemory`.
//!
//! ```
//! use mp_shm::{Array, Value};
//!
//! let total = Value::new(0i32)?;
//! let squares = Array::<i32>::zeroed(4)?;
//! // Clones (and deserialized copies in other processes) share the memory.
//! let (t, s) = (total.clone(), squares.clone());
//! std::thread::spawn(move || {
//!     for i in 0..4 {
//!         s.set(i, (i * i) as i32 + 2 * i as i32 + 1);
//!     }
//!     t.set(s.to_vec().iter().sum());
//! })
//! .join()
//! .unwrap();
//! assert_eq!(squares.to_vec(), [1, 4, 9, 16]);
//! assert_eq!(total.get(), 30);
//! # Ok::<(), mp_shm::Error>(())
//! ```
//!
//! * [`Value<T>`] and [`Array<T>`] are synchronized by a recursive lock
//!   ([`mp_sync::RLock`], from `get_lock()`), with `get`/`set`, a guard
//!   (`lock()`) that derefs to the data, and `update(|v| ...)`.
//! * [`RawValue<T>`] and [`RawArray<T>`] have no lock: safe element access
//!   uses relaxed atomics (for [`AtomicShmSafe`] types), anything else is
//!   `unsafe`.
//! * [`SharedMemory`] is named (`/dev/shm/NAME`) for unrelated processes;
//!   its creator owns and unlinks the name, and the program's tracker
//!   process unlinks the names its processes left behind (killed, or gone
//!   without unlinking) once the program has ended.
//! * [`ShareableList`] is CPython's `ShareableList` in CPython's block
//!   layout: a Python process attaches by name to a list made here, and
//!   the reverse.
//! * [`SharedBuf`] is a byte buffer with one owner that a `Queue` or `Pipe`
//!   moves by handle: the receiver maps the pages the sender wrote, no
//!   byte is copied.
//!
//! With the `ndarray` feature, `Array`, `RawArray` and `SharedMemory` give
//! `ndarray` views of a shape (numpy's `np.frombuffer(...).reshape(...)`),
//! checked for size and alignment: safe under an `Array`'s lock
//! (`a.lock().view_mut((rows, cols))?`), `unsafe` over lock-free memory,
//! and `to_ndarray` copies everywhere (see [`ndarray` views](#ndarray-views)).
//!
//! Element types implement [`ShmSafe`]: plain `#[repr(C)]` data, valid for
//! every bit pattern.
//!
//! All handles are `Clone` (cheap, shared memory) and serde values: sent in
//! a process's arguments they re-attach to the same memory (and for
//! `Value`/`Array`, the same lock) in the child.
//!
//! # Python typecodes
//!
//! | typecode | C type | Rust |
//! |---|---|---|
//! | `'b'` | signed char | `i8` |
//! | `'B'` | unsigned char | `u8` |
//! | `'h'` | short | `i16` |
//! | `'H'` | unsigned short | `u16` |
//! | `'i'` | int | `i32` |
//! | `'I'` | unsigned int | `u32` |
//! | `'l'` | long | `i64` (Linux x86-64 / aarch64) |
//! | `'L'` | unsigned long | `u64` |
//! | `'q'` | long long | `i64` |
//! | `'Q'` | unsigned long long | `u64` |
//! | `'f'` | float | `f32` |
//! | `'d'` | double | `f64` |
//! | `'c'` | char (a 1-byte `bytes`) | `u8` |
//!
//! `Value('d', 0.0)` is `Value::new(0.0f64)?`, `Array('i', 10)` is
//! `Array::<i32>::zeroed(10)?`, `Array('i', range(10))` is
//! `Array::from_slice(&(0..10).collect::<Vec<i32>>())?`, and
//! `Value('i', 0, lock=False)` is `RawValue::new(0i32)?`. A `ctypes`
//! structure is a `#[repr(C)]` struct that implements [`ShmSafe`].
//! `Value('i', 0, lock=lock)` with an existing `RLock` is
//! [`Value::with_lock`]`(0i32, lock)?` (and
//! [`Array::zeroed_with_lock`] / [`Array::from_slice_with_lock`]): several
//! objects under one lock. `Array('c', n)` is `Array::<u8>::zeroed(n)?`
//! with [`value`](Array::value) / [`set_value`](Array::set_value) (up to
//! the first NUL) and [`raw`](Array::raw) / [`set_raw`](Array::set_raw).
//!
//! # `ndarray` views
//!
//! With the `ndarray` feature (`ArrayGuard::view`/`view_mut`,
//! `RawArray::view`/`view_mut`, `SharedMemory::view`/`view_mut`, and
//! `to_ndarray` on all three). Which view is sound where:
//!
//! A Rust reference (`&[T]`, `&mut [T]`, and so an `ArrayView` or an
//! `ArrayViewMut`) promises that nobody else writes (or, for `&mut`,
//! accesses) the memory while it lives. Memory shared with other processes
//! keeps that promise only if they are kept out, so:
//!
//! * [`ArrayGuard`] (the held lock of an [`Array`]) gives **safe** views:
//!   every other access to an `Array`, in any process, takes the same lock,
//!   so while the guard lives the view is the only access. This is how
//!   `Value`/`Array` already hand out `&mut T`/`&mut [T]`.
//! * [`RawArray`] and [`SharedMemory`] have no lock: their safe accessors
//!   are relaxed atomics element by element (`RawArray::get`/`set`,
//!   `SharedMemory::read_at`/`write_at`), which no plain reference can
//!   be. Their views are **`unsafe`**, with the contract of their
//!   `as_slice`/`as_mut_slice`: no other thread of any process writes (for
//!   a mutable view: accesses) the memory while the view lives — the caller
//!   orders the processes with a lock, a barrier, a queue hand-off or a
//!   join.
//! * `to_ndarray` copies into an owned `ndarray::Array` and is safe
//!   everywhere (under the lock for `Array`; with relaxed atomic loads for
//!   `RawArray`/`SharedMemory`, so a copy made while others write is not a
//!   snapshot of one instant).
//!
//! Shapes are anything `ndarray` takes (`(rows, cols)`, `[2, 3, 4]`,
//! `(rows, cols).f()` for column-major, custom strides) and are checked:
//! the element count of an `Array`/`RawArray` view must equal `len()` (as
//! numpy's `reshape`), a `SharedMemory` view must fit between `offset` and
//! the end, and the offset must be aligned for `T`. A shape that does not
//! fit is [`Error::Shape`], a misaligned offset [`Error::Misaligned`];
//! nothing panics.
//!
//! # Memory
//!
//! `Value`, `Array`, `RawValue` and `RawArray` live in anonymous memfd
//! segments: nothing is left in `/dev/shm` when processes crash, and the
//! kernel frees the memory when the last process lets go. The layout (a
//! versioned header, the lock, metadata checked on deserialization, the
//! elements) is documented in the crate README.
//!
//! Linux only.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod array;
mod block;
mod chars;
mod error;
#[cfg(feature = "ndarray")]
mod nd;
mod raw;
mod shareable_list;
mod shared_buf;
mod shared_memory;
mod shm_safe;
mod synced;
mod tracker;
mod value;

pub use array::{Array, ArrayGuard};
pub use error::{Error, Result};
pub use raw::{RawArray, RawValue};
pub use shareable_list::{Item, ShareableList};
pub use shared_buf::SharedBuf;
pub use shared_memory::SharedMemory;
pub use shm_safe::{AtomicShmSafe, ShmSafe};
pub use value::{Value, ValueGuard};

/// The `ndarray` crate these views are of (feature `ndarray`), so that
/// users name the same version.
#[cfg(feature = "ndarray")]
#[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
pub use ndarray;

#[cfg(test)]
mod tests;
