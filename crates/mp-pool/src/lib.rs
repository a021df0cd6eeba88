//! Process pools for Rust: Python's `multiprocessing.Pool` (and
//! `multiprocessing.pool.ThreadPool`), built on `mp-proc` processes and
//! `mp-channel` rings, without Python's hangs.
//!
//! ```
//! use mp_pool::Pool;
//!
//! fn do_calculation(data: i64) -> i64 {
//!     data * 2
//! }
//!
//! let pool = Pool::new(2)?;
//! let outputs = pool.map(do_calculation, 0..10)?;
//! assert_eq!(outputs, (0..10).map(|x| x * 2).collect::<Vec<_>>());
//! pool.close();
//! pool.join()?;
//! # Ok::<(), mp_pool::Error>(())
//! ```
//!
//! # What is where
//!
//! * [`Pool`] (and [`PoolBuilder`]): `map`, `map_chunked`, `starmap`,
//!   `try_map`, `map_results`, `map_async`, `apply`, `apply_async`,
//!   `imap`, `imap_unordered`, `try_imap`, `close`, `join`, `terminate`.
//! * [`ThreadPool`]: the same calls on rayon threads, for any `Fn`.
//! * [`AsyncResult`], [`Callbacks`], [`IMap`]: what asynchronous and
//!   streaming calls hand back.
//! * [`Insights`] ([`Pool::insights`]): tasks, items and where each
//!   worker's time went.
//! * [`Error`]: every failure, task failures included.
//! * [`ProcessPoolExecutor`], [`ThreadPoolExecutor`], [`Future`],
//!   [`as_completed`], [`wait`]: Python's `concurrent.futures` on the same
//!   pools (see below).
//!
//! # Targets
//!
//! A process pool runs `fn(A) -> R` items (or non-capturing closures) of
//! one parameter; a function of several parameters takes a tuple, which is
//! what Python's `starmap` is for. Arguments and results are serde types.
//! The function travels as an offset in this executable
//! ([`mp_proc::Function`]), so workers need no registry.
//!
//! # Failures
//!
//! * A task that panics fails with [`Error::TaskPanicked`] and the panic
//!   message; the worker goes on.
//! * A worker that dies (killed, aborted, out of memory) fails the task it
//!   was running with [`Error::WorkerDied`] (exit code or signal), or runs
//!   it again elsewhere with [`PoolBuilder::retries`]; its queued tasks run
//!   elsewhere, a new worker takes its place, and the call completes.
//!   Python's pool hangs forever here.
//! * [`PoolBuilder::task_timeout`] kills and replaces a worker whose task
//!   runs over ([`Error::TaskTimeout`]).
//! * `map` fails fast with the first failure, as Python raises;
//!   [`Pool::map_results`] gives every item's own result instead.
//!
//! # Big inputs and outputs
//!
//! Task arguments and results are copied through shared-memory rings
//! (postcard-encoded, or as native bytes for plain numbers), once each
//! way. For a big read-only input that every task needs, put it in shared memory once and pass the handle, which
//! re-attaches in each worker without copying the data:
//!
//! * in the initializer's arguments ([`PoolBuilder::initializer`]): the
//!   initializer stores the handle in a `static` (a `OnceLock`) that the
//!   tasks read; the handle's descriptor travels with the worker's start
//!   arguments;
//! * or in each task's arguments (an `mp_shm::Array<T>` or `RawArray<T>` is
//!   a serde value): the workers re-open it through `/proc/PID/fd/N` while
//!   the pool keeps the task's arguments alive.
//!
//! For big outputs, let the workers write disjoint parts of one shared
//! array (the "image loading" pattern) and return nothing:
//!
//! ```
//! use mp_pool::Pool;
//! use mp_shm::RawArray;
//!
//! // Fills rows `row` of a `width`-wide image.
//! fn fill_row((image, row, width): (RawArray<u32>, usize, usize)) {
//!     for x in 0..width {
//!         image.set(row * width + x, (row * 1000 + x) as u32);
//!     }
//! }
//!
//! let (w, h) = (64, 16);
//! let image = RawArray::<u32>::zeroed(w * h)?;
//! let pool = Pool::new(2)?;
//! pool.map(fill_row, (0..h).map(|row| (image.clone(), row, w)))?;
//! assert_eq!(image.get(5 * w + 7), 5007);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Executors and futures
//!
//! Python's `concurrent.futures` API on the same machinery: `submit`
//! returns a [`Future`] (`result`, `result_timeout`, `done`, `running`,
//! `cancel`, `add_done_callback`, and `.await`); [`as_completed`] and
//! [`wait`] watch many; `map` yields results in order. [`AsyncResult`] can
//! be awaited too.
//!
//! ```
//! use mp_pool::{ProcessPoolExecutor, ReturnWhen, wait};
//!
//! fn slow_square(x: u64) -> u64 {
//!     std::thread::sleep(std::time::Duration::from_millis(10 * x));
//!     x * x
//! }
//!
//! let ex = ProcessPoolExecutor::new(2)?;
//! let futs: Vec<_> = (1..=4).map(|x| ex.submit(slow_square, x)).collect::<Result<_, _>>()?;
//! let r = wait(&futs, None, ReturnWhen::AllCompleted);
//! assert_eq!(r.done.len(), 4);
//! assert_eq!(futs[3].result()?, 16);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A worker that dies fails only its own call ([`FutureError::WorkerDied`])
//! and is replaced, where Python breaks the whole executor
//! (`BrokenProcessPool`); [`ExecutorBuilder::break_on_worker_death`] asks
//! for Python's behaviour.
//!
//! # Design
//!
//! One dispatcher thread in the parent owns the workers. Each worker has a
//! private task pipe (so the dispatcher always knows which tasks a worker
//! holds) and all workers answer through one shared result queue, on which
//! the dispatcher blocks (adaptive spin, then futex). A few tasks are kept
//! in flight per worker (more for tiny tasks), so workers do not wait for
//! the dispatcher. Worker deaths are seen through pidfds. The calling
//! thread encodes the chunks (one buffer per chunk) and decodes
//! nothing: results are decoded by the dispatcher into the call's
//! collector. See the crate README for the details and measurements.
//!
//! # Cargo features
//!
//! * `progress` (off by default): `PoolBuilder::progress` shows an
//!   `indicatif` progress bar on standard error during long maps.
//!
//! Linux only.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod builder;
mod call;
mod collect;
mod dispatch;
mod error;
mod insights;

mod executor;
mod pool;
mod shared;
mod task;
mod task_pool;
mod thread_pool;
mod worker;

pub use collect::{AsyncResult, CallKind, Callbacks, IMap, Sink, Submit};
pub use error::Error;
pub use insights::{Insights, WorkerInsights};

pub use builder::PoolBuilder;
pub use executor::{
    AsCompleted, ExecutorBuilder, Future, FutureError, MapIter, ProcessPoolExecutor, ReturnWhen,
    ThreadPoolExecutor, WaitResult, as_completed, wait,
};
pub use pool::Pool;
pub use task_pool::TaskPool;
pub use thread_pool::ThreadPool;

/// A boxed error, what the input of `try_map`/`try_imap` may fail with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The child-entry hook ([`mp_proc::init`]): a worker process runs its
/// loop here and never returns. It also runs before `main` on its own;
/// calling it first thing in `main` documents the fact.
///
/// ```
/// mp_pool::init(); // first thing in `main`, before starting pools
/// ```
pub fn init() {
    mp_proc::init();
}
