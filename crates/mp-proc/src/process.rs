//! `Process`: a function run in another process.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use mp_os::handle::Transits;
use mp_os::time::Deadline;
use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Signal, WaitId, WaitIdOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::forksafe::ForkSafeMutex;
use crate::info::{self, ProcessInfo};
use crate::method::{self, StartMethod};
use crate::result::{FrameReader, Progress};
use crate::wire::{Bootstrap, MAX_FRAME, Outcome, WIRE_VERSION};
use crate::{Error, Function, RawFunction, entry};

pub(crate) enum Body<R> {
    Function {
        func: RawFunction,
        /// The encoded arguments, their descriptors, and what keeps the
        /// channels in them connected until the child has them (released
        /// with the body, or handed over to the child when it starts).
        args: Result<(Vec<u8>, Vec<OwnedFd>, Transits), String>,
    },
    Closure(Box<dyn FnOnce() -> R + Send>),
}

/// A function running (or about to run) in another process: Python's
/// `multiprocessing.Process`.
///
/// The target is a `fn` item or a non-capturing closure taking one
/// argument; a target with several parameters takes them as a tuple that
/// it destructures. Arguments and the return value are serde types, and
/// handles (shared values, locks, queues, ...) in the arguments re-attach
/// in the child. [`join`](Process::join) hands back the return value.
///
/// ```
/// use mp_proc::Process;
///
/// fn square_sum((a, b): (i64, i64)) -> i64 {
///     a * a + b * b
/// }
///
/// let p = Process::new(square_sum, (3, 4)).name("worker");
/// p.start()?;
/// assert_eq!(p.join()?, 25);
/// assert_eq!(p.exitcode(), Some(0));
/// # Ok::<(), mp_proc::Error>(())
/// ```
pub struct Process<R = ()> {
    name: String,
    daemon: bool,
    method: Option<StartMethod>,
    body: Mutex<Option<Body<R>>>,
    child: OnceLock<Arc<Child>>,
    closed: AtomicBool,
    _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for Process<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.child.get() {
            None => "initial".to_string(),
            Some(c) => match c.poll_status() {
                None => "started".to_string(),
                Some(s) => format!("stopped exitcode={}", s.code()),
            },
        };
        f.debug_struct("Process")
            .field("name", &self.name)
            .field("pid", &self.pid())
            .field("daemon", &self.daemon)
            .field("state", &state)
            .finish()
    }
}

