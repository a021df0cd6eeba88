//! The encoding of a pool task's chunk: many arguments in, one result per
//! item out, and [`ChunkRunner`], which runs a function on a chunk in a
//! worker (through `mp_proc`'s [`Runner`] hook).
//!
//! # Format
//!
//! A chunk is a tag byte and a body. `TAG_RAW`: a postcard varint count,
//! then the values' native bytes, for plain number types only (every bit
//! pattern valid, no padding: the workers run the same executable).
//! `TAG_POSTCARD`: the postcard encoding of a `Vec<A>` (arguments) or of
//! a `Vec<Result<R, CallError>>` (results). Results are raw only when every
//! item succeeded.

use mp_proc::{CallError, Runner, catch_panic};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::collect::Chunk;

/// Runs a function on a chunk made by [`encode_chunk`] and returns one
/// result per item (a panic fails only its own item), for
/// [`Sink::deliver_encoded`](crate::Sink::deliver_encoded): the runner of
/// every pool task. A pool of another crate ships
/// `Function::with_runner::<ChunkRunner>(f).raw()` with the encoded chunk
/// and calls [`RawFunction::run`](mp_proc::RawFunction::run) in the worker.
///
/// ```
/// use mp_pool::codec::{ChunkRunner, encode_chunk};
/// use mp_proc::Function;
///
/// fn inc(x: u16) -> u16 { x + 1 }
///
/// let raw = Function::with_runner::<ChunkRunner>(inc).raw();
/// let chunk = encode_chunk(&[1u16, 2])?;
/// // In the worker (same executable): SAFETY: `raw` comes from
/// // `Function::raw` in this program.
/// let out = unsafe { raw.run(&chunk) };
/// // Back in the caller, `sink.deliver_encoded(index, 2, out)`.
/// assert!(out.is_ok());
/// # Ok::<(), mp_pool::Error>(())
/// ```
#[derive(Debug)]
pub struct ChunkRunner;

impl Runner for ChunkRunner {
    fn run<A: DeserializeOwned + 'static, R: Serialize + 'static>(
        f: fn(A) -> R,
        input: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        let call = |a: A| catch_panic(|| f(a));
        let encode_err = |e: postcard::Error| CallError::BadOutput(e.to_string());
        let (&tag, body) = input
            .split_first()
            .ok_or_else(|| CallError::BadInput("empty chunk".into()))?;
        let len = chunk_len(tag, body, pod_size::<A>())?;
        if pod_size::<R>().is_some() {
            // Plain numbers out: collect them, and send them as raw bytes
            // unless an item failed.
            let mut ok: Vec<R> = Vec::with_capacity(len);
            let mut mixed: Option<Vec<Result<R, CallError>>> = None;
            for_each_input::<A>(tag, body, len, |a| {
                let r = call(a);
                match (&mut mixed, r) {
                    (Some(m), r) => m.push(r),
                    (None, Ok(v)) => ok.push(v),
                    (None, Err(e)) => {
                        let mut m: Vec<Result<R, CallError>> =
                            std::mem::take(&mut ok).into_iter().map(Ok).collect();
                        m.push(Err(e));
                        mixed = Some(m);
                    }
                }
            })?;
            return match mixed {
                None => Ok(encode_raw(&ok)),
                Some(m) => {
                    let out = VecFlavor(vec![TAG_POSTCARD]);
                    Ok(postcard::serialize_with_flavor(&m, out)
                        .map_err(encode_err)?
                        .0)
                }
            };
        }
        // Anything else: a postcard `Vec<Result<R, CallError>>` written item by
        // item, without building the vector.
        let mut out = VecFlavor(Vec::with_capacity(input.len() + len + 8));
        out.0.push(TAG_POSTCARD);
        out = postcard::serialize_with_flavor(&len, out).map_err(encode_err)?;
        let mut failed = None;
        for_each_input::<A>(tag, body, len, |a| {
            if failed.is_some() {
                return;
            }
            let step = match call(a) {
                Ok(r) => {
                    out.0.push(0); // Result::Ok
                    postcard::serialize_with_flavor(
                        &r,
                        std::mem::replace(&mut out, VecFlavor(Vec::new())),
                    )
                }
                Err(e) => {
                    out.0.push(1); // Result::Err
                    postcard::serialize_with_flavor(
                        &e,
                        std::mem::replace(&mut out, VecFlavor(Vec::new())),
                    )
                }
            };
            match step {
                Ok(o) => out = o,
                Err(e) => failed = Some(encode_err(e)),
            }
        })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(out.0),
        }
    }
}

