//! `Queue`, `SimpleQueue` and `JoinableQueue`: many producers, many
//! consumers, across processes.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::Duration;

use mp_os::futex::Wait;
use mp_os::time::Deadline;
use mp_os::wait::Waitable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::attach::Attach;
use crate::chan::{Chan, KIND_QUEUE};
use crate::error::{Error, RecvError, SendError};
use crate::io::{self, Call, DecodeSink};
use crate::ring::WaitMode;

/// Default ring size of a queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1 << 20;

/// A multi-producer, multi-consumer queue of `T` shared between processes,
/// like Python's `multiprocessing.Queue`.
///
/// Values are postcard-encoded into a ring in shared memory. The queue is
/// bounded by `maxsize` messages (0: unbounded) and by the ring's bytes
/// ([`DEFAULT_QUEUE_CAPACITY`] unless the builder says otherwise). A value
/// larger than a quarter of the ring still passes, streamed through it in
/// fragments: that `put` returns once a consumer has taken the value in
/// (Python's `put` returns at once; size the ring for large values). For
/// bulk bytes use [`Bytes`](crate::Bytes) rather than `Vec<u8>`. Messages
/// from one producer arrive in the order they were put.
///
/// A `Queue` handle is both a producer and a consumer. Clones and copies
/// in other processes (a `Queue` is a serde value) are further handles;
/// [`close`](Queue::close) says this handle will put no more. Consumers get
/// [`RecvError::Disconnected`] once every handle has closed, been dropped,
/// or died and the queue is drained; producers get
/// [`SendError::Disconnected`] once no handle can receive.
///
/// ```
/// use mp_channel::Queue;
/// let q = Queue::<(u32, String)>::new()?;
/// q.put((1, "one".into()))?;
/// assert_eq!(q.qsize(), 1);
/// assert_eq!(q.get()?, (1, "one".to_string()));
/// assert!(q.get_nowait().unwrap_err().is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Queue<T> {
    a: Arc<Attach>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.a.chan.maxsize)
            .field("closed", &!self.a.can_send())
            .finish()
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            a: self.a.duplicate(),
            _t: PhantomData,
        }
    }
}

/// Configures a queue: see [`Queue::builder`].
pub struct QueueBuilder<T> {
    maxsize: usize,
    ring_bytes: usize,
    mode: WaitMode,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for QueueBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueBuilder")
            .field("maxsize", &self.maxsize)
            .field("ring_bytes", &self.ring_bytes)
            .field("mode", &self.mode)
            .finish()
    }
}

impl<T> QueueBuilder<T> {
    /// Most messages in the queue (0, the default: no bound but the ring).
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// Ring bytes (rounded up to a power of two, 4 KiB to 1 GiB).
    pub fn ring_bytes(mut self, bytes: usize) -> Self {
        self.ring_bytes = bytes;
        self
    }

    /// How this handle waits (each handle can change it later).
    pub fn wait_mode(mut self, mode: WaitMode) -> Self {
        self.mode = mode;
        self
    }

    fn create(&self, joinable: bool) -> Result<Arc<Attach>, Error> {
        let chan = Chan::create(
            KIND_QUEUE,
            1,
            self.ring_bytes as u64,
            self.maxsize as u64,
            joinable,
        )?;
        Ok(Attach::new(Arc::new(chan), Some(0), Some(0), self.mode))
    }

    /// Creates a [`Queue`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the shared segment or the eventfd cannot be
    /// created.
    pub fn build(self) -> Result<Queue<T>, Error> {
        Ok(Queue {
            a: self.create(false)?,
            _t: PhantomData,
        })
    }

    /// Creates a [`JoinableQueue`].
    ///
    /// # Errors
    ///
    /// As [`build`](QueueBuilder::build).
    pub fn build_joinable(self) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            q: Queue {
                a: self.create(true)?,
                _t: PhantomData,
            },
        })
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue (bounded only by its 1 MiB ring).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the shared segment or the eventfd cannot be
    /// created.
    pub fn new() -> Result<Self, Error> {
        Queue::builder().build()
    }

    /// A queue of at most `maxsize` messages (Python's `Queue(maxsize)`).
    ///
    /// ```
    /// let q = mp_channel::Queue::with_capacity(1)?;
    /// q.put(1u8)?;
    /// assert!(q.full());
    /// assert_eq!(q.put_nowait(2).unwrap_err().into_inner(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Queue::new).
    pub fn with_capacity(maxsize: usize) -> Result<Self, Error> {
        Queue::builder().maxsize(maxsize).build()
    }
}

