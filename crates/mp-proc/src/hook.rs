//! The child entry hook: how a new process finds out that it is a child and
//! runs its target instead of `main`.
//!
//! A function placed in the executable's `.init_array` runs before `main`
//! in every program that links this crate: in examples, in `cargo test`
//! and `cargo nextest` binaries alike, with no custom harness. It looks for
//! one of two environment variables that only this crate sets:
//!
//! * `MP_PROC_BOOT_FD`: this process was started by the **spawn** method;
//!   the variable names the inherited socket on which the parent sends the
//!   [`Bootstrap`](crate::wire::Bootstrap). The hook runs the target and
//!   exits; `main` never runs.
//! * `MP_PROC_FORKSERVER_FD`: this process is the **fork server**; the hook
//!   serves fork requests until the parent goes away, then exits.
//!
//! Both variables are removed before anything else runs, so a child's own
//! children start clean, and every descriptor above stderr but the socket
//! is closed: the parent may hold descriptors without close-on-exec, and
//! Python's spawn does not let a child inherit them either. If the hook
//! did not run (a platform or linker that drops `.init_array` entries),
//! [`init`] does the same work when called as the first line of `main`,
//! and `start()` refuses with a clear error rather than letting a
//! re-executed child run `main` again (a fork bomb).

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::Error;
use crate::wire::{BOOT_FD_VAR, FORKSERVER_FD_VAR};

/// Set by the hook (or [`init`]) in every process that ran it.
static HOOK_RAN: AtomicBool = AtomicBool::new(false);
/// Set when this process was started by spawn but the hook did not run.
static UNHOOKED_CHILD: AtomicBool = AtomicBool::new(false);

extern "C" fn entry_hook(_argc: i32, _argv: *const *const u8, _envp: *const *const u8) {
    run_entry();
}

#[used]
#[unsafe(link_section = ".init_array")]
static ENTRY_HOOK: extern "C" fn(i32, *const *const u8, *const *const u8) = entry_hook;

fn take_fd_var(name: &str) -> Option<i32> {
    let value = std::env::var_os(name)?;
    // SAFETY: called from the entry hook before `main` (no other thread
    // exists yet) or from `init()`, documented to be the first line of
    // `main`, before the program starts threads.
    unsafe { std::env::remove_var(name) };
    value.to_str()?.parse().ok()
}

fn run_entry() {
    if HOOK_RAN.swap(true, Ordering::SeqCst) {
        return;
    }
    if let Some(fd) = take_fd_var(FORKSERVER_FD_VAR) {
        close_inherited_fds(fd);
        // SAFETY: the parent passed this descriptor for us alone.
        let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
        crate::method::forkserver::serve(sock);
    }
    if let Some(fd) = take_fd_var(BOOT_FD_VAR) {
        close_inherited_fds(fd);
        // SAFETY: as above.
        let sock = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
        crate::run::run_spawned(sock);
    }
}

/// Closes every descriptor above stderr but `keep`, as Python's spawn does:
/// a spawned child or the fork server (and so every child it forks) holds
/// no descriptor that its parent happened to leave open without
/// close-on-exec. Runs before `main`, while this is the only thread.
fn close_inherited_fds(keep: i32) {
    let Ok(keep) = u32::try_from(keep) else {
        return;
    };
    let mut ranges = Vec::with_capacity(2);
    if keep > 3 {
        ranges.push((3, keep - 1));
    }
    ranges.push((keep.max(2) + 1, u32::MAX));
    let mut unsupported = false;
    for &(first, last) in &ranges {
        // Raw libc: rustix has no close_range.
        // SAFETY: close_range(2) only closes descriptors of this process,
        // none of which anything here owns but `keep` (left alone).
        let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
        unsupported |= r != 0;
    }
    if !unsupported {
        return;
    }
    // Before Linux 5.9: close what /proc/self/fd lists, or, without /proc,
    // every number up to the descriptor limit.
    let open: Vec<u32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => {
            // No soft limit (`None`) counts as the cap.
            let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
            let max = lim.current.unwrap_or(u64::MAX).min(1 << 16) as u32;
            (0..max).collect()
        }
    };
    for fd in open {
        if fd > 2 && fd != keep {
            // SAFETY: as above (the directory's own descriptor is closed
            // already; closing a closed number fails harmlessly).
            unsafe { rustix::io::close(fd as i32) };
        }
    }
}

/// Makes sure this process is set up for multiprocessing: if it is a child
/// started by this crate, runs its target and exits (never returning);
/// otherwise returns at once.
///
/// Calling it is optional on Linux, where a hook that runs before `main`
/// does the same, but harmless, and it documents intent: Python's
/// `if __name__ == "__main__":` guard becomes `mp_proc::init();` as the
/// first line of `main`.
///
/// ```
/// // The first line of `main`:
/// mp_proc::init();
/// ```
pub fn init() {
    run_entry();
}

/// Errors for a `start()` in a process where the entry machinery is not in
/// place.
pub(crate) fn check_ready() -> Result<(), Error> {
    if UNHOOKED_CHILD.load(Ordering::Relaxed) || std::env::var_os(BOOT_FD_VAR).is_some() {
        UNHOOKED_CHILD.store(true, Ordering::Relaxed);
        return Err(Error::RecursiveStart);
    }
    if !HOOK_RAN.load(Ordering::SeqCst) {
        return Err(Error::NotInitialized);
    }
    // Keep the hook's static referenced from the code that starts processes
    // so that the linker always keeps the object that holds it.
    std::hint::black_box(&ENTRY_HOOK);
    Ok(())
}
