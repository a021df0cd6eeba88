//! `Barrier` and its in-place state `RawBarrier`.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mp_os::futex;
use mp_os::liveness;
use mp_os::object::Plain;
use mp_os::time::Deadline;

use crate::error::Error;
use crate::lock::{LockGuard, RawLock};
use crate::shared::{RawObject, Shared, tag};
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
///      0     4  tag       "BR04": kind and layout version
///      4     4  parties
///      8     4  state     0 filling, 1 draining, 2 resetting, 3 broken
///     12     4  count     parties inside wait()
///     16     4  seq       bumped by every state change (futex word)
///     20     4  sleepers  threads sleeping on `seq`
///     24     4  doomed    1: break the barrier once the draining generation
///                         has left (a caller timed out waiting for it)
///     28     4  reserved
///     32    16  lock      RawLock guarding the fields above
///     48     4  timeout   default timeout of `wait`, nanoseconds, low word
///     52     4            high word
///     56     4  has_timeout  1: `wait` uses the default timeout
///     60     4  reserved
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
/// deadline; version 3 (`BR03`) had no default timeout (words 48..64 were
/// reserved). The default timeout is written once, before the barrier is
/// shared, and only read afterwards.
///
/// # The action
///
/// Python's `Barrier(parties, action)` runs `action` in one of the parties
/// when the barrier trips, before any of them is released. An action is
/// code, which shared memory cannot hold, so `RawBarrier` takes it per call
/// ([`wait_with_action`](RawBarrier::wait_with_action)); the [`Barrier`]
/// handle stores a `fn()` and passes it on every `wait`. The party that
/// trips the barrier runs it, holding the barrier's internal lock (as
/// Python holds the barrier's condition): the others are released when it
/// returns. If it panics, the barrier breaks (the others get
/// [`Error::BrokenBarrier`]) and the panic goes on in the caller; if its
/// process dies in it, the others find the internal lock's owner dead and
/// get `BrokenBarrier` too.
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
    timeout: [u32; 2],
    has_timeout: u32,
    _reserved2: u32,
    slots: [AtomicU32; TRACKED_PARTIES],
}

const BARRIER_TAG: u32 = tag(*b"BR04");
const _: () = assert!(std::mem::size_of::<RawBarrier>() == 320);

