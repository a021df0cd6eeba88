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

mod array;
mod block;
mod error;
mod raw;
mod shared_memory;
mod shm_safe;
mod synced;
mod tracker;
mod value;

pub use array::{Array, ArrayGuard};
pub use error::{Error, Result};
pub use raw::{RawArray, RawValue};
pub use shared_memory::SharedMemory;
pub use shm_safe::{AtomicShmSafe, ShmSafe};
pub use value::{Value, ValueGuard};

#[cfg(test)]
mod tests;