impl<T> Queue<T> {
    /// A builder for `maxsize`, ring bytes and wait mode.
    ///
    /// ```
    /// use mp_channel::{Queue, WaitMode};
    /// let q = Queue::<u64>::builder().maxsize(100).ring_bytes(64 << 10).wait_mode(WaitMode::NoSpin).build()?;
    /// assert_eq!(q.maxsize(), 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn builder() -> QueueBuilder<T> {
        QueueBuilder {
            maxsize: 0,
            ring_bytes: DEFAULT_QUEUE_CAPACITY,
            mode: WaitMode::Adaptive,
            _t: PhantomData,
        }
    }

    /// Messages in the queue (approximate while others put and get).
    pub fn qsize(&self) -> usize {
        self.a.chan.ring(0).count() as usize
    }

    /// Whether the queue is empty (approximate, as `qsize`).
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue holds `maxsize` messages (never, when unbounded).
    pub fn full(&self) -> bool {
        self.a.chan.maxsize != 0 && self.qsize() as u64 >= self.a.chan.maxsize
    }

    /// The bound in messages (0: none).
    pub fn maxsize(&self) -> usize {
        self.a.chan.maxsize as usize
    }

    /// Ring bytes.
    pub fn ring_bytes(&self) -> usize {
        self.a.chan.ring(0).capacity() as usize
    }

    /// This handle will put no more (as Python's `Queue.close`); it can
    /// still get. Consumers see `Disconnected` once every handle has closed
    /// or gone and the queue is drained.
    pub fn close(&self) {
        self.a.close_send();
    }

    /// Whether [`close`](Queue::close) was called on this handle.
    pub fn is_closed(&self) -> bool {
        !self.a.can_send()
    }

    /// How blocking calls on this handle wait.
    pub fn wait_mode(&self) -> WaitMode {
        self.a.mode()
    }

    /// Changes how blocking calls on this handle wait.
    pub fn set_wait_mode(&self, mode: WaitMode) {
        self.a.set_mode(mode);
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    fn put_inner(&self, value: T, deadline: Deadline, call: Call) -> Result<(), SendError<T>> {
        let jc = self.a.chan.joinable.then(|| self.a.chan.join_ctl());
        if let Some(j) = jc {
            j.unfinished.fetch_add(1, SeqCst);
        }
        let r = io::write_value(&self.a, &value, deadline, call);
        match r {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(j) = jc {
                    task_done_inner(j);
                }
                Err(e.map(|()| value))
            }
        }
    }

    /// Puts `value`, blocking while the queue is full.
    ///
    /// # Errors
    ///
    /// [`SendError::Disconnected`] when no handle can receive,
    /// [`SendError::Closed`] after [`close`](Queue::close),
    /// [`SendError::Encode`] when postcard cannot encode the value. The
    /// value comes back in the error.
    pub fn put(&self, value: T) -> Result<(), SendError<T>> {
        self.put_inner(value, Deadline::never(), Call::Block)
    }

    /// Puts `value`, waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), plus [`SendError::Timeout`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.put_inner(value, Deadline::after(Some(timeout)), Call::Timed)
    }

    /// Puts `value` if there is room now.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), plus [`SendError::Full`].
    pub fn put_nowait(&self, value: T) -> Result<(), TrySendError<T>> {
        self.put_inner(value, Deadline::now(), Call::Try)
    }

    /// Takes the next value, blocking until there is one.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] when every handle has closed or gone and
    /// the queue is drained, [`RecvError::Decode`] when the message is not a
    /// `T`, [`RecvError::Corrupt`] for damaged framing.
    pub fn get(&self) -> Result<T, RecvError> {
        self.get_inner(Deadline::never(), Call::Block)
    }

    fn get_inner(&self, deadline: Deadline, call: Call) -> Result<T, RecvError> {
        if !self.a.chan.joinable {
            return io::read(&self.a, &mut DecodeSink::new(), deadline, call);
        }
        // A JoinableQueue counts what each process took and has not marked
        // done, so that `join` can write off the values of a process that
        // died with them. Counted before the read: a death between the two
        // then writes off one task too many (a later `task_done` reports
        // `TaskDone`) rather than leaving `join` waiting for ever.
        let taken = self.a.chan.taken();
        let role = taken_add(taken);
        let r = io::read(&self.a, &mut DecodeSink::new(), deadline, call);
        if r.is_err() && role != 0 {
            taken.remove(role);
        }
        r
    }

    /// Takes the next value, waiting at most `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let q = mp_channel::Queue::<u8>::new()?;
    /// assert!(q.get_timeout(Duration::from_millis(10)).unwrap_err().is_timeout());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get), plus [`RecvError::Timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvError> {
        self.get_inner(Deadline::after(Some(timeout)), Call::Timed)
    }

    /// Takes the next value if there is one now.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get), plus [`RecvError::Empty`].
    pub fn get_nowait(&self) -> Result<T, RecvError> {
        self.get_inner(Deadline::now(), Call::Try)
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn attach(&self) -> &Attach {
        &self.a
    }
}

