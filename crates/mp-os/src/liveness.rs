//! Telling a dead thread or process from a slow one.
//!
//! Lock words record the kernel thread id of their holder. A waiter that has
//! slept for a while asks [`thread_alive`] whether that holder still exists;
//! a zombie (killed but not yet reaped) counts as dead, so a parent that
//! kills a child holding a lock does not wait for its own `waitpid`.
//!
//! ```
//! let me = mp_os::liveness::current_tid();
//! assert!(mp_os::liveness::thread_alive(me));
//! assert!(!mp_os::liveness::thread_alive(0));
//! ```

use std::cell::Cell;
use std::io::Read;

thread_local! {
    static TID: Cell<u32> = const { Cell::new(0) };
}

/// The calling thread's kernel thread id (cached per thread).
///
/// The cache is reset in a forked child by the code that forks (see
/// [`forget_cached_ids`]): a child's first thread has a new id.
#[inline]
pub fn current_tid() -> u32 {
    TID.with(|c| {
        let v = c.get();
        if v != 0 {
            return v;
        }
        let t = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        c.set(t);
        t
    })
}

/// Forgets the cached thread id; call in a child right after `fork`.
pub fn forget_cached_ids() {
    TID.with(|c| c.set(0));
}

/// Whether the thread (or process) with kernel id `tid` exists and is not a
/// zombie.
///
/// Thread ids are reused only after the pid space (`pid_max`, 4M on 64-bit
/// systems) wraps around, so a dead holder is not mistaken for a live one in
/// practice.
pub fn thread_alive(tid: u32) -> bool {
    if tid == 0 {
        return false;
    }
    let path = format!("/proc/{tid}/stat");
    let mut buf = [0u8; 512];
    let n = match std::fs::File::open(&path).and_then(|mut f| f.read(&mut buf)) {
        Ok(n) => n,
        Err(e) => return e.kind() != std::io::ErrorKind::NotFound,
    };
    // Format: "pid (comm) S ..." where comm may contain ')' and spaces.
    let text = &buf[..n];
    match text.iter().rposition(|&b| b == b')') {
        Some(i) if i + 2 < n => !matches!(text[i + 2], b'Z' | b'X' | b'x'),
        _ => true,
    }
}
