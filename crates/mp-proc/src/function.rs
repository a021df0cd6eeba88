//! Functions that can be called in another process of the same program.
//!
//! [`Process`](crate::Process) uses this mechanism for its target; pools
//! use it to ship a function with every task. A [`Function<A, R>`] is made
//! from a `fn(A) -> R` pointer; its [`RawFunction`] is three offsets from
//! an anchor in this executable (the target and two trampolines
//! instantiated for `(A, R)`) and can travel in any message. The receiving
//! process calls it on postcard bytes without knowing `A` or `R`: one
//! argument with its descriptors ([`RawFunction::call`], what a process
//! target is), or bytes of a caller-defined format through a [`Runner`]
//! chosen when the function was wrapped ([`RawFunction::run`], the hook a
//! pool uses to run a function on a chunk of arguments).

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
type RunTrampoline = fn(usize, &[u8]) -> Result<Vec<u8>, CallError>;

/// How a process runs a wrapped function on bytes of a format of the
/// caller's choosing: the hook through which a pool runs a function on a
/// chunk of arguments (its own encoding of many `A`s in, many `R`s out)
/// in a worker that knows neither type. [`Function::with_runner`]
/// instantiates [`run`](Runner::run) for the function's `(A, R)` and
/// records it beside the function; [`RawFunction::run`] calls it in the
/// receiving process.
///
/// ```
/// use mp_proc::{CallError, Function, Runner, catch_panic};
/// use serde::{Serialize, de::DeserializeOwned};
///
/// /// A postcard `Vec<A>` in, a postcard `Vec<R>` out.
/// struct Each;
///
/// impl Runner for Each {
///     fn run<A: DeserializeOwned + 'static, R: Serialize + 'static>(
///         f: fn(A) -> R,
///         input: &[u8],
///     ) -> Result<Vec<u8>, CallError> {
///         let args: Vec<A> = postcard::from_bytes(input)
///             .map_err(|e| CallError::BadInput(e.to_string()))?;
///         let out = args.into_iter().map(|a| catch_panic(|| f(a))).collect::<Result<Vec<R>, _>>()?;
///         postcard::to_allocvec(&out).map_err(|e| CallError::BadOutput(e.to_string()))
///     }
/// }
///
/// fn double(x: i32) -> i32 { x * 2 }
///
/// let raw = Function::with_runner::<Each>(double).raw();
/// let input = postcard::to_allocvec(&vec![1, 2, 3]).unwrap();
/// // SAFETY: `raw` comes from `Function::raw` in this same program.
/// let out = unsafe { raw.run(&input) }.unwrap();
/// assert_eq!(postcard::from_bytes::<Vec<i32>>(&out).unwrap(), [2, 4, 6]);
/// ```
pub trait Runner: 'static {
    /// Runs `f` on `input` and returns the output bytes.
    ///
    /// # Errors
    ///
    /// [`CallError`], as the runner decides: a panic of `f`
    /// ([`catch_panic`]), an input it cannot decode, an output it cannot
    /// encode.
    fn run<A: DeserializeOwned + 'static, R: Serialize + 'static>(
        f: fn(A) -> R,
        input: &[u8],
    ) -> Result<Vec<u8>, CallError>;
}

/// The runner of [`Function::new`]: one postcard argument in, one postcard
/// result out (a [`call`](RawFunction::call) without descriptors).
struct One;

impl Runner for One {
    fn run<A: DeserializeOwned + 'static, R: Serialize + 'static>(
        f: fn(A) -> R,
        input: &[u8],
    ) -> Result<Vec<u8>, CallError> {
        let a: A = postcard::from_bytes(input).map_err(bad_input)?;
        let r = catch_panic(|| f(a))?;
        postcard::to_allocvec(&r).map_err(|e| CallError::BadOutput(e.to_string()))
    }
}

