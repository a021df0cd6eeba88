//! Fork helpers for the cross-process tests of the crates below `mp-proc`
//! (`mp-sync`, `mp-shm`), which cannot start processes through it: it sits
//! above them. A forked child runs a closure and leaves with `_exit`, never
//! returning into the test harness; the parent reaps every child by pid.
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

/// Forks; the child runs `f` and leaves with its return value as exit code
/// (101 if it panics). Never returns into the test harness in the child.
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child only runs `f` and then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // `fork` ran the `mp_os::fork` hooks: the child has its own ids.
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: leaving the child without running the harness's code.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// SIGKILLs the child (it stays a zombie until reaped).
    pub fn kill(&self) {
        // SAFETY: signalling our own unreaped child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }

    /// Reaps the child, waiting at most 30 s (then kills it and panics).
    /// Returns the exit code, or -signal.
    pub fn wait(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child by pid.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                return if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    -libc::WTERMSIG(status)
                };
            }
            assert!(r == 0, "waitpid failed");
            if Instant::now() > deadline {
                self.kill();
                panic!("child {} did not finish within 30 s", self.pid);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let mut status = 0;
            // SAFETY: reaping our own child by pid.
            unsafe { libc::waitpid(self.pid, &mut status, 0) };
        }
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
