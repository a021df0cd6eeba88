//! Waiting for any of several objects: channel ends, queues, processes.
//!
//! An object that can be waited on implements [`Waitable`]: a cheap
//! readiness check plus a file descriptor (an eventfd, a pidfd) that becomes
//! readable when the object may have become ready. [`wait`] registers every
//! object (so that producers know somebody polls and only then pay for the
//! eventfd write), checks readiness, sleeps in `poll(2)` until a descriptor
//! is readable or the deadline passes, re-checks, and unregisters.
//!
//! ```
//! use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
//! use std::time::Duration;
//! use mp_os::wait::{wait, Waitable};
//!
//! // A trivial waitable: ready when its flag is set.
//! struct Flag(bool, OwnedFd);
//! impl Waitable for Flag {
//!     fn is_ready(&self) -> bool { self.0 }
//!     fn readiness_fd(&self) -> BorrowedFd<'_> { self.1.as_fd() }
//! }
//! let fd = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
//! let (a, b) = (Flag(false, fd()), Flag(true, fd()));
//! let ready = wait(&[&a, &b], Some(Duration::from_millis(10)))?;
//! assert_eq!(ready, vec![1]);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use crate::time::Deadline;

/// How long [`wait`] sleeps at most before it calls
/// [`Waitable::check_stalled`] on every object (to notice dead peers): the
/// workspace's [`SLICE`](crate::futex::SLICE).
pub const STALL_SLICE: Duration = crate::futex::SLICE;

/// An object [`wait`] can wait on.
///
/// The contract: after [`register`](Waitable::register), whenever the
/// object becomes ready, its [`readiness_fd`](Waitable::readiness_fd)
/// becomes readable (possibly spuriously as well). [`is_ready`](Waitable::is_ready)
/// may consume stale readiness (drain an eventfd), but must leave the
/// descriptor readable when it returns `true`, so that other waiters in
/// other processes are not robbed of the wake-up.
pub trait Waitable {
    /// Whether the object is ready now (a receive would not block, a
    /// process has exited, ...).
    fn is_ready(&self) -> bool;

    /// A descriptor that becomes readable when the object may be ready.
    fn readiness_fd(&self) -> BorrowedFd<'_>;

    /// Called once before waiting: from now on, readiness must be signalled
    /// on the descriptor.
    fn register(&self) {}

    /// Called once after waiting, paired with [`register`](Waitable::register).
    fn unregister(&self) {}

    /// Called after [`wait`] has slept [`STALL_SLICE`] without an event: a
    /// chance for expensive checks (is the peer still alive?). Returns
    /// readiness like [`is_ready`](Waitable::is_ready).
    fn check_stalled(&self) -> bool {
        self.is_ready()
    }
}

struct Registered<'a>(&'a [&'a dyn Waitable]);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        for o in self.0 {
            o.unregister();
        }
    }
}

/// Waits until at least one of `objects` is ready or `timeout` passes
/// (`None`: no timeout), and returns the indexes of the ready ones in
/// ascending order (empty on timeout).
///
/// # Errors
///
/// The error of `poll(2)` other than `EINTR` (for example `EINVAL` for more
/// descriptors than the open-file limit).
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    let deadline = Deadline::after(timeout);
    for o in objects {
        o.register();
    }
    let _guard = Registered(objects);
    // Expensive checks (dead peers) run after a slice without events, and
    // at least once a slice however many events arrive: a descriptor that
    // keeps waking us while nothing is ready must not hide a dead peer.
    let slice_ns = STALL_SLICE.as_nanos() as u64;
    let mut last_stall_check = crate::time::monotonic_ns();
    let mut stalled = false;
    loop {
        let ready: Vec<usize> = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| {
                if stalled {
                    o.check_stalled()
                } else {
                    o.is_ready()
                }
            })
            .map(|(i, _)| i)
            .collect();
        if stalled {
            last_stall_check = crate::time::monotonic_ns();
        }
        if !ready.is_empty() || deadline.expired() {
            return Ok(ready);
        }
        let slice = deadline.min_after(STALL_SLICE);
        let mut fds: Vec<PollFd<'_>> = objects
            .iter()
            .map(|o| PollFd::from_borrowed_fd(o.readiness_fd(), PollFlags::IN))
            .collect();
        let ms = slice.poll_timeout_ms();
        let ts = rustix::time::Timespec {
            tv_sec: i64::from(ms / 1000),
            tv_nsec: i64::from(ms % 1000) * 1_000_000,
        };
        let timed_out = match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => true,
            Ok(_) | Err(rustix::io::Errno::INTR) => false,
            Err(e) => return Err(e.into()),
        };
        stalled =
            timed_out || crate::time::monotonic_ns().saturating_sub(last_stall_check) >= slice_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, OwnedFd};

    struct Efd(OwnedFd);

    impl Waitable for Efd {
        fn is_ready(&self) -> bool {
            let mut b = [0u8; 8];
            match rustix::io::read(&self.0, &mut b) {
                Ok(_) => {
                    // Leave it readable for others, as the contract asks.
                    let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
                    true
                }
                Err(_) => false,
            }
        }
        fn readiness_fd(&self) -> BorrowedFd<'_> {
            self.0.as_fd()
        }
    }

    fn efd() -> Efd {
        use rustix::event::{EventfdFlags, eventfd};
        Efd(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).unwrap())
    }

    #[test]
    fn times_out_when_nothing_is_ready() {
        let a = efd();
        let t = std::time::Instant::now();
        let r = wait(&[&a], Some(Duration::from_millis(50))).unwrap();
        assert!(r.is_empty());
        assert!(t.elapsed() >= Duration::from_millis(45));
    }

    #[test]
    fn wakes_on_a_write_from_another_thread() {
        let a = efd();
        let b = efd();
        let fd = b.0.try_clone().unwrap();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            rustix::io::write(&fd, &1u64.to_ne_bytes()).unwrap();
        });
        let r = wait(&[&a, &b], Some(Duration::from_secs(10))).unwrap();
        assert_eq!(r, vec![1]);
        h.join().unwrap();
    }

    /// Always readable, never ready, but a stalled check finds it ready
    /// (as a channel whose writer died while stale wake-ups keep coming).
    struct Noisy(OwnedFd);

    impl Waitable for Noisy {
        fn is_ready(&self) -> bool {
            false
        }
        fn readiness_fd(&self) -> BorrowedFd<'_> {
            self.0.as_fd()
        }
        fn check_stalled(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_noisy_descriptor_does_not_hide_the_stalled_check() {
        let e = efd();
        rustix::io::write(&e.0, &1u64.to_ne_bytes()).unwrap();
        let n = Noisy(e.0);
        let t = std::time::Instant::now();
        assert_eq!(wait(&[&n], Some(Duration::from_secs(30))).unwrap(), vec![0]);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
}
