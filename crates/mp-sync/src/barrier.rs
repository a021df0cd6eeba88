//! `Barrier` and its in-place state `RawBarrier`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::futex;
use mp_os::liveness;
use mp_os::time::Deadline;

use crate::error::Error;
use crate::lock::{LockGuard, RawLock};
use crate::shared::{RawObject, Shared, handle_impls, tag};
use crate::word::{self, SLICE};

/// How many waiting parties a barrier tracks by thread id (to notice that
/// one died). Parties beyond this index are not watched.
pub const TRACKED_PARTIES: usize = 64;

const FILLING: u32 = 0;
const DRAINING: u32 = 1;
const RESETTING: u32 = 2;
const BROKEN: u32 = 3;

/// The in-place state of a barrier: 320 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag       "BR03": kind and layout version
///      4     4  parties
///      8     4  state     0 filling, 1 draining, 2 resetting, 3 broken
///     12     4  count     parties inside wait()
///     16     4  seq       bumped by every state change (futex word)
///     20     4  sleepers  threads sleeping on `seq`
///     24     4  doomed    1: break the barrier once the draining generation
///                         has left (a caller timed out waiting for it)
///     28     4  reserved
///     32    16  lock      RawLock guarding the fields above
///     48    16  reserved
///     64   256  slots     liveness token (mp_os::liveness) of the party with index i
///                         (0 = none), i < 64
/// ```
///
/// The algorithm is Python's `threading.Barrier`: the last of `parties`
/// arrivals switches the barrier to *draining* and wakes the others; new
/// arrivals wait until every party of the generation has left. A waiter
/// whose timeout passes breaks the barrier; so does a party found dead in
/// the slot table (waiters check it every ~100 ms of sleep), and the dead
/// party is removed from the count so that `reset` works afterwards.
///
/// A caller whose timeout passes while the previous generation is still
/// leaving (draining) returns [`Error::Timeout`] then; breaking the barrier
/// at once would fail the leaving parties, whose generation did trip, so it
/// sets `doomed` and the barrier breaks when the last of them has left.
/// Version 2 (`BR02`) had no `doomed` word and waited for the drain with no
/// deadline.
///
/// The rules for placing one in memory you share yourself are those of
/// [`RawLock`](crate::RawLock#placing-a-rawlock-in-shared-memory), with
/// `RawBarrier::new(parties)`.
#[repr(C)]
pub struct RawBarrier {
    tag: AtomicU32,
    parties: u32,
    state: AtomicU32,
    count: AtomicU32,
    seq: AtomicU32,
    sleepers: AtomicU32,
    doomed: AtomicU32,
    _reserved: u32,
    lock: RawLock,
    _reserved2: [u32; 4],
    slots: [AtomicU32; TRACKED_PARTIES],
}

const BARRIER_TAG: u32 = tag(*b"BR03");
const _: () = assert!(std::mem::size_of::<RawBarrier>() == 320);

// SAFETY: repr(C), starts with the tag, all fields are plain integers.
unsafe impl RawObject for RawBarrier {
    const MAGIC: [u8; 4] = *b"BARR";
    const TAG: u32 = BARRIER_TAG;
}

impl RawBarrier {
    /// A barrier for `parties` parties.
    ///
    /// # Panics
    ///
    /// When `parties` is 0.
    pub const fn new(parties: u32) -> Self {
        assert!(parties > 0, "a barrier needs at least one party");
        RawBarrier {
            tag: AtomicU32::new(BARRIER_TAG),
            parties,
            state: AtomicU32::new(FILLING),
            count: AtomicU32::new(0),
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            doomed: AtomicU32::new(0),
            _reserved: 0,
            lock: RawLock::new(),
            _reserved2: [0; 4],
            slots: [const { AtomicU32::new(0) }; TRACKED_PARTIES],
        }
    }