/// Encodes a chunk of arguments for [`ChunkRunner`]: plain numbers as
/// their native bytes, anything else in postcard.
///
/// ```
/// let chunk = mp_pool::codec::encode_chunk(&[1u32, 2, 3])?;
/// assert_eq!(chunk.len(), 1 + 1 + 12); // tag, count, three u32
/// # Ok::<(), mp_pool::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Call`] ([`CallError::BadInput`]) when an item cannot be
/// serialized.
pub fn encode_chunk<A: Serialize + 'static>(items: &[A]) -> Result<Vec<u8>, Error> {
    encode_items(items).map_err(|e| Error::Call(CallError::BadInput(e.to_string())))
}

fn encode_items<A: Serialize + 'static>(items: &[A]) -> postcard::Result<Vec<u8>> {
    if pod_size::<A>().is_some() {
        return Ok(encode_raw(items));
    }
    let out = VecFlavor(vec![TAG_POSTCARD]);
    Ok(postcard::serialize_with_flavor(items, out)?.0)
}

/// The decoded output of [`ChunkRunner`].
#[derive(Debug)]
pub(crate) enum ChunkResults<R> {
    /// Every item succeeded.
    Ok(Vec<R>),
    /// At least one item failed; one entry per item.
    Mixed(Vec<Result<R, CallError>>),
}

/// Decodes the output of [`ChunkRunner`].
///
/// # Errors
///
/// [`CallError::BadOutput`] for bytes that are not a chunk of `R` results.
pub(crate) fn decode_chunk_results<R: DeserializeOwned + 'static>(
    bytes: &[u8],
) -> Result<ChunkResults<R>, CallError> {
    let bad = |e: String| CallError::BadOutput(e);
    let (&tag, body) = bytes
        .split_first()
        .ok_or_else(|| bad("empty result chunk".into()))?;
    match tag {
        TAG_RAW => {
            let len = chunk_len(tag, body, pod_size::<R>()).map_err(|e| bad(e.to_string()))?;
            let mut out = Vec::with_capacity(len);
            for_each_input::<R>(tag, body, len, |r| out.push(r)).map_err(|e| bad(e.to_string()))?;
            Ok(ChunkResults::Ok(out))
        }
        TAG_POSTCARD => {
            let all: Vec<Result<R, CallError>> =
                postcard::from_bytes(body).map_err(|e| bad(e.to_string()))?;
            if all.iter().all(Result::is_ok) {
                Ok(ChunkResults::Ok(
                    all.into_iter().map(|r| r.expect("checked")).collect(),
                ))
            } else {
                Ok(ChunkResults::Mixed(all))
            }
        }
        t => Err(bad(format!("unknown result chunk tag {t}"))),
    }
}

/// A chunk (input or output of [`ChunkRunner`]) in postcard.
const TAG_POSTCARD: u8 = 0;
/// A chunk of plain numbers: a varint count, then the values' native bytes.
const TAG_RAW: u8 = 1;

/// The size of `T` if it is a plain number type (every bit pattern valid,
/// no padding), whose values can travel as their native bytes between
/// processes of the same executable.
fn pod_size<T: 'static>() -> Option<usize> {
    use std::any::TypeId;
    let id = TypeId::of::<T>();
    macro_rules! pod {
        ($($t:ty),*) => {
            $(if id == TypeId::of::<$t>() {
                return Some(std::mem::size_of::<$t>());
            })*
        };
    }
    pod!(
        u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, usize, isize, f32, f64
    );
    None
}

