//! The few system calls that several files make, through rustix.

use std::os::fd::{BorrowedFd, OwnedFd};

use mp_os::time::Deadline;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

use crate::error::Error;

/// `poll(2)` until one of `fds` is ready or `deadline` passes: how many are
/// ready (0 at the deadline).
pub(crate) fn poll_until(fds: &mut [PollFd<'_>], deadline: Deadline) -> rustix::io::Result<usize> {
    let ms = deadline.poll_timeout_ms();
    let timeout = (ms >= 0).then(|| Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    });
    rustix::event::poll(fds, timeout.as_ref())
}

/// Whether `fd` becomes readable before `deadline`.
pub(crate) fn poll_fd(fd: BorrowedFd<'_>, deadline: Deadline) -> bool {
    loop {
        match poll_until(&mut [PollFd::from_borrowed_fd(fd, PollFlags::IN)], deadline) {
            Ok(n) => return n > 0,
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
}

/// A pidfd for our child `pid`.
pub(crate) fn pidfd_open(pid: i32) -> Result<OwnedFd, Error> {
    // A pid of 0 is refused as the kernel refuses it.
    let pid = Pid::from_raw(pid).ok_or(Errno::INVAL);
    pid.and_then(|pid| rustix::process::pidfd_open(pid, PidfdFlags::empty()))
        .map_err(|e| Error::os("pidfd_open", e))
}