// SAFETY: repr(C) integers and atomics only (any bits are a value), no
// pointers or descriptors; its `lock` is a RawLock, itself Plain.
unsafe impl Plain for RawBarrier {}

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
        Self::with_timeout(parties, None)
    }

    /// A barrier for `parties` parties whose [`wait`](RawBarrier::wait)
    /// waits at most `timeout` (Python's `Barrier(parties, timeout=t)`);
    /// `None` waits without limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_sync::{Error, RawBarrier};
    ///
    /// let b = RawBarrier::with_timeout(2, Some(Duration::from_millis(20)));
    /// assert_eq!(b.timeout(), Some(Duration::from_millis(20)));
    /// assert!(matches!(b.wait(), Err(Error::Timeout)));   // nobody came
    /// assert!(b.broken());
    /// ```
    ///
    /// # Panics
    ///
    /// When `parties` is 0.
    pub const fn with_timeout(parties: u32, timeout: Option<Duration>) -> Self {
        assert!(parties > 0, "a barrier needs at least one party");
        let (ns, has) = match timeout {
            // Saturates at about 584 years.
            Some(t) => {
                let ns = t.as_nanos();
                (
                    if ns > u64::MAX as u128 {
                        u64::MAX
                    } else {
                        ns as u64
                    },
                    1,
                )
            }
            None => (0, 0),
        };
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
            timeout: [ns as u32, (ns >> 32) as u32],
            has_timeout: has,
            _reserved2: 0,
            slots: [const { AtomicU32::new(0) }; TRACKED_PARTIES],
        }
    }

    /// The default timeout of [`wait`](RawBarrier::wait) (Python's
    /// `timeout=` argument), if any.
    pub fn timeout(&self) -> Option<Duration> {
        (self.has_timeout != 0)
            .then(|| Duration::from_nanos(self.timeout[0] as u64 | (self.timeout[1] as u64) << 32))
    }

    fn default_deadline(&self) -> Deadline {
        match self.timeout() {
            Some(t) => Deadline::after(Some(t)),
            None => Deadline::never(),
        }
    }

    /// Waits until `parties` parties have called `wait`, for at most the
    /// default [`timeout`](RawBarrier::timeout) if there is one; returns
    /// this party's index, distinct among the parties of a generation, in
    /// `0..parties`.
    ///
    /// # Errors
    ///
    /// [`Error::BrokenBarrier`] when the barrier is or becomes broken
    /// (aborted, reset while waiting, another party timed out or died);
    /// [`Error::Timeout`] when the default timeout passes (which breaks
    /// the barrier, as [`wait_timeout`](RawBarrier::wait_timeout)).
    pub fn wait(&self) -> Result<usize, Error> {
        self.wait_deadline(self.default_deadline())
    }

    /// As [`wait`](RawBarrier::wait); if this call trips the barrier, it
    /// runs `action` first, before any party is released (see [the
    /// action](RawBarrier#the-action)). Every party of a generation should
    /// pass the same action: only the last to arrive runs it.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// static RUNS: AtomicU32 = AtomicU32::new(0);
    /// let b = mp_sync::RawBarrier::new(1);
    /// b.wait_with_action(|| { RUNS.fetch_add(1, Ordering::Relaxed); })?;
    /// assert_eq!(RUNS.load(Ordering::Relaxed), 1);
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`wait`](RawBarrier::wait). If `action` panics, the barrier
    /// breaks and the panic continues in this thread.
    pub fn wait_with_action(&self, action: impl FnOnce()) -> Result<usize, Error> {
        self.wait_inner(self.default_deadline(), Some(&mut Some(action)))
    }

    /// As [`wait_with_action`](RawBarrier::wait_with_action), until
    /// `deadline` instead of the default timeout.
    ///
    /// # Errors
    ///
    /// As [`wait_timeout`](RawBarrier::wait_timeout).
    pub fn wait_deadline_with_action(
        &self,
        deadline: Deadline,
        action: impl FnOnce(),
    ) -> Result<usize, Error> {
        self.wait_inner(deadline, Some(&mut Some(action)))
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
        self.wait_inner(deadline, None::<&mut Option<fn()>>)
    }

    fn wait_inner<F: FnOnce()>(
        &self,
        deadline: Deadline,
        action: Option<&mut Option<F>>,
    ) -> Result<usize, Error> {
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
        let mut panicked = None;
        let res = if idx + 1 >= self.parties {
            // The tripping party runs the action before anyone leaves.
            let ran = match action.and_then(Option::take) {
                Some(f) => catch_unwind(AssertUnwindSafe(f)),
                None => Ok(()),
            };
            match ran {
                Ok(()) => {
                    self.set_state(DRAINING);
                    Ok(idx as usize)
                }
                Err(p) => {
                    self.set_state(BROKEN);
                    panicked = Some(p);
                    Err(Error::BrokenBarrier)
                }
            }
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
        if let Some(p) = panicked {
            resume_unwind(p);
        }
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
/// from [`RawBarrier`] through `Deref`, but for `wait`, `wait_timeout` and
/// `wait_deadline`, which run the handle's action.
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
///
/// # Action and default timeout
///
/// [`Barrier::with_options`] is Python's `Barrier(parties, action,
/// timeout)`: `action` runs in the party that trips the barrier, before
/// the others are released; `timeout` bounds every `wait()`. The timeout
/// lives in the shared state; the action is a `fn()`, kept in the handle
/// and sent with it (as its offset in the executable, like a `Process`
/// target), so a handle deserialized in a child of the same program runs
/// the same action. A handle deserialized in a process of another
/// executable, where the offset is not code, refuses to deserialize rather
/// than call garbage.
#[derive(Clone)]
pub struct Barrier {
    inner: Shared<RawBarrier>,
    action: Option<fn()>,
}

impl std::ops::Deref for Barrier {
    type Target = RawBarrier;
    #[inline]
    fn deref(&self) -> &RawBarrier {
        self.inner.get()
    }
}

impl Barrier {
    /// Creates a barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `parties` is 0 or above `u32::MAX`;
    /// [`Error::Os`] when the segment cannot be created.
    pub fn new(parties: usize) -> Result<Barrier, Error> {
        Barrier::with_options(parties, None, None)
    }

    /// Creates a barrier with an action and a default timeout (Python's
    /// `Barrier(parties, action=None, timeout=None)`); see [the type
    /// docs](Barrier#action-and-default-timeout).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    ///
    /// static TRIPPED: AtomicU32 = AtomicU32::new(0);
    /// fn report() {
    ///     TRIPPED.fetch_add(1, Ordering::Relaxed);
    /// }
    ///
    /// let b = mp_sync::Barrier::with_options(2, Some(report), Some(Duration::from_secs(30)))?;
    /// let b2 = b.clone();
    /// let t = std::thread::spawn(move || b2.wait());
    /// b.wait()?;
    /// t.join().unwrap()?;
    /// assert_eq!(TRIPPED.load(Ordering::Relaxed), 1);   // once per trip
    /// # Ok::<(), mp_sync::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`new`](Barrier::new).
    pub fn with_options(
        parties: usize,
        action: Option<fn()>,
        timeout: Option<Duration>,
    ) -> Result<Barrier, Error> {
        let parties =
            u32::try_from(parties)
                .ok()
                .filter(|&p| p > 0)
                .ok_or(Error::InvalidArgument(
                    "a barrier needs 1 to u32::MAX parties",
                ))?;
        Ok(Barrier {
            inner: Shared::create(RawBarrier::with_timeout(parties, timeout))?,
            action,
        })
    }

    /// The action run when the barrier trips, if any.
    pub fn action(&self) -> Option<fn()> {
        self.action
    }

    /// Waits for the other parties, for at most the default timeout if
    /// there is one; the party that trips the barrier runs the action
    /// first. Returns this party's index (as [`RawBarrier::wait`]).
    ///
    /// # Errors
    ///
    /// As [`RawBarrier::wait`]; if the action panics, the barrier breaks
    /// and the panic continues in the party that ran it.
    pub fn wait(&self) -> Result<usize, Error> {
        self.wait_deadline(match self.timeout() {
            Some(t) => Deadline::after(Some(t)),
            None => Deadline::never(),
        })
    }

    /// As [`wait`](Barrier::wait), for at most `timeout` instead of the
    /// default.
    ///
    /// # Errors
    ///
    /// As [`RawBarrier::wait_timeout`].
    pub fn wait_timeout(&self, timeout: Duration) -> Result<usize, Error> {
        self.wait_deadline(Deadline::after(Some(timeout)))
    }

    /// As [`wait`](Barrier::wait), until `deadline`.
    ///
    /// # Errors
    ///
    /// As [`RawBarrier::wait_timeout`].
    pub fn wait_deadline(&self, deadline: Deadline) -> Result<usize, Error> {
        match self.action {
            Some(f) => self.inner.get().wait_deadline_with_action(deadline, f),
            None => self.inner.get().wait_deadline(deadline),
        }
    }

    /// Whether two handles refer to the same shared object in this
    /// process's mapping (clones do; a deserialized copy maps the same
    /// memory at another address and does not).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        self.inner.ptr_eq(&other.inner)
    }
}

#[derive(serde::Serialize)]
struct WireRef<'a> {
    inner: &'a Shared<RawBarrier>,
    action: Option<i64>,
}

