//! [`JoinableQueue`]: a [`Queue`] that counts unfinished tasks.

use std::fmt;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use mp_os::futex::Wait;
use mp_os::time::Deadline;
use mp_os::wait::Waitable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chan::Chan;
use crate::error::Error;
// `io`: what every handle does with its rings.
use crate::ring::DecodeSink;

use super::{Queue, buffered_count};

/// A [`Queue`] that counts unfinished tasks (Python's `JoinableQueue`):
/// every `put` adds one, [`task_done`](JoinableQueue::task_done) removes
/// one, and [`join`](JoinableQueue::join) waits until none are left. It
/// dereferences to [`Queue`] for `put`, `get` and the rest.
///
/// ```
/// let q = mp_channel::JoinableQueue::new()?;
/// q.put(1u8)?;
/// assert_eq!(q.get()?, 1);
/// q.task_done()?;
/// q.join()?;
/// assert!(q.task_done().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JoinableQueue<T> {
    pub(super) queue: Queue<T>,
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("qsize", &self.queue.qsize())
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue {
            queue: self.queue.clone(),
        }
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.queue
    }
}

/// A JoinableQueue's receive: counts the message in this process's entry
/// of the `taken` table when the ring claims it. A value that is claimed
/// but not handed to the caller (it does not decode, the decoder panics)
/// is counted done at once.
pub(super) struct JoinSink<'a, T> {
    pub(super) inner: DecodeSink<T>,
    pub(super) chan: &'a Chan,
    pub(super) claimed: bool,
}

impl<T: DeserializeOwned> crate::ring::Sink for JoinSink<'_, T> {
    type Out = T;
    fn whole(&mut self, bytes: &[u8]) -> Result<T, crate::ring::RingReadError> {
        self.inner.whole(bytes)
    }
    fn start(
        &mut self,
        total: u64,
    ) -> Result<crate::ring::StreamBuf<'_>, crate::ring::RingReadError> {
        self.inner.start(total)
    }
    unsafe fn finish(&mut self, total: u64) -> Result<T, crate::ring::RingReadError> {
        // SAFETY: the caller's promise is `inner`'s (its buffer was filled).
        unsafe { self.inner.finish(total) }
    }
    fn claimed(&mut self) {
        // An overflowed registration stays counted (in the table's
        // overflow counter, never written off): a held task must never
        // look lost.
        self.chan.taken().add(crate::attach::process_token());
        self.claimed = true;
    }
    fn dropped(&mut self) {
        self.claimed = false;
        self.chan.taken().remove_one(crate::attach::process_token());
    }
}

impl<T> Drop for JoinSink<'_, T> {
    fn drop(&mut self) {
        if self.claimed {
            // Done before no longer held: `write_off_dead` reads the held
            // counts before `done`, so the task is never missed by both.
            let tasks = self.chan.join_ctl();
            tasks.done.fetch_add(1, SeqCst);
            self.chan.taken().remove_one(crate::attach::process_token());
            wake_joiners(tasks);
        }
    }
}

/// Wakes `join` waiters (the unfinished count reached 0 or tasks were
/// written off).
fn wake_joiners(tasks: &crate::chan::JoinCtl) {
    tasks.seq.fetch_add(1, SeqCst);
    if tasks.waiters.load(SeqCst) != 0 {
        mp_os::futex::wake_all(&tasks.seq);
    }
}

/// Tasks put and not done: `buffered + puts - dropped - done - written`,
/// never less than the true count at the moment `done` was read (what only
/// goes down is read first, what only goes up last; a buffered value is
/// counted in `puts` before it leaves `buffered`), so 0 means every task
/// was done.
fn unfinished_of(chan: &Chan, done: u64) -> u64 {
    let tasks = chan.join_ctl();
    let written = tasks.written.load(SeqCst);
    let ring = chan.ring(0);
    // A message is put before it can be dropped: `dropped` first.
    let dropped = ring.dropped();
    let buffered = buffered_count(chan, || false);
    let puts = ring.puts();
    (buffered + puts).saturating_sub(dropped + done + written)
}

impl<T: Serialize + DeserializeOwned> JoinableQueue<T> {
    /// An unbounded joinable queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<Self, Error> {
        Queue::builder().build_joinable()
    }

    /// A joinable queue of at most `maxsize` messages.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn with_capacity(maxsize: usize) -> Result<Self, Error> {
        Queue::builder().maxsize(maxsize).build_joinable()
    }
}

impl<T> JoinableQueue<T> {
    fn tasks(&self) -> &crate::chan::JoinCtl {
        self.queue.registration.chan.join_ctl()
    }

    /// Tasks put and not yet marked done (approximate while others put,
    /// get and finish tasks).
    pub fn unfinished(&self) -> u64 {
        let chan = &self.queue.registration.chan;
        unfinished_of(chan, chan.join_ctl().done.load(SeqCst))
    }

    /// Marks one task (a value got earlier) as done.
    ///
    /// Call it in the process that got the value: each process's count of
    /// values taken and not done is how [`join`](JoinableQueue::join)
    /// recognises the tasks of a process that died.
    ///
    /// # Errors
    ///
    /// [`Error::TaskDone`] when called more times than values were put.
    pub fn task_done(&self) -> Result<(), Error> {
        let chan = &self.queue.registration.chan;
        let tasks = chan.join_ctl();
        let mut done = tasks.done.load(SeqCst);
        let left = loop {
            let left = unfinished_of(chan, done);
            if left == 0 {
                return Err(Error::TaskDone);
            }
            match tasks.done.compare_exchange(done, done + 1, SeqCst, SeqCst) {
                Ok(_) => break left,
                Err(d) => done = d,
            }
        };
        // After `done`: see `JoinSink`'s drop.
        chan.taken().remove_one(crate::attach::process_token());
        if left == 1 {
            wake_joiners(tasks);
        }
        Ok(())
    }

