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

    /// Calls the function on every item of a postcard-encoded `Vec<A>` and
    /// returns a postcard-encoded `Vec<Result<R, CallError>>`, one entry per
    /// item (a panic fails only its own item).
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
    let a: A = mp_os::handle::provide_fds(fds, || postcard::from_bytes(input))
        .map_err(|e| CallError::BadInput(e.to_string()))?;
    let r = catch_unwind(AssertUnwindSafe(|| f(a)))
        .map_err(|p| CallError::Panicked(crate::child::panic_message(p.as_ref())))?;
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&r));
    bytes
        .map(|b| (b, fds))
        .map_err(|e| CallError::BadOutput(e.to_string()))
}

fn map_trampoline<A: DeserializeOwned, R: Serialize>(
    target: usize,
    input: &[u8],
) -> Result<Vec<u8>, CallError> {
    // The input is a postcard `Vec<A>` and the output a postcard
    // `Vec<Result<R, CallError>>`. Both are walked item by item, without
    // building either vector: a length varint, then the items.
    let f = resolve_target::<A, R>(target);
    let bad = |e: postcard::Error| CallError::BadInput(e.to_string());
    let (len, mut rest) = postcard::take_from_bytes::<usize>(input).map_err(bad)?;
    // Every item takes at least one byte; a larger length is corrupt.
    if len > rest.len() {
        return Err(CallError::BadInput(format!(
            "{len} items in {} bytes",
            rest.len()
        )));
    }
    let mut out = VecFlavor(Vec::with_capacity(input.len() + len + 8));
    let encode_err = |e: postcard::Error| CallError::BadOutput(e.to_string());
    out = postcard::serialize_with_flavor(&len, out).map_err(encode_err)?;
    for _ in 0..len {
        let (a, tail) = postcard::take_from_bytes::<A>(rest).map_err(bad)?;
        rest = tail;
        match catch_unwind(AssertUnwindSafe(|| f(a))) {
            Ok(r) => {
                out.0.push(0); // Result::Ok
                out = postcard::serialize_with_flavor(&r, out).map_err(encode_err)?;
            }
            Err(p) => {
                out.0.push(1); // Result::Err
                let e = CallError::Panicked(crate::child::panic_message(p.as_ref()));
                out = postcard::serialize_with_flavor(&e, out).map_err(encode_err)?;
            }
        }
    }
    Ok(out.0)
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
        let input = postcard::to_allocvec(&vec![2i64, 3, -400, 1 << 40]).unwrap();
        // SAFETY: `raw` comes from `Function::raw` in this program.
        let out = unsafe { raw.map_chunk(&input) }.unwrap();
        let got: Vec<Result<i64, CallError>> = postcard::from_bytes(&out).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok(1));
        assert!(matches!(&got[1], Err(CallError::Panicked(m)) if m.contains("odd input 3")));
        assert_eq!(got[2], Ok(-200));
        assert_eq!(got[3], Ok(1 << 39));
        let expected: Vec<Result<i64, CallError>> = got.clone();
        assert_eq!(out, postcard::to_allocvec(&expected).unwrap());
    }

    #[test]
    fn map_chunk_rejects_corrupt_input() {
        let raw = Function::new(halve).raw();
        for junk in [&b""[..], b"\x05\x02", &[0xff; 12]] {
            // SAFETY: as above.
            let r = unsafe { raw.map_chunk(junk) };
            assert!(matches!(r, Err(CallError::BadInput(_))));
        }
        // SAFETY: as above.
        let empty =
            unsafe { raw.map_chunk(&postcard::to_allocvec(&Vec::<i64>::new()).unwrap()) }.unwrap();
        assert!(
            postcard::from_bytes::<Vec<Result<i64, CallError>>>(&empty)
                .unwrap()
                .is_empty()
        );
    }
}
