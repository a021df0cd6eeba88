//! How the ring's blocking calls wait: the caller's wait mode, the
//! adaptive spin before a futex sleep, and the wake-ups that end a sleep.

use mp_os::futex::{AdaptiveSpin, Wait};
use mp_os::time::{Deadline, monotonic_ns};

use super::Ring;
use super::layout::Wake;
use crate::sync::{Ordering::*, fence, futex_wait, futex_wake_all, spin_hint, yield_now};

/// One poller in `data.waiters`.
pub(crate) const POLLER: u32 = 1 << 16;

/// How long a sleeper sleeps before it checks for dead peers (the
/// workspace's one slice).
pub(crate) use mp_os::futex::{SLICE, SLICE_NS};

/// How a blocking call waits.
///
/// ```
/// use mp_channel::WaitMode;
/// assert_eq!(WaitMode::default(), WaitMode::Adaptive);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum WaitMode {
    /// Spin briefly (adapting the budget to how often spinning pays off),
    /// then sleep on a futex. The default.
    #[default]
    Adaptive,
    /// Sleep on the futex at once: no CPU burnt, a wake-up costs a few
    /// microseconds.
    NoSpin,
    /// Never sleep: poll until the deadline. Lowest latency, burns a CPU;
    /// for latency-critical users with a core to spare.
    BusyPoll,
}

impl WaitMode {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            WaitMode::Adaptive => 0,
            WaitMode::NoSpin => 1,
            WaitMode::BusyPoll => 2,
        }
    }
    pub(crate) fn from_u8(v: u8) -> WaitMode {
        match v {
            1 => WaitMode::NoSpin,
            2 => WaitMode::BusyPoll,
            _ => WaitMode::Adaptive,
        }
    }
}

/// The caller's side of a blocking call.
pub(crate) struct Waiter<'a> {
    pub(crate) deadline: Deadline,
    pub(crate) mode: WaitMode,
    pub(crate) spin: &'a AdaptiveSpin,
    pub(crate) me: u32,
}

impl Ring {
    #[inline]
    pub(super) fn notify_data(&self) {
        fence(SeqCst);
        self.wake_readers();
    }

    /// Wakes sleeping readers and pollers, if any (the caller fenced after
    /// its commit).
    #[inline]
    pub(super) fn wake_readers(&self) {
        let w = self.ctl().data.waiters.load(Relaxed);
        if w != 0 {
            self.wake_data(w);
        }
    }

    #[cold]
    pub(super) fn wake_data(&self, w: u32) {
        let d = &self.ctl().data;
        d.seq.fetch_add(1, SeqCst);
        if w & (POLLER - 1) != 0 {
            futex_wake_all(&d.seq);
        }
        if w >= POLLER {
            self.signal_efd();
        }
    }

    pub(super) fn signal_efd(&self) {
        #[cfg(not(loom))]
        if self.efd >= 0 {
            // SAFETY: `efd` is valid for the ring's lifetime (see `new`).
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.efd) };
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    #[inline]
    pub(super) fn notify_space(&self) {
        fence(SeqCst);
        self.wake_writers();
    }

    /// Wakes sleeping writers, if any (the caller fenced after releasing).
    #[inline]
    pub(super) fn wake_writers(&self) {
        let s = &self.ctl().space;
        if s.waiters.load(Relaxed) != 0 {
            s.seq.fetch_add(1, SeqCst);
            futex_wake_all(&s.seq);
        }
    }

    /// Wakes everybody (a side was closed or dropped).
    pub(crate) fn notify_all(&self) {
        let c = self.ctl();
        c.data.seq.fetch_add(1, SeqCst);
        futex_wake_all(&c.data.seq);
        c.space.seq.fetch_add(1, SeqCst);
        futex_wake_all(&c.space.seq);
        self.signal_efd();
    }

