//! Telling a dead thread or process from a slow one, even after its id
//! was given to somebody else.
//!
//! Shared layouts record who holds a lock, who is writing a record or which
//! processes hold a channel. A waiter that has slept for a while asks
//! whether that holder still exists; a zombie (killed but not yet reaped)
//! counts as dead, so a parent that kills a child holding a lock does not
//! wait for its own `waitpid`.
//!
//! # Tokens
//!
//! A bare thread id is not enough: Linux hands out ids again once the pid
//! space wraps (`pid_max` is 32768 on many machines, and a test suite that
//! starts thousands of processes wraps it in minutes). A dead holder whose
//! id now belongs to a new thread would look alive forever. So shared
//! memory holds a *token* instead, one `u32`:
//!
//! ```text
//! bits  0..22  kernel thread id (Linux ids are below 2^22 = PID_MAX_LIMIT)
//! bits 22..31  stamp: 9 bits of a hash of the thread's start time
//!              (field 22 of /proc/TID/stat, clock ticks since boot)
//! bit  31      always 0: free for the user of the word (a flag bit)
//! ```
//!
//! [`token_alive`] says a token is alive only when a thread with that id
//! exists, is not a zombie, and started at a time with the same stamp. A
//! reused id is caught unless the new thread's start time hashes to the
//! same 9 bits (1 in 512), where a bare id was always fooled.
//!
//! # Without `/proc`
//!
//! The answers come from procfs. Where it is not mounted (some containers
//! and sandboxes) or cannot be read, a check answers "unknown", which
//! [`token_alive`] and [`thread_alive`] report as alive: a waiter keeps
//! waiting instead of breaking a lock that its holder may still hold. A
//! thread is declared dead only when procfs is there and has no entry for
//! it. (So without `/proc` the death of a holder goes unnoticed.)
//!
//! ```
//! use mp_os::liveness;
//!
//! let me = liveness::current_token();
//! assert_eq!(liveness::token_tid(me), liveness::current_tid());
//! assert!(liveness::token_alive(me));
//! // the same id with another start time: a thread that is gone
//! assert!(!liveness::token_alive(me ^ (1 << liveness::TID_BITS)));
//! assert!(!liveness::token_alive(0));
//! ```

use std::cell::Cell;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU32, Ordering};

/// Bits of a token that hold the thread id.
pub const TID_BITS: u32 = 22;
/// Mask of the thread id in a token.
pub const TID_MASK: u32 = (1 << TID_BITS) - 1;
/// Mask of every bit a token may use (bit 31 is always clear).
pub const TOKEN_MASK: u32 = 0x7FFF_FFFF;

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
    static TOKEN: Cell<u32> = const { Cell::new(0) };
}

static PROCESS_TOKEN: AtomicU32 = AtomicU32::new(0);
static PID: AtomicU32 = AtomicU32::new(0);

