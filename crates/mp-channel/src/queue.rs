//! `Queue`, `SimpleQueue` and `JoinableQueue`: many producers, many
//! consumers, across processes.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use mp_os::futex::Wait;
use mp_os::time::Deadline;
use mp_os::wait::Waitable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::attach::Attach;
use crate::chan::{Chan, KIND_QUEUE};
use crate::error::{Error, RecvError, SendError};
// `io`: what every handle does with its rings.
use crate::handle_ops::{self as io, Call};
use crate::ring::{DecodeSink, RingWriteError, WaitMode};

/// Default ring size of a queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1 << 20;

/// A multi-producer, multi-consumer queue of `T` shared between processes,
/// like Python's `multiprocessing.Queue`.
///
/// Values are postcard-encoded into a ring in shared memory
/// ([`DEFAULT_QUEUE_CAPACITY`] bytes unless the builder says otherwise). A
/// queue without a `maxsize` (the default) is unbounded, as Python's: when
/// the ring has no room, `put` leaves the value in a buffer of this
/// process and returns, and a feeder thread writes it into the ring as
/// consumers make room (values larger than a quarter of the ring always
/// go that way, streamed through the ring in fragments). Before the
/// process exits, and when its last handle of the queue is dropped, it
/// waits until its buffered values are in the ring, as Python's does
/// (see [`join_thread`](Queue::join_thread) and
/// [`cancel_join_thread`](Queue::cancel_join_thread)). A queue with a
/// `maxsize` blocks `put` while it holds that many values, or while the
/// ring has no room. For bulk bytes use [`Bytes`](crate::Bytes) rather
/// than `Vec<u8>`. Values from one producer arrive in the order they were
/// put.
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
        Queue::wrap(self.a.duplicate())
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        let feed = &self.a.chan.feed;
        // The last handle of this process: as Python's feeder is joined
        // when its queue goes, wait until the buffered values are in the
        // ring (unless no other process can read them, or cancelled).
        if feed.handles.fetch_sub(1, SeqCst) == 1 && feed.backlog() != 0 {
            feed.flush(&self.a.chan, true);
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
        Ok(Queue::wrap(self.create(false)?))
    }

    /// Creates a [`JoinableQueue`].
    ///
    /// # Errors
    ///
    /// As [`build`](QueueBuilder::build).
    pub fn build_joinable(self) -> Result<JoinableQueue<T>, Error> {
        Ok(JoinableQueue {
            q: Queue::wrap(self.create(true)?),
        })
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// An unbounded queue (its 1 MiB ring, and a buffer in the putting
    /// process beyond it).
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
    fn wrap(a: Arc<Attach>) -> Queue<T> {
        a.chan.feed.handles.fetch_add(1, SeqCst);
        Queue { a, _t: PhantomData }
    }

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

    /// Messages in the queue, those still buffered in the processes that
    /// put them included (approximate while others put and get).
    pub fn qsize(&self) -> usize {
        let chan = &self.a.chan;
        // `buffered` before the ring: a value moves from one to the other.
        let b = buffered_count(chan, || self.a.slow_check_due());
        (chan.ring(0).count() + b) as usize
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

    /// Waits until the values this process put and still buffers are in
    /// the ring (or until no process can read them any more), as Python's
    /// `join_thread`. Unlike Python's it needs no `close` first; it waits
    /// for consumers to make room, so call it when somebody reads.
    ///
    /// ```
    /// let q = mp_channel::Queue::<u32>::new()?;
    /// q.put(1)?;
    /// q.join_thread(); // nothing buffered: returns at once
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_thread(&self) {
        self.a.chan.feed.flush(&self.a.chan, false);
    }

    /// This process will not wait for its buffered values when it exits
    /// or drops its last handle of the queue (Python's
    /// `cancel_join_thread`): values still buffered then are lost.
    pub fn cancel_join_thread(&self) {
        self.a.chan.feed.cancel();
    }

    /// Whether [`close`](Queue::close) was called on this handle.
    pub fn is_closed(&self) -> bool {
        !self.a.can_send()
    }

    /// How many values `put` in this process sent through its buffer
    /// rather than straight into the ring (a statistic for tests).
    #[doc(hidden)]
    pub fn buffered_puts(&self) -> u64 {
        self.a.chan.feed.pushed()
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
        if self.a.chan.maxsize == 0 {
            return self.put_unbounded(value, deadline, call);
        }
        // A JoinableQueue counts a task when its record is reserved in the
        // ring (`puts`), nothing here: a producer killed while it waits
        // for room leaves no count behind.
        io::write_value(&self.a, &value, deadline, call).map_err(|e| e.map(|()| value))
    }

    /// `put` into an unbounded queue: into the ring while this process's
    /// buffer is empty and the ring has room (or gets some within a short
    /// grace period, no longer than the caller's `deadline` and none for
    /// `put_nowait`), into the buffer otherwise (see `feed`).
    fn put_unbounded(&self, value: T, deadline: Deadline, call: Call) -> Result<(), SendError<T>> {
        let a = &self.a;
        let Some(ring) = a.send_ring().filter(|_| a.can_send()) else {
            return Err(SendError::Closed(value));
        };
        let feed = &a.chan.feed;
        let r = io::with_encoded(&value, |b| {
            if feed.backlog() == 0 && b.len() as u64 <= ring.max_frag() {
                // No clock read unless the ring is full or `wlock` busy.
                let mut grace = false;
                let mut tries = 0;
                loop {
                    let d = if grace {
                        deadline.min_after(PUT_GRACE)
                    } else {
                        Deadline::past()
                    };
                    // One record (no fragments): `d` bounds it all.
                    match ring.write_within(b, &a.waiter(d), 0, d) {
                        Ok(()) => return Ok(()),
                        Err(RingWriteError::Disconnected) => {
                            return Err(SendError::Disconnected(()));
                        }
                        Err(RingWriteError::Corrupt) => return Err(SendError::Corrupt(())),
                        Err(RingWriteError::Timeout) => {}
                    }
                    // Only a ring without room sends the value to the
                    // buffer: other writers holding `wlock` (a streamed
                    // message, a writer preempted inside) are waited for,
                    // or every later put of this process would go through
                    // the buffer until the feeder caught up.
                    if call == Call::Try
                        || (grace
                            && (tries >= CONTENDED_TRIES
                                || deadline.expired()
                                || !ring.has_room(b.len() as u64)))
                    {
                        break;
                    }
                    grace = true;
                    tries += 1;
                }
            } else if !ring.ctl().readers.any() {
                return Err(SendError::Disconnected(()));
            } else if feed.backlog() == 0 && call != Call::Try && ring.stream_fits(b.len() as u64) {
                // A value streamed in fragments that all fit in the room
                // the ring has: written at once, no consumer waited for,
                // no copy into the buffer. Once its first fragment is in,
                // the rest follow (room for them was there).
                let d = deadline.min_after(PUT_GRACE);
                match ring.write_within(b, &a.waiter(d), 0, Deadline::never()) {
                    Ok(()) => return Ok(()),
                    Err(RingWriteError::Disconnected) => return Err(SendError::Disconnected(())),
                    Err(RingWriteError::Corrupt) => return Err(SendError::Corrupt(())),
                    // `wlock` busy or the room gone: to the buffer.
                    Err(RingWriteError::Timeout) => {}
                }
            }
            feed.push(&a.chan, b);
            Ok(())
        });
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.map(|()| value)),
            Err(e) => Err(SendError::Encode(value, e)),
        }
    }

    /// Puts `value`; in a queue with a `maxsize`, blocks while the queue
    /// is full. An unbounded queue never blocks (see [`Queue`]).
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

    /// Puts `value`, waiting at most `timeout` for room (an unbounded
    /// queue never waits).
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), plus [`SendError::Timeout`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.put_inner(value, Deadline::after(Some(timeout)), Call::Timed)
    }

    /// Puts `value` if there is room now (an unbounded queue always has).
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
        // A JoinableQueue counts, per process, the values taken and not
        // marked done, so that `join` can tell the tasks of a process that
        // died with them. Counted when a message is claimed, under the
        // readers' lock and before the ring counts it in `gets`: a
        // consumer killed while it waits holds nothing.
        let mut sink = JoinSink {
            inner: DecodeSink::new(),
            chan: &self.a.chan,
            claimed: false,
        };
        let r = io::read(&self.a, &mut sink, deadline, call);
        if r.is_ok() {
            // The caller holds the task now, until its `task_done`.
            sink.claimed = false;
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
        io::deserialize_handle(d, KIND_QUEUE).map(Queue::wrap)
    }
}