impl<R: Serialize + DeserializeOwned + 'static> Process<R> {
    /// Describes a process that will run `target(args)`; nothing happens
    /// until [`start`](Process::start).
    ///
    /// The arguments are serialized now; an error (for instance a handle
    /// that cannot travel) is reported by `start`.
    pub fn new<A: Serialize + DeserializeOwned + 'static>(
        target: fn(A) -> R,
        args: A,
    ) -> Process<R> {
        let (args, fds, transits) = mp_os::handle::collect_handles(|| postcard::to_allocvec(&args));
        let args = args.map(|b| (b, fds, transits)).map_err(|e| e.to_string());
        Process::with_body(Body::Function {
            func: Function::new(target).raw(),
            args,
        })
    }

    /// Describes a process that runs a capturing closure. Only the fork
    /// start method can run a closure (the child is a copy of this
    /// process, so the closure's captures exist there).
    ///
    /// ```
    /// use mp_proc::Process;
    ///
    /// let greeting = String::from("hello");
    /// // SAFETY: this doc test does not hold locks in other threads while
    /// // forking.
    /// let p = unsafe { Process::from_closure(move || format!("{greeting} from a fork")) };
    /// p.start()?;
    /// assert_eq!(p.join()?, "hello from a fork");
    /// # Ok::<(), mp_proc::Error>(())
    /// ```
    ///
    /// # Safety
    ///
    /// The child is made with `fork(2)`: only the calling thread exists in
    /// it, so any lock or state another thread held at that moment stays
    /// held or half-updated in the child. The caller guarantees that the
    /// closure and everything it calls in the child are sound under that
    /// condition (no locks that other threads may hold, no reliance on
    /// other threads). Calling this is also the opt-in to the fork method
    /// for this one process.
    pub unsafe fn from_closure<F: FnOnce() -> R + Send + 'static>(f: F) -> Process<R> {
        let mut p = Process::with_body(Body::Closure(Box::new(f)));
        p.method = Some(StartMethod::Fork);
        p
    }

    fn with_body(body: Body<R>) -> Process<R> {
        let (name, _) = info::next_child_name();
        Process {
            name,
            // Python: `self.daemon = current_process().daemon`.
            daemon: info::current_process().daemon(),
            method: None,
            body: Mutex::new(Some(body)),
            child: OnceLock::new(),
            closed: AtomicBool::new(false),
            _result: PhantomData,
        }
    }

    /// Sets the name (default `Process-N`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes the process a daemon: terminated when this process exits, and
    /// killed if this process dies. Python's `daemon=True`.
    ///
    /// The default is the creating process's own flag, as in Python: the
    /// children of a daemon are daemons unless this says otherwise.
    /// Python forbids a daemon to start children at all
    /// (`AssertionError: daemonic processes are not allowed to have
    /// children`), because its `terminate()` would orphan them; here a
    /// daemon may start children: its daemonic children are terminated
    /// when it exits and killed if it dies (they watch it), so none
    /// outlives it. A non-daemonic child of a daemon (`.daemon(false)`
    /// explicitly) is joined when the daemon exits normally, but outlives
    /// a daemon that is killed.
    ///
    /// ```
    /// use mp_proc::{Process, current_process};
    ///
    /// fn am_i_a_daemon(_: ()) -> bool {
    ///     current_process().daemon()
    /// }
    ///
    /// let p = Process::new(am_i_a_daemon, ()).daemon(true);
    /// assert!(p.is_daemon());
    /// p.start()?;
    /// assert!(p.join()?);
    /// // In the first process the default is false.
    /// assert!(!Process::new(am_i_a_daemon, ()).is_daemon());
    /// # Ok::<(), mp_proc::Error>(())
    /// ```
    pub fn daemon(mut self, daemon: bool) -> Self {
        self.daemon = daemon;
        self
    }

    /// Chooses the start method for this process (default: the one set with
    /// [`set_start_method`](crate::set_start_method), or forkserver).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Starts the process.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyStarted`] the second time, [`Error::Closed`] after
    /// `close`, [`Error::Serialize`] for arguments that cannot travel,
    /// [`Error::TargetOutsideBinary`], [`Error::ForkNotEnabled`] or
    /// [`Error::ClosureNeedsFork`] for a start method that cannot run this
    /// process, [`Error::NotInitialized`]/[`Error::RecursiveStart`] when the
    /// child entry hook is not in place, and OS errors.
    pub fn start(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        entry::check_ready()?;
        let mut slot = self.body.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            return Err(Error::AlreadyStarted);
        }
        let method = self.method.unwrap_or_else(method::default_method);
        if method == StartMethod::Fork
            && !method::fork_enabled()
            && !matches!(slot.as_ref(), Some(Body::Closure(_)))
        {
            return Err(Error::ForkNotEnabled);
        }
        if method != StartMethod::Fork && matches!(slot.as_ref(), Some(Body::Closure(_))) {
            return Err(Error::ClosureNeedsFork);
        }
        if let Some(Body::Function { func, args }) = slot.as_ref() {
            if !func.is_portable() {
                return Err(Error::TargetOutsideBinary);
            }
            if let Err(e) = args {
                return Err(Error::Serialize {
                    what: "arguments",
                    message: e.clone(),
                });
            }
        }
        let body = slot.take().expect("checked above");
        drop(slot);
        // As Python's `start` does: reap the children that have finished, so
        // that processes started and dropped without `join` leave nothing.
        reap_finished();
        let me = info::current_process();
        let mut boot = Bootstrap {
            version: WIRE_VERSION,
            func: None,
            name: self.name.clone(),
            ident: 0,
            daemon: self.daemon,
            method: match body {
                Body::Closure(_) => StartMethod::Fork,
                Body::Function { .. } => method,
            },
            parent_pid: me.pid(),
            parent_token: mp_os::liveness::process_token(),
            parent_name: me.name().to_string(),
            args: Vec::new(),
            log_level: crate::logging::child_level(),
        };
        // Dropped (releasing the registrations) if the start fails.
        let mut transits = Transits::default();
        let boot_method = boot.method;
        let started = match body {
            Body::Closure(f) => {
                method::fork::start(|sock| crate::child::run_closure(&boot, sock, f))
            }
            Body::Function { func, args } => {
                let (args, fds, t) = args.expect("checked above");
                transits = t;
                boot.func = Some(func);
                boot.args = args;
                match method {
                    StartMethod::Fork => {
                        method::fork::start(|sock| crate::child::run_function(boot, fds, sock))
                    }
                    StartMethod::Spawn => method::spawn::start(&encode(&boot)?, fds),
                    StartMethod::Forkserver => method::forkserver::start(&encode(&boot)?, fds),
                }
            }
        }?;
        // The channels in the arguments now stay connected as long as the
        // child lives (it may not have decoded them yet).
        transits.hand_over(started.pid as u32);
        let child = Arc::new(Child::new(
            started,
            self.name.clone(),
            self.daemon,
            boot_method,
        ));
        log::debug!(
            target: "mp_proc",
            "started process {} (pid {}, {boot_method})",
            self.name,
            child.pid
        );
        register(child.clone());
        let _ = self.child.set(child);
        Ok(())
    }

    /// Waits for the process to finish and returns the target's return
    /// value.
    ///
    /// # Errors
    ///
    /// [`Error::Panicked`] with the panic message, [`Error::Exited`] with
    /// the exit code (for example after `std::process::exit`),
    /// [`Error::Killed`] with the signal, [`Error::NotStarted`],
    /// [`Error::Closed`], [`Error::AlreadyJoined`] once the value was
    /// taken (for a unit return value a second `join` is `Ok(())`), or
    /// [`Error::Deserialize`].
    pub fn join(&self) -> Result<R, Error> {
        let child = self.started()?;
        child.wait(Deadline::never())?;
        child.take_result::<R>()
    }

    /// Waits at most `timeout` for the process to finish: `Ok(None)` if it
    /// is still running then (it keeps running), otherwise as
    /// [`join`](Process::join).
    ///
    /// # Errors
    ///
    /// As [`join`](Process::join).
    pub fn join_timeout(&self, timeout: Duration) -> Result<Option<R>, Error> {
        let child = self.started()?;
        if !child.wait(Deadline::after(Some(timeout)))? {
            return Ok(None);
        }
        child.take_result::<R>().map(Some)
    }
}

