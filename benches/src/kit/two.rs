//! Two processes sharing an anonymous `MAP_SHARED` mapping, pinned to two CPUs when possible,
//! started on a barrier.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Write as _};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::sys;

/// Size of the control page at the start of every [`Shm`]: 32 slots of 128 bytes.
const CONTROL: usize = 4096;
/// Distance between two words: two cache lines, so the adjacent-line prefetcher does not pair
/// them.
const SLOT: usize = 128;
/// Slots reserved for the start barrier (one per side).
const BARRIER_SLOTS: usize = 2;

/// An anonymous shared mapping (`MAP_SHARED | MAP_ANONYMOUS`), inherited across `fork`.
///
/// The first page holds [`Shm::word`] slots, one per 128 bytes; the rest is [`Shm::data`].
#[derive(Debug)]
pub(crate) struct Shm {
    ptr: NonNull<u8>,
    len: usize,
}

impl Shm {
    /// A zeroed mapping with `data_len` bytes of data after the control page.
    ///
    /// # Errors
    ///
    /// The `mmap` error.
    pub(crate) fn new(data_len: usize) -> io::Result<Self> {
        let len = CONTROL + data_len.next_multiple_of(CONTROL);
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Self { ptr, len })
    }

    /// The `i`-th 32-bit word of the control page (each on its own 128-byte slot; the low half
    /// of [`Shm::word64`]`(i)`).
    ///
    /// # Panics
    ///
    /// If `i` is 30 or more.
    pub(crate) fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the slot is in the mapping, 128-byte aligned, zero-initialised, and only ever
        // accessed atomically; the mapping lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.slot(i + BARRIER_SLOTS).cast()) }
    }

    /// The `i`-th 64-bit word of the control page (same slot as [`Shm::word`]`(i)`).
    ///
    /// # Panics
    ///
    /// If `i` is 30 or more.
    pub(crate) fn word64(&self, i: usize) -> &AtomicU64 {
        // SAFETY: as in `word`; the slot is 8-byte aligned.
        unsafe { AtomicU64::from_ptr(self.slot(i + BARRIER_SLOTS).cast()) }
    }

    /// Start and length of the data area after the control page.
    pub(crate) fn data(&self) -> (*mut u8, usize) {
        // SAFETY: CONTROL <= len, so the result is inside (or one past) the mapping.
        (
            unsafe { self.ptr.as_ptr().add(CONTROL) },
            self.len - CONTROL,
        )
    }

    fn slot(&self, i: usize) -> *mut u8 {
        assert!(i < CONTROL / SLOT, "word index out of range");
        // SAFETY: i * SLOT < CONTROL <= len.
        unsafe { self.ptr.as_ptr().add(i * SLOT) }
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are the mapping made in `new`; nothing borrows it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// Which CPUs the two processes ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pinning {
    /// Parent on the first CPU, child on the second.
    Pinned(usize, usize),
    /// Fewer than two CPUs allowed, or `sched_setaffinity` failed.
    Unpinned,
}

impl fmt::Display for Pinning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pinning::Pinned(a, b) => write!(f, "pinned to CPUs {a} and {b}"),
            Pinning::Unpinned => f.write_str("not pinned"),
        }
    }
}

/// One of the two processes in [`two_processes`].
#[derive(Debug)]
pub(crate) struct Side<'a> {
    parent: bool,
    shm: &'a Shm,
    round: Cell<u32>,
}

impl Side<'_> {
    /// True in the parent, which measures and returns the result.
    pub(crate) fn is_parent(&self) -> bool {
        self.parent
    }

    /// The shared mapping.
    pub(crate) fn shm(&self) -> &Shm {
        self.shm
    }

    /// Waits until the other side reaches its matching `barrier()` call (busy-spin, yielding
    /// after a while).
    ///
    /// # Panics
    ///
    /// If the other side does not arrive within 30 seconds.
    pub(crate) fn barrier(&self) {
        let round = self.round.get() + 1;
        self.round.set(round);
        let (mine, theirs) = if self.parent { (0, 1) } else { (1, 0) };
        // SAFETY: as in `Shm::word`: barrier slots are in the control page, used atomically.
        let (mine, theirs) = unsafe {
            (
                AtomicU32::from_ptr(self.shm.slot(mine).cast()),
                AtomicU32::from_ptr(self.shm.slot(theirs).cast()),
            )
        };
        mine.store(round, Ordering::Release);
        let start = Instant::now();
        let mut spins = 0u32;
        while theirs.load(Ordering::Acquire) < round {
            spins += 1;
            if spins < 1000 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "barrier: peer did not arrive"
                );
            }
        }
    }
}