/// Validates a chunk's header and returns its item count.
fn chunk_len(tag: u8, body: &[u8], pod: Option<usize>) -> Result<usize, CallError> {
    let bad = |e: postcard::Error| CallError::BadInput(e.to_string());
    let (len, rest) = postcard::take_from_bytes::<usize>(body).map_err(bad)?;
    let fits = match (tag, pod) {
        (TAG_POSTCARD, _) => len <= rest.len(), // every item takes a byte or more
        (TAG_RAW, Some(size)) => len.checked_mul(size) == Some(rest.len()),
        _ => false,
    };
    if fits {
        Ok(len)
    } else {
        Err(CallError::BadInput(format!(
            "a chunk of {len} items does not fit its {} bytes (tag {tag})",
            rest.len()
        )))
    }
}

/// An input that cannot be decoded; says why when a handle in it could not
/// be re-attached (postcard drops that message).
fn bad_input(e: postcard::Error) -> CallError {
    CallError::BadInput(match mp_os::handle::take_attach_error() {
        Some(why) => format!("{e}: {why}"),
        None => e.to_string(),
    })
}

/// Calls `each` on every item of a chunk checked by [`chunk_len`].
fn for_each_input<A: DeserializeOwned + 'static>(
    tag: u8,
    body: &[u8],
    len: usize,
    mut each: impl FnMut(A),
) -> Result<(), CallError> {
    let bad = bad_input;
    let (_, mut rest) = postcard::take_from_bytes::<usize>(body).map_err(bad)?;
    if tag == TAG_RAW {
        let size = std::mem::size_of::<A>();
        for i in 0..len {
            // SAFETY: `chunk_len` checked that `A` is a plain number type
            // and that `rest` holds exactly `len` of them; every bit pattern
            // is a valid value of such a type; the read is unaligned.
            each(unsafe { std::ptr::read_unaligned(rest.as_ptr().add(i * size).cast::<A>()) });
        }
        return Ok(());
    }
    for _ in 0..len {
        let (a, tail) = postcard::take_from_bytes::<A>(rest).map_err(bad)?;
        rest = tail;
        each(a);
    }
    Ok(())
}

fn encode_raw<T: 'static>(items: &[T]) -> Vec<u8> {
    debug_assert!(pod_size::<T>().is_some());
    let mut out = VecFlavor(Vec::with_capacity(11 + std::mem::size_of_val(items)));
    out.0.push(TAG_RAW);
    out = postcard::serialize_with_flavor(&items.len(), out).expect("a varint always encodes");
    // SAFETY: `T` is a plain number type (no padding, no pointers), so its
    // values are initialized bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items))
    };
    out.0.extend_from_slice(bytes);
    out.0
}

/// A postcard output flavor over a `Vec<u8>` whose short writes (varints,
/// small integers) are plain pushes rather than `memcpy` calls.
struct VecFlavor(Vec<u8>);

impl postcard::ser_flavors::Flavor for VecFlavor {
    type Output = VecFlavor;

