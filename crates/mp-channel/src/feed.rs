//! The feeder of an unbounded queue: what a process puts while the ring has
//! no room waits in a buffer of this process, and a background thread
//! writes it into the ring as readers free space (Python's `Queue` feeder
//! thread).
//!
//! * `put` writes straight into the ring while this process's buffer is
//!   empty and the ring has room (the fast path: one load more, of a word
//!   only this process writes). When the ring stays full for a short grace
//!   period (other writers holding its lock while it has room are waited
//!   for: once buffered, every later put goes through the buffer until it
//!   drains), or the value would be streamed (larger than a quarter of the
//!   ring), or the buffer already holds values (FIFO), the encoded value is
//!   appended to the buffer instead and `put` returns.
//! * One feeder thread per buffer takes the values in order and writes
//!   them, streaming large ones; it holds a writer registration of its own
//!   while it runs, so the readers do not see `Disconnected` while values
//!   are on their way. It leaves after an idle moment, and returns memory
//!   to the system once a large backlog drained.
//! * Each process counts its buffered values in the channel's `buffered`
//!   table (shared memory), so that `qsize` and a JoinableQueue's `join`
//!   count them, and forget them when the process dies.
//! * Before the process exits (an exit hook: `mp_os::exit`), and when the
//!   last handle of the queue in this process is dropped, the buffer is
//!   flushed: the caller waits until the feeder wrote it, unless every
//!   other reader has gone (nobody would ever read it) or
//!   `cancel_join_thread` was called.
//! * When every reader has gone the feeder drops what is left.
//! * A forked child starts with an empty buffer and no feeder: what the
//!   parent buffered is the parent's to write.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

use mp_os::futex::SLICE;
use mp_os::time::Deadline;

use crate::chan::Chan;
use crate::ring::{SPIN_DEFAULT_NS, WaitMode, Waiter};

/// How long a feeder with nothing to write waits for more before it
/// leaves.
const LINGER: Duration = Duration::from_millis(200);

/// A backlog that reached this many bytes gives its memory back to the
/// system (`malloc_trim`) once drained.
const TRIM_AT: usize = 16 << 20;

#[derive(Default)]
struct Frames {
    q: VecDeque<Vec<u8>>,
    /// Bytes buffered now, and the most since the buffer was last empty.
    bytes: usize,
    peak: usize,
}

/// One process's buffer of values put into a queue (see the module docs).
pub(crate) struct Feed {
    /// Values buffered or being written by the feeder: `put` may write to
    /// the ring itself only when this is 0.
    backlog: AtomicUsize,
    /// Values this process ever buffered (a statistic).
    pushed: AtomicU64,
    lock: AtomicBool,
    frames: UnsafeCell<Frames>,
    /// Futex word the feeder sleeps on: bumped by every push.
    work: AtomicU32,
    sleeping: AtomicU32,
    /// Futex word flushers sleep on: bumped when the backlog drains.
    idle: AtomicU32,
    idle_waiters: AtomicU32,
    /// A feeder thread runs.
    running: AtomicBool,
    cancelled: AtomicBool,
    /// `Queue` handles of this process on this mapping.
    pub(crate) handles: AtomicUsize,
}

// SAFETY: `frames` is only touched with `lock` held (or in a forked child,
// which has one thread); everything else is atomic.
unsafe impl Sync for Feed {}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("backlog", &self.backlog.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl Feed {
    pub(crate) fn new() -> Feed {
        Feed {
            backlog: AtomicUsize::new(0),
            pushed: AtomicU64::new(0),
            lock: AtomicBool::new(false),
            frames: UnsafeCell::new(Frames::default()),
            work: AtomicU32::new(0),
            sleeping: AtomicU32::new(0),
            idle: AtomicU32::new(0),
            idle_waiters: AtomicU32::new(0),
            running: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            handles: AtomicUsize::new(0),
        }
    }

    /// Values buffered or in flight.
    #[inline]
    pub(crate) fn backlog(&self) -> usize {
        self.backlog.load(SeqCst)
    }

    /// Values this process ever buffered.
    pub(crate) fn pushed(&self) -> u64 {
        self.pushed.load(Relaxed)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Frames) -> R) -> R {
        let mut spins = 0u32;
        while self
            .lock
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            // A holder preempted inside: give it the CPU rather than spin
            // out this time slice.
            if spins < 64 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: we hold the lock; the critical sections are short and
        // never take another lock.
        let r = f(unsafe { &mut *self.frames.get() });
        self.lock.store(false, Release);
        r
    }

    /// Buffers one encoded value this process put, and makes sure a feeder
    /// runs. Counted in `buffered` before `put` returns.
    pub(crate) fn push(&self, chan: &Arc<Chan>, bytes: &[u8]) {
        let frame = bytes.to_vec();
        // An overflowed registration is kept: it only makes the counts
        // look higher, never lower.
        chan.buffered().add(crate::attach::process_token());
        self.backlog.fetch_add(1, SeqCst);
        self.pushed.fetch_add(1, Relaxed);
        self.with(|f| {
            f.bytes += frame.len();
            f.peak = f.peak.max(f.bytes);
            f.q.push_back(frame);
        });
        self.work.fetch_add(1, SeqCst);
        if self.sleeping.load(SeqCst) != 0 {
            mp_os::futex::wake_all(&self.work);
        }
        if !self.running.swap(true, SeqCst) {
            spawn(chan);
        }
    }

    /// `n` values left the buffer (written, or dropped): wakes flushers
    /// when it is empty.
    fn done(&self, n: usize) {
        if n != 0 && self.backlog.fetch_sub(n, SeqCst) == n {
            self.idle.fetch_add(1, SeqCst);
            if self.idle_waiters.load(SeqCst) != 0 {
                mp_os::futex::wake_all(&self.idle);
            }
        }
    }

    /// Waits until the buffer is written out (or dropped because every
    /// reader has gone). `others_only`: also stop waiting once no other
    /// process can read (this one is leaving, or lets go of its last
    /// handle). Returns at once after `cancel_join_thread`.
    pub(crate) fn flush(&self, chan: &Chan, others_only: bool) {
        loop {
            if self.backlog() == 0 || self.cancelled.load(SeqCst) {
                return;
            }
            if others_only {
                let readers = &chan.ring(0).ctl().readers;
                if readers.sum() <= readers.count_of(crate::attach::process_token()) {
                    return;
                }
            }
            self.idle_waiters.fetch_add(1, SeqCst);
            let seq = self.idle.load(SeqCst);
            if self.backlog() != 0 {
                mp_os::futex::wait(&self.idle, seq, Deadline::after(Some(SLICE)));
            }
            self.idle_waiters.fetch_sub(1, SeqCst);
        }
    }

    /// Exit and last-handle flushes no longer wait.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, SeqCst);
        self.idle.fetch_add(1, SeqCst);
        mp_os::futex::wake_all(&self.idle);
    }

    /// In a forked child (one thread): the buffer and the feeder are the
    /// parent's. The child's copy of the buffer is forgotten, not dropped:
    /// another thread may have been changing it at the fork, and dropping
    /// it would copy every page of a large backlog.
    pub(crate) fn after_fork(&self) {
        // SAFETY: the child has a single thread and nothing else refers
        // to the frames now; the old value is leaked on purpose.
        unsafe { std::ptr::write(self.frames.get(), Frames::default()) };
        self.lock.store(false, Release);
        self.backlog.store(0, SeqCst);
        self.pushed.store(0, Relaxed);
        self.sleeping.store(0, SeqCst);
        self.idle_waiters.store(0, SeqCst);
        self.running.store(false, SeqCst);
    }
}