impl<R> Process<R> {
    fn started(&self) -> Result<&Arc<Child>, Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.child.get().ok_or(Error::NotStarted)
    }

    /// The process's name.
    pub fn get_name(&self) -> &str {
        &self.name
    }

    /// Whether the process is a daemon.
    pub fn is_daemon(&self) -> bool {
        self.daemon
    }

    /// The OS process id, once started.
    pub fn pid(&self) -> Option<u32> {
        self.child.get().map(|c| c.pid as u32)
    }

    /// Whether the process has started and not yet finished.
    pub fn is_alive(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
            && self.child.get().is_some_and(|c| c.poll_status().is_none())
    }

    /// The exit code: `None` while running (or before start), the code
    /// after a normal exit, and minus the signal number when killed by a
    /// signal, as in Python.
    pub fn exitcode(&self) -> Option<i32> {
        self.child
            .get()
            .and_then(|c| c.poll_status())
            .map(|s| s.code())
    }

    /// Sends SIGTERM (Python's `terminate`). No effect once the process has
    /// finished.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`], [`Error::Closed`], or the OS error.
    pub fn terminate(&self) -> Result<(), Error> {
        self.started()?.signal(Signal::TERM)
    }

    /// Sends SIGINT (Python 3.14's `interrupt`), as Ctrl-C would. A Rust
    /// child without a SIGINT handler dies of it (exit code `-2`; a Python
    /// child raises `KeyboardInterrupt` instead, usually exit code 1); a
    /// child that handles SIGINT decides. No effect once the process has
    /// finished.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_proc::Process;
    ///
    /// fn nap(s: u64) { std::thread::sleep(Duration::from_secs(s)) }
    ///
    /// let p = Process::new(nap, 60);
    /// p.start()?;
    /// p.interrupt()?;
    /// assert!(p.join().is_err());
    /// assert_eq!(p.exitcode(), Some(-2));
    /// # Ok::<(), mp_proc::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`terminate`](Process::terminate).
    pub fn interrupt(&self) -> Result<(), Error> {
        self.started()?.signal(Signal::INT)
    }

    /// Sends SIGKILL (Python's `kill`). No effect once the process has
    /// finished.
    ///
    /// # Errors
    ///
    /// As [`terminate`](Process::terminate).
    pub fn kill(&self) -> Result<(), Error> {
        self.started()?.signal(Signal::KILL)
    }

    /// A descriptor that becomes readable when the process ends (a pidfd),
    /// for `poll`/`select` style waiting (Python's `sentinel`).
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`] or [`Error::Closed`].
    pub fn sentinel(&self) -> Result<BorrowedFd<'_>, Error> {
        Ok(self.started()?.pidfd.as_fd())
    }

    /// Releases the process's resources; any later use is
    /// [`Error::Closed`].
    ///
    /// # Errors
    ///
    /// [`Error::StillRunning`] if the process has not finished.
    pub fn close(&self) -> Result<(), Error> {
        if let Some(c) = self.child.get() {
            if c.poll_status().is_none() {
                return Err(Error::StillRunning);
            }
            unregister(c);
        }
        self.closed.store(true, Ordering::Release);
        Ok(())
    }

    /// A description of this process (name, pid, daemon, and once
    /// started its start method).
    pub fn info(&self) -> ProcessInfo {
        ProcessInfo {
            name: self.name.clone(),
            pid: self.pid().unwrap_or(0),
            daemon: self.daemon,
            start_method: self.child.get().map(|c| c.method),
        }
    }
}

/// Dropping a `Process` does not stop its child, as in Python: the child
/// runs to its end, and the next [`start`](Process::start) or
/// [`active_children`] reaps it and closes its descriptors (at once if it
/// has already finished). Its return value is discarded: the child's
/// attempt to send it fails instead of waiting for a reader.
impl<R> Drop for Process<R> {
    fn drop(&mut self) {
        let Some(c) = self.child.get() else {
            return;
        };
        if c.poll_status().is_some() {
            unregister(c);
        } else {
            c.discard_result();
        }
    }
}

fn encode(boot: &Bootstrap) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(boot).map_err(|e| Error::Serialize {
        what: "arguments",
        message: e.to_string(),
    })
}

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
    fn new(s: Started, name: String, daemon: bool, method: StartMethod) -> Child {
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

    /// Nobody will read the result: shut down our side of the socket for
    /// reading, so that the child's send fails (`EPIPE`) instead of waiting
    /// for room once the socket buffer is full. The child's own reading
    /// side stays open: a daemonic child does not mistake this for the
    /// parent's death.
    fn discard_result(&self) {
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

    fn take_result<R: DeserializeOwned>(&self) -> Result<R, Error> {
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

    fn signal(&self, sig: Signal) -> Result<(), Error> {
        if self.lock().status.is_some() {
            return Ok(());
        }
        match rustix::process::pidfd_send_signal(&self.pidfd, sig) {
            Ok(()) | Err(Errno::SRCH) => Ok(()), // ESRCH: already exited
            Err(e) => Err(Error::os("pidfd_send_signal", e)),
        }
    }
}

/// `poll(2)` until one of `fds` is ready or `deadline` passes: how many are
/// ready (0 at the deadline).
pub(crate) fn poll_until(fds: &mut [PollFd<'_>], deadline: Deadline) -> rustix::io::Result<usize> {
    let ms = deadline.poll_timeout_ms();
    let timeout = (ms >= 0).then(|| Timespec {
        tv_sec: i64::from(ms / 1000),
        tv_nsec: i64::from(ms % 1000) * 1_000_000,
    });
    rustix::event::poll(fds, timeout.as_ref())
}

/// Whether `fd` becomes readable before `deadline`.
pub(crate) fn poll_fd(fd: BorrowedFd<'_>, deadline: Deadline) -> bool {
    loop {
        match poll_until(&mut [PollFd::from_borrowed_fd(fd, PollFlags::IN)], deadline) {
            Ok(n) => return n > 0,
            Err(Errno::INTR) => {}
            Err(_) => return false,
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
static ATEXIT_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn register(child: Arc<Child>) {
    ATEXIT.call_once(|| {
        ATEXIT_PID.store(std::process::id(), Ordering::SeqCst);
        // Raw libc: rustix has no atexit (a C library function, not a
        // system call).
        // SAFETY: registering a plain extern "C" fn.
        unsafe { libc::atexit(at_exit) };
    });
    CHILDREN.lock().push(child);
}

fn unregister(child: &Arc<Child>) {
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

/// The children started by this process that are still running; finished
/// ones are reaped and dropped from the list, as Python's
/// `active_children` does.
///
/// ```
/// assert!(mp_proc::active_children().iter().all(|c| c.is_alive()));
/// ```
pub fn active_children() -> Vec<ProcessInfo> {
    reap_finished()
        .iter()
        .map(|c| ProcessInfo {
            name: c.name.clone(),
            pid: c.pid as u32,
            daemon: c.daemon,
            start_method: Some(c.method),
        })
        .collect()
}

