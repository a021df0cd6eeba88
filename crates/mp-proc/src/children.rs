//! The parent's side of its children: what a start method hands back, the
//! record of each started child (pidfd, socket, exit status, result), and
//! the registry of them all, with what happens to them at exit.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Once};

use mp_os::time::Deadline;
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::{Signal, WaitId, WaitIdOptions};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::forksafe::ForkSafeMutex;
use crate::result::{FrameReader, Progress};
use crate::start_method::StartMethod;
use crate::sys::{poll_fd, poll_until};
use crate::wire::{MAX_FRAME, Outcome};

/// What a start method hands back: the child's pid, a pidfd for it, and the
/// parent's end of its bootstrap socket.
pub(crate) struct Started {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) sock: UnixStream,
    /// Frames on `sock` that come before the result (a fork-server child's
    /// hello, when the parent has not read it).
    pub(crate) skip_frames: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Exited(i32),
    Signaled(i32),
}

impl Status {
    pub(crate) fn code(self) -> i32 {
        match self {
            Status::Exited(c) => c,
            Status::Signaled(s) => -s,
        }
    }
}

/// The parent's record of a started child, shared by the `Process` and the
/// registry of active children.
pub(crate) struct Child {
    pub(crate) pid: i32,
    pub(crate) name: String,
    pub(crate) daemon: bool,
    pub(crate) method: StartMethod,
    pidfd: OwnedFd,
    sock: UnixStream,
    /// The result frame as far as it has arrived; the lock serializes the
    /// readers of `sock`.
    reading: Mutex<FrameReader>,
    state: Mutex<ChildState>,
}

#[derive(Default)]
struct ChildState {
    status: Option<Status>,
    outcome: Option<(Outcome, Vec<OwnedFd>)>,
    sock_done: bool,
    taken: bool,
}