    /// Waits until every value put has been marked done.
    ///
    /// Values a producer still buffers (see [`Queue`]) count as
    /// unfinished from their `put` on, as in Python.
    ///
    /// Unlike Python's, it does not wait for ever when a consumer died
    /// holding a task, or a producer died with values still in its
    /// buffer: within about 100 ms of noticing (it looks while it waits),
    /// the values got by processes that are now dead and never marked
    /// done, and those a dead producer never wrote into the queue, are
    /// written off and `join` returns [`Error::TasksLost`] (every `join`
    /// waiting at that moment does).
    ///
    /// ```
    /// let q = mp_channel::JoinableQueue::<u32>::new()?;
    /// q.put(1)?;
    /// let _task = q.get()?;
    /// q.task_done()?;
    /// q.join()?; // every task done
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::TasksLost`] as above.
    pub fn join(&self) -> Result<(), Error> {
        self.join_deadline(Deadline::never()).map(|_| ())
    }

    /// [`join`](JoinableQueue::join) for at most `timeout`; whether every
    /// task was done.
    ///
    /// # Errors
    ///
    /// As [`join`](JoinableQueue::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<bool, Error> {
        self.join_deadline(Deadline::after(Some(timeout)))
    }

    fn join_deadline(&self, deadline: Deadline) -> Result<bool, Error> {
        let tasks = self.tasks();
        let lost_before = tasks.lost.load(SeqCst);
        let outcome = |done: bool| match tasks.lost.load(SeqCst) - lost_before {
            0 => Ok(done),
            count => Err(Error::TasksLost { count }),
        };
        loop {
            if self.unfinished() == 0 {
                return outcome(true);
            }
            tasks.waiters.fetch_add(1, SeqCst);
            let seq = tasks.seq.load(SeqCst);
            if self.unfinished() == 0 {
                tasks.waiters.fetch_sub(1, SeqCst);
                return outcome(true);
            }
            let r = mp_os::futex::wait(&tasks.seq, seq, deadline.min_after(crate::ring::SLICE));
            tasks.waiters.fetch_sub(1, SeqCst);
            if r == Wait::TimedOut {
                self.write_off_dead();
                if deadline.expired() {
                    return outcome(self.unfinished() == 0);
                }
            }
        }
    }

    /// Writes off the tasks taken by processes that died (slow path): of
    /// the messages taken from the ring (`gets`), those neither dropped,
    /// done, written off already, nor held by a live process. Read in the
    /// order tasks move (taken, then held, then done), so that a task
    /// moving meanwhile is seen twice rather than missed: the count is
    /// never too high.
    fn write_off_dead(&self) {
        let chan = &self.queue.registration.chan;
        let tasks = self.tasks();
        let ring = chan.ring(0);
        // Counts a holder killed inside its lock left behind are repaired
        // by whoever takes the lock over.
        let me = crate::sync::tid();
        ring.recover_wlock(me);
        ring.recover_rlock(me);
        // A producer killed between reserving its record and committing
        // it: counted in `puts`, dropped only once somebody skips it, which
        // no consumer does unless it waits in `get`.
        ring.skip_torn(me);
        let gets = ring.gets();
        let taken = chan.taken();
        taken.prune();
        // Every live registration, overflowed ones included (a slot of a
        // process that died after the prune counts as held: too few
        // written off now, the rest at the next look).
        let held = taken.sum();
        let dropped = ring.dropped();
        let done = tasks.done.load(SeqCst);
        let written = tasks.written.load(SeqCst);
        let lost = gets.saturating_sub(held + dropped + done + written);
        // Values a dead producer still had in its buffer will never come.
        let unsent = chan.buffered().prune();
        if unsent != 0 {
            tasks.lost.fetch_add(unsent, SeqCst);
            wake_joiners(tasks);
        }
        if lost == 0 {
            return;
        }
        // One writer of each loss: a concurrent `join` that counted the
        // same tasks loses this race and counts again.
        if tasks
            .written
            .compare_exchange(written, written + lost, SeqCst, SeqCst)
            .is_ok()
        {
            tasks.lost.fetch_add(lost, SeqCst);
            wake_joiners(tasks);
        }
    }
}

impl<T> Waitable for JoinableQueue<T> {
    fn is_ready(&self) -> bool {
        self.queue.is_ready()
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.queue.readiness_fd()
    }
    fn register(&self) {
        self.queue.register();
    }
    fn unregister(&self) {
        self.queue.unregister();
    }
    fn check_stalled(&self) -> bool {
        self.queue.check_stalled()
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.queue.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JoinableQueue<T>, D::Error> {
        use serde::de::Error as _;
        let queue = Queue::deserialize(d)?;
        if !queue.registration.chan.joinable {
            return Err(D::Error::custom(
                "the handle is a Queue, not a JoinableQueue",
            ));
        }
        Ok(JoinableQueue { queue })
    }
}
