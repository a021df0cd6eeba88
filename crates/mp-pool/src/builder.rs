//! [`PoolBuilder`]: a [`Pool`]'s settings, and its start.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mp_channel::{Bytes, Queue, WaitMode};
use mp_proc::{Function, StartMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dispatch::Dispatcher;
use crate::shared::{Config, Shared};
use crate::worker::{Init, PassFd};
use crate::{Error, Pool};

/// Ring bytes of the shared result queue.
const INBOX_RING: usize = 4 << 20;

/// Configures a [`Pool`]: see [`Pool::builder`].
pub struct PoolBuilder {
    processes: Option<usize>,
    init: Option<Result<Init, Error>>,
    max_tasks_per_child: Option<u64>,
    chunksize: Option<usize>,
    start_method: Option<StartMethod>,
    task_timeout: Option<Duration>,
    retries: u32,
    wait_mode: WaitMode,
    progress: bool,
    insights: bool,
}

impl fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("initializer", &self.init.is_some())
            .field("max_tasks_per_child", &self.max_tasks_per_child)
            .field("chunksize", &self.chunksize)
            .field("start_method", &self.start_method)
            .field("task_timeout", &self.task_timeout)
            .field("retries", &self.retries)
            .field("insights", &self.insights)
            .finish()
    }
}