    /// Waits until `parties` parties have called `wait`; returns this
    /// party's index, distinct among the parties of a generation, in
    /// `0..parties`.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken
    /// (aborted, reset while waiting, another party timed out or died).
    pub fn wait(&self) -> Result<usize, Error> {
        self.wait_deadline(Deadline::never())
    }

    /// As [`wait`](RawBarrier::wait), for at most `timeout`. When the
    /// timeout passes, the barrier breaks (as in Python): this call returns
    /// [`Error::Timeout`] and the other waiters [`Error::BrokenBarrier`].
    /// The timeout also bounds the wait for the previous generation to
    /// leave; a call that times out there breaks the barrier once that
    /// generation has left (its parties still return their index).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`], or as [`wait`](RawBarrier::wait).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, Error> {
        self.wait_deadline(Deadline::after(Some(timeout)))
    }

    /// As [`wait_timeout`](RawBarrier::wait_timeout), until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`wait_timeout`](RawBarrier::wait_timeout).
    pub fn wait_deadline(&self, deadline: Deadline) -> Result<usize, Error> {
        let me = word::me();
        let mut g = self.enter();
        while matches!(self.state(), DRAINING | RESETTING) {
            if deadline.expired() {
                // Not a party of the leaving generation: break the next one.
                self.doomed.store(1, Ordering::Relaxed);
                return Err(Error::Timeout);
            }
            g = self.sleep(g, deadline);
        }
        if self.state() == BROKEN {
            return Err(Error::BrokenBarrier);
        }
        let idx = self.count.load(Ordering::Relaxed);
        self.count.store(idx + 1, Ordering::Relaxed);
        if let Some(slot) = self.slots.get(idx as usize) {
            slot.store(me, Ordering::Relaxed);
        }
        let res = if idx + 1 >= self.parties {
            self.set_state(DRAINING);
            Ok(idx as usize)
        } else {
            loop {
                match self.state() {
                    FILLING => {}
                    DRAINING => break Ok(idx as usize),
                    _ => break Err(Error::BrokenBarrier),
                }
                if deadline.expired() {
                    self.set_state(BROKEN);
                    break Err(Error::Timeout);
                }
                g = self.sleep(g, deadline);
            }
        };
        if let Some(slot) = self.slots.get(idx as usize) {
            let _ = slot.compare_exchange(me, 0, Ordering::Relaxed, Ordering::Relaxed);
        }
        let c = self.count.load(Ordering::Relaxed);
        self.count.store(c.saturating_sub(1), Ordering::Relaxed);
        self.exit_check();
        drop(g);
        res
    }

    /// Puts the barrier back to its empty state; parties waiting now get
    /// [`Error::BrokenBarrier`].
    pub fn reset(&self) {
        let _g = self.enter();
        self.doomed.store(0, Ordering::Relaxed);
        if self.count.load(Ordering::Relaxed) > 0 {
            if matches!(self.state(), FILLING | BROKEN) {
                self.set_state(RESETTING);
            }
        } else {
            self.set_state(FILLING);
        }
    }

    /// Breaks the barrier: waiting and future callers of `wait` get
    /// [`Error::BrokenBarrier`] until [`reset`](RawBarrier::reset).
    pub fn abort(&self) {
        let _g = self.enter();
        self.set_state(BROKEN);
    }

    /// How many parties wait in the current generation.
    pub fn n_waiting(&self) -> usize {
        let _g = self.enter();
        if self.state() == FILLING {
            self.count.load(Ordering::Relaxed) as usize
        } else {
            0
        }
    }

    /// The number of parties.
    pub fn parties(&self) -> usize {
        self.parties as usize
    }

    /// Whether the barrier is broken.
    pub fn broken(&self) -> bool {
        self.state.load(Ordering::Acquire) == BROKEN
    }

    fn state(&self) -> u32 {
        self.state.load(Ordering::Relaxed)
    }

    /// Changes the state and wakes every sleeper (lock held).
    fn set_state(&self, s: u32) {
        self.state.store(s, Ordering::Release);
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            futex::wake_all(&self.seq);
        }
    }

    /// Lock held: the last party out of a draining or resetting barrier
    /// makes it usable again (or broken, if a caller timed out waiting for
    /// it to drain).
    fn exit_check(&self) {
        if self.count.load(Ordering::Relaxed) == 0 && matches!(self.state(), DRAINING | RESETTING) {
            if self.doomed.swap(0, Ordering::Relaxed) != 0 {
                self.set_state(BROKEN);
            } else {
                self.set_state(FILLING);
            }
        }
    }

    /// Takes the internal lock; a party that died inside a critical section
    /// breaks the barrier, and the count is rebuilt from the slot table.
    fn enter(&self) -> LockGuard<'_> {
        match self.lock.acquire() {
            Ok(g) => g,
            Err(died) => {
                let g = died.into_inner();
                if self.parties as usize <= TRACKED_PARTIES {
                    let alive = self
                        .slots
                        .iter()
                        .filter(|s| {
                            let t = s.load(Ordering::Relaxed);
                            t != 0 && liveness::token_alive(t)
                        })
                        .count();
                    self.count.store(alive as u32, Ordering::Relaxed);
                }
                self.set_state(BROKEN);
                self.reap();
                g
            }
        }
    }

    /// Lock held: removes dead parties from the slot table and the count,
    /// breaking a filling barrier.
    fn reap(&self) {
        let mut changed = false;
        for slot in self.slots.iter().take(self.parties as usize) {
            let t = slot.load(Ordering::Relaxed);
            if t != 0 && !liveness::token_alive(t) {
                slot.store(0, Ordering::Relaxed);
                let c = self.count.load(Ordering::Relaxed);
                self.count.store(c.saturating_sub(1), Ordering::Relaxed);
                changed = true;
            }
        }
        if changed {
            if self.state() == FILLING {
                self.set_state(BROKEN);
            }
            self.exit_check();
        }
    }

    /// Releases the internal lock, sleeps until a state change or a slice
    /// passes, re-takes the lock; after a silent slice, looks for dead
    /// parties.
    fn sleep<'a>(&'a self, g: LockGuard<'a>, deadline: Deadline) -> LockGuard<'a> {
        let seen = self.seq.load(Ordering::SeqCst);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        drop(g);
        let r = futex::wait(&self.seq, seen, deadline.min_after(SLICE));
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        let g = self.enter();
        if r == futex::Wait::TimedOut {
            self.reap();
        }
        g
    }
}

