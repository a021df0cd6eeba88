//! Fork helpers for cross-process tests (mp-proc is not ready yet): the
//! child runs a closure and leaves with `_exit`, never returning into the
//! test harness; the parent reaps every child by pid, killing it first if
//! it overstays.

#![allow(dead_code, unreachable_pub)]

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

/// A forked child; reaped (killed first if needed) on drop.
#[derive(Debug)]
pub struct Child {
    pub pid: libc::pid_t,
    reaped: bool,
}

/// Forks; the child runs `f`, the exit hooks, and exits with its code
/// (101 on panic).
pub fn fork(f: impl FnOnce() -> i32) -> Child {
    // SAFETY: the child only runs `f` (channel code: atomics, futexes,
    // allocation) and then `_exit`s without touching the harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(101);
        // As a child started by mp-proc: the exit hooks (queues flush
        // what this process buffered) run before it leaves.
        mp_os::exit::run();
        // SAFETY: leaving the child without running the harness's code.
        unsafe { libc::_exit(code) };
    }
    Child { pid, reaped: false }
}

impl Child {
    /// Waits up to `timeout` for the child; returns its exit code, or -signal.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own child by pid.
            let r = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
            if r == self.pid {
                self.reaped = true;
                if libc::WIFEXITED(status) {
                    return libc::WEXITSTATUS(status);
                }
                return -libc::WTERMSIG(status);
            }
            assert!(r == 0, "waitpid failed");
            if start.elapsed() > timeout {
                self.kill();
                panic!("child {} did not finish within {timeout:?}", self.pid);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILLs and reaps the child.
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        // SAFETY: signalling and reaping our own unreaped child.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            let mut status = 0;
            libc::waitpid(self.pid, &mut status, 0);
        }
        self.reaped = true;
    }

    /// SIGKILLs the child without reaping it (it stays a zombie).
    pub fn sigkill(&self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Generous timeout for children on a shared, noisy machine.
pub const LONG: Duration = Duration::from_secs(120);