impl Child {
    pub(crate) fn new(s: Started, name: String, daemon: bool, method: StartMethod) -> Child {
        Child {
            pid: s.pid,
            name,
            daemon,
            method,
            pidfd: s.pidfd,
            sock: s.sock,
            reading: Mutex::new(FrameReader::skipping(s.skip_frames)),
            state: Mutex::new(ChildState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ChildState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The exit status if the child has finished (reaping it if needed),
    /// without blocking.
    pub(crate) fn poll_status(&self) -> Option<Status> {
        if let Some(s) = self.lock().status {
            return Some(s);
        }
        if poll_fd(self.pidfd.as_fd(), Deadline::now()) {
            // Exited: reap, but leave the result frame for `wait`.
            return self.reap();
        }
        None
    }

    /// Whether the child has finished, without reaping it: for
    /// [`mp_os::wait::wait`].
    pub(crate) fn is_ready(&self) -> bool {
        self.lock().status.is_some() || poll_fd(self.pidfd.as_fd(), Deadline::now())
    }

    /// The pidfd, readable once the child has finished.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Nobody will read the result: shut down our side of the socket for
    /// reading, so that the child's send fails (`EPIPE`) instead of waiting
    /// for room once the socket buffer is full. The child's own reading
    /// side stays open: a daemonic child does not mistake this for the
    /// parent's death.
    pub(crate) fn discard_result(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Read);
    }

    fn reap(&self) -> Option<Status> {
        let mut st = self.lock();
        if st.status.is_none() {
            st.status = waitid_pidfd(self.pidfd.as_fd());
            if let Some(s) = st.status {
                log::debug!(
                    target: "mp_proc",
                    "process {} (pid {}) ended with exitcode {}",
                    self.name,
                    self.pid,
                    s.code()
                );
            }
        }
        st.status
    }

    /// Waits for the child to exit and collects its result frame. Returns
    /// false if `deadline` passed first.
    pub(crate) fn wait(&self, deadline: Deadline) -> Result<bool, Error> {
        loop {
            let (done, sock_done) = {
                let st = self.lock();
                (st.status.is_some(), st.sock_done || st.outcome.is_some())
            };
            if done && sock_done {
                return Ok(true);
            }
            let mut fds = [
                PollFd::new(&self.pidfd, PollFlags::IN),
                PollFd::new(&self.sock, PollFlags::IN),
            ];
            let nfds = if sock_done { 1 } else { 2 };
            let n = match poll_until(&mut fds[..nfds], deadline) {
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::os("poll", e)),
            };
            if n == 0 {
                if deadline.expired() {
                    return Ok(false);
                }
                continue;
            }
            if !sock_done && !fds[1].revents().is_empty() {
                // Never blocks: a child that sent part of its result and
                // stalled does not hold the caller past its deadline.
                self.read_available();
            }
            if !fds[0].revents().is_empty() {
                // The child has exited: anything it sent is already in the
                // socket (a grandchild may still hold the socket open, so do
                // not wait for end-of-stream), and a frame still incomplete
                // now never will be.
                if !sock_done {
                    self.read_available();
                }
                self.reap();
                let mut st = self.lock();
                st.sock_done = true;
                if st.status.is_none() {
                    return Err(Error::Os {
                        op: "waitid",
                        source: std::io::Error::other(
                            "the child's exit status is unavailable (is SIGCHLD ignored?)",
                        ),
                    });
                }
                return Ok(true);
            }
        }
    }

    /// Reads what the socket holds of the result frame, without blocking;
    /// records the outcome once the frame is complete.
    fn read_available(&self) {
        let mut reader = self.reading.lock().unwrap_or_else(|e| e.into_inner());
        if self.lock().sock_done {
            return;
        }
        let progress = reader.read_available(&self.sock, MAX_FRAME);
        let mut st = self.lock();
        match progress {
            Progress::Pending => {}
            Progress::Ended => st.sock_done = true,
            Progress::Frame(bytes, fds) => {
                st.sock_done = true;
                if let Ok(outcome) = postcard::from_bytes::<Outcome>(&bytes) {
                    st.outcome = Some((outcome, fds));
                }
            }
        }
    }

    pub(crate) fn take_result<R: DeserializeOwned>(&self) -> Result<R, Error> {
        let mut st = self.lock();
        let status = st.status.expect("waited");
        if st.taken {
            // A unit-like return value can be "taken" again.
            return postcard::from_bytes::<R>(&[]).map_err(|_| Error::AlreadyJoined);
        }
        let result = match st.outcome.take() {
            Some((Outcome::Returned(bytes), fds)) => mp_os::handle::provide_fds(fds, || {
                postcard::from_bytes::<R>(&bytes)
            })
            .map_err(|e| Error::Deserialize {
                what: "return value",
                message: e.to_string(),
            }),
            Some((Outcome::Panicked(message), _)) => Err(Error::Panicked { message }),
            Some((Outcome::Failed(message), _)) => Err(Error::Deserialize {
                what: "arguments",
                message,
            }),
            None => match status {
                Status::Exited(0) => {
                    postcard::from_bytes::<R>(&[]).map_err(|_| Error::Exited { code: 0 })
                }
                Status::Exited(code) => Err(Error::Exited { code }),
                Status::Signaled(signal) => Err(Error::Killed { signal }),
            },
        };
        match &result {
            Ok(_) => st.taken = true,
            Err(e) => {
                // Keep the failure for later joins.
                let again = match e {
                    Error::Panicked { message } => Some(Outcome::Panicked(message.clone())),
                    Error::Deserialize { message, .. } => Some(Outcome::Failed(message.clone())),
                    _ => None,
                };
                st.outcome = again.map(|o| (o, Vec::new()));
            }
        }
        drop(st);
        unregister_pid(self.pid);
        result
    }

    pub(crate) fn signal(&self, sig: Signal) -> Result<(), Error> {
        if self.lock().status.is_some() {
            return Ok(());
        }
        match rustix::process::pidfd_send_signal(&self.pidfd, sig) {
            Ok(()) | Err(Errno::SRCH) => Ok(()), // ESRCH: already exited
            Err(e) => Err(Error::os("pidfd_send_signal", e)),
        }
    }
}

fn waitid_pidfd(pidfd: BorrowedFd<'_>) -> Option<Status> {
    loop {
        match rustix::process::waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED) {
            // With WEXITED alone, a child that did not exit normally was
            // killed by a signal (with or without a core dump).
            Ok(Some(info)) => {
                return Some(match info.exit_status() {
                    Some(code) => Status::Exited(code),
                    None => Status::Signaled(info.terminating_signal().unwrap_or(0)),
                });
            }
            Ok(None) => return None,
            Err(Errno::INTR) => {}
            Err(_) => return None,
        }
    }
}

