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
//! * Before the process exits (an exit hook: `mp_os::exit`, registered by
//!   the first queue handle, see `attach`), and when the
//!   last handle of the queue in this process is dropped, the buffer is
//!   flushed: the caller waits until the feeder wrote it, unless every
//!   other reader has gone (nobody would ever read it) or
//!   `cancel_join_thread` was called.
//! * When every reader has gone the feeder drops what is left.
//! * A forked child starts with an empty buffer and no feeder: what the
//!   parent buffered is the parent's to write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::time::Duration;

use mp_os::fork::ForkSafeMutex;
use mp_os::futex::{AdaptiveSpin, SLICE};
use mp_os::time::Deadline;

use crate::holders::Holders;
use crate::ring::{KEEP_SCRATCH, Ring, WaitMode, Waiter};

/// The channel a feeder writes into, as the feeder sees it: implemented
/// by `chan::Chan`, which owns the `Feed` (so that this file needs nothing
/// above it).
pub(crate) trait FeedTarget: Send + Sync + 'static {
    /// This process's buffer for the channel.
    fn feed(&self) -> &Feed;
    /// The ring the values go into (a queue has one).
    fn feed_ring(&self) -> &Ring;
    /// The channel's table of values buffered, per process.
    fn buffered_table(&self) -> &Holders;
}

/// A shared channel is a target too (the callers hold an `Arc`).
impl<C: FeedTarget> FeedTarget for Arc<C> {
    fn feed(&self) -> &Feed {
        (**self).feed()
    }

    fn feed_ring(&self) -> &Ring {
        (**self).feed_ring()
    }

    fn buffered_table(&self) -> &Holders {
        (**self).buffered_table()
    }
}

/// This process's liveness token, the id its buffered values are counted
/// under.
fn process_token() -> u32 {
    mp_os::liveness::process_token()
}

/// How long a feeder with nothing to write waits for more before it
/// leaves.
const LINGER: Duration = Duration::from_millis(200);

/// Frames from this size on reuse the kept buffer (smaller ones come from
/// the allocator's free lists, which are fast).
const KEEP_FROM: usize = 64 << 10;

/// A backlog that reached this many bytes gives its memory back to the
/// system (`malloc_trim`) once drained.
const TRIM_AT: usize = 16 << 20;

#[derive(Default)]
struct Frames {
    /// The encoded values, oldest first.
    values: VecDeque<Vec<u8>>,
    /// A large frame's buffer the feeder wrote out, kept for the next large
    /// value (see [`KEEP_SCRATCH`]): a fresh one costs its page faults.
    spare: Option<Vec<u8>>,
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
    /// The buffer; a forked child takes the lock back (see `after_fork`).
    frames: ForkSafeMutex<Frames>,
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
            frames: ForkSafeMutex::new(Frames::default()),
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

    /// Runs `f` on the buffer, locked (the critical sections are short and
    /// never take another lock).
    fn with<R>(&self, f: impl FnOnce(&mut Frames) -> R) -> R {
        f(&mut self.frames.lock())
    }

    /// Buffers one encoded value this process put, and makes sure a feeder
    /// runs. Counted in `buffered` before `put` returns.
    pub(crate) fn push<C: FeedTarget>(&self, chan: &Arc<C>, bytes: &[u8]) {
        let kept = if bytes.len() >= KEEP_FROM {
            self.with(|f| f.spare.take())
        } else {
            None
        };
        let frame = match kept {
            Some(mut kept) => {
                kept.clear();
                kept.extend_from_slice(bytes);
                kept
            }
            None => bytes.to_vec(),
        };
        // An overflowed registration is kept: it only makes the counts
        // look higher, never lower.
        chan.buffered_table().add(process_token());
        self.backlog.fetch_add(1, SeqCst);
        self.pushed.fetch_add(1, Relaxed);
        self.with(|f| {
            f.bytes += frame.len();
            f.peak = f.peak.max(f.bytes);
            f.values.push_back(frame);
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
    pub(crate) fn flush<C: FeedTarget>(&self, chan: &C, others_only: bool) {
        loop {
            if self.backlog() == 0 || self.cancelled.load(SeqCst) {
                return;
            }
            if others_only {
                let readers = &chan.feed_ring().ctl().readers;
                if readers.sum() <= readers.count_of(process_token()) {
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
        // SAFETY: in the forked child (one thread), before anything else
        // uses the lock; the frames are replaced right after.
        unsafe { self.frames.reset_after_fork() };
        // The old value is leaked on purpose.
        std::mem::forget(std::mem::take(&mut *self.frames.lock()));
        self.backlog.store(0, SeqCst);
        self.pushed.store(0, Relaxed);
        self.sleeping.store(0, SeqCst);
        self.idle_waiters.store(0, SeqCst);
        self.running.store(false, SeqCst);
    }
}

/// Starts a feeder thread for `chan`, with a writer registration of its
/// own (made here, so that the channel never looks abandoned in between).
fn spawn<C: FeedTarget>(chan: &Arc<C>) {
    let pid = process_token();
    let role = chan.feed_ring().ctl().writers.add(pid);
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
fn feed<C: FeedTarget>(chan: Arc<C>, role: u32) {
    let f = chan.feed();
    let ring = chan.feed_ring();
    let pid = process_token();
    let spin = AdaptiveSpin::new();
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    loop {
        f.with(|fr| {
            let n = fr.values.len().min(BATCH);
            batch.extend(fr.values.drain(..n));
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
                    spin: &spin,
                    me: crate::sync::tid(),
                };
                // Every reader has gone: nothing will read the rest.
                gone = ring.write_within(&frame, &w, 0, Deadline::never()).is_err();
                if (KEEP_FROM..=KEEP_SCRATCH).contains(&frame.capacity()) {
                    f.with(|fr| {
                        fr.spare.get_or_insert(frame);
                    });
                }
            }
            f.with(|fr| fr.bytes -= bytes);
            // In the ring (counted in `puts`) before they leave
            // `buffered`: a JoinableQueue never misses the tasks.
            chan.buffered_table().remove_n(pid, n as u64);
            if gone {
                f.done(discard(&*chan));
            }
            if f.backlog() == n {
                trim(f);
            }
            f.done(n);
            continue;
        }
        f.sleeping.fetch_add(1, SeqCst);
        let seq = f.work.load(SeqCst);
        let empty = f.with(|fr| fr.values.is_empty());
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
            if f.with(|fr| fr.values.is_empty()) || f.running.swap(true, SeqCst) {
                break;
            }
        }
    }
    ring.ctl().writers.remove(role);
    ring.notify_all();
}

/// Drops every buffered value (no reader is left); how many.
fn discard<C: FeedTarget>(chan: &C) -> usize {
    let pid = process_token();
    let gone = chan.feed().with(|fr| {
        fr.bytes = 0;
        std::mem::take(&mut fr.values)
    });
    chan.buffered_table().remove_n(pid, gone.len() as u64);
    gone.len()
}

/// The buffer is about to be empty: once a large backlog drained, its
/// memory goes back to the system.
fn trim(f: &Feed) {
    let peak = f.with(|fr| {
        if !fr.values.is_empty() {
            return 0;
        }
        let p = fr.peak;
        fr.peak = 0;
        if p >= TRIM_AT {
            fr.values = VecDeque::new();
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