/// Runs `f`, a panic caught as [`CallError::Panicked`] with its message:
/// how a called function's panic is reported, here and by the pools.
///
/// ```
/// use mp_proc::{CallError, catch_panic};
///
/// assert_eq!(catch_panic(|| 7), Ok(7));
/// let e = catch_panic(|| -> i32 { panic!("bad input {}", 3) });
/// assert_eq!(e, Err(CallError::Panicked("bad input 3".into())));
/// ```
///
/// # Errors
///
/// [`CallError::Panicked`] when `f` panics.
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> Result<R, CallError> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|p| CallError::Panicked(crate::child::panic_message(p.as_ref())))
}

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
    /// Wraps `f`; [`RawFunction::run`] then takes one postcard argument
    /// and returns one postcard result.
    pub fn new(f: fn(A) -> R) -> Function<A, R> {
        Function::with_runner::<One>(f)
    }

    /// Wraps `f` with `X` as what [`RawFunction::run`] calls (see
    /// [`Runner`]).
    pub fn with_runner<X: Runner>(f: fn(A) -> R) -> Function<A, R> {
        let call: CallTrampoline = call_trampoline::<A, R>;
        let run: RunTrampoline = run_trampoline::<A, R, X>;
        Function {
            raw: RawFunction {
                target: entry::offset_of(f as usize),
                call: entry::offset_of(call as usize),
                run: entry::offset_of(run as usize),
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
    run: i64,
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
            entry::addr_at(self.run)?,
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

    /// Runs the function's [`Runner`] (the one given to
    /// [`Function::with_runner`]; for [`Function::new`], one postcard
    /// argument in, one postcard result out) on `input`.
    ///
    /// # Errors
    ///
    /// The runner's [`CallError`], or [`CallError::OutsideBinary`] when
    /// the offsets are outside this executable.
    ///
    /// # Safety
    ///
    /// As for [`call`](RawFunction::call).
    pub unsafe fn run(&self, input: &[u8]) -> Result<Vec<u8>, CallError> {
        let (target, _, run) = self.resolve().ok_or(CallError::OutsideBinary)?;
        // SAFETY: as in `call`, for `run_trampoline::<A, R, X>`.
        let run: RunTrampoline =
            unsafe { std::mem::transmute::<*const (), RunTrampoline>(run as *const ()) };
        run(target, input)
    }
}

fn resolve_target<A, R>(target: usize) -> fn(A) -> R {
    // SAFETY: `target` is the address of a `fn(A) -> R` of this executable:
    // the trampolines are only reached through `RawFunction`, whose
    // contract guarantees that the target and the trampoline were
    // recorded together by `Function::<A, R>::with_runner`.
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
    let r = catch_panic(|| f(a))?;
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&r));
    bytes
        .map(|b| (b, fds))
        .map_err(|e| CallError::BadOutput(e.to_string()))
}

fn run_trampoline<A: DeserializeOwned + 'static, R: Serialize + 'static, X: Runner>(
    target: usize,
    input: &[u8],
) -> Result<Vec<u8>, CallError> {
    X::run(resolve_target::<A, R>(target), input)
}

/// An input that cannot be decoded; says why when a handle in it could not
/// be re-attached (postcard drops that message).
fn bad_input(e: postcard::Error) -> CallError {
    CallError::BadInput(match mp_os::handle::take_attach_error() {
        Some(why) => format!("{e}: {why}"),
        None => e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halve(x: i64) -> i64 {
        assert!(x % 2 == 0, "odd input {x}");
        x / 2
    }

    #[test]
    fn run_without_a_runner_takes_one_argument_and_catches_panics() {
        let raw = Function::new(halve).raw();
        let input = postcard::to_allocvec(&-8i64).unwrap();
        // SAFETY: `raw` comes from `Function::raw` in this program.
        let out = unsafe { raw.run(&input) }.unwrap();
        assert_eq!(postcard::from_bytes::<i64>(&out).unwrap(), -4);
        let odd = postcard::to_allocvec(&3i64).unwrap();
        // SAFETY: as above.
        let r = unsafe { raw.run(&odd) };
        assert!(matches!(r, Err(CallError::Panicked(m)) if m.contains("odd input 3")));
        // SAFETY: as above.
        let empty = unsafe { raw.run(b"") };
        assert!(matches!(empty, Err(CallError::BadInput(_))));
    }

    /// Reports the input's length: the runner sees the bytes as they are.
    struct Len;

    impl Runner for Len {
        fn run<A: DeserializeOwned + 'static, R: Serialize + 'static>(
            _f: fn(A) -> R,
            input: &[u8],
        ) -> Result<Vec<u8>, CallError> {
            Ok(vec![input.len() as u8])
        }
    }

    #[test]
    fn with_runner_records_the_runner_beside_the_function() {
        let raw = Function::with_runner::<Len>(halve).raw();
        assert!(raw.is_portable());
        assert_ne!(raw, Function::new(halve).raw());
        // SAFETY: `raw` comes from `Function::raw` in this program.
        assert_eq!(unsafe { raw.run(&[1, 2, 3]) }, Ok(vec![3]));
        let forged = RawFunction {
            run: i64::MAX / 2,
            ..raw
        };
        assert!(!forged.is_portable());
        // SAFETY: the offsets are checked before anything is called.
        assert_eq!(unsafe { forged.run(&[]) }, Err(CallError::OutsideBinary));
    }
}
