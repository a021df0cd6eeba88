//! The spawn start method: `posix_spawn` of `/proc/self/exe`.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;

use mp_os::fdpass;
use rustix::process::{Pid, Signal, WaitOptions};

use crate::children::Started;
use crate::error::Error;
use crate::sys::pidfd_open;
use crate::wire::{BOOT_FD_VAR, FORKSERVER_FD_VAR};

/// Spawns a fresh copy of this program that runs the bootstrap it is sent.
pub(crate) fn start(bootstrap: &[u8], fds: Vec<OwnedFd>) -> Result<Started, Error> {
    let (parent_sock, child_sock) = UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;
    let pid = spawn_self(BOOT_FD_VAR, child_sock.as_fd())?;
    drop(child_sock);
    let pidfd = pidfd_open(pid)?;
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    if let Err(e) = fdpass::send(&parent_sock, bootstrap, &borrowed) {
        // The child cannot run without its bootstrap: do not leave it behind.
        if let Some(pid) = Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(pid, Signal::KILL);
            let _ = rustix::process::waitpid(Some(pid), WaitOptions::empty());
        }
        return Err(Error::os("sending the bootstrap to the child", e));
    }
    Ok(Started {
        pid,
        pidfd,
        sock: parent_sock,
        skip_frames: 0,
    })
}

/// `posix_spawn`s `/proc/self/exe` with `var=<fd>` in its environment and
/// `fd` inherited (its close-on-exec flag cleared in the child only), an
/// empty signal mask and default signal dispositions for the signals this
/// crate sends.
pub(crate) fn spawn_self(var: &str, fd: std::os::fd::BorrowedFd<'_>) -> Result<i32, Error> {
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let argv0 = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("mp-child"));
    let argv0 = CString::new(argv0.into_vec())
        .unwrap_or_else(|_| CString::new("mp-child").expect("no NUL"));
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != BOOT_FD_VAR && k != FORKSERVER_FD_VAR)
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{var}={}", fd.as_raw_fd())).expect("no NUL"));
    let argv = [argv0.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());

    // Raw libc: rustix has no posix_spawn (a C library function).
    // SAFETY: all structures are initialized by their init functions before
    // use and destroyed afterwards; every pointer passed to posix_spawn
    // points to a NUL-terminated string or array that outlives the call.
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawnattr_init(&mut attr);
        // dup2 onto itself clears FD_CLOEXEC in the child (glibc >= 2.29).
        libc::posix_spawn_file_actions_adddup2(&mut actions, fd.as_raw_fd(), fd.as_raw_fd());
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        let mut defaults: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut defaults);
        libc::sigaddset(&mut defaults, libc::SIGTERM);
        libc::sigaddset(&mut defaults, libc::SIGINT);
        libc::posix_spawnattr_setsigdefault(&mut attr, &defaults);
        libc::posix_spawnattr_setflags(
            &mut attr,
            (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as _,
        );
        let mut pid: libc::pid_t = 0;
        let rc = libc::posix_spawn(
            &mut pid,
            exe.as_ptr(),
            &actions,
            &attr,
            argv.as_ptr() as *const *mut libc::c_char,
            envp.as_ptr() as *const *mut libc::c_char,
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        if rc != 0 {
            return Err(Error::os(
                "posix_spawn",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(pid)
    }
}