impl PoolBuilder {
    pub(crate) fn new() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            init: None,
            max_tasks_per_child: None,
            chunksize: None,
            start_method: None,
            task_timeout: None,
            retries: 0,
            wait_mode: WaitMode::Adaptive,
            progress: false,
            insights: false,
        }
    }

    /// Number of worker processes (default: [`mp_proc::cpu_count`]).
    pub fn processes(mut self, n: usize) -> Self {
        self.processes = Some(n);
        self
    }

    /// Runs `f(args)` once in each worker before its first task (Python's
    /// `initializer` and `initargs`). The arguments may hold handles (a
    /// shared array, a queue, ...): this is how every worker gets a big
    /// read-only input once. If it panics, the pool is broken: every task
    /// fails with [`Error::Initializer`].
    pub fn initializer<A: Serialize + DeserializeOwned + 'static>(
        mut self,
        f: fn(A),
        args: A,
    ) -> Self {
        let func = Function::new(f).raw();
        // Every worker (and every replacement) decodes these arguments:
        // the channels in them stay connected as long as the pool keeps
        // them, and no worker releases anything.
        let (bytes, fds, transits) =
            mp_os::handle::collect_handles(|| postcard::to_allocvec(&args));
        self.init = Some(
            bytes
                .map(|b| Init {
                    func,
                    args: Bytes(b),
                    fds: fds.into_iter().map(|f| PassFd(Arc::new(f))).collect(),
                    _keep: Some(Arc::new(transits)),
                })
                .map_err(|e| Error::InvalidArgument(format!("initializer arguments: {e}"))),
        );
        self
    }

    /// Replaces a worker after it has run `n` tasks (chunks) (Python's
    /// `maxtasksperchild`). Default: never.
    pub fn max_tasks_per_child(mut self, n: u64) -> Self {
        self.max_tasks_per_child = Some(n);
        self
    }

    /// The chunk size of `map` and `imap` calls that do not give one
    /// (default: `map` about `len / (4 x processes)` as in Python, `imap` 1).
    pub fn chunksize(mut self, n: usize) -> Self {
        self.chunksize = Some(n);
        self
    }

    /// How workers are started (default: the process-wide start method,
    /// forkserver unless changed; see [`mp_proc::set_start_method`]).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.start_method = Some(method);
        self
    }

    /// Uses a context's start method (Python's `ctx.Pool(...)`).
    pub fn context(self, ctx: &mp_proc::Context) -> Self {
        self.start_method(ctx.method())
    }

    /// Kills a worker whose task runs longer than `timeout`: the task fails
    /// with [`Error::TaskTimeout`] (or is retried) and the worker is
    /// replaced. Default: no limit.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.task_timeout = Some(timeout);
        self
    }

    /// Runs a task again, up to `n` more times, when its worker dies or it
    /// times out (default 0: the task fails). Panics are not retried.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// How the dispatcher and the workers wait on their channels (default
    /// [`WaitMode::Adaptive`]: spin briefly, then sleep).
    pub fn wait_mode(mut self, mode: WaitMode) -> Self {
        self.wait_mode = mode;
        self
    }

    /// Shows an `indicatif` progress bar on standard error for `map`,
    /// `map_results`, `starmap` and `imap` calls.
    #[cfg(feature = "progress")]
    #[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Makes every worker measure where its time goes, for
    /// [`Pool::insights`]: start-up, initializer, the task function,
    /// waiting for work, receiving arguments and sending results (a few
    /// clock reads per chunk; none per item). Without it the insights hold
    /// only the counts of tasks and items. Default: off.
    ///
    /// ```
    /// use mp_pool::Pool;
    ///
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// let pool = Pool::builder().processes(2).insights(true).build()?;
    /// pool.map(double, 0..1000)?;
    /// let insights = pool.insights();
    /// assert!(insights.timed);
    /// assert_eq!(insights.total().items, 1000);
    /// println!("{insights}"); // a table: one line per worker and a total
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn insights(mut self, on: bool) -> Self {
        self.insights = on;
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for zero processes, chunk size or
    /// `max_tasks_per_child`, a zero task timeout, or initializer arguments
    /// that cannot be serialized; [`Error::Process`] when a worker cannot
    /// start; [`Error::Channel`] when the channels cannot be created.
    pub fn build(self) -> Result<Pool, Error> {
        let processes = self.processes.unwrap_or_else(mp_proc::cpu_count);
        if processes == 0 {
            return Err(Error::InvalidArgument(
                "the number of processes must be at least 1".into(),
            ));
        }
        if self.chunksize == Some(0) {
            return Err(Error::InvalidArgument(
                "chunksize must be at least 1".into(),
            ));
        }
        if self.max_tasks_per_child == Some(0) {
            return Err(Error::InvalidArgument(
                "max_tasks_per_child must be at least 1".into(),
            ));
        }
        if self.task_timeout == Some(Duration::ZERO) {
            return Err(Error::InvalidArgument(
                "task_timeout must not be zero".into(),
            ));
        }
        let init = self.init.transpose()?;
        let inbox = Queue::builder()
            .ring_bytes(INBOX_RING)
            .wait_mode(self.wait_mode)
            .build()
            .map_err(Error::channel)?;
        let shared = Arc::new(Shared::new(
            Config {
                processes,
                init,
                max_tasks_per_child: self.max_tasks_per_child.unwrap_or(0),
                chunksize: self.chunksize,
                start_method: self.start_method,
                task_timeout: self.task_timeout,
                retries: self.retries,
                wait_mode: self.wait_mode,
                progress: self.progress,
                insights: self.insights,
            },
            inbox,
        ));
        let d = Dispatcher::start(shared.clone())?;
        let thread = std::thread::Builder::new()
            .name("mp-pool-dispatcher".into())
            .spawn(move || d.run())
            .map_err(|e| Error::Channel(Box::new(e)))?;
        Ok(Pool::from_parts(shared, thread))
    }
}

/// How a pool is made: here, beside its settings.
impl Pool {
    /// A pool of `processes` workers with default settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0, otherwise as
    /// [`PoolBuilder::build`].
    pub fn new(processes: usize) -> Result<Pool, Error> {
        Pool::builder().processes(processes).build()
    }

    /// A builder for the other settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_pool::Pool;
    ///
    /// fn greet(name: String) {
    ///     eprintln!("{name}: worker {} starting", std::process::id());
    /// }
    /// fn double(x: i32) -> i32 { x * 2 }
    ///
    /// let pool = Pool::builder()
    ///     .processes(2)
    ///     .initializer(greet, "pool".to_string())
    ///     .max_tasks_per_child(10)
    ///     .task_timeout(Duration::from_secs(60))
    ///     .build()?;
    /// assert_eq!(pool.map(double, [1, 2, 3])?, vec![2, 4, 6]);
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }
}
