//! What every child leaves the same way, whatever runs in it: without the
//! parent's `atexit` handlers, and with a panic turned into its message.

use std::io::Write;

/// The text of a panic payload (a `&str` or a `String`).
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// Set in a child made by `fork(2)` of a possibly multi-threaded parent.
static FORKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this process as a fork child (see [`exit_now`]).
pub(crate) fn mark_forked() {
    FORKED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Flushes Rust's stdio buffers and leaves without running `atexit`
/// handlers or destructors (they belong to the parent's copy of the
/// program state after a fork).
///
/// In a fork child, another thread of the parent may have held the stdout
/// lock at the moment of the fork, and then it stays locked here forever:
/// the flush runs on a helper thread and is given up after a second rather
/// than hanging the child.
pub(crate) fn exit_now(code: i32) -> ! {
    let flush = || {
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
    };
    if FORKED.load(std::sync::atomic::Ordering::Relaxed) {
        let (tx, rx) = std::sync::mpsc::channel();
        if std::thread::Builder::new()
            .spawn(move || {
                flush();
                let _ = tx.send(());
            })
            .is_ok()
        {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(1));
        }
    } else {
        flush();
    }
    // Raw libc: rustix has `_exit` only in its experimental `runtime`
    // feature.
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}