/// How long `put` into an unbounded queue waits for the ring to make room
/// before it buffers the value: long enough for consumers that keep up (a
/// stream), short enough to look instant.
const PUT_GRACE: Duration = Duration::from_millis(1);

/// Grace periods an unbounded `put` waits at most for `wlock` while the
/// ring has room for its value.
const CONTENDED_TRIES: u32 = 200;

/// Values buffered by the processes that put them (`slow()`: forget those
/// of dead processes first).
fn buffered_count(chan: &Chan, slow: impl FnOnce() -> bool) -> u64 {
    let b = chan.buffered();
    if !b.any() {
        return 0;
    }
    if slow() {
        b.prune();
    }
    b.sum()
}

// ---------------------------------------------------------------- SimpleQueue

/// A simpler queue (Python's `SimpleQueue`): `put`, `get`, `empty`,
/// `close`; unbounded (see [`Queue`]).
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

    /// Puts `value` (never blocks: see [`Queue`]).
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

/// A JoinableQueue's receive: counts the message in this process's entry
/// of the `taken` table when the ring claims it. A value that is claimed
/// but not handed to the caller (it does not decode, the decoder panics)
/// is counted done at once.
struct JoinSink<'a, T> {
    inner: DecodeSink<T>,
    chan: &'a Chan,
    claimed: bool,
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
            let j = self.chan.join_ctl();
            j.done.fetch_add(1, SeqCst);
            self.chan.taken().remove_one(crate::attach::process_token());
            wake_joiners(j);
        }
    }
}

