//! `Process`: a function run in another process.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mp_os::handle::Transits;
use mp_os::time::Deadline;
use rustix::event::EventfdFlags;
use rustix::process::Signal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::{self, Child};
use crate::error::Error;
use crate::function::{Function, RawFunction};
use crate::info::{self, ProcessInfo};
use crate::method::{fork, forkserver, spawn};
use crate::start_method::{self, StartMethod};
use crate::wire::{Bootstrap, WIRE_VERSION};
use crate::{hook, run};

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
        hook::check_ready()?;
        let mut slot = self.body.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            return Err(Error::AlreadyStarted);
        }
        let method = self.method.unwrap_or_else(start_method::default_method);
        if method == StartMethod::Fork
            && !start_method::fork_enabled()
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
            Body::Closure(f) => fork::start(|sock| run::run_closure(&boot, sock, f)),
            Body::Function { func, args } => {
                let (args, fds, t) = args.expect("checked above");
                transits = t;
                boot.func = Some(func);
                boot.args = args;
                match method {
                    StartMethod::Fork => fork::start(|sock| run::run_function(boot, fds, sock)),
                    StartMethod::Spawn => spawn::start(&encode(&boot)?, fds),
                    StartMethod::Forkserver => forkserver::start(&encode(&boot)?, fds),
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
        children::register(child.clone());
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
        Ok(self.started()?.pidfd())
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
            children::unregister(c);
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
            children::unregister(c);
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

/// Reaps the children that have finished: those a failed fork server may
/// have forked (see `method::forkserver`), then the registered ones;
/// returns the registered ones still running.
fn reap_finished() -> Vec<Arc<Child>> {
    forkserver::reap_given_up();
    children::reap_finished()
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
        self.child.get().is_some_and(|c| c.is_ready())
    }

    fn readiness_fd(&self) -> BorrowedFd<'_> {
        match self.child.get() {
            Some(c) => c.pidfd(),
            None => idle_fd(),
        }
    }
}
