//! What follows a `fork`: one `pthread_atfork` registration for the whole
//! workspace, the ordered hooks it runs, and a lock that a forked child can
//! take back.
//!
//! A `fork` copies the memory of the calling process into the child and
//! nothing else: the child has one thread, statics hold whatever the
//! parent's threads left there, and no Rust code runs on the way. State
//! that must not cross (cached thread ids, a channel's registrations under
//! the parent's id, a queue's buffer) is fixed up by hooks that the C
//! library calls around `fork(3)`.
//!
//! # Hooks
//!
//! A crate that needs such a fix-up declares one static [`Hooks`] value and
//! passes it to [`register`] before the state it guards exists (registering
//! the same value again does nothing). The only `pthread_atfork` handlers
//! of the workspace are installed before `main` (from `.init_array`, while
//! the process has one thread), and run the registered hooks. At each
//! fork:
//!
//! 1. before it, in the parent, the `prepare` handlers run, in the reverse
//!    of the order below (as `pthread_atfork(3)` runs them);
//! 2. after it, the `parent` handlers run in the parent and the `child`
//!    handlers in the child, in this order: by [`Rank`] (the process's
//!    identity first, then the objects that register under it), and within
//!    a rank in the order of registration.
//!
//! A set of hooks registered while a fork is under way (after the prepare
//! handlers ran) sits that fork out: its `parent` and `child` handlers only
//! run for forks whose `prepare` step saw it, unless it has no `prepare`
//! handler at all.
//!
//! Handlers run with the other fork handlers' locks held: they must be
//! short, must not panic (a panic cannot unwind out of the C library and
//! aborts the process) and must not fork. They may call [`register`] (it
//! never blocks).
//!
//! # Children made without `fork(3)`
//!
//! A raw `clone` system call runs no `pthread_atfork` handler. A process
//! made that way (a fork server whose children must be its parent's, with
//! `CLONE_PARENT`) calls [`after_clone_in_child`] first thing in the child:
//! it runs the `child` handlers of the hooks that have no `prepare` handler
//! (the others rely on a step that did not happen).
//!
//! ```
//! use mp_os::fork::{self, Hooks, Rank};
//! use std::sync::atomic::{AtomicU32, Ordering};
//!
//! static FORKS_SEEN: AtomicU32 = AtomicU32::new(0);
//! fn in_child() {
//!     // A child starts with its own count.
//!     FORKS_SEEN.store(0, Ordering::Relaxed);
//! }
//! static HOOKS: Hooks = Hooks::new(Rank::Objects).child(in_child);
//!
//! fork::register(&HOOKS);
//! fork::register(&HOOKS); // once is enough; again does nothing
//! assert!(fork::registered(&HOOKS));
//! ```
//!
//! # A lock for what a forked child touches
//!
//! A `std::sync::Mutex` that another thread held at the moment of `fork`
//! stays locked in the child for ever. [`ForkSafeMutex`] is a short spin
//! lock for such statics that the child can take back
//! ([`ForkSafeMutex::reset_after_fork`]), and that a `prepare` handler can
//! hold across the fork so that the data is consistent on both sides
//! ([`ForkSafeGuard::keep_locked`], [`ForkSafeMutex::take_over`]).

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering::*};

/// When a set of hooks runs relative to the others (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Rank {
    /// The process's own identity: the cached thread and process ids of
    /// [`liveness`](crate::liveness), which every other child handler may
    /// use to register under the child's id. Runs first in the child.
    Identity,
    /// Objects that follow a fork (a channel's registrations, a queue's
    /// buffer, ...): after [`Rank::Identity`] in the child and the parent,
    /// before it in the prepare step.
    Objects,
}

const RANKS: [Rank; 2] = [Rank::Identity, Rank::Objects];

/// One crate's handlers around `fork` (see the module docs). Declared as a
/// `static` and passed to [`register`].
///
/// ```
/// use mp_os::fork::{Hooks, Rank};
///
/// fn before() {}
/// fn in_parent() {}
/// fn in_child() {}
/// static HOOKS: Hooks = Hooks::new(Rank::Objects)
///     .prepare(before)
///     .parent(in_parent)
///     .child(in_child);
/// # mp_os::fork::register(&HOOKS);
/// ```
pub struct Hooks {
    rank: Rank,
    prepare: Option<fn()>,
    parent: Option<fn()>,
    child: Option<fn()>,
    /// Set once the hooks are in the table (a fast check for `register`).
    registered: AtomicBool,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("rank", &self.rank)
            .field("prepare", &self.prepare.is_some())
            .field("parent", &self.parent.is_some())
            .field("child", &self.child.is_some())
            .finish()
    }
}

impl Hooks {
    /// A set of hooks of rank `rank` with no handler yet.
    pub const fn new(rank: Rank) -> Hooks {
        Hooks {
            rank,
            prepare: None,
            parent: None,
            child: None,
            registered: AtomicBool::new(false),
        }
    }

    /// Runs `f` in the parent just before each fork.
    pub const fn prepare(mut self, f: fn()) -> Hooks {
        self.prepare = Some(f);
        self
    }