/// Forks a child that shares a fresh [`Shm`] (with `data_len` data bytes), pins parent and child
/// to two different CPUs when possible, meets it on a start barrier, and runs `f` on both sides.
/// Returns the parent's result (the child's is dropped) and how the processes were pinned. The
/// parent's CPU affinity is restored afterwards.
///
/// Call it before any thread is started (it refuses in a multi-threaded process: the child
/// allocates). The child dies with the parent (`PR_SET_PDEATHSIG`) and is killed if it has not
/// exited 10 seconds after the parent's `f` returned.
///
/// # Errors
///
/// If the process has several threads, `mmap` or `fork` fails, or the child panicked, was
/// killed or hung.
pub(crate) fn two_processes<T>(
    data_len: usize,
    f: impl Fn(&Side<'_>) -> T,
) -> io::Result<(T, Pinning)> {
    let count = || {
        std::fs::read_dir("/proc/self/task")
            .map(Iterator::count)
            .unwrap_or(1)
    };
    // A queue's feeder thread from an earlier row leaves once idle (after a
    // fraction of a second): give it time.
    let mut threads = count();
    let patience = Instant::now();
    while threads > 1 && !cfg!(test) && patience.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
        threads = count();
    }
    // (The unit tests run in a threaded harness; glibc keeps malloc usable in their children.)
    if threads > 1 && !cfg!(test) {
        return Err(io::Error::other(
            "two_processes: the process has several threads",
        ));
    }
    let shm = Shm::new(data_len)?;
    let cpus = sys::allowed_cpus();
    let pair = (cpus.len() >= 2).then(|| (cpus[0], cpus[1]));
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    // SAFETY: getpid has no preconditions.
    let parent_pid = unsafe { libc::getpid() };
    // SAFETY: the process is single-threaded (checked above), so the child may run any code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: prctl/getppid have no memory-safety preconditions.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent_pid {
                libc::_exit(1);
            }
        }
        if let Some((_, b)) = pair {
            sys::set_affinity(&[b]);
        }
        let side = Side {
            parent: false,
            shm: &shm,
            round: Cell::new(0),
        };
        let ok = catch_unwind(AssertUnwindSafe(|| {
            side.barrier();
            drop(f(&side));
        }))
        .is_ok();
        let _ = io::stdout().flush();
        // SAFETY: leaving the forked child without running the parent's destructors.
        unsafe { libc::_exit(if ok { 0 } else { 101 }) };
    }
    let mut child = mp_testkit::Child::adopt(pid);
    let pinning = match pair {
        Some((a, b)) if sys::set_affinity(&[a]) => Pinning::Pinned(a, b),
        _ => Pinning::Unpinned,
    };
    let restore = Restore(cpus);
    let side = Side {
        parent: true,
        shm: &shm,
        round: Cell::new(0),
    };
    side.barrier();
    let out = f(&side);
    drop(restore);
    match child.try_wait(Duration::from_secs(10)) {
        Some(0) => Ok((out, pinning)),
        Some(code) => Err(io::Error::other(format!(
            "two_processes: child ended with code {code}"
        ))),
        // Killed and reaped when `child` drops.
        None => Err(io::Error::other("two_processes: child hung; killed")),
    }
}

/// Restores the process's CPU affinity on drop (also on panic).
struct Restore(Vec<usize>);

impl Drop for Restore {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            sys::set_affinity(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_shared_across_fork() {
        let (seen, _) = two_processes(0, |side| {
            if side.is_parent() {
                side.barrier();
                side.shm().word64(0).load(Ordering::Acquire)
            } else {
                side.shm().word64(0).store(42, Ordering::Release);
                side.barrier();
                0
            }
        })
        .unwrap();
        assert_eq!(seen, 42);
    }

    #[test]
    fn child_panic_is_an_error() {
        let r = two_processes(0, |side| assert!(side.is_parent(), "child fails"));
        assert!(r.is_err());
    }
}
