//! The codec of channel values: postcard's wire format, byte for byte, with
//! runs of bytes and floats copied as one block.
//!
//! serde sees a `Vec<u8>` (or `&[u8]`, `Vec<f64>`, ...) as a sequence and
//! codes it element by element: through postcard that is a call and a
//! bounds check per byte, about 1 ns a byte each way, where a copy costs a
//! few hundredths of that. This codec writes exactly what postcard writes
//! (so either side may be postcard, and the tests compare the two on random
//! values), but:
//!
//! - when serde asks it to serialize a sequence whose iterator is a slice
//!   iterator over `u8`, `i8`, `f32` or `f64` (what `Vec<T>`, `[T]` and
//!   `Box<[T]>` hand over), it copies the slice's bytes at once (floats are
//!   little-endian in postcard, as in memory on every target this crate
//!   builds for);
//! - when serde asks it for a sequence on behalf of serde's own `Vec<T>`
//!   visitor for those element types, it builds the vector from the block
//!   directly (a visitor of anyone else runs as usual).
//!
//! Types are recognised through `typeid` (type ids without a `'static`
//! bound); the visitor by its type name as well, so that a user's visitor
//! that happens to produce a `Vec<u8>` keeps its own logic. Bad input fails
//! with postcard's errors, before anything is allocated for it.

#![cfg_attr(loom, allow(dead_code))]

mod decode;
mod encode;
#[cfg(test)]
mod tests;

use postcard::Error;
use serde::de;
use serde::ser::Serialize;

use decode::De;
use encode::{Ser, SliceOut};

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// Encodes `value` into `buf`; returns the used part.
///
/// # Errors
///
/// `SerializeBufferFull` when it does not fit; the value's own errors.
pub(crate) fn to_slice<'b, T: Serialize + ?Sized>(
    value: &T,
    buf: &'b mut [u8],
) -> Result<&'b mut [u8]> {
    let mut ser = Ser {
        out: SliceOut { buf, pos: 0 },
    };
    value.serialize(&mut ser)?;
    let SliceOut { buf, pos } = ser.out;
    Ok(&mut buf[..pos])
}

/// Appends the encoding of `value` to `out`.
///
/// # Errors
///
/// The value's own errors (a sequence of unknown length, a custom error).
pub(crate) fn to_extend<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Result<Vec<u8>> {
    let mut ser = Ser { out };
    value.serialize(&mut ser)?;
    Ok(ser.out)
}

/// Decodes a value from the start of `bytes` (trailing bytes are ignored,
/// as postcard's `from_bytes` does).
///
/// # Errors
///
/// postcard's decoding errors for input that is not a valid encoding.
pub(crate) fn from_bytes<'a, T: de::Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    T::deserialize(&mut De { input: bytes })
}
