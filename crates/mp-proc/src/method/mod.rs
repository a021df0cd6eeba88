//! Start methods: how a new process comes to exist.
//!
//! | method | how | cost here | notes |
//! |---|---|---|---|
//! | `Forkserver` (default) | a single-threaded server, exec'd from this program once, forks each child | a fork of a small process | threads in the parent do no harm |
//! | `Spawn` | `posix_spawn` of `/proc/self/exe` | an exec per child | nothing is inherited but the handles |
//! | `Fork` | `fork(2)` of the caller | cheapest | unsafe opt-in: only the calling thread is copied |
//!
//! Under forkserver and spawn the child starts from a fresh copy of the
//! program: statics have their initial values, and only the target's
//! arguments carry state over. Under fork the child is a copy of the
//! parent at the moment of `start()`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Process};

pub(crate) mod fork;
pub(crate) mod forkserver;
pub(crate) mod spawn;

/// How a child process is created (Python's start methods).
///
/// ```
/// use mp_proc::StartMethod;
/// assert_eq!("spawn".parse::<StartMethod>().unwrap(), StartMethod::Spawn);
/// assert_eq!(StartMethod::Forkserver.to_string(), "forkserver");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum StartMethod {
    /// A fork server started once; each child is forked from it.
    Forkserver,
    /// Each child is a fresh execution of this program.
    Spawn,
    /// Each child is a `fork(2)` of the calling process (requires
    /// [`enable_fork`]).
    Fork,
}

impl StartMethod {
    /// All methods, in the order Python lists them for Linux.
    pub const ALL: [StartMethod; 3] = [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ];

    /// The method's Python name.
    pub fn as_str(self) -> &'static str {
        match self {
            StartMethod::Forkserver => "forkserver",
            StartMethod::Spawn => "spawn",
            StartMethod::Fork => "fork",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StartMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "forkserver" => Ok(StartMethod::Forkserver),
            "spawn" => Ok(StartMethod::Spawn),
            "fork" => Ok(StartMethod::Fork),
            other => Err(format!(
                "unknown start method {other:?} (expected fork, spawn or forkserver)"
            )),
        }
    }
}

static DEFAULT: AtomicU8 = AtomicU8::new(0); // 0 unset, else 1 + index
static FORK_ENABLED: AtomicBool = AtomicBool::new(false);

fn encode(m: StartMethod) -> u8 {
    match m {
        StartMethod::Forkserver => 1,
        StartMethod::Spawn => 2,
        StartMethod::Fork => 3,
    }
}

pub(crate) fn default_method() -> StartMethod {
    match DEFAULT.load(Ordering::Acquire) {
        2 => StartMethod::Spawn,
        3 => StartMethod::Fork,
        _ => StartMethod::Forkserver,
    }
}

pub(crate) fn fork_enabled() -> bool {
    FORK_ENABLED.load(Ordering::Acquire)
}

/// Opts in to the fork start method for this program.
///
/// ```
/// // SAFETY: this program does not fork while other threads hold locks
/// // that the children need.
/// unsafe { mp_proc::enable_fork() };
/// ```
///
/// # Safety
///
/// A forked child contains only the thread that called `start()`: locks
/// held by other threads at that moment stay locked forever in the child,
/// and data they were changing stays half-changed. The caller guarantees
/// that the targets it starts with [`StartMethod::Fork`] do not depend on
/// such state (Python's documentation gives the same warning). The crate
/// prints a warning when it forks a process that has other threads.
pub unsafe fn enable_fork() {
    FORK_ENABLED.store(true, Ordering::Release);
}

/// Sets the program-wide default start method, once (Python's
/// `set_start_method`).
///
/// ```
/// use mp_proc::{StartMethod, get_start_method, set_start_method};
/// set_start_method(StartMethod::Spawn)?;
/// assert_eq!(get_start_method(), StartMethod::Spawn);
/// // Setting the same method again is fine; another one is an error.
/// set_start_method(StartMethod::Spawn)?;
/// assert!(set_start_method(StartMethod::Forkserver).is_err());
/// # Ok::<(), mp_proc::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::StartMethodAlreadySet`] when another method was set before;
/// [`Error::ForkNotEnabled`] for fork without [`enable_fork`].
pub fn set_start_method(method: StartMethod) -> Result<(), Error> {
    if method == StartMethod::Fork && !fork_enabled() {
        return Err(Error::ForkNotEnabled);
    }
    match DEFAULT.compare_exchange(0, encode(method), Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => Ok(()),
        Err(cur) if cur == encode(method) => Ok(()),
        Err(_) => Err(Error::StartMethodAlreadySet(default_method())),
    }
}

/// Sets or clears the program-wide default start method even if one was
/// set before (Python's `set_start_method(method, force=True)`); `None`
/// goes back to the default (forkserver), as Python's
/// `set_start_method(None, force=True)`.
///
/// ```
/// use mp_proc::{StartMethod, get_start_method, set_start_method, set_start_method_force};
///
/// set_start_method(StartMethod::Spawn)?;
/// assert!(set_start_method(StartMethod::Forkserver).is_err()); // not forced
/// set_start_method_force(Some(StartMethod::Forkserver))?;
/// assert_eq!(get_start_method(), StartMethod::Forkserver);
/// set_start_method_force(None)?;                               // unset again
/// set_start_method(StartMethod::Spawn)?;
/// # Ok::<(), mp_proc::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::ForkNotEnabled`] for fork without [`enable_fork`].
pub fn set_start_method_force(method: Option<StartMethod>) -> Result<(), Error> {
    if method == Some(StartMethod::Fork) && !fork_enabled() {
        return Err(Error::ForkNotEnabled);
    }
    DEFAULT.store(method.map_or(0, encode), Ordering::Release);
    Ok(())
}

/// In a new child: its default start method is the one that made it, as
/// in Python (a spawned child's `get_start_method()` is the parent's
/// method for it).
pub(crate) fn inherit_method(method: StartMethod) {
    DEFAULT.store(encode(method), Ordering::Release);
}

/// The program-wide default start method; in a child, the method that
/// started it unless the child set another.
pub fn get_start_method() -> StartMethod {
    default_method()
}

/// A start method bundled with the constructors that use it (Python's
/// `get_context`).
///
/// ```
/// use mp_proc::{StartMethod, get_context};
///
/// fn double(x: u32) -> u32 { x * 2 }
///
/// let ctx = get_context(StartMethod::Spawn)?;
/// let p = ctx.process(double, 21);
/// p.start()?;
/// assert_eq!(p.join()?, 42);
/// # Ok::<(), mp_proc::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// A context for `method`.
///
/// # Errors
///
/// [`Error::ForkNotEnabled`] for fork without [`enable_fork`].
pub fn get_context(method: StartMethod) -> Result<Context, Error> {
    if method == StartMethod::Fork && !fork_enabled() {
        return Err(Error::ForkNotEnabled);
    }
    Ok(Context { method })
}

impl Context {
    /// The context's start method.
    pub fn method(&self) -> StartMethod {
        self.method
    }

    /// A process that will use this context's start method.
    pub fn process<A, R>(&self, target: fn(A) -> R, args: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process::new(target, args).start_method(self.method)
    }
}