/// The calling process's id, cached (`getpid` is a system call); reset in
/// a forked child (see [`forget_cached_ids`]).
///
/// ```
/// assert_eq!(mp_os::liveness::current_pid(), std::process::id());
/// ```
#[inline]
pub fn current_pid() -> u32 {
    let v = PID.load(Ordering::Relaxed);
    if v != 0 {
        return v;
    }
    crate::fork::register(&FORGET_IN_CHILD);
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// The calling thread's kernel thread id (cached per thread).
///
/// The cache is reset in a forked child (see [`forget_cached_ids`]): a
/// child's first thread has a new id.
#[inline]
pub fn current_tid() -> u32 {
    TID.with(|c| {
        let v = c.get();
        if v != 0 {
            return v;
        }
        crate::fork::register(&FORGET_IN_CHILD);
        let t = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        c.set(t);
        t
    })
}

/// The calling thread's token (cached per thread): its id and the stamp of
/// its start time. This is what shared layouts record.
///
/// The first call in a thread reads `/proc/thread-self/stat`.
#[inline]
pub fn current_token() -> u32 {
    TOKEN.with(|c| {
        let v = c.get();
        if v != 0 {
            return v;
        }
        let tid = current_tid();
        let t = make_token(tid, read_stat(tid).and_then(|s| s.start));
        c.set(t);
        t
    })
}

/// The calling process's token: its pid and the stamp of its start time
/// (cached; reset by [`forget_cached_ids`]).
///
/// ```
/// let p = mp_os::liveness::process_token();
/// assert_eq!(mp_os::liveness::token_tid(p), std::process::id());
/// assert!(mp_os::liveness::token_alive(p));
/// ```
pub fn process_token() -> u32 {
    let v = PROCESS_TOKEN.load(Ordering::Relaxed);
    if v != 0 {
        return v;
    }
    crate::fork::register(&FORGET_IN_CHILD);
    let pid = std::process::id();
    let t = make_token(pid, read_stat(pid).and_then(|s| s.start));
    PROCESS_TOKEN.store(t, Ordering::Relaxed);
    t
}

/// The fork hook that resets the caches in a child: registered before a
/// cache is first filled, so a forked child never acts under its parent's
/// ids, whoever forked it.
static FORGET_IN_CHILD: crate::fork::Hooks =
    crate::fork::Hooks::new(crate::fork::Rank::Identity).child(forget_cached_ids);

/// Forgets the cached ids and tokens.
///
/// Nobody needs to call it: it runs in every child of `fork(3)` (a
/// [`fork`](crate::fork) hook, registered before a cache is first filled),
/// and in a child of a raw `clone` through
/// [`fork::after_clone_in_child`](crate::fork::after_clone_in_child).
/// Calling it again does no harm.
///
/// Async-signal-safe: it only writes thread-local cells and an atomic.
pub fn forget_cached_ids() {
    TID.with(|c| c.set(0));
    TOKEN.with(|c| c.set(0));
    PROCESS_TOKEN.store(0, Ordering::Relaxed);
    PID.store(0, Ordering::Relaxed);
}

/// The thread (or process) id inside a token.
#[inline]
pub const fn token_tid(token: u32) -> u32 {
    token & TID_MASK
}

/// The token of thread `tid` as it is now (`None` if there is no such
/// thread). Mostly for tests and tools; a thread records its own token
/// with [`current_token`].
///
/// ```
/// let me = mp_os::liveness::current_tid();
/// assert_eq!(mp_os::liveness::token_of(me), Some(mp_os::liveness::current_token()));
/// ```
pub fn token_of(tid: u32) -> Option<u32> {
    if tid == 0 || tid > TID_MASK {
        return None;
    }
    let s = read_stat(tid)?;
    Some(make_token(tid, s.start))
}

/// Whether the thread a token names still runs: a thread with its id
/// exists, is not a zombie, and its start time has the token's stamp.
///
/// When `/proc` cannot tell (it is not mounted, or cannot be read for
/// another reason than "no such thread"), the answer is "alive": a waiter
/// then waits rather than breaking a lock that may still be held. A thread
/// is only declared dead when procfs itself is there and has no entry for
/// it.
pub fn token_alive(token: u32) -> bool {
    token_alive_in(PROC, token)
}

fn token_alive_in(root: &str, token: u32) -> bool {
    let tid = token_tid(token);
    if tid == 0 {
        return false;
    }
    match stat_in(root, tid) {
        Stat::Gone => false,
        Stat::Unknown => true,
        Stat::Found(s) => !s.zombie && s.start.is_none_or(|st| stamp(st) == token_stamp(token)),
    }
}

/// Whether the thread (or process) with kernel id `tid` exists and is not a
/// zombie.
///
/// This cannot tell a reused id from the original thread; shared layouts
/// record a token and ask [`token_alive`]. As there, "cannot tell" (no
/// `/proc`) counts as alive.
pub fn thread_alive(tid: u32) -> bool {
    thread_alive_in(PROC, tid)
}

fn thread_alive_in(root: &str, tid: u32) -> bool {
    if tid == 0 {
        return false;
    }
    match stat_in(root, tid) {
        Stat::Gone => false,
        Stat::Unknown => true,
        Stat::Found(s) => !s.zombie,
    }
}

#[inline]
fn token_stamp(token: u32) -> u32 {
    (token & TOKEN_MASK) >> TID_BITS
}

/// Nine bits of a hash of a start time (clock ticks since boot).
fn stamp(start: u64) -> u32 {
    // Fibonacci hashing: neighbouring tick counts land far apart.
    (start.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55) as u32
}

fn make_token(tid: u32, start: Option<u64>) -> u32 {
    debug_assert!(tid <= TID_MASK, "thread id {tid} does not fit a token");
    (tid & TID_MASK) | (start.map_or(0, stamp) << TID_BITS)
}

struct StatFields {
    zombie: bool,
    start: Option<u64>,
}

enum Stat {
    /// procfs is mounted and has no such thread.
    Gone,
    /// `/proc` could not tell (not mounted, not readable, unparsable).
    Unknown,
    Found(StatFields),
}

/// Where procfs is mounted (tests of this module use another root).
const PROC: &str = "/proc";

fn read_stat(tid: u32) -> Option<StatFields> {
    match stat(tid) {
        Stat::Found(s) => Some(s),
        _ => None,
    }
}

fn stat(tid: u32) -> Stat {
    stat_in(PROC, tid)
}

/// Reads `ROOT/TID/stat`. It does not allocate (the path is formatted on
/// the stack), so a forked child may call it before it execs or exits.
///
/// "No such file" means a dead thread only if `root` is procfs: without
/// `/proc` mounted every path is missing, and every holder would look
/// dead.
fn stat_in(root: &str, tid: u32) -> Stat {
    let mut path = [0u8; 128];
    let len = {
        let mut w = &mut path[..];
        if write!(w, "{root}/{tid}/stat").is_err() {
            return Stat::Unknown;
        }
        128 - w.len()
    };
    let Ok(path) = std::str::from_utf8(&path[..len]) else {
        return Stat::Unknown;
    };
    let mut buf = [0u8; 1024];
    let n = match std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => n,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.raw_os_error() == Some(libc::ESRCH) =>
        {
            return if is_procfs(root) {
                Stat::Gone
            } else {
                Stat::Unknown
            };
        }
        Err(_) => return Stat::Unknown,
    };
    parse_stat(&buf[..n]).map_or(Stat::Unknown, Stat::Found)
}

