//! The tracker process itself (see the parent module's docs for the
//! protocol and the end condition).
//!
//! It runs from the hook, before `main`, in a fresh copy of the program
//! started with `posix_spawn`: single-threaded, with nothing of the
//! creator's state but the root's pidfd. The first process (the *starter*)
//! binds the address, forks the tracker proper and exits, so that the
//! creator can reap it at once and the tracker is nobody's child there.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use super::{ACK, MAX_MSG, MSG_REGISTER, MSG_UNREGISTER, peer_uid, sockaddr};

/// How long a tracker with no root and no client yet waits for its first
/// connection (its creator connects right after starting it).
const GRACE: Duration = Duration::from_secs(10);

/// The registered names (without the leading '/') and the device and inode
/// of the object each was created as.
type Names = HashMap<Vec<u8>, (u64, u64)>;

fn exit(code: i32) -> ! {
    // SAFETY: leaving the process; nothing of the program ran here.
    unsafe { libc::_exit(code) }
}

/// Binds `address`, forks the tracker and exits (in the starter); serves,
/// cleans up and exits (in the tracker). Never returns.
pub(super) fn run(root_pidfd: RawFd, address: &str) -> ! {
    let listener = match bind(address) {
        Ok(l) => l,
        // Another tracker of the program won the race: the creator
        // connects to it.
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => exit(0),
        Err(_) => exit(1),
    };
    // SAFETY: this process has a single thread (the hook runs before
    // `main` in a fresh process image).
    match unsafe { libc::fork() } {
        -1 => exit(1),
        0 => {}
        _ => exit(0),
    }
    let root = (root_pidfd >= 0).then(|| {
        // SAFETY: the creator passed this descriptor for us alone.
        unsafe { OwnedFd::from_raw_fd(root_pidfd) }
    });
    detach(&listener, root.as_ref());
    let names = serve(&listener, root);
    drop(listener);
    cleanup(names);
    exit(0)
}

fn bind(address: &str) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let (sa, len) = sockaddr(address);
    // SAFETY: `sa` is a valid sockaddr_un of `len` bytes.
    if unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: listen(2) on our socket.
    if unsafe { libc::listen(fd, 128) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}

/// Leaves the program's session (so that ^C, `kill -- -PGID` and a hang-up
/// of the terminal reach the program, not the tracker, which must outlive
/// it by a moment to clean up), ignores the signals a program's processes
/// commonly receive together (Python's tracker ignores SIGINT and
/// SIGTERM), and lets go of everything inherited but a terminal on stderr.
fn detach(listener: &OwnedFd, root: Option<&OwnedFd>) {
    // SAFETY: plain system calls on this process; the strings are
    // NUL-terminated literals.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
            libc::SIGTSTP,
            libc::SIGTTIN,
            libc::SIGTTOU,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::dup2(null, 1);
            // A pipe or file held here would keep a reader of the creator's
            // stderr waiting for its end until the whole program ends (a
            // parent that runs the creator and reads its output to the end
            // would hang): keep stderr only when it is a terminal.
            if libc::isatty(2) == 0 {
                libc::dup2(null, 2);
            }
            libc::close(null);
        }
        libc::prctl(libc::PR_SET_NAME, c"mp-shm-tracker".as_ptr());
    }
    // Close whatever the creator let leak through exec (descriptors
    // without close-on-exec): a pipe end held here could keep a reader of
    // the program waiting.
    let mut keep = vec![0, 1, 2, listener.as_raw_fd()];
    keep.extend(root.map(|r| r.as_raw_fd()));
    keep.sort_unstable();
    keep.dedup();
    let mut from: u32 = 0;
    for &k in &keep {
        let k = k as u32;
        if k > from {
            close_range(from, k - 1);
        }
        from = k + 1;
    }
    close_range(from, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: closes descriptors this process does not use.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if r != 0 {
        // Old kernel: close what /proc lists.
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        let fds: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&fd| fd >= first && fd <= last)
            .collect();
        for fd in fds {
            // SAFETY: as above.
            unsafe { libc::close(fd as RawFd) };
        }
    }
}