/// Starts a feeder thread for `chan`, with a writer registration of its
/// own (made here, so that the channel never looks abandoned in between).
fn spawn(chan: &Arc<Chan>) {
    mp_os::exit::at_exit(crate::attach::flush_all_at_exit);
    let pid = crate::attach::process_token();
    let role = chan.ring(0).ctl().writers.add(pid);
    let c = chan.clone();
    let started = std::thread::Builder::new()
        .name("mp-queue-feeder".into())
        .spawn(move || feed(c, role));
    if started.is_err() {
        // No thread to be had: write the buffer out here, waiting.
        feed(chan.clone(), role);
    }
}

/// Frames the feeder takes from the buffer at once (one lock, one update
/// of the counts per batch).
const BATCH: usize = 64;

/// The feeder thread: writes the buffer out in order.
fn feed(chan: Arc<Chan>, role: u32) {
    let f = &chan.feed;
    let ring = chan.ring(0);
    let pid = crate::attach::process_token();
    let spin = AtomicU32::new(SPIN_DEFAULT_NS);
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    loop {
        f.with(|fr| {
            let n = fr.q.len().min(BATCH);
            batch.extend(fr.q.drain(..n));
        });
        if !batch.is_empty() {
            let n = batch.len();
            let mut bytes = 0;
            let mut gone = false;
            for frame in batch.drain(..) {
                bytes += frame.len();
                if gone {
                    continue;
                }
                let w = Waiter {
                    deadline: Deadline::never(),
                    mode: WaitMode::Adaptive,
                    spin_ns: &spin,
                    me: crate::sync::tid(),
                };
                // Every reader has gone: nothing will read the rest.
                gone = ring.write_within(&frame, &w, 0, Deadline::never()).is_err();
            }
            f.with(|fr| fr.bytes -= bytes);
            // In the ring (counted in `puts`) before they leave
            // `buffered`: a JoinableQueue never misses the tasks.
            chan.buffered().remove_n(pid, n as u64);
            if gone {
                f.done(discard(&chan));
            }
            if f.backlog() == n {
                trim(f);
            }
            f.done(n);
            continue;
        }
        f.sleeping.fetch_add(1, SeqCst);
        let seq = f.work.load(SeqCst);
        let empty = f.with(|fr| fr.q.is_empty());
        let r = if empty {
            mp_os::futex::wait(&f.work, seq, Deadline::after(Some(LINGER)))
        } else {
            mp_os::futex::Wait::Woken
        };
        f.sleeping.fetch_sub(1, SeqCst);
        if r == mp_os::futex::Wait::TimedOut {
            f.running.store(false, SeqCst);
            // A value pushed after the check above, by a `put` that still
            // saw this thread running, is ours.
            if f.with(|fr| fr.q.is_empty()) || f.running.swap(true, SeqCst) {
                break;
            }
        }
    }
    ring.ctl().writers.remove(role);
    ring.notify_all();
}

/// Drops every buffered value (no reader is left); how many.
fn discard(chan: &Chan) -> usize {
    let pid = crate::attach::process_token();
    let gone = chan.feed.with(|fr| {
        fr.bytes = 0;
        std::mem::take(&mut fr.q)
    });
    chan.buffered().remove_n(pid, gone.len() as u64);
    gone.len()
}

/// The buffer is about to be empty: once a large backlog drained, its
/// memory goes back to the system.
fn trim(f: &Feed) {
    let peak = f.with(|fr| {
        if !fr.q.is_empty() {
            return 0;
        }
        let p = fr.peak;
        fr.peak = 0;
        if p >= TRIM_AT {
            fr.q = VecDeque::new();
        }
        p
    });
    if peak >= TRIM_AT {
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only releases free memory of the allocator.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}
