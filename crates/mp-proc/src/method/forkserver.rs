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
//! Its first frame is a [`ServerSetup`]: the function set with
//! [`set_forkserver_preload`], if any, which the server runs once before it
//! serves (Python's `set_forkserver_preload`: modules imported once, so
//! that every child starts with them loaded). Then it sends a
//! [`ServerReady`]; the parent waits for it before its first request, up to
//! [`PRELOAD_TIMEOUT`] when there is a preload ([`REQUEST_TIMEOUT`]
//! otherwise), so that a slow preload is not mistaken for a hung server
//! (which would be killed and started again, running the preload again). A
//! server that dies meanwhile is noticed at once (end of stream); one that
//! is stopped or stuck is killed at the deadline and `start()` fails.
//!
//! The server exits when the parent's end of its socket closes (the parent
//! exited or died). If the server dies, the next `start()` starts a new one.
//!
//! # A server that fails in the middle of a request
//!
//! The server must answer within a deadline ([`REQUEST_TIMEOUT`], more for
//! large requests); a server that does not (stopped by SIGSTOP, stuck) or
//! that dies is killed and reaped, and a new one is started. Asking again
//! is only safe if the failed server did not fork the child already: the
//! target would run twice. So each child's first act, before it runs
//! anything, is to send its parent a [`Hello`] with its pid on the
//! bootstrap socket. Once the failed server is reaped, the only copies of
//! the child's end of that socket are the parent's own (which it closes)
//! and the child's, if it exists. The parent then reads the socket:
//!
//! * a hello: the server forked the child before failing; the parent
//!   adopts it (it is the parent's own child, see `CLONE_PARENT` above) and
//!   the target runs once;
//! * end of stream: no child exists, and the request is sent again, to a
//!   new server;
//! * nothing within [`HELLO_TIMEOUT`]: `start()` fails without asking
//!   again. The parent shuts its end of the socket for writing but keeps
//!   it: a late child, once its hello is sent, sees that and exits without
//!   running its target (as does a child whose hello fails: the parent is
//!   gone). Such a child is the parent's own (`CLONE_PARENT`), so the
//!   parent reads its hello later, at the next forkserver `start()` or
//!   [`active_children`](crate::active_children), and reaps it: no zombie
//!   is left.
//!
//! Tests make a server exit right after it forks, before it answers, by
//! starting it with `MP_PROC_FORKSERVER_FAULT=exit-after-fork` in the
//! environment (`exit-after-fork-late-hello`: and the child sends its hello
//! only after [`HELLO_TIMEOUT`] and two more seconds).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use mp_os::fdpass;
use mp_os::time::Deadline;
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Pid, Signal, WaitOptions};

use crate::children::Started;
use crate::error::Error;
use crate::forksafe::ForkSafeMutex;
use crate::result::{FrameReader, Progress};
use crate::sys::{pidfd_open, poll_fd};
use crate::wire::{
    FORKSERVER_FD_VAR, ForkReply, ForkRequest, Hello, MAX_FRAME, ServerReady, ServerSetup,
    WIRE_VERSION,
};

