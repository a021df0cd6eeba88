//! Start methods: which one makes a new process, and the program-wide
//! default.
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
//! parent at the moment of `start()`. How each method makes a process is
//! in `method/`; the public setters are in `context.rs`.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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
    /// [`enable_fork`](crate::enable_fork)).
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

/// Records the opt-in to fork (see `enable_fork`).
pub(crate) fn allow_fork() {
    FORK_ENABLED.store(true, Ordering::Release);
}

/// Sets the default if none is set; whether it is now `method`.
pub(crate) fn set_default_once(method: StartMethod) -> bool {
    match DEFAULT.compare_exchange(0, encode(method), Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => true,
        Err(cur) => cur == encode(method),
    }
}

/// Sets the default, or unsets it (`None`), whatever it was.
pub(crate) fn set_default(method: Option<StartMethod>) {
    DEFAULT.store(method.map_or(0, encode), Ordering::Release);
}

/// In a new child: its default start method is the one that made it, as
/// in Python (a spawned child's `get_start_method()` is the parent's
/// method for it).
pub(crate) fn inherit_method(method: StartMethod) {
    set_default(Some(method));
}