/// Whether procfs is mounted at `root` (asked only on the rare "no such
/// thread" path).
fn is_procfs(root: &str) -> bool {
    rustix::fs::statfs(root).is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC)
}

/// Parses "pid (comm) S f4 f5 ... f22 ..." where comm may hold ')' and
/// spaces: the fields after the last ')' start with the state (field 3);
/// the start time is field 22.
fn parse_stat(text: &[u8]) -> Option<StatFields> {
    let close = text.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    let zombie = matches!(state.as_bytes().first(), Some(b'Z' | b'X' | b'x'));
    let start = fields.nth(18).and_then(|f| f.parse::<u64>().ok());
    Some(StatFields { zombie, start })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_strange_name() {
        let line = b"1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345 67 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert!(!s.zombie);
        assert_eq!(s.start, Some(987654));
        let z = parse_stat(b"7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0").unwrap();
        assert!(z.zombie);
        assert_eq!(z.start, Some(55));
        assert!(parse_stat(b"garbage").is_none());
    }

    #[test]
    fn own_tokens_are_alive_and_forged_ones_are_not() {
        let me = current_token();
        assert_eq!(token_tid(me), current_tid());
        assert_eq!(me & !TOKEN_MASK, 0);
        assert!(token_alive(me));
        assert_eq!(token_of(current_tid()), Some(me));
        // every other stamp on a live id: a thread that reused the id
        for s in 0..512u32 {
            let t = token_tid(me) | (s << TID_BITS);
            assert_eq!(token_alive(t), t == me, "stamp {s}");
        }
        let p = process_token();
        assert!(token_alive(p));
        assert_eq!(token_tid(p), std::process::id());
    }

    #[test]
    fn a_new_thread_has_its_own_token() {
        let me = current_token();
        let other = std::thread::spawn(current_token).join().unwrap();
        assert_ne!(token_tid(other), token_tid(me));
        // the thread has exited: its token is dead
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while token_alive(other) {
            assert!(
                std::time::Instant::now() < deadline,
                "exited thread still alive"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn without_procfs_nothing_is_declared_dead() {
        // A root that is not procfs: a directory with one fake entry.
        struct Dir(std::path::PathBuf);
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let dir = Dir(std::env::temp_dir().join(format!("mp-os-fake-proc-{}", std::process::id())));
        let root = &dir.0;
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root.join("77")).unwrap();
        std::fs::write(
            root.join("77/stat"),
            "77 (x) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0",
        )
        .unwrap();
        let r = root.to_str().unwrap();
        // The entry that exists is read from the injected root...
        assert!(matches!(stat_in(r, 77), Stat::Found(s) if s.start == Some(55)));
        assert!(thread_alive_in(r, 77));
        assert!(token_alive_in(r, make_token(77, Some(55))));
        assert!(!token_alive_in(
            r,
            make_token(77, Some(55)) ^ (1 << TID_BITS)
        ));
        // ... and a missing one is "unknown" (alive), not dead.
        assert!(matches!(stat_in(r, 78), Stat::Unknown));
        assert!(thread_alive_in(r, 78));
        assert!(token_alive_in(r, make_token(78, Some(1))));
        // No such directory at all: unknown as well.
        let none = root.join("absent");
        assert!(matches!(stat_in(none.to_str().unwrap(), 1), Stat::Unknown));
        drop(dir);
        // The real procfs still declares a gone thread dead.
        let gone = std::thread::spawn(current_tid).join().unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !matches!(stat_in(PROC, gone), Stat::Gone) {
            assert!(
                std::time::Instant::now() < deadline,
                "exited thread still there"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!thread_alive(gone));
    }

    /// With `/proc` unmounted (in a private mount namespace, where the
    /// system allows one), a live process is not declared dead.
    #[test]
    fn unmounted_proc_is_not_death() {
        let parent = std::process::id();
        let token = process_token();
        // SAFETY: the child only makes syscalls and reads files (no
        // allocation: `stat_in` formats on the stack) before `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: plain syscalls in the child; it leaves with _exit.
            let code = unsafe {
                let proc_path = c"/proc";
                if libc::unshare(libc::CLONE_NEWNS) != 0
                    || libc::mount(
                        std::ptr::null(),
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) != 0
                    || libc::umount2(proc_path.as_ptr(), libc::MNT_DETACH) != 0
                {
                    2 // not permitted here: skipped
                } else if libc::access(c"/proc/self/stat".as_ptr(), libc::F_OK) == 0 {
                    3 // /proc is still mounted (stacked mounts): skipped
                } else if thread_alive(parent) && token_alive(token) {
                    0
                } else {
                    1
                }
            };
            // SAFETY: leaving the forked child without running the harness.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: reaping our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status));
        match libc::WEXITSTATUS(status) {
            0 => {}
            1 => panic!("without /proc, a live process was declared dead"),
            c => eprintln!("skipped: cannot unmount /proc in a private namespace here ({c})"),
        }
    }

    #[test]
    fn stamps_spread() {
        let mut seen = std::collections::HashSet::new();
        for t in 0..2048u64 {
            seen.insert(stamp(t));
        }
        assert_eq!(seen.len(), 512);
        assert!((0..100).all(|t| stamp(t) < 512));
    }
}