    #[inline(always)]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline(always)]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if data.len() <= 8 {
            for &b in data {
                self.0.push(b);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<VecFlavor> {
        Ok(self)
    }
}

/// The results of a chunk of `nitems` items as a [`ChunkRunner`] returned
/// them (or why the chunk could not run), as the pool's [`Chunk`].
///
/// # Errors
///
/// The chunk's failure, an undecodable output, or a count of results
/// that is not `nitems`: every item fails with it.
pub(crate) fn decode_chunk<R: DeserializeOwned + 'static>(
    out: Result<Vec<u8>, CallError>,
    nitems: usize,
) -> Result<Chunk<R>, Error> {
    let results = match out.and_then(|bytes| decode_chunk_results::<R>(&bytes)) {
        Ok(ChunkResults::Ok(v)) => Chunk::Ok(v),
        Ok(ChunkResults::Mixed(v)) => {
            Chunk::Mixed(v.into_iter().map(|r| r.map_err(Error::from)).collect())
        }
        Err(e) => return Err(Error::from(e)),
    };
    if results.len() != nitems {
        return Err(Error::Decode(format!(
            "{} results for {nitems} items",
            results.len()
        )));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp_proc::{Function, RawFunction};

    /// `f`, wrapped to run on chunks, as a task names it.
    fn chunk_function<A, R>(f: fn(A) -> R) -> RawFunction
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
    {
        Function::with_runner::<ChunkRunner>(f).raw()
    }

    fn halve(x: i64) -> i64 {
        assert!(x % 2 == 0, "odd input {x}");
        x / 2
    }

    #[test]
    fn chunk_runner_matches_the_vector_encoding_and_isolates_panics() {
        let raw = chunk_function(halve);
        let input = encode_chunk(&[2i64, 3, -400, 1 << 40]).unwrap();
        // SAFETY: `raw` comes from `Function::raw` in this program.
        let out = unsafe { raw.run(&input) }.unwrap();
        let ChunkResults::Mixed(got) = decode_chunk_results::<i64>(&out).unwrap() else {
            panic!("a panic must give mixed results")
        };
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok(1));
        assert!(matches!(&got[1], Err(CallError::Panicked(m)) if m.contains("odd input 3")));
        assert_eq!(got[2], Ok(-200));
        assert_eq!(got[3], Ok(1 << 39));
        // All successes of plain numbers travel as raw bytes.
        let input = encode_chunk(&[2i64, 4]).unwrap();
        // SAFETY: as above.
        let out = unsafe { raw.run(&input) }.unwrap();
        assert_eq!(out[0], TAG_RAW);
        assert!(
            matches!(decode_chunk_results::<i64>(&out).unwrap(), ChunkResults::Ok(v) if v == [1, 2])
        );
    }

    fn shout(s: String) -> String {
        assert!(!s.is_empty(), "empty word");
        s.to_uppercase()
    }

    #[test]
    fn chunk_runner_of_strings_uses_postcard() {
        let raw = chunk_function(shout);
        let words = ["a".to_string(), String::new(), "bc".to_string()];
        let input = encode_chunk(&words).unwrap();
        assert_eq!(input[0], TAG_POSTCARD);
        // SAFETY: `raw` comes from `Function::raw` in this program.
        let out = unsafe { raw.run(&input) }.unwrap();
        let ChunkResults::Mixed(got) = decode_chunk_results::<String>(&out).unwrap() else {
            panic!("the empty word panics")
        };
        assert_eq!(got[0], Ok("A".to_string()));
        assert!(matches!(&got[1], Err(CallError::Panicked(m)) if m.contains("empty word")));
        assert_eq!(got[2], Ok("BC".to_string()));
    }

    #[test]
    fn chunk_runner_rejects_corrupt_input() {
        let raw = chunk_function(halve);
        let junk: [&[u8]; 5] = [
            b"",
            b"\x00\x05\x02",
            b"\x01\x03\x00",
            b"\x07\x00",
            &[0xff; 12],
        ];
        for j in junk {
            // SAFETY: as above.
            let r = unsafe { raw.run(j) };
            assert!(matches!(r, Err(CallError::BadInput(_))), "{j:?}");
        }
        // SAFETY: as above.
        let empty = unsafe { raw.run(&encode_chunk::<i64>(&[]).unwrap()) }.unwrap();
        assert!(
            matches!(decode_chunk_results::<i64>(&empty).unwrap(), ChunkResults::Ok(v) if v.is_empty())
        );
        assert!(decode_chunk_results::<i64>(b"\x09").is_err());
        assert!(decode_chunk_results::<i64>(b"\x01\x02\x00").is_err());
    }
}