impl fmt::Debug for RawBarrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawBarrier")
            .field("parties", &self.parties)
            .field("state", &self.state())
            .field("count", &self.count.load(Ordering::Relaxed))
            .finish()
    }
}

/// A cross-process barrier (Python's `multiprocessing.Barrier`): a handle
/// to a [`RawBarrier`]. `Clone` is cheap; the handle is serde. Methods come
/// from [`RawBarrier`] through `Deref`.
///
/// ```
/// let b = mp_sync::Barrier::new(2)?;
/// let b2 = b.clone();
/// let t = std::thread::spawn(move || b2.wait().unwrap());
/// let mine = b.wait()?;
/// let theirs = t.join().unwrap();
/// assert_ne!(mine, theirs);
/// assert!(mine < 2 && theirs < 2);
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct Barrier {
    inner: Shared<RawBarrier>,
}

handle_impls!(Barrier, RawBarrier);

impl Barrier {
    /// Creates a barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `parties` is 0 or above `u32::MAX`;
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new(parties: usize) -> Result<Barrier, Error> {
        let parties =
            u32::try_from(parties)
                .ok()
                .filter(|&p| p > 0)
                .ok_or(Error::InvalidArgument(
                    "a barrier needs 1 to u32::MAX parties",
                ))?;
        Ok(Barrier {
            inner: Shared::create(RawBarrier::new(parties))?,
        })
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("broken", &self.broken())
            .finish()
    }
}
