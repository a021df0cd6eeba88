//! The forkserver start method.
//!
//! The server is this same program, spawned once with
//! `MP_PROC_FORKSERVER_FD` set: its entry hook never reaches `main` but
//! serves fork requests on a Unix socket. It is single-threaded, so forking
//! it is always sound, however many threads the parent runs.
//!
//! Each child is created with `clone(CLONE_PARENT)`, which makes it a child
//! of the server's parent, that is of the process that asked for it. The
//! parent therefore reaps it, waits on its pidfd and reads its exit status
//! exactly as for the other start methods. The request carries the child's
//! end of its bootstrap socket, the parent's current stdin, stdout and
//! stderr (so output goes where the parent's goes now), and the handles'
//! descriptors.
//!
//! The server exits when the parent's end of its socket closes (the parent
//! exited or died). If the server dies, the next `start()` starts a new one.

use crate::forksafe::ForkSafeMutex;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use mp_os::fdpass;

use crate::Error;
use crate::method::fork::pidfd_open;
use crate::process::Started;
use crate::wire::{ForkReply, ForkRequest, MAX_FRAME, WIRE_VERSION};

struct Server {
    sock: UnixStream,
    pid: i32,
}

static SERVER: ForkSafeMutex<Option<Server>> = ForkSafeMutex::new(None);

/// Starts a child through the fork server, starting or restarting the
/// server as needed.
pub(crate) fn start(bootstrap: &[u8], fds: Vec<OwnedFd>) -> Result<Started, Error> {
    let (parent_sock, child_sock) = UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;
    let request = postcard::to_allocvec(&ForkRequest {
        version: WIRE_VERSION,
        bootstrap: bootstrap.to_vec(),
    })
    .map_err(|e| Error::Serialize {
        what: "arguments",
        message: e.to_string(),
    })?;
    let stdio = [stdio_fd(0)?, stdio_fd(1)?, stdio_fd(2)?];
    let mut passed: Vec<BorrowedFd<'_>> = vec![child_sock.as_fd()];
    passed.extend(stdio.iter().map(|f| f.as_fd()));
    passed.extend(fds.iter().map(|f| f.as_fd()));

    let mut server = SERVER.lock();
    let mut last_err = None;
    for _attempt in 0..2 {
        if server.is_none() {
            *server = Some(launch()?);
        }
        let s = server.as_ref().expect("just launched");
        match exchange(&s.sock, &request, &passed) {
            Ok(ForkReply::Started { pid }) => {
                drop(server);
                drop(child_sock);
                let pidfd = pidfd_open(pid)?;
                return Ok(Started {
                    pid,
                    pidfd,
                    sock: parent_sock,
                });
            }
            Ok(ForkReply::Failed(msg)) => return Err(Error::Forkserver(msg)),
            Err(e) => {
                // The server is gone (killed?): reap it and start another.
                let old = server.take().expect("present");
                drop(old.sock);
                // SAFETY: reaping our own child, the dead server.
                unsafe { libc::waitpid(old.pid, std::ptr::null_mut(), 0) };
                last_err = Some(e);
            }
        }
    }
    Err(Error::Forkserver(format!(
        "the fork server failed twice: {}",
        last_err.map(|e| e.to_string()).unwrap_or_default()
    )))
}

fn exchange(
    sock: &UnixStream,
    request: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<ForkReply> {
    fdpass::send(sock, request, fds)?;
    let (bytes, _) = fdpass::recv(sock, 1 << 16)?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "fork server closed")
    })?;
    postcard::from_bytes(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn stdio_fd(fd: i32) -> Result<OwnedFd, Error> {
    // SAFETY: F_GETFD only queries the descriptor.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
        // SAFETY: fd is open (checked above) and stays open during the call.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        return b.try_clone_to_owned().map_err(|e| Error::os("dup", e));
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| Error::os("open /dev/null", e))?;
    Ok(null.into())
}

fn launch() -> Result<Server, Error> {
    let (ours, theirs) = UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;
    let pid = crate::method::spawn::spawn_self(crate::entry::FORKSERVER_FD_VAR, theirs.as_fd())?;
    Ok(Server { sock: ours, pid })
}

/// The fork server's pid, if one is running (for tests and diagnostics).
#[doc(hidden)]
pub fn forkserver_pid() -> Option<u32> {
    SERVER.lock().as_ref().map(|s| s.pid as u32)
}

/// In a forked child: the parent's connection to its server is not ours.
pub(crate) fn forget_after_fork() {
    // SAFETY: called by the forked child before it uses the lock; the
    // connection record is dropped right after.
    unsafe { SERVER.reset_after_fork() };
    if let Some(server) = SERVER.lock().take() {
        drop(server.sock);
    }
}

/// The server's loop (runs in the server process, before `main`).
pub(crate) fn serve(sock: UnixStream) -> ! {
    loop {
        let (bytes, mut fds) = match fdpass::recv(&sock, MAX_FRAME) {
            Ok(Some(frame)) => frame,
            _ => crate::child::exit_now(0),
        };
        let reply = match postcard::from_bytes::<ForkRequest>(&bytes) {
            Ok(req) if req.version == WIRE_VERSION && fds.len() >= 4 => {
                let handle_fds = fds.split_off(4);
                let mut it = fds.into_iter();
                let child_sock = UnixStream::from(it.next().expect("4 fds"));
                let stdio: Vec<OwnedFd> = it.collect();
                fork_child(&sock, req.bootstrap, child_sock, stdio, handle_fds)
            }
            Ok(_) => ForkReply::Failed("malformed fork request (version or descriptors)".into()),
            Err(e) => ForkReply::Failed(format!("undecodable fork request: {e}")),
        };
        let Ok(bytes) = postcard::to_allocvec(&reply) else {
            crate::child::exit_now(1)
        };
        if fdpass::send(&sock, &bytes, &[]).is_err() {
            crate::child::exit_now(0);
        }
    }
}

fn fork_child(
    server_sock: &UnixStream,
    bootstrap: Vec<u8>,
    child_sock: UnixStream,
    stdio: Vec<OwnedFd>,
    handle_fds: Vec<OwnedFd>,
) -> ForkReply {
    let Some(boot) = crate::child::decode_bootstrap(&bootstrap) else {
        return ForkReply::Failed("undecodable bootstrap".into());
    };
    // SAFETY: a raw clone with CLONE_PARENT behaves as fork(2) except that
    // the child's parent is our parent. The server is single-threaded, so no
    // lock can be held by another thread; glibc does not cache the pid, and
    // the child resets this crate's cached thread id before anything else.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return ForkReply::Failed(format!("clone: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        mp_os::liveness::forget_cached_ids();
        // SAFETY: closing our copy of the server's socket, which nothing in
        // the child uses; and duplicating the parent's stdio over ours.
        unsafe {
            libc::close(server_sock.as_raw_fd());
            for (i, fd) in stdio.iter().enumerate() {
                libc::dup2(fd.as_raw_fd(), i as i32);
            }
        }
        drop(stdio);
        crate::child::run_function(boot, handle_fds, child_sock);
    }
    ForkReply::Started { pid: pid as i32 }
}
