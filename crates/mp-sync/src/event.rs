//! `Event` and its in-place state `RawEvent`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::futex;
use mp_os::time::Deadline;

use crate::error::Error;
use crate::shared::{RawObject, Shared, handle_impls, tag};

/// The in-place state of an event: 16 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag      "EV01": kind and layout version
///      4     4  flag     0 = clear, 1 = set (futex word)
///      8     4  waiters  threads sleeping on `flag`
///     12     4  reserved
/// ```
///
/// The rules for placing one in memory you share yourself are those of
/// [`RawLock`](crate::RawLock#placing-a-rawlock-in-shared-memory), with
/// `RawEvent::new()`.
#[repr(C)]
pub struct RawEvent {
    tag: AtomicU32,
    flag: AtomicU32,
    waiters: AtomicU32,
    _reserved: u32,
}

const EVENT_TAG: u32 = tag(*b"EV01");

// SAFETY: repr(C), starts with the tag, all fields are plain integers.
unsafe impl RawObject for RawEvent {
    const MAGIC: [u8; 4] = *b"EVNT";
    const TAG: u32 = EVENT_TAG;
}

impl Default for RawEvent {
    fn default() -> Self {
        RawEvent::new()
    }
}

impl RawEvent {
    /// A clear event.
    pub const fn new() -> Self {
        RawEvent {
            tag: AtomicU32::new(EVENT_TAG),
            flag: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
            _reserved: 0,
        }
    }

    /// Sets the flag and wakes every waiter.
    pub fn set(&self) {
        self.flag.store(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex::wake_all(&self.flag);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.flag.store(0, Ordering::SeqCst);
    }

    /// Whether the flag is set (the non-blocking form of `wait`).
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire) != 0
    }

    /// Blocks until the flag is set.
    pub fn wait(&self) {
        self.wait_deadline(Deadline::never());
    }

    /// Blocks until the flag is set or `timeout` passes; returns whether it
    /// is set (Python's `wait(timeout)`).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let ev = mp_sync::Event::new()?;
    /// assert!(!ev.wait_timeout(Duration::from_millis(10)));
    /// ev.set();
    /// assert!(ev.wait_timeout(Duration::from_millis(10)));
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.wait_deadline(Deadline::after(Some(timeout)))
    }

    /// Blocks until the flag is set or `deadline` passes; returns whether it
    /// is set.
    pub fn wait_deadline(&self, deadline: Deadline) -> bool {
        if self.is_set() {
            return true;
        }
        if futex::spin_until(crate::word::SPIN / 4, || self.is_set()) {
            return true;
        }
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let r = if self.flag.load(Ordering::SeqCst) == 0 {
                futex::wait(&self.flag, 0, deadline)
            } else {
                futex::Wait::Woken
            };
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if self.is_set() {
                return true;
            }
            if r == futex::Wait::TimedOut || deadline.expired() {
                return false;
            }
        }
    }
}

impl fmt::Debug for RawEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawEvent")
            .field("set", &self.is_set())
            .finish()
    }
}

/// A cross-process event (Python's `multiprocessing.Event`): a flag that
/// processes wait for. A handle to a [`RawEvent`]; `Clone` is cheap and the
/// handle is serde. Methods come from [`RawEvent`] through `Deref`.
///
/// ```
/// let ev = mp_sync::Event::new()?;
/// let twin = ev.clone();
/// std::thread::spawn(move || twin.set());
/// ev.wait();
/// assert!(ev.is_set());
/// # Ok::<(), mp_sync::Error>(())
/// ```
#[derive(Clone)]
pub struct Event {
    inner: Shared<RawEvent>,
}

handle_impls!(Event, RawEvent);

impl Event {
    /// Creates a clear event.
    ///
    /// # Errors
    ///
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new() -> Result<Event, Error> {
        Ok(Event {
            inner: Shared::create(RawEvent::new())?,
        })
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}
