//! Functions that can be called in another process of the same program.
//!
//! [`Process`](crate::Process) uses this mechanism for its target; pools
//! and managers use it to ship a function with every task. A
//! [`Function<A, R>`] is made from a `fn(A) -> R` pointer; its
//! [`RawFunction`] is three offsets from an anchor in this executable (the
//! target and two trampolines instantiated for `(A, R)`) and can travel in
//! any message. The receiving process calls it on postcard bytes without
//! knowing `A` or `R`.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::entry;

/// Why a [`RawFunction`] call did not produce a value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CallError {
    /// The function panicked; the panic message.
    #[error("panicked: {0}")]
    Panicked(String),
    /// The input bytes did not decode as the function's argument type.
    #[error("cannot deserialize the arguments: {0}")]
    BadInput(String),
    /// The return value could not be serialized.
    #[error("cannot serialize the return value: {0}")]
    BadOutput(String),
    /// The offsets do not point into this executable's code.
    #[error("the function is not in this executable's code")]
    OutsideBinary,
}

type CallTrampoline = fn(usize, &[u8], Vec<OwnedFd>) -> Result<(Vec<u8>, Vec<OwnedFd>), CallError>;
type MapTrampoline = fn(usize, &[u8]) -> Result<Vec<u8>, CallError>;

/// A typed function that another process of this program can call.
///
/// ```
/// use mp_proc::Function;
///
/// fn double(x: i32) -> i32 { x * 2 }
///
/// let f = Function::new(double);
/// let raw = f.raw(); // three integers: send it anywhere
/// let input = postcard::to_allocvec(&21).unwrap();
/// // SAFETY: `raw` comes from `Function::raw` in this same program.
/// let (out, _fds) = unsafe { raw.call(&input, Vec::new()) }.unwrap();
/// assert_eq!(postcard::from_bytes::<i32>(&out).unwrap(), 42);
/// ```
pub struct Function<A, R> {
    raw: RawFunction,
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for Function<A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<A, R> Copy for Function<A, R> {}

impl<A, R> fmt::Debug for Function<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Function").field(&self.raw).finish()
    }
}

impl<A: DeserializeOwned + 'static, R: Serialize + 'static> Function<A, R> {
    /// Wraps `f`.
    pub fn new(f: fn(A) -> R) -> Function<A, R> {
        let call: CallTrampoline = call_trampoline::<A, R>;
        let map: MapTrampoline = map_trampoline::<A, R>;
        Function {
            raw: RawFunction {
                target: entry::offset_of(f as usize),
                call: entry::offset_of(call as usize),
                map: entry::offset_of(map as usize),
            },
            _types: PhantomData,
        }
    }
}

impl<A, R> Function<A, R> {
    /// Whether the function lies in this executable's code (a function
    /// from a library loaded at run time does not, and cannot be found by
    /// another process).
    pub fn is_portable(&self) -> bool {
        self.raw.is_portable()
    }

    /// The untyped, serializable form.
    pub fn raw(&self) -> RawFunction {
        self.raw
    }
}

/// The serializable form of a [`Function`]: offsets from an anchor in this
/// executable.
///
/// Calling one is `unsafe`: like unpickling in Python, a forged value can
/// point anywhere in the program's code. Only call what a process of the
/// same program produced with [`Function::raw`], over a channel you trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawFunction {
    target: i64,
    call: i64,
    map: i64,
}

impl RawFunction {
    /// Whether the offsets land in this executable's code.
    pub fn is_portable(&self) -> bool {
        self.resolve().is_some()
    }

    fn resolve(&self) -> Option<(usize, usize, usize)> {
        Some((
            entry::addr_at(self.target)?,
            entry::addr_at(self.call)?,
            entry::addr_at(self.map)?,
        ))
    }

