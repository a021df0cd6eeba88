//! The `mp_pool::Pool` API over MPI: one map across the cores of many
//! hosts, started by `mpirun` or spawned from a plain process, on the
//! system's MPI library (OpenMPI, through rsmpi).
//!
//! ```no_run
//! use mp_mpi::TaskPool; // map, imap, apply_async, ...
//!
//! fn is_prime(n: u64) -> bool {
//!     n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| !n.is_multiple_of(d))
//! }
//!
//! # #[cfg(not(feature = "mpi"))] fn main() {}
//! # #[cfg(feature = "mpi")]
//! fn main() -> Result<(), mp_pool::Error> {
//!     mp_mpi::init(); // under mpirun, ranks 1.. serve here and never return
//!     let pool = match mp_mpi::Pool::world() {
//!         Ok(pool) => pool,                 // `mpirun -np N ./program`: N-1 workers
//!         Err(_) => mp_mpi::Pool::spawn(2)?, // `./program`: MPI_Comm_spawn
//!     };
//!     let flags = pool.map(is_prime, 0..100_000u64)?;
//!     println!("{} primes", flags.iter().filter(|&&p| p).count());
//!     pool.close();
//!     pool.join()
//! }
//! ```
//!
//! # Two ways to start
//!
//! * `mpirun -np N ./program`: [`init`] at the top of `main` turns ranks
//!   1..N-1 into workers that serve and never return; rank 0 goes on and
//!   takes them with [`Pool::world`] (one world pool at a time; the
//!   workers serve the next one after it ends, and leave when rank 0
//!   exits).
//! * From a plain process: [`Pool::spawn`]`(n)` starts `n` copies of this
//!   executable with `MPI_Comm_spawn`; they see a marker argument and
//!   serve before `main` runs (as [`init`] would).
//!
//! # Tasks
//!
//! As in `mp_pool`, a task names its function as an offset in this
//! executable ([`mp_proc::Function`]): every rank runs the same program.
//! Arguments and results travel in postcard (plain numbers as their
//! bytes), a chunk of items per message. The root hands chunks to the
//! least loaded worker as results come back (dynamic load balancing),
//! keeping [`PoolBuilder::depth`] chunks (2) on each worker.
//!
//! # Failures
//!
//! * MPI calls return their errors (every communicator uses
//!   `MPI_ERRORS_RETURN`): a failed call fails the tasks it concerned with
//!   [`mp_pool::Error::Backend`] holding an [`MpiError`].
//! * A task that panics fails with [`mp_pool::Error::TaskPanicked`]; the
//!   worker goes on.
//! * A worker rank that dies fails the chunks it held with
//!   [`MpiError::WorkerLost`] (so `map` fails, `map_results` fails those
//!   items); the pool goes on with the others, and fails everything with
//!   [`MpiError::NoWorkers`] once none is left. Workers of the root's host
//!   are watched through their process (noticed at once), others through
//!   heartbeats ([`PoolBuilder::heartbeat_timeout`]). Never a hang.
//!   OpenMPI's `mpirun` aborts the whole job when a rank dies unless
//!   started with `--enable-recovery`; [`Pool::spawn`] sets
//!   `OMPI_MCA_orte_enable_recovery=1` for its job when the environment
//!   does not say otherwise.
//!
//! # Cargo features
//!
//! * `mpi` (off by default): the whole crate. It links the system's MPI
//!   library (OpenMPI's `mpicc` and `libclang` to generate the bindings),
//!   so it stays off in a workspace build on a machine without MPI; turn it
//!   on to use the crate: `mp-mpi = { version = "0.1", features = ["mpi"] }`.

#![cfg(target_os = "linux")]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without the `mpi` feature the items the crate docs name are not built.
#![cfg_attr(not(feature = "mpi"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "mpi")]
mod dispatch;
#[cfg(feature = "mpi")]
mod error;
#[cfg(feature = "mpi")]
mod pool;
#[cfg(feature = "mpi")]
mod proto;
#[cfg(feature = "mpi")]
mod raw;
#[cfg(feature = "mpi")]
mod start;
#[cfg(feature = "mpi")]
mod worker;

#[cfg(feature = "mpi")]
pub use error::MpiError;
/// The calls of a pool (`map`, `imap`, `apply_async`, ...): bring the trait
/// into scope with `use mp_mpi::TaskPool;`.
pub use mp_pool::TaskPool;
#[cfg(feature = "mpi")]
pub use pool::{Pool, PoolBuilder};
#[cfg(feature = "mpi")]
pub(crate) use start::{ensure_init, finalize, keep_hook};
#[cfg(feature = "mpi")]
pub use start::{init, world_workers};
