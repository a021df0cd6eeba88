//! The messages between the root and its workers, and how a process
//! watches another for death.
//!
//! Every message is one MPI message of bytes; its tag says what it is:
//!
//! | tag | direction | body |
//! |---|---|---|
//! | `HELLO` | worker to root, once | postcard [`Hello`] |
//! | `SETUP` | root to worker, when a pool takes it | postcard [`Setup`] |
//! | `READY` | worker to root | postcard `Result<(), String>` (the initializer's outcome) |
//! | `TASK` | root to worker | postcard `(seq, RawFunction)`, then a chunk of `mp_pool::codec::encode_chunk` |
//! | `RESULT` | worker to root | `seq` (8 bytes, little endian), a status byte, then the output of `RawFunction::run` with mp-pool's `ChunkRunner` (status 0) or a postcard `CallError` (status 1) |
//! | `RELEASE` | root to worker, when a pool lets it go | empty |
//! | `RELEASED` | worker to root | empty |
//! | `STOP` | root to worker | empty: the worker leaves |
//! | `BYE` | worker to root | empty, the worker's last message |
//! | `BEAT` | worker to root, every `heartbeat` | empty |
//!
//! A worker handles its messages in order, so a `RELEASE` or `STOP` comes
//! after the tasks sent before it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use mp_proc::RawFunction;
use serde::{Deserialize, Serialize};

pub(crate) const HELLO: i32 = 1;
pub(crate) const SETUP: i32 = 2;
pub(crate) const READY: i32 = 3;
pub(crate) const TASK: i32 = 4;
pub(crate) const RESULT: i32 = 5;
pub(crate) const RELEASE: i32 = 6;
pub(crate) const RELEASED: i32 = 7;
pub(crate) const STOP: i32 = 8;
pub(crate) const BYE: i32 = 9;
pub(crate) const BEAT: i32 = 10;

/// The argument that marks a process started by `Pool::spawn` as a worker.
pub(crate) const SPAWNED_ARG: &str = "--mp-mpi-spawned-worker";

/// A worker's first message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) pid: u32,
    pub(crate) host: String,
}

/// What a pool tells a worker when it takes it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Setup {
    pub(crate) root_pid: u32,
    pub(crate) root_host: String,
    /// The initializer and its encoded argument.
    pub(crate) init: Option<(RawFunction, Vec<u8>)>,
}

/// Watches a process of this host for its end (a pidfd). Processes of
/// other hosts are watched through heartbeats instead.
#[derive(Debug)]
pub(crate) struct Watch {
    fd: Option<OwnedFd>,
}

impl Watch {
    /// Watches `pid` if it runs on this host (`host` equal to ours).
    pub(crate) fn new(pid: u32, host: &str, my_host: &str) -> Watch {
        if host != my_host {
            return Watch { fd: None };
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new
        // descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return Watch { fd: None };
        }
        // SAFETY: a descriptor the call just created, owned by us alone.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Watch { fd: Some(fd) }
    }

    /// Whether the process is known to have ended.
    pub(crate) fn ended(&self) -> bool {
        let Some(fd) = &self.fd else { return false };
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents != 0
    }

    /// Whether this process can be watched directly.
    pub(crate) fn is_local(&self) -> bool {
        self.fd.is_some()
    }
}

/// Sleeps between polls that found nothing, longer each time up to a
/// millisecond (OpenMPI's own waits spin on a core, which a root sharing
/// the host with its workers cannot afford).
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    idle: u32,
}

impl Backoff {
    pub(crate) fn reset(&mut self) {
        self.idle = 0;
    }

    /// How long to wait after one more idle poll.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.idle = self.idle.saturating_add(1);
        match self.idle {
            0..=16 => Duration::ZERO,
            n => Duration::from_micros((1u64 << (n - 16).min(10)).min(1000)),
        }
    }

    /// Waits as [`next_delay`](Backoff::next_delay) says.
    pub(crate) fn snooze(&mut self) {
        let d = self.next_delay();
        if d.is_zero() {
            std::thread::yield_now();
        } else {
            std::thread::sleep(d);
        }
    }
}