    /// Runs `f` in the parent just after each fork.
    pub const fn parent(mut self, f: fn()) -> Hooks {
        self.parent = Some(f);
        self
    }

    /// Runs `f` in the child just after each fork, before the code that
    /// called `fork` goes on.
    pub const fn child(mut self, f: fn()) -> Hooks {
        self.child = Some(f);
        self
    }
}

/// Most sets of hooks (every crate registers at most one or two).
const MAX_HOOKS: usize = 16;

/// The registered hooks, in the order of registration. A fixed array of
/// atomics, not a lock: registering never blocks, not even inside a fork
/// handler or in a child whose parent was registering at the fork.
static TABLE: [AtomicPtr<Hooks>; MAX_HOOKS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; MAX_HOOKS];

/// The slots whose `prepare` step ran for the fork under way (bit i: slot
/// i); written by the prepare handler, read after the fork on both sides.
static PREPARED: AtomicU64 = AtomicU64::new(0);
const _: () = assert!(MAX_HOOKS <= 64);

/// Registers `hooks` (see the module docs); registering the same value
/// again does nothing. Once this returns, every later fork runs them.
///
/// Never blocks, so a fork handler may call it.
///
/// ```
/// use mp_os::fork::{self, Hooks, Rank};
///
/// fn in_child() {}
/// static HOOKS: Hooks = Hooks::new(Rank::Objects).child(in_child);
/// fork::register(&HOOKS);
/// ```
///
/// # Panics
///
/// When more than 16 different sets of hooks are registered.
pub fn register(hooks: &'static Hooks) {
    if hooks.registered.load(Acquire) {
        return;
    }
    install();
    let p = ptr::from_ref(hooks).cast_mut();
    for slot in &TABLE {
        // Two threads registering the same hooks at once may both take a
        // slot: the handlers skip the later one.
        match slot.compare_exchange(ptr::null_mut(), p, AcqRel, Acquire) {
            Ok(_) => break,
            Err(cur) if cur == p => break,
            Err(_) => {}
        }
    }
    assert!(
        TABLE.iter().any(|s| s.load(Acquire) == p),
        "mp_os::fork: more than {MAX_HOOKS} sets of fork hooks"
    );
    hooks.registered.store(true, Release);
}

/// Whether `hooks` were registered in this process (or in the parent it
/// was forked from).
pub fn registered(hooks: &'static Hooks) -> bool {
    hooks.registered.load(Acquire)
}

/// In a child made without `fork(3)` (a raw `clone`, which runs no
/// `pthread_atfork` handler): runs the `child` handlers of the registered
/// hooks that have no `prepare` handler, in the usual order. Call it first
/// thing in the child.
///
/// ```no_run
/// // In the child of a raw clone(CLONE_PARENT):
/// mp_os::fork::after_clone_in_child();
/// ```
pub fn after_clone_in_child() {
    for_each(false, |h, _| {
        if h.prepare.is_none()
            && let Some(f) = h.child
        {
            f();
        }
    });
}

/// Installs the `pthread_atfork` handlers before `main`, while the
/// process has one thread: no fork can then overtake the installation
/// (a forked child would otherwise inherit it half done). `register` does
/// it too, for a program whose linker dropped this entry.
#[used]
#[unsafe(link_section = ".init_array")]
static INSTALL_AT_LOAD: extern "C" fn(i32, *const *const u8, *const *const u8) = install_at_load;

extern "C" fn install_at_load(_argc: i32, _argv: *const *const u8, _envp: *const *const u8) {
    install();
}