#[derive(serde::Deserialize)]
struct Wire {
    inner: Shared<RawBarrier>,
    action: Option<i64>,
}

impl serde::Serialize for Barrier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRef {
            inner: &self.inner,
            action: self.action.map(|f| code::offset_of(f as usize)),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Barrier {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = Wire::deserialize(d)?;
        let action = match w.action {
            None => None,
            Some(off) => Some(code::fn_at(off).ok_or_else(|| {
                serde::de::Error::custom(
                    "the barrier's action is not code of this executable (a handle from another program?)",
                )
            })?),
        };
        Ok(Barrier {
            inner: w.inner,
            action,
        })
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties())
            .field("broken", &self.broken())
            .field("action", &self.action.is_some())
            .field("timeout", &self.timeout())
            .finish()
    }
}

/// Finding a `fn()` again in another process of the same executable: the
/// executable is mapped at a random address in each process (ASLR), but the
/// distance between two functions in it is the same.
mod code {
    use std::sync::OnceLock;

    #[inline(never)]
    fn anchor() -> usize {
        std::hint::black_box(0x6d70_2d73_796e_6362)
    }

    fn anchor_addr() -> usize {
        anchor as fn() -> usize as usize
    }

    /// Offset of a code address from the anchor.
    pub(super) fn offset_of(addr: usize) -> i64 {
        addr as i64 - anchor_addr() as i64
    }