    /// Calls the function on one postcard-encoded argument (whose handles'
    /// descriptors are `fds`, see `mp_os::handle`) and returns the encoded
    /// result with its descriptors.
    ///
    /// # Errors
    ///
    /// [`CallError`]: a panic (caught), undecodable input, an
    /// unserializable result, or offsets outside this executable.
    ///
    /// # Safety
    ///
    /// `self` must have been produced by [`Function::raw`] in a process
    /// running this same executable (this process, a fork of it, or an
    /// exec of the same file), and not altered since.
    pub unsafe fn call(
        &self,
        input: &[u8],
        fds: Vec<OwnedFd>,
    ) -> Result<(Vec<u8>, Vec<OwnedFd>), CallError> {
        let (target, call, _) = self.resolve().ok_or(CallError::OutsideBinary)?;
        // SAFETY: per this function's contract, `call` is the address of a
        // `call_trampoline::<A, R>` of this executable, which has this type.
        let call: CallTrampoline =
            unsafe { std::mem::transmute::<*const (), CallTrampoline>(call as *const ()) };
        call(target, input, fds)
    }

    /// Calls the function on every item of a chunk made by
    /// [`encode_chunk`] and returns the results, one per item (a panic fails
    /// only its own item), to be read with [`decode_chunk_results`]. Plain
    /// numbers travel as their native bytes, anything else in postcard.
    ///
    /// # Errors
    ///
    /// [`CallError`] when the chunk as a whole cannot be decoded or the
    /// results encoded, or the offsets are outside this executable.
    ///
    /// # Safety
    ///
    /// As for [`call`](RawFunction::call).
    pub unsafe fn map_chunk(&self, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let (target, _, map) = self.resolve().ok_or(CallError::OutsideBinary)?;
        // SAFETY: as in `call`, for `map_trampoline::<A, R>`.
        let map: MapTrampoline =
            unsafe { std::mem::transmute::<*const (), MapTrampoline>(map as *const ()) };
        map(target, input)
    }
}

fn resolve_target<A, R>(target: usize) -> fn(A) -> R {
    // SAFETY: `target` is the address of a `fn(A) -> R` of this executable:
    // the trampolines are only reached through `RawFunction`, whose
    // contract guarantees that the target and the trampoline were
    // recorded together by `Function::<A, R>::new`.
    unsafe { std::mem::transmute::<*const (), fn(A) -> R>(target as *const ()) }
}

fn call_trampoline<A: DeserializeOwned, R: Serialize>(
    target: usize,
    input: &[u8],
    fds: Vec<OwnedFd>,
) -> Result<(Vec<u8>, Vec<OwnedFd>), CallError> {
    let f = resolve_target::<A, R>(target);
    let a: A =
        mp_os::handle::provide_fds(fds, || postcard::from_bytes(input)).map_err(bad_input)?;
    let r = catch_unwind(AssertUnwindSafe(|| f(a)))
        .map_err(|p| CallError::Panicked(crate::child::panic_message(p.as_ref())))?;
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&r));
    bytes
        .map(|b| (b, fds))
        .map_err(|e| CallError::BadOutput(e.to_string()))
}

fn map_trampoline<A: DeserializeOwned + 'static, R: Serialize + 'static>(
    target: usize,
    input: &[u8],
) -> Result<Vec<u8>, CallError> {
    let f = resolve_target::<A, R>(target);
    let call = |a: A| {
        catch_unwind(AssertUnwindSafe(|| f(a)))
            .map_err(|p| CallError::Panicked(crate::child::panic_message(p.as_ref())))
    };
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

/// A chunk (input or output of [`RawFunction::map_chunk`]) in postcard.
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

/// Encodes a chunk of arguments for [`RawFunction::map_chunk`]: plain
/// numbers as their native bytes, anything else in postcard.
///
/// ```
/// let chunk = mp_proc::encode_chunk(&[1u32, 2, 3]).unwrap();
/// assert_eq!(chunk.len(), 1 + 1 + 12); // tag, count, three u32
/// ```
///
/// # Errors
///
/// postcard's error when an item cannot be serialized.
pub fn encode_chunk<A: Serialize + 'static>(items: &[A]) -> postcard::Result<Vec<u8>> {
    if pod_size::<A>().is_some() {
        return Ok(encode_raw(items));
    }
    let out = VecFlavor(vec![TAG_POSTCARD]);
    Ok(postcard::serialize_with_flavor(items, out)?.0)
}