/// Set by the first `install`.
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Installs the `pthread_atfork` handlers (once per process; a forked
/// child inherits them). Never waits, unlike a `Once`: a child forked
/// while another thread of its parent was installing would wait for ever.
/// (Without the load-time entry, a thread that registers at the very
/// moment another one installs may fork before the installation is done.)
fn install() {
    if INSTALLED.load(Acquire) || INSTALLED.swap(true, AcqRel) {
        return;
    }
    // SAFETY: registering plain `extern "C"` functions that never unwind
    // (a panicking hook aborts, see the module docs); they only read the
    // table and call the hooks.
    let r = unsafe { libc::pthread_atfork(Some(on_prepare), Some(on_parent), Some(on_child)) };
    assert_eq!(r, 0, "pthread_atfork failed");
}

/// Calls `f` with each registered set of hooks and its slot, by rank, in
/// the order of registration (`reverse`: the other way round), skipping a
/// set registered twice.
fn for_each(reverse: bool, mut f: impl FnMut(&Hooks, usize)) {
    let slots: [*mut Hooks; MAX_HOOKS] = std::array::from_fn(|i| TABLE[i].load(Acquire));
    let mut visit = |rank: Rank, i: usize| {
        let p = slots[i];
        if p.is_null() || slots[..i].contains(&p) {
            return;
        }
        // SAFETY: only `register` stores non-null pointers, each from a
        // `&'static Hooks`.
        let h = unsafe { &*p };
        if h.rank == rank {
            f(h, i);
        }
    };
    if reverse {
        for rank in RANKS.into_iter().rev() {
            (0..MAX_HOOKS).rev().for_each(|i| visit(rank, i));
        }
    } else {
        for rank in RANKS {
            (0..MAX_HOOKS).for_each(|i| visit(rank, i));
        }
    }
}

/// Whether the parent or child handler of the hooks in `slot` runs after
/// this fork: their prepare step ran, or they have none.
fn prepared(h: &Hooks, slot: usize) -> bool {
    h.prepare.is_none() || PREPARED.load(Relaxed) & (1 << slot) != 0
}

extern "C" fn on_prepare() {
    let mut seen = 0u64;
    for_each(true, |h, i| {
        seen |= 1 << i;
        if let Some(f) = h.prepare {
            f();
        }
    });
    PREPARED.store(seen, Relaxed);
}

extern "C" fn on_parent() {
    for_each(false, |h, i| {
        if prepared(h, i)
            && let Some(f) = h.parent
        {
            f();
        }
    });
}

extern "C" fn on_child() {
    for_each(false, |h, i| {
        if prepared(h, i)
            && let Some(f) = h.child
        {
            f();
        }
    });
}

// ------------------------------------------------------------------ lock

/// A mutex that a forked child can take back: a short spin lock (waiters
/// spin, then yield) for data that a child touches after `fork`.
///
/// A thread of the parent that held the lock at the fork does not exist in
/// the child, so the child releases the lock itself before it uses it
/// ([`ForkSafeMutex::reset_after_fork`]) and replaces the data, which that
/// thread may have left half-updated. A `prepare` fork handler that needs
/// the data consistent on both sides instead takes the lock, keeps it
/// across the fork ([`ForkSafeGuard::keep_locked`]) and takes it back in
/// the parent and child handlers ([`ForkSafeMutex::take_over`]).
///
/// ```
/// use mp_os::fork::ForkSafeMutex;
///
/// static CHILDREN: ForkSafeMutex<Vec<u32>> = ForkSafeMutex::new(Vec::new());
/// CHILDREN.lock().push(7);
/// assert_eq!(*CHILDREN.lock(), [7]);
/// ```
pub struct ForkSafeMutex<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `locked`, as in a mutex.
unsafe impl<T: Send> Sync for ForkSafeMutex<T> {}

impl<T> fmt::Debug for ForkSafeMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForkSafeMutex")
            .field("locked", &self.locked.load(Relaxed))
            .finish_non_exhaustive()
    }
}

/// Polls of the lock word before a waiter yields its time slice.
const SPINS: u32 = 100;

impl<T> ForkSafeMutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        ForkSafeMutex {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning and then yielding while another thread
    /// holds it. Not reentrant: a thread that takes it twice waits for
    /// ever.
    pub fn lock(&self) -> ForkSafeGuard<'_, T> {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            // A holder preempted inside: give it the CPU rather than spin
            // out this time slice.
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        ForkSafeGuard { m: self }
    }

    /// Whether some thread holds the lock now (a hint: it may change at
    /// once).
    pub fn is_locked(&self) -> bool {
        self.locked.load(Relaxed)
    }

    /// In a child right after `fork`: the thread that held the lock does
    /// not exist here, so release it.
    ///
    /// # Safety
    ///
    /// * only in a forked child, before any other use of the lock there
    ///   (the child has a single thread, so no guard can be alive);
    /// * only for data that stays usable if its holder stopped mid-way
    ///   (the callers replace the data right after).
    pub unsafe fn reset_after_fork(&self) {
        self.locked.store(false, Release);
    }

    /// The guard of a lock that a guard nobody will drop any more holds:
    /// one that this fork's `prepare` handler kept with
    /// [`ForkSafeGuard::keep_locked`]. Dropping the new guard releases the
    /// lock.
    ///
    /// # Safety
    ///
    /// * the lock is held by such a kept guard, and
    /// * this is the only guard made from it: in the `parent` or `child`
    ///   handler of the fork whose `prepare` handler kept it, once.
    pub unsafe fn take_over(&self) -> ForkSafeGuard<'_, T> {
        debug_assert!(self.is_locked());
        ForkSafeGuard { m: self }
    }
}

/// Access to the data of a [`ForkSafeMutex`]; dropping it releases the
/// lock.
pub struct ForkSafeGuard<'a, T> {
    m: &'a ForkSafeMutex<T>,
}

impl<T> fmt::Debug for ForkSafeGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForkSafeGuard").finish_non_exhaustive()
    }
}

impl<T> ForkSafeGuard<'_, T> {
    /// Keeps the lock held after this guard is gone: a `prepare` fork
    /// handler holds it across the fork, and the `parent` and `child`
    /// handlers take it back with [`ForkSafeMutex::take_over`].
    pub fn keep_locked(self) {
        std::mem::forget(self);
    }
}

impl<T> Deref for ForkSafeGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.m.value.get() }
    }
}

impl<T> DerefMut for ForkSafeGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock exclusively.
        unsafe { &mut *self.m.value.get() }
    }
}

impl<T> Drop for ForkSafeGuard<'_, T> {
    fn drop(&mut self) {
        self.m.locked.store(false, Release);
    }
}
