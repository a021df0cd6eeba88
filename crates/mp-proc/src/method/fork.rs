//! The fork start method.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Once;

use crate::children::Started;
use crate::error::Error;
use crate::sys::pidfd_open;

/// Forks; the child runs `run` with its end of the bootstrap socket
/// (`run` is expected to exit; if it returns, the child exits).
pub(crate) fn start(run: impl FnOnce(UnixStream)) -> Result<Started, Error> {
    warn_if_threaded();
    let (parent_sock, child_sock) = UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;
    // Flush so that buffered output is not written twice (once by each
    // copy of the buffer).
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // Raw libc: rustix's only fork (in its experimental `runtime` feature)
    // skips the C library's atfork handlers and pid bookkeeping.
    // SAFETY: fork has no memory-safety preconditions of its own; what the
    // child may do afterwards is the caller's contract (`enable_fork` /
    // `Process::from_closure` are unsafe for that reason). The child never
    // returns from this function.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::os("fork", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        drop(parent_sock);
        after_fork_in_child();
        run(child_sock);
        crate::child::exit_now(70);
    }
    drop(child_sock);
    let pidfd = pidfd_open(pid)?;
    Ok(Started {
        pid,
        pidfd,
        sock: parent_sock,
        skip_frames: 0,
    })
}

/// State a child must not inherit from its parent (beyond what the
/// `mp_os::fork` hooks already reset inside `fork`: the cached ids).
pub(crate) fn after_fork_in_child() {
    crate::child::mark_forked();
    crate::info::reset_after_fork();
    crate::children::forget_children_after_fork();
    crate::method::forkserver::forget_after_fork();
    unblock_signals();
}

pub(crate) fn unblock_signals() {
    // Raw libc: rustix has pthread_sigmask only in its experimental
    // `runtime` feature.
    // SAFETY: an empty set is a valid mask; the pointers are valid.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| d.count())
        .unwrap_or(1)
}

fn warn_if_threaded() {
    static WARNED: Once = Once::new();
    if thread_count() > 1 {
        WARNED.call_once(|| {
            eprintln!(
                "warning: mp_proc is forking a process that has other threads; the child holds only \
                 the calling thread (locks held by the others stay locked there). Prefer the \
                 forkserver or spawn start method."
            );
        });
    }
}