/// The decoded output of [`RawFunction::map_chunk`].
#[derive(Debug)]
pub enum ChunkResults<R> {
    /// Every item succeeded.
    Ok(Vec<R>),
    /// At least one item failed; one entry per item.
    Mixed(Vec<Result<R, CallError>>),
}

/// Decodes the output of [`RawFunction::map_chunk`].
///
/// ```
/// use mp_proc::{ChunkResults, Function, decode_chunk_results, encode_chunk};
///
/// fn inc(x: u16) -> u16 { x + 1 }
///
/// let raw = Function::new(inc).raw();
/// // SAFETY: `raw` comes from `Function::raw` in this program.
/// let out = unsafe { raw.map_chunk(&encode_chunk(&[1u16, 2]).unwrap()) }.unwrap();
/// match decode_chunk_results::<u16>(&out).unwrap() {
///     ChunkResults::Ok(v) => assert_eq!(v, [2, 3]),
///     ChunkResults::Mixed(_) => unreachable!(),
/// }
/// ```
///
/// # Errors
///
/// [`CallError::BadOutput`] for bytes that are not a chunk of `R` results.
pub fn decode_chunk_results<R: DeserializeOwned + 'static>(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn halve(x: i64) -> i64 {
        assert!(x % 2 == 0, "odd input {x}");
        x / 2
    }

    #[test]
    fn map_chunk_matches_the_vector_encoding_and_isolates_panics() {
        let raw = Function::new(halve).raw();
        let input = encode_chunk(&[2i64, 3, -400, 1 << 40]).unwrap();
        // SAFETY: `raw` comes from `Function::raw` in this program.
        let out = unsafe { raw.map_chunk(&input) }.unwrap();
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
        let out = unsafe { raw.map_chunk(&input) }.unwrap();
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
    fn map_chunk_of_strings_uses_postcard() {
        let raw = Function::new(shout).raw();
        let words = ["a".to_string(), String::new(), "bc".to_string()];
        let input = encode_chunk(&words).unwrap();
        assert_eq!(input[0], TAG_POSTCARD);
        // SAFETY: `raw` comes from `Function::raw` in this program.
        let out = unsafe { raw.map_chunk(&input) }.unwrap();
        let ChunkResults::Mixed(got) = decode_chunk_results::<String>(&out).unwrap() else {
            panic!("the empty word panics")
        };
        assert_eq!(got[0], Ok("A".to_string()));
        assert!(matches!(&got[1], Err(CallError::Panicked(m)) if m.contains("empty word")));
        assert_eq!(got[2], Ok("BC".to_string()));
    }

    #[test]
    fn map_chunk_rejects_corrupt_input() {
        let raw = Function::new(halve).raw();
        let junk: [&[u8]; 5] = [
            b"",
            b"\x00\x05\x02",
            b"\x01\x03\x00",
            b"\x07\x00",
            &[0xff; 12],
        ];
        for j in junk {
            // SAFETY: as above.
            let r = unsafe { raw.map_chunk(j) };
            assert!(matches!(r, Err(CallError::BadInput(_))), "{j:?}");
        }
        // SAFETY: as above.
        let empty = unsafe { raw.map_chunk(&encode_chunk::<i64>(&[]).unwrap()) }.unwrap();
        assert!(
            matches!(decode_chunk_results::<i64>(&empty).unwrap(), ChunkResults::Ok(v) if v.is_empty())
        );
        assert!(decode_chunk_results::<i64>(b"\x09").is_err());
        assert!(decode_chunk_results::<i64>(b"\x01\x02\x00").is_err());
    }
}