/// Serves until the root has exited and every connection hung up; returns
/// the names still registered.
fn serve(listener: &OwnedFd, mut root: Option<OwnedFd>) -> Names {
    let mut names = Names::new();
    let mut conns: Vec<OwnedFd> = Vec::new();
    let started = Instant::now();
    let mut had_client = false;
    loop {
        had_client |= accept_all(listener, &mut conns);
        let idle = root.is_none() && conns.is_empty();
        if idle && (had_client || started.elapsed() >= GRACE) {
            // The program has ended. A connection that arrives from now
            // on is reset when the listener closes; its creator sees no
            // acknowledgement and starts a new tracker.
            break;
        }
        let mut fds = Vec::with_capacity(2 + conns.len());
        fds.push(pollfd(listener.as_raw_fd()));
        if let Some(r) = &root {
            fds.push(pollfd(r.as_raw_fd()));
        }
        fds.extend(conns.iter().map(|c| pollfd(c.as_raw_fd())));
        let timeout = if idle {
            GRACE.saturating_sub(started.elapsed()).as_millis() as i32 + 1
        } else {
            -1
        };
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            continue; // EINTR
        }
        let mut at = 1;
        if root.is_some() {
            if fds[1].revents != 0 {
                // readable (exited) or invalid: the root is gone
                root = None;
            }
            at = 2;
        }
        let mut i = 0;
        conns.retain(|c| {
            let ready = fds[at + i].revents != 0;
            i += 1;
            !ready || drain(c, &mut names)
        });
    }
    names
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Accepts every pending connection from our own user (or root); returns
/// whether there was one.
fn accept_all(listener: &OwnedFd, conns: &mut Vec<OwnedFd>) -> bool {
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    let mut any = false;
    loop {
        // SAFETY: accept4 on our listener; no peer address wanted.
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error().raw_os_error();
            if e == Some(libc::EINTR) || e == Some(libc::ECONNABORTED) {
                continue;
            }
            return any;
        }
        // SAFETY: a descriptor accept4 just gave us.
        let conn = unsafe { OwnedFd::from_raw_fd(fd) };
        if matches!(peer_uid(fd), Some(uid) if uid == me || uid == 0) {
            conns.push(conn);
            any = true;
        }
    }
}

/// Reads every message queued on a connection; returns false when the
/// connection hung up.
fn drain(conn: &OwnedFd, names: &mut Names) -> bool {
    let mut buf = [0u8; MAX_MSG + 1];
    loop {
        // SAFETY: `buf` is valid for its length.
        let n = unsafe {
            libc::recv(
                conn.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n > 0 {
            handle(conn, &buf[..n as usize], names);
        } else if n == 0 {
            return false;
        } else {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return true,
                _ => return false,
            }
        }
    }
}

/// Parses a message: (tag, name, device and inode).
pub(super) fn parse(msg: &[u8]) -> Option<(u8, &[u8], (u64, u64))> {
    if msg.len() < 18 || msg.len() > MAX_MSG {
        return None;
    }
    let dev = u64::from_ne_bytes(msg[1..9].try_into().ok()?);
    let ino = u64::from_ne_bytes(msg[9..17].try_into().ok()?);
    let name = &msg[17..];
    if name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".." {
        return None;
    }
    Some((msg[0], name, (dev, ino)))
}

fn handle(conn: &OwnedFd, msg: &[u8], names: &mut Names) {
    match parse(msg) {
        Some((MSG_REGISTER, name, id)) => {
            names.insert(name.to_vec(), id);
            // SAFETY: one byte from a valid buffer.
            unsafe {
                libc::send(
                    conn.as_raw_fd(),
                    [ACK].as_ptr().cast(),
                    1,
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                );
            }
        }
        Some((MSG_UNREGISTER, name, id)) if names.get(name) == Some(&id) => {
            names.remove(name);
        }
        _ => {}
    }
}

/// Unlinks every name whose object is still the one registered.
fn cleanup(names: Names) {
    let mut removed: Vec<String> = Vec::new();
    for (name, id) in names {
        let mut path = b"/dev/shm/".to_vec();
        path.extend_from_slice(&name);
        let Ok(path) = CString::new(path) else {
            continue;
        };
        // SAFETY: an all-zero stat is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `path` is NUL-terminated; `st` a valid out-pointer.
        if unsafe { libc::lstat(path.as_ptr(), &mut st) } != 0 {
            continue; // unlinked already
        }
        if (st.st_dev, st.st_ino) != id {
            continue; // someone else's object now has that name
        }
        // SAFETY: `path` is NUL-terminated.
        if unsafe { libc::unlink(path.as_ptr()) } == 0 {
            removed.push(String::from_utf8_lossy(&name).into_owned());
        }
    }
    if !removed.is_empty() {
        const SHOWN: usize = 8;
        let total = removed.len();
        removed.sort();
        removed.truncate(SHOWN);
        let more = if total > SHOWN {
            format!(" and {} more", total - SHOWN)
        } else {
            String::new()
        };
        let _ = writeln!(
            std::io::stderr(),
            "mp-shm: the program ended and left {total} shared memory name(s) behind; unlinked {}{more}",
            removed.join(", ")
        );
    }
}
