//! `Queue`, `SimpleQueue` and `JoinableQueue`: many producers, many
//! consumers, across processes.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use mp_os::time::Deadline;
use mp_os::wait::Waitable;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::attach::Attach;
use crate::chan::{Chan, KIND_QUEUE};
use crate::error::{
    Error, RecvError, RecvFailure, RecvTimeoutError, SendError, SendFailure, SendTimeoutError,
    TryRecvError, TrySendError,
};
// `io`: what every handle does with its rings.
use crate::handle_ops::{self as io, Call};
use crate::ring::{DecodeSink, RingWriteError, WaitMode};

mod joinable;
mod simple;
#[cfg(test)]
mod tests;

use joinable::JoinSink;
pub use joinable::JoinableQueue;
pub use simple::SimpleQueue;

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
/// ring has no room. Runs of bytes and floats in a value (`Vec<u8>`,
/// `String`, `Vec<f64>`, ...) are copied as one block. Values from one
/// producer arrive in the order they were put.
///
/// A `Queue` handle is both a producer and a consumer. Clones and copies
/// in other processes (a `Queue` is a serde value) are further handles;
/// [`close_put`](Queue::close_put) says this handle will put no more (it
/// still gets), [`close`](Queue::close) that it will neither put nor get
/// (Python's `close`). Consumers get [`RecvError::Disconnected`] once every
/// handle has closed, been dropped, or died and the queue is drained;
/// producers get [`SendError::Disconnected`] once no handle can receive.
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
    /// This handle's registration on the channel (its roles and the
    /// mapping).
    pub(super) registration: Arc<Attach>,
    _t: PhantomData<fn(T) -> T>,
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("qsize", &self.qsize())
            .field("maxsize", &self.registration.chan.maxsize)
            .field("closed", &self.registration.closed())
            .field("can_put", &self.registration.can_send())
            .finish()
    }
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue::wrap(self.registration.duplicate())
    }
}

