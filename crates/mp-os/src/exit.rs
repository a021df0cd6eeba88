//! Work to finish before the process exits: the hooks that Python's
//! `multiprocessing` runs from `util._exit_function` (a queue's feeder
//! thread flushing what a process put).
//!
//! ```
//! fn flush() {}
//! mp_os::exit::at_exit(flush);
//! mp_os::exit::run(); // what a child does before it leaves
//! ```
//!
//! A hook is a plain `fn()`, registered once however often `at_exit` is
//! called with it. The first registration also installs a `libc::atexit`
//! handler, so the hooks run when the program ends normally (`exit`, a
//! return from `main`). Code that leaves with `_exit` instead (a child
//! started by `mp-proc`, which must not run the atexit handlers it
//! inherited from its parent) calls [`run`] itself first.
//!
//! The table is a fixed array of atomics, not a lock: a `fork` can never
//! leave it locked in the child.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Most hooks (every crate registers at most one or two).
const MAX_HOOKS: usize = 16;

static HOOKS: [AtomicUsize; MAX_HOOKS] = [const { AtomicUsize::new(0) }; MAX_HOOKS];

/// Registers `hook` to run before the process exits (see the module docs).
/// Registering the same function again does nothing.
///
/// # Panics
///
/// When more than 16 different hooks are registered.
pub fn at_exit(hook: fn()) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: registering a plain extern "C" fn that does not unwind
        // (it catches panics of the hooks).
        unsafe { libc::atexit(run_at_exit) };
    });
    let p = hook as usize;
    for slot in &HOOKS {
        match slot.compare_exchange(0, p, SeqCst, SeqCst) {
            Ok(_) => return,
            Err(cur) if cur == p => return,
            Err(_) => {}
        }
    }
    panic!("mp_os::exit: more than {MAX_HOOKS} exit hooks");
}

/// Runs every registered hook, in the order registered. Safe to call more
/// than once (the hooks must tolerate it); a hook that panics is skipped.
pub fn run() {
    for slot in &HOOKS {
        let p = slot.load(SeqCst);
        if p == 0 {
            break;
        }
        // SAFETY: only `at_exit` stores non-zero values, each a `fn()`.
        let hook: fn() = unsafe { std::mem::transmute::<usize, fn()>(p) };
        let _ = std::panic::catch_unwind(hook);
    }
}

extern "C" fn run_at_exit() {
    run();
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    static RUNS: AtomicU32 = AtomicU32::new(0);
    /// `boom` panics only inside the test (the hooks run again at exit).
    static ARMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    fn count() {
        RUNS.fetch_add(1, SeqCst);
    }

    fn boom() {
        assert!(!ARMED.load(SeqCst), "a hook that panics");
    }

    #[test]
    fn hooks_run_once_each_and_a_panic_skips_only_its_hook() {
        at_exit(boom);
        at_exit(count);
        at_exit(count);
        let before = RUNS.load(SeqCst);
        ARMED.store(true, SeqCst);
        run();
        ARMED.store(false, SeqCst);
        assert_eq!(RUNS.load(SeqCst), before + 1);
    }
}
