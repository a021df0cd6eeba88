//! Helpers shared by the workspace's cross-process tests and benches.
//!
//! Forked children, for the crates below `mp-proc` (`mp-sync`, `mp-shm`,
//! `mp-channel`), which cannot start processes through it: it sits above
//! them. A forked child runs a closure and the exit hooks, then leaves with
//! `_exit`, never returning into the test harness; the parent reaps every
//! child by pid. And waits for processes to end, for every crate's tests.
//!
//! ```
//! let child = mp_testkit::fork(|| 7);
//! assert_eq!(child.wait(), 7);
//! ```

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use mp_os::segment::Segment;

/// A forked child, killed and reaped on drop if the test did not reap it.
#[derive(Debug)]
pub struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

/// Forks; the child runs `f`, then the exit hooks (`mp_os::exit::run`), and
/// leaves with `f`'s return value as exit code (101 if it panics). Never
/// returns into the test harness in the child.
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child only runs `f` and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // `fork` ran the `mp_os::fork` hooks: the child has its own ids.
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // As a child started by mp-proc: the exit hooks (queues flush what
        // this process buffered) run before it leaves.
        mp_os::exit::run();
        // SAFETY: leaving the child without running the harness's code.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

impl Child {
    /// Takes charge of `pid`, a child that this process forked itself and
    /// has not reaped (for a fork that needs more than [`fork`] does).
    pub fn adopt(pid: libc::pid_t) -> Child {
        Child { pid, reaped: false }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// SIGKILLs the child (it stays a zombie until reaped).
    pub fn kill(&self) {
        // SAFETY: signalling our own unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }

    /// SIGKILLs and reaps the child (nothing if it was reaped already).
    pub fn kill_and_reap(&mut self) {
        if self.reaped {
            return;
        }
        self.kill();
        let mut status = 0;
        // SAFETY: reaping our own child by pid.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        self.reaped = true;
    }

    /// Reaps the child if it finishes within `timeout`: its exit code, or
    /// -signal. `None` if it is still running then (it is left running, and
    /// killed on drop).
    ///
    /// # Panics
    ///
    /// If the child was reaped already, or `waitpid` fails.
    pub fn try_wait(&mut self, timeout: Duration) -> Option<i32> {
        assert!(!self.reaped, "child {} was reaped already", self.pid);
        let deadline = Instant::now() + timeout;
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child by pid.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return Some(if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    -libc::WTERMSIG(status)
                });
            }
            assert!(r == 0, "waitpid failed");
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Reaps the child, waiting at most `timeout` (then kills it and
    /// panics). Returns the exit code, or -signal.
    pub fn wait_within(&mut self, timeout: Duration) -> i32 {
        match self.try_wait(timeout) {
            Some(code) => code,
            None => {
                self.kill_and_reap();
                panic!("child {} did not finish within {timeout:?}", self.pid);
            }
        }
    }

    /// Reaps the child, waiting at most 30 s (then kills it and panics).
    /// Returns the exit code, or -signal.
    pub fn wait(mut self) -> i32 {
        self.wait_within(Duration::from_secs(30))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

/// A scratch area of shared counters, visible to forked children.
#[derive(Debug)]
pub struct Counters {
    seg: Segment,
}

impl Counters {
    /// `n` zeroed counters in an anonymous shared segment.
    ///
    /// # Panics
    ///
    /// If the segment cannot be created.
    pub fn new(n: usize) -> Counters {
        Counters {
            seg: Segment::anonymous("test-counters", n * 8).unwrap(),
        }
    }

    /// Counter `i`, as an atomic.
    pub fn get(&self, i: usize) -> &AtomicU64 {
        assert!((i + 1) * 8 <= self.seg.len());
        // SAFETY: in bounds, 8-byte aligned (page-aligned mapping), zeroed,
        // used only as AtomicU64s.
        unsafe { &*self.seg.as_ptr().add(i * 8).cast::<AtomicU64>() }
    }

    /// A plain (non-atomic) cell, for checking mutual exclusion.
    pub fn plain(&self, i: usize) -> *mut u64 {
        assert!((i + 1) * 8 <= self.seg.len());
        // SAFETY: in bounds.
        unsafe { self.seg.as_ptr().add(i * 8).cast::<u64>() }
    }
}

/// Whether process `pid` is alive: it exists and is not a zombie (as
/// [`mp_os::liveness::thread_alive`] tells).
///
/// ```
/// assert!(mp_testkit::alive(std::process::id()));
/// ```
pub fn alive(pid: u32) -> bool {
    mp_os::liveness::thread_alive(pid)
}

/// Polls every 10 ms, for up to `timeout`, until every process of `pids`
/// has ended (exited or been killed, reaped or not); whether they all had.
///
/// ```
/// let child = mp_testkit::fork(|| 0);
/// let pid = child.pid();
/// assert!(mp_testkit::all_gone(&[pid], std::time::Duration::from_secs(30)));
/// assert_eq!(child.wait(), 0);
/// ```
pub fn all_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|&p| !alive(p)) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// As [`all_gone`] for one process.
pub fn gone_within(pid: u32, timeout: Duration) -> bool {
    all_gone(&[pid], timeout)
}

/// Polls `cond` every millisecond for up to 10 s.
pub fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 10 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Asserts that `elapsed` is at least `d` and less than `d + 2 s`.
pub fn assert_about(elapsed: Duration, d: Duration) {
    assert!(
        elapsed >= d,
        "returned after {elapsed:?}, before its {d:?} timeout"
    );
    assert!(
        elapsed < d + Duration::from_secs(2),
        "returned after {elapsed:?}, long after its {d:?} timeout"
    );
}