use crate::error::{SendTimeoutError, TrySendError};

impl<T> Waitable for Queue<T> {
    fn is_ready(&self) -> bool {
        io::is_ready(&self.a, false)
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        io::readiness_fd(&self.a)
    }
    fn register(&self) {
        io::register(&self.a, true);
    }
    fn unregister(&self) {
        io::register(&self.a, false);
    }
    fn check_stalled(&self) -> bool {
        io::is_ready(&self.a, true)
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        io::serialize_handle(&self.a, s)
    }
}

impl<'de, T> Deserialize<'de> for Queue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Queue<T>, D::Error> {
        io::deserialize_handle(d, KIND_QUEUE).map(|a| Queue { a, _t: PhantomData })
    }
}

// ---------------------------------------------------------------- SimpleQueue

/// A simpler queue (Python's `SimpleQueue`): `put`, `get`, `empty`,
/// `close`; unbounded but for its ring.
///
/// ```
/// let q = mp_channel::SimpleQueue::new()?;
/// q.put("x".to_string())?;
/// assert!(!q.empty());
/// assert_eq!(q.get()?, "x");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SimpleQueue<T> {
    q: Queue<T>,
}

impl<T> fmt::Debug for SimpleQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimpleQueue")
            .field("empty", &self.q.empty())
            .finish()
    }
}

impl<T> Clone for SimpleQueue<T> {
    fn clone(&self) -> Self {
        SimpleQueue { q: self.q.clone() }
    }
}

impl<T: Serialize + DeserializeOwned> SimpleQueue<T> {
    /// A new queue.
    ///
    /// # Errors
    ///
    /// As [`Queue::new`].
    pub fn new() -> Result<Self, Error> {
        Ok(SimpleQueue { q: Queue::new()? })
    }

    /// Puts `value`, blocking while the ring is full.
    ///
    /// # Errors
    ///
    /// As [`Queue::put`].
    pub fn put(&self, value: T) -> Result<(), SendError<T>> {
        self.q.put(value)
    }

    /// Takes the next value, blocking until there is one.
    ///
    /// # Errors
    ///
    /// As [`Queue::get`].
    pub fn get(&self) -> Result<T, RecvError> {
        self.q.get()
    }

    /// Whether the queue is empty.
    pub fn empty(&self) -> bool {
        self.q.empty()
    }

    /// This handle will put no more.
    pub fn close(&self) {
        self.q.close();
    }
}

impl<T> Waitable for SimpleQueue<T> {
    fn is_ready(&self) -> bool {
        self.q.is_ready()
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.q.readiness_fd()
    }
    fn register(&self) {
        self.q.register();
    }
    fn unregister(&self) {
        self.q.unregister();
    }
    fn check_stalled(&self) -> bool {
        self.q.check_stalled()
    }
}

impl<T> Serialize for SimpleQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for SimpleQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SimpleQueue<T>, D::Error> {
        Queue::deserialize(d).map(|q| SimpleQueue { q })
    }
}

// ------------------------------------------------------------- JoinableQueue

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
    q: Queue<T>,
}

impl<T> fmt::Debug for JoinableQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinableQueue")
            .field("qsize", &self.q.qsize())
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

impl<T> Clone for JoinableQueue<T> {
    fn clone(&self) -> Self {
        JoinableQueue { q: self.q.clone() }
    }
}