// ---- the registry of children, and what happens at exit ----------------

static CHILDREN: ForkSafeMutex<Vec<Arc<Child>>> = ForkSafeMutex::new(Vec::new());
static ATEXIT: Once = Once::new();
static ATEXIT_PID: AtomicU32 = AtomicU32::new(0);

/// Records a started child (the first time, also installs the exit
/// handler).
pub(crate) fn register(child: Arc<Child>) {
    ATEXIT.call_once(|| {
        ATEXIT_PID.store(std::process::id(), Ordering::SeqCst);
        // Raw libc: rustix has no atexit (a C library function, not a
        // system call).
        // SAFETY: registering a plain extern "C" fn.
        unsafe { libc::atexit(at_exit) };
    });
    CHILDREN.lock().push(child);
}

/// Drops a child's record (`close`, or a dropped `Process` whose child
/// has finished).
pub(crate) fn unregister(child: &Arc<Child>) {
    CHILDREN.lock().retain(|c| !Arc::ptr_eq(c, child));
}

fn unregister_pid(pid: i32) {
    CHILDREN.lock().retain(|c| c.pid != pid);
}

/// In a forked child: forget the parent's children (their sockets must not
/// keep the parent's peers from seeing the parent go away).
pub(crate) fn forget_children_after_fork() {
    // SAFETY: we are the forked child, before any use of the list; the
    // parent's records are dropped below without being read.
    unsafe { CHILDREN.reset_after_fork() };
    {
        let mut list = CHILDREN.lock();
        for c in std::mem::take(&mut *list) {
            // SAFETY: closing this process's copies of descriptors that
            // belong to the parent's bookkeeping; the records are forgotten
            // below so nothing closes them again.
            unsafe {
                rustix::io::close(c.sock.as_raw_fd());
                rustix::io::close(c.pidfd.as_raw_fd());
            }
            std::mem::forget(c);
        }
    }
    ATEXIT_PID.store(0, Ordering::SeqCst);
}

/// Python's exit handler: terminate daemonic children, then join the rest.
extern "C" fn at_exit() {
    if ATEXIT_PID.load(Ordering::SeqCst) != std::process::id() {
        return; // a forked child running the parent's atexit list
    }
    finish_children();
}

/// Terminates daemonic children and waits for all children.
pub(crate) fn finish_children() {
    let children: Vec<Arc<Child>> = CHILDREN.lock().clone();
    log::info!(target: "mp_proc", "process shutting down");
    for c in children.iter().filter(|c| c.daemon) {
        log::debug!(target: "mp_proc", "calling terminate() for daemon {}", c.name);
        let _ = c.signal(Signal::TERM);
    }
    for c in &children {
        log::debug!(target: "mp_proc", "calling join() for process {}", c.name);
        let _ = c.wait(Deadline::never());
    }
}

/// Reaps the registered children that have finished and drops them from the
/// registry; returns the ones still running.
///
/// A finished child whose `Process` is still held keeps its record (and its
/// result) there, for `join`; one whose `Process` was dropped loses its
/// last reference here, which closes its pidfd and socket.
pub(crate) fn reap_finished() -> Vec<Arc<Child>> {
    let children: Vec<Arc<Child>> = CHILDREN.lock().clone();
    let (running, finished): (Vec<_>, Vec<_>) = children
        .into_iter()
        .partition(|c| c.poll_status().is_none());
    if !finished.is_empty() {
        CHILDREN
            .lock()
            .retain(|c| !finished.iter().any(|f| Arc::ptr_eq(c, f)));
    }
    // `finished` is dropped here, outside the registry's lock.
    running
}