/// Reaps the registered children that have finished and drops them from the
/// registry; returns the ones still running.
///
/// A finished child whose `Process` is still held keeps its record (and its
/// result) there, for `join`; one whose `Process` was dropped loses its
/// last reference here, which closes its pidfd and socket.
fn reap_finished() -> Vec<Arc<Child>> {
    crate::method::forkserver::reap_given_up();
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

/// A never-signalled descriptor for processes that have not started.
fn idle_fd() -> BorrowedFd<'static> {
    static IDLE: OnceLock<OwnedFd> = OnceLock::new();
    IDLE.get_or_init(|| {
        rustix::event::eventfd(0, EventfdFlags::CLOEXEC).unwrap_or_else(|e| panic!("eventfd: {e}"))
    })
    .as_fd()
}

/// A process is ready for [`mp_os::wait::wait`] once it has finished (its
/// pidfd becomes readable), like a sentinel in Python's
/// `multiprocessing.connection.wait`.
///
/// ```
/// use std::time::Duration;
/// use mp_proc::Process;
///
/// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
///
/// let slow = Process::new(nap, 5_000);
/// let quick = Process::new(nap, 1);
/// slow.start()?;
/// quick.start()?;
/// let ready = mp_os::wait::wait(&[&slow, &quick], Some(Duration::from_secs(30))).unwrap();
/// assert_eq!(ready, vec![1]);
/// slow.kill()?;
/// # let _ = slow.join(); quick.join()?;
/// # Ok::<(), mp_proc::Error>(())
/// ```
impl<R> mp_os::wait::Waitable for Process<R> {
    fn is_ready(&self) -> bool {
        self.child
            .get()
            .is_some_and(|c| c.lock().status.is_some() || poll_fd(c.pidfd.as_fd(), Deadline::now()))
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        match self.child.get() {
            Some(c) => c.pidfd.as_fd(),
            None => idle_fd(),
        }
    }
}