impl<T> Deref for JoinableQueue<T> {
    type Target = Queue<T>;
    fn deref(&self) -> &Queue<T> {
        &self.q
    }
}

/// Counts one value taken by this process in a JoinableQueue's `taken`
/// table; returns the role to remove later (0: the table was full, the value
/// is not tracked).
pub(crate) fn taken_add(taken: &crate::holders::Holders) -> u32 {
    let role = taken.add(crate::attach::process_token());
    if role & crate::holders::OVERFLOW != 0 {
        taken.remove(role);
        return 0;
    }
    role
}

/// Wakes `join` waiters (the unfinished count reached 0 or tasks were
/// written off).
fn wake_joiners(j: &crate::chan::JoinCtl) {
    j.seq.fetch_add(1, SeqCst);
    if j.waiters.load(SeqCst) != 0 {
        mp_os::futex::wake_all(&j.seq);
    }
}

/// Subtracts up to `k` from the unfinished count (never below 0); returns
/// the count it found.
fn sub_unfinished(j: &crate::chan::JoinCtl, k: u64) -> u64 {
    j.unfinished
        .fetch_update(SeqCst, Relaxed, |n| (n > 0).then(|| n - k.min(n)))
        .unwrap_or(0)
}

fn task_done_inner(j: &crate::chan::JoinCtl) -> bool {
    match sub_unfinished(j, 1) {
        0 => false,
        n => {
            if n == 1 {
                wake_joiners(j);
            }
            true
        }
    }
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
    fn ctl(&self) -> &crate::chan::JoinCtl {
        self.q.a.chan.join_ctl()
    }

    /// Tasks put and not yet marked done.
    pub fn unfinished(&self) -> u64 {
        self.ctl().unfinished.load(SeqCst)
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
        if task_done_inner(self.ctl()) {
            self.q.a.chan.taken().remove(crate::attach::process_token());
            Ok(())
        } else {
            Err(Error::TaskDone)
        }
    }

    /// Waits until every value put has been marked done.
    ///
    /// Unlike Python's, it does not wait for ever when a consumer died
    /// holding a task: within about 100 ms of noticing (it looks while it
    /// waits), the values got by processes that are now dead and never
    /// marked done are written off and `join` returns
    /// [`Error::TasksLost`] (every `join` waiting at that moment does).
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
        let j = self.ctl();
        let lost_before = j.lost.load(SeqCst);
        let outcome = |done: bool| match j.lost.load(SeqCst) - lost_before {
            0 => Ok(done),
            count => Err(Error::TasksLost { count }),
        };
        loop {
            if j.unfinished.load(SeqCst) == 0 {
                return outcome(true);
            }
            j.waiters.fetch_add(1, SeqCst);
            let seq = j.seq.load(SeqCst);
            if j.unfinished.load(SeqCst) == 0 {
                j.waiters.fetch_sub(1, SeqCst);
                return outcome(true);
            }
            let r = mp_os::futex::wait(&j.seq, seq, deadline.min_after(crate::ring::SLICE));
            j.waiters.fetch_sub(1, SeqCst);
            if r == Wait::TimedOut {
                self.write_off_dead();
                if deadline.expired() {
                    return outcome(j.unfinished.load(SeqCst) == 0);
                }
            }
        }
    }

    /// Writes off the tasks taken by processes that died (slow path).
    fn write_off_dead(&self) {
        let j = self.ctl();
        let dead = self.q.a.chan.taken().prune();
        if dead == 0 {
            return;
        }
        let gone = dead.min(sub_unfinished(j, dead));
        j.lost.fetch_add(gone, SeqCst);
        wake_joiners(j);
    }
}

impl<T> Waitable for JoinableQueue<T> {
    fn is_ready(&self) -> bool {
        self.q.is_ready()
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        self.q.readiness_fd()
    }
    fn register(&self) {
        self.q.register();
    }
    fn unregister(&self) {
        self.q.unregister();
    }
    fn check_stalled(&self) -> bool {
        self.q.check_stalled()
    }
}

impl<T> Serialize for JoinableQueue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.q.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for JoinableQueue<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JoinableQueue<T>, D::Error> {
        use serde::de::Error as _;
        let q = Queue::deserialize(d)?;
        if !q.a.chan.joinable {
            return Err(D::Error::custom(
                "the handle is a Queue, not a JoinableQueue",
            ));
        }
        Ok(JoinableQueue { q })
    }
}