    /// Registers (`true`) or unregisters a poller (eventfd readiness).
    pub(crate) fn poller(&self, on: bool) {
        let w = &self.ctl().data.waiters;
        if on {
            w.fetch_add(POLLER, SeqCst);
            fence(SeqCst);
        } else {
            w.fetch_sub(POLLER, SeqCst);
        }
    }

    /// Waits until `check` returns `Some` (it is told `true` when a slow
    /// check for dead peers is due), or `deadline` passes (`None`).
    pub(super) fn block<R>(
        &self,
        ev: &Wake,
        w: &Waiter<'_>,
        deadline: Deadline,
        check: impl FnMut(bool) -> Option<R>,
    ) -> Option<R> {
        self.block_paced(ev, w, deadline, 0, check)
    }

    /// [`block`](Ring::block) polling at most once per `pace_ns` while it
    /// spins (0: as fast as it can). Polling a word the other side writes
    /// per message pulls its cache line over and back each time: a writer
    /// waiting for space, and a reader that caught up with a stream, poll
    /// at a slower pace.
    pub(super) fn block_paced<R>(
        &self,
        ev: &Wake,
        w: &Waiter<'_>,
        deadline: Deadline,
        pace_ns: u32,
        mut check: impl FnMut(bool) -> Option<R>,
    ) -> Option<R> {
        if let Some(r) = check(false) {
            return Some(r);
        }
        if deadline.expired() {
            return None;
        }
        let pause = || {
            if pace_ns == 0 {
                spin_hint();
            } else {
                let until = monotonic_ns() + u64::from(pace_ns);
                while monotonic_ns() < until {
                    spin_hint();
                }
            }
        };
        let timer_every = if pace_ns > 0 { 1 } else { 16 };
        let started = monotonic_ns();
        let mut last_slow = started;
        match w.mode {
            WaitMode::BusyPoll => {
                let mut i = 0u32;
                loop {
                    pause();
                    if let Some(r) = check(false) {
                        return Some(r);
                    }
                    i = i.wrapping_add(1);
                    if i.is_multiple_of(128 / timer_every) {
                        if deadline.expired() {
                            return None;
                        }
                        let now = monotonic_ns();
                        if now - last_slow > SLICE_NS {
                            last_slow = now;
                            if let Some(r) = check(true) {
                                return Some(r);
                            }
                        }
                    }
                }
            }
            WaitMode::Adaptive => {
                let budget = w.spin.budget_ns();
                let start = monotonic_ns();
                let mut i = 0u32;
                loop {
                    pause();
                    if let Some(r) = check(false) {
                        w.spin.paid_off(budget);
                        return Some(r);
                    }
                    i += 1;
                    if i.is_multiple_of(timer_every) {
                        let el = monotonic_ns() - start;
                        if el > u64::from(budget) || deadline.expired() {
                            break;
                        }
                        if el > u64::from(budget) / 2 {
                            yield_now();
                        }
                    }
                }
                w.spin.gave_up(budget);
            }
            WaitMode::NoSpin => {}
        }
        let slept = loop {
            ev.waiters.fetch_add(1, SeqCst);
            fence(SeqCst);
            let seq = ev.seq.load(SeqCst);
            if let Some(r) = check(false) {
                ev.waiters.fetch_sub(1, SeqCst);
                break Some(r);
            }
            let r = futex_wait(&ev.seq, seq, deadline.min_after(SLICE));
            ev.waiters.fetch_sub(1, SeqCst);
            let now = monotonic_ns();
            if r == Wait::TimedOut || now - last_slow > SLICE_NS {
                last_slow = now;
                if let Some(r) = check(true) {
                    break Some(r);
                }
                if deadline.expired() {
                    break None;
                }
            }
        };
        if w.mode == WaitMode::Adaptive && slept.is_some() {
            // The spin gave up, yet the wait may have been short: learn it
            // (else a budget halved below the usual wait of a request/reply
            // exchange would never grow back, and every wait would pay a
            // futex wake-up).
            w.spin.slept(monotonic_ns() - started);
        }
        slept
    }
}
