//! Who am I: `current_process`, `parent_process`, `cpu_count`, and the
//! [`ProcessInfo`] that describes a process.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::forksafe::ForkSafeMutex;
use crate::start_method::StartMethod;
use crate::wire::Bootstrap;

/// A description of a process: the current one, the parent, or a child.
///
/// ```
/// let me = mp_proc::current_process();
/// assert_eq!(me.pid(), std::process::id());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub(crate) name: String,
    pub(crate) pid: u32,
    pub(crate) daemon: bool,
    pub(crate) start_method: Option<StartMethod>,
}

impl ProcessInfo {
    /// The start method that made the process: for
    /// [`current_process`] in a child, the method its parent used; for a
    /// child of this process, the method it was started with; `None` for
    /// the program's first process (and for a process not yet started,
    /// or the parent).
    ///
    /// ```
    /// assert_eq!(mp_proc::current_process().start_method(), None); // first process
    /// ```
    pub fn start_method(&self) -> Option<StartMethod> {
        self.start_method
    }

    /// The process's name: `"MainProcess"` for the program's first process,
    /// `"Process-N"` (or a name given with `.name(...)`) for children.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The operating-system process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the process is a daemon (terminated when its parent exits).
    pub fn daemon(&self) -> bool {
        self.daemon
    }

    /// Whether the process is still running (for the parent of a child:
    /// exists and is not a zombie).
    pub fn is_alive(&self) -> bool {
        if self.pid == std::process::id() {
            return true;
        }
        match parent_token(self.pid) {
            // The parent: its token also tells a reused pid from it.
            Some(t) => mp_os::liveness::token_alive(t),
            None => mp_os::liveness::thread_alive(self.pid),
        }
    }
}

struct Identity {
    name: String,
    daemon: bool,
    method: StartMethod,
    parent: Option<(u32, String)>,
    parent_token: u32,
}

/// The parent's liveness token, when `pid` is this process's parent.
fn parent_token(pid: u32) -> Option<u32> {
    let id = IDENTITY.lock();
    let i = id.as_ref()?;
    (i.parent.as_ref()?.0 == pid && i.parent_token != 0).then_some(i.parent_token)
}

static IDENTITY: ForkSafeMutex<Option<Identity>> = ForkSafeMutex::new(None);
static CHILD_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Information about the calling process.
///
/// ```
/// let me = mp_proc::current_process();
/// // In a program's first process:
/// assert_eq!(me.name(), "MainProcess");
/// assert!(!me.daemon());
/// ```
pub fn current_process() -> ProcessInfo {
    let id = IDENTITY.lock();
    match id.as_ref() {
        Some(i) => ProcessInfo {
            name: i.name.clone(),
            pid: std::process::id(),
            daemon: i.daemon,
            start_method: Some(i.method),
        },
        None => ProcessInfo {
            name: "MainProcess".into(),
            pid: std::process::id(),
            daemon: false,
            start_method: None,
        },
    }
}

/// Information about the process that started this one, or `None` in the
/// program's first process.
///
/// ```
/// assert!(mp_proc::parent_process().is_none());
/// ```
pub fn parent_process() -> Option<ProcessInfo> {
    let id = IDENTITY.lock();
    let (pid, name) = id.as_ref()?.parent.clone()?;
    Some(ProcessInfo {
        name,
        pid,
        daemon: false,
        start_method: None,
    })
}

/// The number of CPUs in the system (as Python's `cpu_count`, not limited
/// by this process's affinity mask).
///
/// ```
/// assert!(mp_proc::cpu_count() >= 1);
/// ```
pub fn cpu_count() -> usize {
    // Raw libc: rustix has no sysconf (a C library function).
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if n > 0 {
        n as usize
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    }
}

/// The next default child name: `Process-N` in the main process,
/// `PARENT:N` in a child, as Python names them.
pub(crate) fn next_child_name() -> (String, u64) {
    let n = CHILD_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    let me = current_process();
    let name = if me.name == "MainProcess" && parent_process().is_none() {
        format!("Process-{n}")
    } else {
        format!("{}:{n}", me.name)
    };
    (name, n)
}

/// Called in a new child before its target runs.
pub(crate) fn become_child(boot: &Bootstrap) {
    CHILD_COUNTER.store(0, Ordering::Relaxed);
    crate::start_method::inherit_method(boot.method);
    let mut id = IDENTITY.lock();
    *id = Some(Identity {
        name: boot.name.clone(),
        daemon: boot.daemon,
        method: boot.method,
        parent: Some((boot.parent_pid, boot.parent_name.clone())),
        parent_token: boot.parent_token,
    });
}

/// In a forked child: take back the identity lock (see `forksafe`).
pub(crate) fn reset_after_fork() {
    // SAFETY: called by the forked child before it uses the lock; the
    // identity is replaced by `become_child` right after.
    unsafe { IDENTITY.reset_after_fork() };
}
