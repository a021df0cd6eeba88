//! Deadlines on `CLOCK_MONOTONIC`.
//!
//! Every blocking call in the workspace turns its timeout into a
//! [`Deadline`] once, at the start, so that a wait that is woken spuriously
//! and sleeps again does not restart its timeout.

use std::time::Duration;

use rustix::time::{ClockId, Timespec, clock_gettime};

/// Nanoseconds on `CLOCK_MONOTONIC`, the clock futex deadlines use.
///
/// ```
/// let a = mp_os::time::monotonic_ns();
/// let b = mp_os::time::monotonic_ns();
/// assert!(b >= a);
/// ```
pub fn monotonic_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// A point on `CLOCK_MONOTONIC`, or never.
///
/// ```
/// use std::time::Duration;
/// use mp_os::time::Deadline;
///
/// let d = Deadline::after(Some(Duration::from_millis(10)));
/// assert!(!d.expired());
/// assert!(Deadline::never().remaining().is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    at_ns: Option<u64>,
}

impl Deadline {
    /// A deadline that never expires.
    pub const fn never() -> Self {
        Deadline { at_ns: None }
    }

    /// A deadline that has already expired (a non-blocking attempt).
    pub fn now() -> Self {
        Deadline {
            at_ns: Some(monotonic_ns()),
        }
    }

    /// A deadline that expired long ago: a non-blocking attempt, without
    /// reading the clock to make it (it is read only if checked).
    ///
    /// ```
    /// assert!(mp_os::time::Deadline::past().expired());
    /// ```
    pub const fn past() -> Self {
        Deadline { at_ns: Some(0) }
    }

    /// `timeout` from now; `None` means never.
    pub fn after(timeout: Option<Duration>) -> Self {
        match timeout {
            None => Deadline::never(),
            Some(d) => {
                let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                Deadline {
                    at_ns: monotonic_ns().checked_add(ns),
                }
            }
        }
    }

    /// Whether this deadline is never.
    pub fn is_never(&self) -> bool {
        self.at_ns.is_none()
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        match self.at_ns {
            None => false,
            Some(at) => monotonic_ns() >= at,
        }
    }

    /// Time left (zero once expired), or `None` for never.
    pub fn remaining(&self) -> Option<Duration> {
        self.at_ns
            .map(|at| Duration::from_nanos(at.saturating_sub(monotonic_ns())))
    }

    /// The earlier of `self` and `timeout` from now.
    pub fn min_after(&self, timeout: Duration) -> Deadline {
        let other = Deadline::after(Some(timeout));
        match (self.at_ns, other.at_ns) {
            (Some(a), Some(b)) => Deadline {
                at_ns: Some(a.min(b)),
            },
            (None, b) => Deadline { at_ns: b },
            (a, None) => Deadline { at_ns: a },
        }
    }

    /// The absolute time as a `Timespec`, for `FUTEX_WAIT_BITSET`.
    pub fn as_timespec(&self) -> Option<Timespec> {
        self.at_ns.map(|at| Timespec {
            tv_sec: (at / 1_000_000_000) as i64,
            tv_nsec: (at % 1_000_000_000) as i64,
        })
    }

    /// The remaining time in whole milliseconds for `poll(2)`: -1 for never,
    /// rounded up so that a poll does not return just before the deadline.
    pub fn poll_timeout_ms(&self) -> i32 {
        match self.remaining() {
            None => -1,
            Some(d) => {
                let ms = d.as_nanos().div_ceil(1_000_000);
                i32::try_from(ms).unwrap_or(i32::MAX)
            }
        }
    }
}