/// Wakes `join` waiters (the unfinished count reached 0 or tasks were
/// written off).
fn wake_joiners(j: &crate::chan::JoinCtl) {
    j.seq.fetch_add(1, SeqCst);
    if j.waiters.load(SeqCst) != 0 {
        mp_os::futex::wake_all(&j.seq);
    }
}

/// Tasks put and not done: `buffered + puts - dropped - done - written`,
/// never less than the true count at the moment `done` was read (what only
/// goes down is read first, what only goes up last; a buffered value is
/// counted in `puts` before it leaves `buffered`), so 0 means every task
/// was done.
fn unfinished_of(chan: &Chan, done: u64) -> u64 {
    let j = chan.join_ctl();
    let written = j.written.load(SeqCst);
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
    fn ctl(&self) -> &crate::chan::JoinCtl {
        self.q.a.chan.join_ctl()
    }

    /// Tasks put and not yet marked done (approximate while others put,
    /// get and finish tasks).
    pub fn unfinished(&self) -> u64 {
        let chan = &self.q.a.chan;
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
        let chan = &self.q.a.chan;
        let j = chan.join_ctl();
        let mut done = j.done.load(SeqCst);
        let left = loop {
            let left = unfinished_of(chan, done);
            if left == 0 {
                return Err(Error::TaskDone);
            }
            match j.done.compare_exchange(done, done + 1, SeqCst, SeqCst) {
                Ok(_) => break left,
                Err(d) => done = d,
            }
        };
        // After `done`: see `JoinSink`'s drop.
        chan.taken().remove_one(crate::attach::process_token());
        if left == 1 {
            wake_joiners(j);
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
        let j = self.ctl();
        let lost_before = j.lost.load(SeqCst);
        let outcome = |done: bool| match j.lost.load(SeqCst) - lost_before {
            0 => Ok(done),
            count => Err(Error::TasksLost { count }),
        };
        loop {
            if self.unfinished() == 0 {
                return outcome(true);
            }
            j.waiters.fetch_add(1, SeqCst);
            let seq = j.seq.load(SeqCst);
            if self.unfinished() == 0 {
                j.waiters.fetch_sub(1, SeqCst);
                return outcome(true);
            }
            let r = mp_os::futex::wait(&j.seq, seq, deadline.min_after(crate::ring::SLICE));
            j.waiters.fetch_sub(1, SeqCst);
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
        let chan = &self.q.a.chan;
        let j = self.ctl();
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
        let done = j.done.load(SeqCst);
        let written = j.written.load(SeqCst);
        let lost = gets.saturating_sub(held + dropped + done + written);
        // Values a dead producer still had in its buffer will never come.
        let unsent = chan.buffered().prune();
        if unsent != 0 {
            j.lost.fetch_add(unsent, SeqCst);
            wake_joiners(j);
        }
        if lost == 0 {
            return;
        }
        // One writer of each loss: a concurrent `join` that counted the
        // same tasks loses this race and counts again.
        if j.written
            .compare_exchange(written, written + lost, SeqCst, SeqCst)
            .is_ok()
        {
            j.lost.fetch_add(lost, SeqCst);
            wake_joiners(j);
        }
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::JoinableQueue;

    #[test]
    fn join_drops_a_record_a_dead_producer_never_committed() {
        let q = JoinableQueue::<u32>::new().unwrap();
        q.put(1).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 1);
        q.task_done().unwrap();
        // A producer killed while copying its value into the ring.
        let dead = crate::sync::tid() ^ (1 << mp_os::liveness::TID_BITS);
        assert!(!crate::sync::alive(dead));
        q.q.a.chan.ring(0).reserve_torn(1000, dead);
        assert_eq!(q.unfinished(), 1);
        // Nobody waits in `get`: `join` itself skips the torn record.
        assert!(q.join_timeout(Duration::from_secs(10)).unwrap());
        assert_eq!(q.unfinished(), 0);
        q.put(2).unwrap();
        assert_eq!(q.get_nowait().unwrap(), 2);
        q.task_done().unwrap();
        assert!(q.join_timeout(Duration::from_secs(1)).unwrap());
    }
}
