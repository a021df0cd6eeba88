//! Python's `multiprocessing.context`: the program-wide start method, and
//! [`Context`], a start method bundled with the constructors that use it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::process::Process;
use crate::start_method::{
    StartMethod, allow_fork, default_method, fork_enabled, set_default, set_default_once,
};

/// Opts in to the fork start method for this program.
///
/// ```
/// // SAFETY: this program does not fork while other threads hold locks
/// // that the children need.
/// unsafe { mp_proc::enable_fork() };
/// ```
///
/// # Safety
///
/// A forked child contains only the thread that called `start()`: locks
/// held by other threads at that moment stay locked forever in the child,
/// and data they were changing stays half-changed. The caller guarantees
/// that the targets it starts with [`StartMethod::Fork`] do not depend on
/// such state (Python's documentation gives the same warning). The crate
/// prints a warning when it forks a process that has other threads.
pub unsafe fn enable_fork() {
    allow_fork();
}

/// Sets the program-wide default start method, once (Python's
/// `set_start_method`).
///
/// ```
/// use mp_proc::{StartMethod, get_start_method, set_start_method};
/// set_start_method(StartMethod::Spawn)?;
/// assert_eq!(get_start_method(), StartMethod::Spawn);
/// // Setting the same method again is fine; another one is an error.
/// set_start_method(StartMethod::Spawn)?;
/// assert!(set_start_method(StartMethod::Forkserver).is_err());
/// # Ok::<(), mp_proc::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::StartMethodAlreadySet`] when another method was set before;
/// [`Error::ForkNotEnabled`] for fork without [`enable_fork`].
pub fn set_start_method(method: StartMethod) -> Result<(), Error> {
    if method == StartMethod::Fork && !fork_enabled() {
        return Err(Error::ForkNotEnabled);
    }
    if set_default_once(method) {
        Ok(())
    } else {
        Err(Error::StartMethodAlreadySet(default_method()))
    }
}

/// Sets or clears the program-wide default start method even if one was
/// set before (Python's `set_start_method(method, force=True)`); `None`
/// goes back to the default (forkserver), as Python's
/// `set_start_method(None, force=True)`.
///
/// ```
/// use mp_proc::{StartMethod, get_start_method, set_start_method, set_start_method_force};
///
/// set_start_method(StartMethod::Spawn)?;
/// assert!(set_start_method(StartMethod::Forkserver).is_err()); // not forced
/// set_start_method_force(Some(StartMethod::Forkserver))?;
/// assert_eq!(get_start_method(), StartMethod::Forkserver);
/// set_start_method_force(None)?;                               // unset again
/// set_start_method(StartMethod::Spawn)?;
/// # Ok::<(), mp_proc::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::ForkNotEnabled`] for fork without [`enable_fork`].
pub fn set_start_method_force(method: Option<StartMethod>) -> Result<(), Error> {
    if method == Some(StartMethod::Fork) && !fork_enabled() {
        return Err(Error::ForkNotEnabled);
    }
    set_default(method);
    Ok(())
}

/// The program-wide default start method; in a child, the method that
/// started it unless the child set another.
pub fn get_start_method() -> StartMethod {
    default_method()
}

/// A start method bundled with the constructors that use it (Python's
/// `get_context`).
///
/// ```
/// use mp_proc::{StartMethod, get_context};
///
/// fn double(x: u32) -> u32 { x * 2 }
///
/// let ctx = get_context(StartMethod::Spawn)?;
/// let p = ctx.process(double, 21);
/// p.start()?;
/// assert_eq!(p.join()?, 42);
/// # Ok::<(), mp_proc::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    method: StartMethod,
}

/// A context for `method`.
///
/// # Errors
///
/// [`Error::ForkNotEnabled`] for fork without [`enable_fork`].
pub fn get_context(method: StartMethod) -> Result<Context, Error> {
    if method == StartMethod::Fork && !fork_enabled() {
        return Err(Error::ForkNotEnabled);
    }
    Ok(Context { method })
}

impl Context {
    /// The context's start method.
    pub fn method(&self) -> StartMethod {
        self.method
    }

    /// A process that will use this context's start method.
    pub fn process<A, R>(&self, target: fn(A) -> R, args: A) -> Process<R>
    where
        A: Serialize + DeserializeOwned + 'static,
        R: Serialize + DeserializeOwned + 'static,
    {
        Process::new(target, args).start_method(self.method)
    }
}