    /// The `fn()` at `offset` from the anchor, if that address lies in an
    /// executable segment of the object that holds the anchor (the main
    /// program, or the shared library this crate is linked into).
    pub(super) fn fn_at(offset: i64) -> Option<fn()> {
        let addr = usize::try_from((anchor_addr() as i64).checked_add(offset)?).ok()?;
        if !in_executable_code(addr) {
            return None;
        }
        // SAFETY: `addr` is `offset` away from the anchor, where the
        // sending process (the same executable, so the same layout) had a
        // `fn()`; it lies in this executable's code.
        Some(unsafe { std::mem::transmute::<usize, fn()>(addr) })
    }

    fn in_executable_code(addr: usize) -> bool {
        static RANGES: OnceLock<Vec<(usize, usize)>> = OnceLock::new();
        RANGES
            .get_or_init(exec_ranges)
            .iter()
            .any(|&(lo, hi)| addr >= lo && addr < hi)
    }

    /// The executable segments of the loaded object whose code holds the
    /// anchor: the main program, or a shared library (a `cdylib`) that this
    /// crate is linked into.
    fn exec_ranges() -> Vec<(usize, usize)> {
        struct Search {
            anchor: usize,
            found: Vec<(usize, usize)>,
        }
        unsafe extern "C" fn callback(
            info: *mut libc::dl_phdr_info,
            _size: usize,
            data: *mut libc::c_void,
        ) -> i32 {
            // SAFETY: `data` is the `&mut Search` passed below; `info` is
            // valid during the callback.
            let (search, info) = unsafe { (&mut *data.cast::<Search>(), &*info) };
            let segments = || {
                (0..info.dlpi_phnum as usize).filter_map(|i| {
                    // SAFETY: dlpi_phdr points to dlpi_phnum program headers.
                    let ph = unsafe { &*info.dlpi_phdr.add(i) };
                    (ph.p_type == libc::PT_LOAD && ph.p_flags & libc::PF_X != 0).then(|| {
                        let lo = (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize);
                        (lo, lo.wrapping_add(ph.p_memsz as usize))
                    })
                })
            };
            if segments().any(|(lo, hi)| search.anchor >= lo && search.anchor < hi) {
                search.found = segments().collect();
                return 1; // found: stop
            }
            0
        }
        let mut search = Search {
            anchor: anchor_addr(),
            found: Vec::new(),
        };
        // SAFETY: the callback only reads the headers it is given and writes
        // to `search`, which outlives the call.
        unsafe { libc::dl_iterate_phdr(Some(callback), (&mut search as *mut Search).cast()) };
        search.found
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn probe() {}

        #[test]
        fn offsets_round_trip_and_non_code_is_refused() {
            let off = offset_of(probe as fn() as usize);
            assert!(fn_at(off).is_some());
            assert!(fn_at(i64::MAX / 2).is_none());
            assert!(fn_at(-(anchor_addr() as i64) + 8).is_none());
        }

        #[test]
        fn the_ranges_are_those_of_the_object_holding_the_anchor() {
            let ranges = exec_ranges();
            let holds = |addr: usize| ranges.iter().any(|&(lo, hi)| addr >= lo && addr < hi);
            assert!(holds(anchor_addr()), "{ranges:x?}");
            assert!(holds(probe as fn() as usize), "{ranges:x?}");
            // Another object's code (libc's) is not in them.
            let getpid = libc::getpid as unsafe extern "C" fn() -> libc::pid_t;
            assert!(!holds(getpid as usize), "{ranges:x?}");
        }
    }
}