impl<T> Drop for Queue<T> {
    fn drop(&mut self) {
        let feed = &self.registration.chan.feed;
        // The last handle of this process: as Python's feeder is joined
        // when its queue goes, wait until the buffered values are in the
        // ring (unless no other process can read them, or cancelled).
        if feed.handles.fetch_sub(1, SeqCst) == 1 && feed.backlog() != 0 {
            feed.flush(&self.registration.chan, true);
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
            queue: Queue::wrap(self.create(true)?),
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
    pub(super) fn wrap(registration: Arc<Attach>) -> Queue<T> {
        registration.chan.feed.handles.fetch_add(1, SeqCst);
        Queue {
            registration,
            _t: PhantomData,
        }
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
        let chan = &self.registration.chan;
        // `buffered` before the ring: a value moves from one to the other.
        let b = buffered_count(chan, || self.registration.slow_check_due());
        (chan.ring(0).count() + b) as usize
    }

    /// Whether the queue is empty (approximate, as `qsize`).
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Whether the queue holds `maxsize` messages (never, when unbounded).
    pub fn full(&self) -> bool {
        self.registration.chan.maxsize != 0 && self.qsize() as u64 >= self.registration.chan.maxsize
    }

    /// The bound in messages (0: none).
    pub fn maxsize(&self) -> usize {
        self.registration.chan.maxsize as usize
    }

    /// Ring bytes.
    pub fn ring_bytes(&self) -> usize {
        self.registration.chan.ring(0).capacity() as usize
    }

    /// Closes this handle, as Python's `Queue.close`: later `put`s and
    /// `get`s on it fail with `Closed` ([`SendError::Closed`],
    /// [`RecvError::Closed`] and the `Try`/`Timeout` forms: Python's
    /// `ValueError: Queue is closed`). Other handles, clones in this
    /// process and copies in other processes, are unaffected, and values
    /// this process still buffers are written as before. `qsize`, `empty`
    /// and `full` still answer (Python's `empty` raises `OSError`).
    ///
    /// This differs from the previous API, whose `close` stopped only the
    /// putting and left the handle a consumer: that is
    /// [`close_put`](Queue::close_put) now.
    ///
    /// ```
    /// use mp_channel::{Queue, RecvError, SendError};
    /// let q = Queue::<u32>::new()?;
    /// let other = q.clone();
    /// q.put(1)?;
    /// q.close();
    /// assert!(matches!(q.get(), Err(RecvError::Closed)));
    /// assert!(matches!(q.put(2), Err(SendError::Closed(2))));
    /// assert_eq!(other.get()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close(&self) {
        // Reader first, as `PipeEnd::close`.
        self.registration.close_recv();
        self.registration.close_send();
    }

    /// This handle will put no more; it still gets. Consumers see
    /// `Disconnected` once every handle has closed its putting side or gone
    /// and the queue is drained: a consumer calls it on its own handle (or
    /// before forking consumers, which inherit the handle) to see the
    /// producers go. Python has no such call (its consumers cannot tell
    /// that the producers have gone).
    ///
    /// ```
    /// let q = mp_channel::Queue::<u32>::new()?;
    /// q.put(1)?;
    /// q.close_put();
    /// assert!(q.put(2).unwrap_err().is_closed());
    /// assert_eq!(q.get()?, 1);
    /// assert!(q.get().unwrap_err().is_disconnected()); // no producer left
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn close_put(&self) {
        self.registration.close_send();
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
        self.registration
            .chan
            .feed
            .flush(&self.registration.chan, false);
    }

    /// This process will not wait for its buffered values when it exits
    /// or drops its last handle of the queue (Python's
    /// `cancel_join_thread`): values still buffered then are lost.
    pub fn cancel_join_thread(&self) {
        self.registration.chan.feed.cancel();
    }

    /// Whether [`close`](Queue::close) was called on this handle (it
    /// neither puts nor gets).
    pub fn is_closed(&self) -> bool {
        self.registration.closed()
    }

    /// Whether this handle can put: neither [`close`](Queue::close) nor
    /// [`close_put`](Queue::close_put) was called on it.
    pub fn can_put(&self) -> bool {
        self.registration.can_send()
    }

    /// How many values `put` in this process sent through its buffer
    /// rather than straight into the ring (a statistic for tests).
    #[doc(hidden)]
    pub fn buffered_puts(&self) -> u64 {
        self.registration.chan.feed.pushed()
    }

    /// How blocking calls on this handle wait.
    pub fn wait_mode(&self) -> WaitMode {
        self.registration.mode()
    }

    /// Changes how blocking calls on this handle wait.
    pub fn set_wait_mode(&self, mode: WaitMode) {
        self.registration.set_mode(mode);
    }
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    fn put_inner(&self, value: T, deadline: Deadline, call: Call) -> Result<(), SendFailure<T>> {
        if self.registration.chan.maxsize == 0 {
            return self.put_unbounded(value, deadline, call);
        }
        // A JoinableQueue counts a task when its record is reserved in the
        // ring (`puts`), nothing here: a producer killed while it waits
        // for room leaves no count behind.
        io::write_value(&self.registration, &value, deadline, call).map_err(|e| e.map(|()| value))
    }

    /// `put` into an unbounded queue: into the ring while this process's
    /// buffer is empty and the ring has room (or gets some within a short
    /// grace period, no longer than the caller's `deadline` and none for
    /// `put_nowait`), into the buffer otherwise (see `feed`).
    fn put_unbounded(
        &self,
        value: T,
        deadline: Deadline,
        call: Call,
    ) -> Result<(), SendFailure<T>> {
        let registration = &self.registration;
        let Some(ring) = registration.send_ring().filter(|_| registration.can_send()) else {
            return Err(SendFailure::Closed(value));
        };
        let feed = &registration.chan.feed;
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
                    match ring.write_within(b, &registration.waiter(d), 0, d) {
                        Ok(()) => return Ok(()),
                        Err(RingWriteError::Disconnected) => {
                            return Err(SendFailure::Disconnected(()));
                        }
                        Err(RingWriteError::Corrupt) => return Err(SendFailure::Corrupt(())),
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
                return Err(SendFailure::Disconnected(()));
            } else if feed.backlog() == 0 && call != Call::Try && ring.stream_fits(b.len() as u64) {
                // A value streamed in fragments that all fit in the room
                // the ring has: written at once, no consumer waited for,
                // no copy into the buffer. Once its first fragment is in,
                // the rest follow (room for them was there).
                let d = deadline.min_after(PUT_GRACE);
                match ring.write_within(b, &registration.waiter(d), 0, Deadline::never()) {
                    Ok(()) => return Ok(()),
                    Err(RingWriteError::Disconnected) => return Err(SendFailure::Disconnected(())),
                    Err(RingWriteError::Corrupt) => return Err(SendFailure::Corrupt(())),
                    // `wlock` busy or the room gone: to the buffer.
                    Err(RingWriteError::Timeout) => {}
                }
            }
            feed.push(&registration.chan, b);
            Ok(())
        });
        match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.map(|()| value)),
            Err(e) => Err(SendFailure::Encode(value, e)),
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
            .map_err(SendFailure::blocking)
    }

    /// Puts `value`, waiting at most `timeout` for room (an unbounded
    /// queue never waits).
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), plus [`SendTimeoutError::Timeout`].
    pub fn put_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.put_inner(value, Deadline::after(Some(timeout)), Call::Timed)
            .map_err(SendFailure::timed)
    }

    /// Puts `value` if there is room now (an unbounded queue always has).
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), plus [`TrySendError::Full`].
    pub fn put_nowait(&self, value: T) -> Result<(), TrySendError<T>> {
        self.put_inner(value, Deadline::now(), Call::Try)
            .map_err(SendFailure::non_blocking)
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
            .map_err(RecvFailure::blocking)
    }

    pub(crate) fn get_inner(&self, deadline: Deadline, call: Call) -> Result<T, RecvFailure> {
        if !self.registration.chan.joinable {
            return io::read(&self.registration, &mut DecodeSink::new(), deadline, call);
        }
        // A JoinableQueue counts, per process, the values taken and not
        // marked done, so that `join` can tell the tasks of a process that
        // died with them. Counted when a message is claimed, under the
        // readers' lock and before the ring counts it in `gets`: a
        // consumer killed while it waits holds nothing.
        let mut sink = JoinSink {
            inner: DecodeSink::new(),
            chan: &self.registration.chan,
            claimed: false,
        };
        let r = io::read(&self.registration, &mut sink, deadline, call);
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
    /// As [`get`](Queue::get), plus [`RecvTimeoutError::Timeout`].
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.get_inner(Deadline::after(Some(timeout)), Call::Timed)
            .map_err(RecvFailure::timed)
    }

    /// Takes the next value if there is one now.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get), plus [`TryRecvError::Empty`].
    pub fn get_nowait(&self) -> Result<T, TryRecvError> {
        self.get_inner(Deadline::now(), Call::Try)
            .map_err(RecvFailure::non_blocking)
    }

    #[cfg(feature = "tokio")]
    pub(crate) fn attach(&self) -> &Attach {
        &self.registration
    }
}

impl<T> Waitable for Queue<T> {
    fn is_ready(&self) -> bool {
        io::is_ready(&self.registration, false)
    }
    fn readiness_fd(&self) -> BorrowedFd<'_> {
        io::readiness_fd(&self.registration)
    }
    fn register(&self) {
        io::register(&self.registration, true);
    }
    fn unregister(&self) {
        io::register(&self.registration, false);
    }
    fn check_stalled(&self) -> bool {
        io::is_ready(&self.registration, true)
    }
}

impl<T> Serialize for Queue<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        io::serialize_handle(&self.registration, s)
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
pub(super) fn buffered_count(chan: &Chan, slow: impl FnOnce() -> bool) -> u64 {
    let b = chan.buffered();
    if !b.any() {
        return 0;
    }
    if slow() {
        b.prune();
    }
    b.sum()
}
