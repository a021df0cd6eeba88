//! `Event` and its in-place state `RawEvent`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::futex;
use mp_os::object::Plain;
use mp_os::time::Deadline;

use crate::error::Error;
use crate::shared::{RawObject, Shared, handle_impls, tag};

/// The in-place state of an event: 16 bytes, `#[repr(C)]`.
///
/// ```text
/// offset  size  field
///      0     4  tag      "EV02": kind and layout version
///      4     4  flag     bit 0: set; bits 1-31: times set, modulo 2^31 (futex word)
///      8     4  waiters  threads sleeping on `flag`
///     12     4  reserved
/// ```
///
/// A waiter reads `flag` and, if clear, sleeps while it holds that value;
/// `set` on a clear flag sets bit 0 and bumps the count, so a waiter that
/// was waiting when it ran sees the word moved and returns, even if `clear`
/// followed at once (a pulse). Version 1 (`EV01`) held only 0 or 1, so a
/// waiter woken after such a pulse found the flag clear and slept again.
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

const EVENT_TAG: u32 = tag(*b"EV02");

/// Bit 0 of `flag`: the event is set.
const SET: u32 = 1;
/// One more `set` of a clear flag, in bits 1-31 of `flag`.
const ONE_SET: u32 = 2;

// SAFETY: repr(C) integers and atomics only (any bits are a value), no
// pointers or descriptors.
unsafe impl Plain for RawEvent {}

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
        let mut cur = self.flag.load(Ordering::Relaxed);
        loop {
            if cur & SET != 0 {
                return; // already set: nobody sleeps on a set flag
            }
            match self.flag.compare_exchange_weak(
                cur,
                cur.wrapping_add(ONE_SET) | SET,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        if self.waiters.load(Ordering::SeqCst) != 0 {
            futex::wake_all(&self.flag);
        }
    }

    /// Clears the flag.
    pub fn clear(&self) {
        self.flag.fetch_and(!SET, Ordering::SeqCst);
    }

    /// Whether the flag is set (the non-blocking form of `wait`).
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire) & SET != 0
    }

    /// Blocks until the flag is set (returns at once if it is; a `set`
    /// while waiting ends the wait even if `clear` followed).
    pub fn wait(&self) {
        self.wait_deadline(Deadline::never());
    }

    /// Blocks until the flag is set or `timeout` passes; returns `true`
    /// unless the timeout passed (Python's `wait(timeout)`; as
    /// `threading.Event`, `true` also when the flag was set during the wait
    /// and cleared again).
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

    /// Blocks until the flag is set or `deadline` passes; returns `true`
    /// unless the deadline passed (see
    /// [`wait_timeout`](RawEvent::wait_timeout)).
    pub fn wait_deadline(&self, deadline: Deadline) -> bool {
        let seen = self.flag.load(Ordering::Acquire);
        if seen & SET != 0 {
            return true;
        }
        // While the flag is clear only `set` changes the word.
        let moved = || self.flag.load(Ordering::Acquire) != seen;
        if futex::spin_until(crate::word::SPIN / 4, moved) {
            return true;
        }
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let r = if self.flag.load(Ordering::SeqCst) == seen {
                futex::wait(&self.flag, seen, deadline)
            } else {
                futex::Wait::Woken
            };
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if moved() {
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