/// How long the server may take to answer a request, plus one second per
/// 8 MiB of request (see [`request_timeout`]). Forking the small server
/// takes milliseconds; this leaves a wide margin for a loaded machine.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a new fork server may take to run its preload
/// ([`set_forkserver_preload`]) and say it is ready. A server that dies
/// meanwhile is noticed at once; this bounds a stopped or stuck one.
pub(crate) const PRELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a parent whose server failed waits for the hello of a child
/// that server may have forked.
pub(crate) const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The environment variable of the fault-injection hook (see the module
/// docs).
const FAULT_VAR: &str = "MP_PROC_FORKSERVER_FAULT";

/// Exit code of a fork-server child that could not greet its parent, or
/// whose parent gave up on it.
const EXIT_NO_PARENT: i32 = 70;

fn request_timeout(request_len: usize) -> Duration {
    REQUEST_TIMEOUT + Duration::from_secs((request_len >> 23) as u64)
}

struct Server {
    sock: UnixStream,
    pid: i32,
}

impl Server {
    /// Kills and reaps the server: once this returns, every descriptor it
    /// held or had not yet received is closed.
    fn kill_and_reap(self) {
        drop(self.sock);
        // SIGKILL also ends a stopped process.
        let Some(pid) = Pid::from_raw(self.pid) else {
            return;
        };
        let _ = rustix::process::kill_process(pid, Signal::KILL);
        while let Err(Errno::INTR) = rustix::process::waitpid(Some(pid), WaitOptions::empty()) {}
    }
}

/// What the bootstrap socket says after the server failed.
enum AfterFailure {
    /// The server forked the child before it failed: its pid.
    Child(i32),
    /// No child exists: asking again is safe.
    NoChild,
    /// Neither a hello nor the end of the stream in time (what was read so
    /// far).
    Unknown(FrameReader),
}

/// Reads the hello of a child the failed (and reaped) server may have
/// forked, or the end of the stream that says there is none.
fn after_failure(sock: &UnixStream) -> AfterFailure {
    let deadline = Deadline::after(Some(HELLO_TIMEOUT));
    let mut reader = FrameReader::default();
    loop {
        match reader.read_available(sock, 1 << 10) {
            Progress::Frame(bytes, _) => {
                return match postcard::from_bytes::<Hello>(&bytes) {
                    Ok(h) if h.version == WIRE_VERSION && h.pid > 0 => AfterFailure::Child(h.pid),
                    _ => AfterFailure::Unknown(reader),
                };
            }
            // Also a hello cut short: that child died before running
            // anything.
            Progress::Ended => return AfterFailure::NoChild,
            Progress::Pending => {}
        }
        if deadline.expired() {
            return AfterFailure::Unknown(reader);
        }
        poll_fd(sock.as_fd(), deadline);
    }
}

static SERVER: ForkSafeMutex<Option<Server>> = ForkSafeMutex::new(None);

/// A child that a failed server may have forked and that `start()` gave up
/// on (see the module docs): its bootstrap socket, shut for writing, read
/// until its hello tells its pid; then the pid, until it is reaped.
struct GivenUp {
    sock: Option<UnixStream>,
    reader: FrameReader,
    pid: Option<i32>,
}

impl GivenUp {
    /// Reads what came and reaps the child if it has exited; whether to
    /// keep the record.
    fn poll(&mut self) -> bool {
        if let Some(sock) = &self.sock {
            loop {
                match self.reader.read_available(sock, 1 << 20) {
                    Progress::Frame(bytes, _) if self.pid.is_none() => {
                        match postcard::from_bytes::<Hello>(&bytes) {
                            Ok(h) if h.version == WIRE_VERSION && h.pid > 0 => {
                                self.pid = Some(h.pid)
                            }
                            _ => {
                                self.sock = None;
                                break;
                            }
                        }
                    }
                    // A child that greeted before it saw the shut socket
                    // runs its target: its frames are dropped.
                    Progress::Frame(..) => {}
                    Progress::Pending => break,
                    Progress::Ended => {
                        self.sock = None;
                        break;
                    }
                }
            }
        }
        match self.pid {
            // Reaping our own child (CLONE_PARENT) by pid, without waiting;
            // it is in no other record. `None`: still running.
            Some(pid) => Pid::from_raw(pid).is_some_and(|pid| {
                matches!(
                    rustix::process::waitpid(Some(pid), WaitOptions::NOHANG),
                    Ok(None)
                )
            }),
            // The stream ended without a hello: no child.
            None => self.sock.is_some(),
        }
    }
}

static GIVEN_UP: ForkSafeMutex<Vec<GivenUp>> = ForkSafeMutex::new(Vec::new());

/// Reaps the children `start()` gave up on that have exited since (see the
/// module docs).
pub(crate) fn reap_given_up() {
    let mut given_up = GIVEN_UP.lock();
    if !given_up.is_empty() {
        given_up.retain_mut(GivenUp::poll);
    }
}

/// The preload function's offset from the anchor, for the next server.
static PRELOAD: ForkSafeMutex<Option<i64>> = ForkSafeMutex::new(None);

/// Sets a function that the fork server runs once when it starts, before it
/// forks any child (Python's `set_forkserver_preload`, which names modules
/// to import there): what it loads or initializes is in every child the
/// server forks, without being done again in each. `None` removes it.
///
/// As in Python, it applies to a server started afterwards: call it before
/// the first `start()` with the forkserver method (a running server keeps
/// what it had). The server is single-threaded, which is what makes its
/// forks sound: the function must not start threads. If it panics, the
/// server goes on without it (Python ignores a preload module that fails
/// to import). The `start()` that starts the server waits for the preload
/// to finish, up to 60 seconds: a preload that runs longer (or a server
/// stopped meanwhile) makes that `start()` fail with
/// [`Error::Forkserver`], and the next one starts a new server.
///
/// ```no_run
/// use std::sync::OnceLock;
///
/// static TABLE: OnceLock<Vec<u64>> = OnceLock::new();
///
/// fn build_table() {
///     TABLE.get_or_init(|| (0..1_000_000).map(|i| i * i).collect());
/// }
///
/// fn lookup(i: usize) -> u64 {
///     // Forkserver children find the table built (built once, in the server).
///     TABLE.get_or_init(|| (0..1_000_000).map(|i| i * i).collect())[i]
/// }
///
/// mp_proc::set_forkserver_preload(Some(build_table))?;
/// let p = mp_proc::Process::new(lookup, 12);
/// p.start()?;
/// assert_eq!(p.join()?, 144);
/// # Ok::<(), mp_proc::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::TargetOutsideBinary`] for a function outside this executable's
/// code (the server could not find it).
pub fn set_forkserver_preload(preload: Option<fn()>) -> Result<(), Error> {
    let offset = match preload {
        None => None,
        Some(f) => {
            let addr = f as usize;
            if !crate::entry::in_executable_code(addr) {
                return Err(Error::TargetOutsideBinary);
            }
            Some(crate::entry::offset_of(addr))
        }
    };
    *PRELOAD.lock() = offset;
    Ok(())
}

/// Starts a child through the fork server, starting or restarting the
/// server as needed.
pub(crate) fn start(bootstrap: &[u8], fds: Vec<OwnedFd>) -> Result<Started, Error> {
    let request = postcard::to_allocvec(&ForkRequest {
        version: WIRE_VERSION,
        bootstrap: bootstrap.to_vec(),
    })
    .map_err(|e| Error::Serialize {
        what: "arguments",
        message: e.to_string(),
    })?;
    let timeout = request_timeout(request.len());
    let stdio = [
        stdio_fd(rustix::stdio::stdin())?,
        stdio_fd(rustix::stdio::stdout())?,
        stdio_fd(rustix::stdio::stderr())?,
    ];

    reap_given_up();
    let mut server = SERVER.lock();
    let mut last_err = None;
    for _attempt in 0..2 {
        let (parent_sock, child_sock) =
            UnixStream::pair().map_err(|e| Error::os("socketpair", e))?;
        let mut passed: Vec<BorrowedFd<'_>> = vec![child_sock.as_fd()];
        passed.extend(stdio.iter().map(|f| f.as_fd()));
        passed.extend(fds.iter().map(|f| f.as_fd()));
        if server.is_none() {
            *server = Some(launch()?);
        }
        let s = server.as_ref().expect("just launched");
        match exchange(&s.sock, &request, &passed, timeout) {
            Ok(ForkReply::Started { pid }) => {
                drop(server);
                drop(passed);
                drop(child_sock);
                let pidfd = pidfd_open(pid)?;
                return Ok(Started {
                    pid,
                    pidfd,
                    sock: parent_sock,
                    skip_frames: 1, // the child's hello
                });
            }
            Ok(ForkReply::Failed(msg)) => return Err(Error::Forkserver(msg)),
            Err(e) => {
                // The server died, broke the protocol or did not answer in
                // time (stopped?). Once it is reaped, only the child (if the
                // server forked it) holds the other end of `parent_sock`.
                server.take().expect("present").kill_and_reap();
                drop(passed);
                drop(child_sock);
                match after_failure(&parent_sock) {
                    AfterFailure::Child(pid) => {
                        drop(server);
                        let pidfd = pidfd_open(pid)?;
                        return Ok(Started {
                            pid,
                            pidfd,
                            sock: parent_sock,
                            skip_frames: 0, // the hello was read
                        });
                    }
                    AfterFailure::NoChild => last_err = Some(e),
                    AfterFailure::Unknown(reader) => {
                        // A late child sees the socket shut for writing and
                        // leaves without running; its hello says which pid
                        // to reap.
                        let _ = parent_sock.shutdown(std::net::Shutdown::Write);
                        let mut late = GivenUp {
                            sock: Some(parent_sock),
                            reader,
                            pid: None,
                        };
                        if late.poll() {
                            GIVEN_UP.lock().push(late);
                        }
                        return Err(Error::Forkserver(format!(
                            "the fork server failed ({e}) and whether it started the child is \
                             unknown; not asking again, so that the target cannot run twice"
                        )));
                    }
                }
            }
        }
    }
    Err(Error::Forkserver(format!(
        "the fork server failed twice: {}",
        last_err.map(|e| e.to_string()).unwrap_or_default()
    )))
}

/// Sends a request and reads the answer; each step that makes no progress
/// for `timeout` fails with `WouldBlock`.
fn exchange(
    sock: &UnixStream,
    request: &[u8],
    fds: &[BorrowedFd<'_>],
    timeout: Duration,
) -> std::io::Result<ForkReply> {
    sock.set_write_timeout(Some(timeout))?;
    sock.set_read_timeout(Some(timeout))?;
    fdpass::send(sock, request, fds)?;
    let (bytes, _) = fdpass::recv(sock, 1 << 16)?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "fork server closed")
    })?;
    postcard::from_bytes(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// A copy of one of this process's stdio descriptors, or of `/dev/null` if
/// that descriptor is closed.
fn stdio_fd(fd: BorrowedFd<'static>) -> Result<OwnedFd, Error> {
    match fd.try_clone_to_owned() {
        Ok(copy) => return Ok(copy),
        Err(e) if e.raw_os_error() != Some(Errno::BADF.raw_os_error()) => {
            return Err(Error::os("dup", e));
        }
        Err(_) => {}
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
    let pid = crate::method::spawn::spawn_self(FORKSERVER_FD_VAR, theirs.as_fd())?;
    let server = Server { sock: ours, pid };
    let setup = ServerSetup {
        version: WIRE_VERSION,
        preload: *PRELOAD.lock(),
    };
    let sent = postcard::to_allocvec(&setup)
        .map_err(std::io::Error::other)
        .and_then(|b| {
            server.sock.set_write_timeout(Some(REQUEST_TIMEOUT))?;
            fdpass::send(&server.sock, &b, &[])
        });
    if let Err(e) = sent {
        server.kill_and_reap();
        return Err(Error::Forkserver(format!(
            "could not set up the fork server: {e}"
        )));
    }
    // The server says it is ready once it has run the preload.
    let wait = if setup.preload.is_some() {
        PRELOAD_TIMEOUT
    } else {
        REQUEST_TIMEOUT
    };
    let ready = server
        .sock
        .set_read_timeout(Some(wait))
        .and_then(|()| fdpass::recv(&server.sock, 1 << 10));
    let why = match ready {
        Ok(Some((bytes, _))) => match postcard::from_bytes::<ServerReady>(&bytes) {
            Ok(r) if r.version == WIRE_VERSION && r.pid == server.pid => return Ok(server),
            _ => "it sent a malformed ready frame".to_string(),
        },
        Ok(None) => "it exited (or died) before it was ready".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            format!("it was not ready within {wait:?} (a preload that long, or a stopped server)")
        }
        Err(e) => format!("reading its ready frame: {e}"),
    };
    server.kill_and_reap();
    Err(Error::Forkserver(format!(
        "could not start the fork server: {why}"
    )))
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
    // SAFETY: as above; the records are the parent's children.
    unsafe { GIVEN_UP.reset_after_fork() };
    GIVEN_UP.lock().clear();
}

/// Whether the other end of `sock` is closed (not merely shut down for
/// reading).
fn peer_closed(sock: &UnixStream) -> bool {
    hangup_events(sock).intersects(PollFlags::RDHUP | PollFlags::HUP)
}

/// Whether the other end of `sock` is open but shut for writing: a parent
/// that gave up on this child (see the module docs).
fn parent_gave_up(sock: &UnixStream) -> bool {
    let events = hangup_events(sock);
    events.contains(PollFlags::RDHUP) && !events.contains(PollFlags::HUP)
}

/// What a non-blocking `poll` for `POLLRDHUP` reports on `sock` (nothing if
/// it fails).
fn hangup_events(sock: &UnixStream) -> PollFlags {
    let mut p = [PollFd::new(sock, PollFlags::RDHUP)];
    match rustix::event::poll(&mut p, Some(&Timespec::default())) {
        Ok(n) if n > 0 => p[0].revents(),
        _ => PollFlags::empty(),
    }
}

/// The server's loop (runs in the server process, before `main`).
pub(crate) fn serve(sock: UnixStream) -> ! {
    let fault = std::env::var_os(FAULT_VAR);
    let late_hello = fault
        .as_ref()
        .is_some_and(|v| v == "exit-after-fork-late-hello");
    let exit_after_fork = late_hello || fault.is_some_and(|v| v == "exit-after-fork");
    let setup = match fdpass::recv(&sock, 1 << 10) {
        Ok(Some((bytes, _))) => postcard::from_bytes::<ServerSetup>(&bytes).ok(),
        _ => None,
    };
    let Some(setup) = setup.filter(|s| s.version == WIRE_VERSION) else {
        crate::child::exit_now(1)
    };
    if let Some(f) = setup.preload.and_then(crate::entry::addr_at) {
        // SAFETY: the parent (this same executable) computed the offset
        // from a `fn()` with `set_forkserver_preload`, and `addr_at`
        // checked that it lies in this executable's code.
        let f = unsafe { std::mem::transmute::<usize, fn()>(f) };
        let _ = std::panic::catch_unwind(f);
    }
    let ready = ServerReady {
        version: WIRE_VERSION,
        pid: rustix::process::getpid().as_raw_pid(),
    };
    match postcard::to_allocvec(&ready) {
        Ok(b) if fdpass::send(&sock, &b, &[]).is_ok() => {}
        _ => crate::child::exit_now(0),
    }
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
                fork_child(
                    &sock,
                    req.bootstrap,
                    child_sock,
                    stdio,
                    handle_fds,
                    late_hello,
                )
            }
            Ok(_) => ForkReply::Failed("malformed fork request (version or descriptors)".into()),
            Err(e) => ForkReply::Failed(format!("undecodable fork request: {e}")),
        };
        if exit_after_fork && matches!(reply, ForkReply::Started { .. }) {
            crate::child::exit_now(0);
        }
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
    late_hello: bool,
) -> ForkReply {
    let Some(boot) = crate::run::decode_bootstrap(&bootstrap) else {
        return ForkReply::Failed("undecodable bootstrap".into());
    };
    // Raw libc: rustix has no clone (nor fork with CLONE_PARENT).
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
        // A raw clone runs no fork hooks: the ones that can run now do
        // (the cached ids).
        mp_os::fork::after_clone_in_child();
        // SAFETY: closing our copy of the server's socket, which nothing in
        // the child uses (its `UnixStream` is never used nor dropped here:
        // the child exits without returning).
        unsafe { rustix::io::close(server_sock.as_raw_fd()) };
        // The parent's stdio over ours.
        let _ = rustix::stdio::dup2_stdin(&stdio[0]);
        let _ = rustix::stdio::dup2_stdout(&stdio[1]);
        let _ = rustix::stdio::dup2_stderr(&stdio[2]);
        drop(stdio);
        if late_hello {
            std::thread::sleep(HELLO_TIMEOUT + Duration::from_secs(2));
        }
        // Before anything else, tell the parent that this child exists
        // (see the module docs). A parent that closed its end, or shut it
        // for writing, has given up on this child, which then leaves
        // without running its target. (A
        // parent that dropped its `Process` only shut its end for reading:
        // the send fails too, but the child runs.)
        let hello = Hello {
            version: WIRE_VERSION,
            pid: rustix::process::getpid().as_raw_pid(),
        };
        let sent = postcard::to_allocvec(&hello)
            .ok()
            .is_some_and(|b| fdpass::send(&child_sock, &b, &[]).is_ok());
        if (!sent && peer_closed(&child_sock)) || (sent && parent_gave_up(&child_sock)) {
            crate::child::exit_now(EXIT_NO_PARENT);
        }
        crate::run::run_function(boot, handle_fds, child_sock);
    }
    ForkReply::Started { pid: pid as i32 }
}
