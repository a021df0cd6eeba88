//! Processes for Rust, the way Python's `multiprocessing.Process` runs
//! them: a function and its arguments, run in a new process, joined for
//! its return value.
//!
//! ```
//! use mp_proc::Process;
//!
//! fn print_func(continent: String) -> usize {
//!     println!("The name of continent is : {continent}");
//!     continent.len()
//! }
//!
//! fn main() -> Result<(), mp_proc::Error> {
//!     mp_proc::init(); // children run their target here and never return
//!     let p = Process::new(print_func, "Asia".to_string());
//!     p.start()?;
//!     assert_eq!(p.join()?, 4);
//!     Ok(())
//! }
//! ```
//!
//! # Targets and arguments
//!
//! A target is a `fn` item or a non-capturing closure of one parameter; a
//! target with several parameters takes a tuple and destructures it
//! (`fn f((a, b): (i32, String))`). Arguments and return values are serde
//! types; handles from the other `multiprocessing` crates (shared values,
//! locks, queues, ...) travel in them and re-attach in the child, their
//! file descriptors passed alongside (see `mp_os::handle`).
//!
//! A child finds its target by the target's offset from an anchor function
//! in the same executable, which is the same in every process despite
//! address-space randomization; a target outside the executable's code is
//! refused. Capturing closures can run only under the fork start method
//! ([`Process::from_closure`], unsafe).
//!
//! # Child entry
//!
//! A function in the executable's `.init_array` runs before `main` in every
//! program that links this crate (examples, `cargo test`, `cargo nextest`)
//! and turns a spawned child or the fork server into what it should be.
//! [`init`] does the same from `main`, as a fallback and as documentation.
//!
//! # Start methods
//!
//! [`StartMethod::Forkserver`] (the default), [`StartMethod::Spawn`] and
//! [`StartMethod::Fork`] (an unsafe opt-in with [`enable_fork`]); see the
//! table in [`StartMethod`]'s module and [`get_context`].
//!
//! # Waiting without stealing
//!
//! Children are waited for through pidfds (`poll` then `waitid(P_PIDFD)`),
//! never `waitpid(-1)` or a SIGCHLD handler, so other code's children are
//! left alone. At exit, daemonic children are terminated and the others
//! joined, as Python does; a daemonic child also dies when its parent is
//! killed.
//!
//! Linux only.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod child;
mod children;
mod context;
mod entry;
mod error;
mod forksafe;
mod function;
mod hook;
mod info;
mod logging;
mod method;
mod process;
mod result;
mod run;
mod start_method;
mod sys;
mod wire;

pub use context::{
    Context, enable_fork, get_context, get_start_method, set_start_method, set_start_method_force,
};
pub use error::{Error, signal_name};
pub use function::{
    CallError, ChunkResults, Function, RawFunction, decode_chunk_results, encode_chunk,
};
pub use hook::init;
pub use info::{ProcessInfo, cpu_count, current_process, parent_process};
pub use logging::{get_logger, log_to_stderr};
#[doc(hidden)]
pub use method::forkserver::forkserver_pid;
pub use method::forkserver::set_forkserver_preload;
pub use process::{Process, active_children};
pub use start_method::StartMethod;
