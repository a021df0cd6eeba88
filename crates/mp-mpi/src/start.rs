//! Starting MPI in this process: [`init`], the spawned worker's entry
//! hook, `MPI_Init` and `MPI_Finalize`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::MpiError;
use crate::raw::{self, Comm};
use crate::{dispatch, pool, proto, worker};

/// The MPI universe of this process, finalized at exit.
static UNIVERSE: Mutex<Option<mpi::environment::Universe>> = Mutex::new(None);
static EXIT_HOOK: AtomicBool = AtomicBool::new(false);

/// Whether this process was started by an MPI launcher (`mpirun`,
/// `mpiexec`, `srun` with PMI/PMIx), from its environment.
fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"]
        .iter()
        .any(|v| std::env::var_os(v).is_some())
}

/// Initializes MPI (`MPI_THREAD_SERIALIZED`) once in this process, with
/// `MPI_ERRORS_RETURN` on the world and self communicators.
pub(crate) fn ensure_init() -> Result<(), MpiError> {
    let mut u = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner());
    if u.is_some() {
        return Ok(());
    }
    if raw::is_finalized() {
        return Err(MpiError::Setup("MPI was finalized in this process".into()));
    }
    if mpi::environment::is_initialized() {
        return Err(MpiError::Setup(
            "MPI was initialized outside mp-mpi in this process".into(),
        ));
    }
    if !launched_by_mpi() && std::env::var_os("OMPI_MCA_orte_enable_recovery").is_none() {
        // A singleton's helper daemon (and so every job it spawns) reads
        // this: without it a dead worker aborts the other workers, and the
        // root too.
        // SAFETY: MPI is not initialized yet, so no thread of the library
        // reads the environment; the Rust standard library serializes its
        // own accesses. The crate documents that `Pool::spawn` sets it.
        unsafe { std::env::set_var("OMPI_MCA_orte_enable_recovery", "1") };
    }
    let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
        .ok_or_else(|| {
            MpiError::Setup("MPI was initialized outside mp-mpi in this process".into())
        })?;
    *u = Some(universe);
    drop(u);
    if matches!(threading, mpi::Threading::Single | mpi::Threading::Funneled) {
        return Err(MpiError::Setup(format!(
            "the MPI library offers {threading:?} threading, mp-mpi needs Serialized"
        )));
    }
    Comm::world().errors_return()?;
    Comm::self_().errors_return()?;
    if !EXIT_HOOK.swap(true, Ordering::SeqCst) {
        // SAFETY: registering a plain `extern "C" fn()` with atexit.
        unsafe { libc::atexit(at_exit) };
    }
    Ok(())
}

extern "C" fn at_exit() {
    pool::stop_world();
    finalize();
}

/// Finalizes MPI (once; later MPI calls of this crate fail cleanly).
pub(crate) fn finalize() {
    let u = UNIVERSE.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(u) = u {
        let g = raw::lock();
        raw::set_finalized();
        drop(u); // MPI_Finalize
        drop(g);
    }
}

/// Starts the MPI side of this program; call it first thing in `main`.
///
/// * Under `mpirun -np N` (N >= 2): initializes MPI; ranks 1..N-1 serve
///   the root's tasks here and exit when rank 0 does, never returning;
///   rank 0 returns and takes them with [`Pool::world`](crate::Pool::world).
/// * In a worker started by [`Pool::spawn`](crate::Pool::spawn): serves and never returns
///   (this normally happens before `main`, see the crate docs).
/// * Anywhere else (a plain run, or `mpirun -np 1`): returns at once
///   without touching MPI; [`Pool::spawn`](crate::Pool::spawn) initializes it when used.
///
/// MPI errors at start (an `MPI_Init` that fails) abort the program, as
/// the MPI library does before any error handler can be set.
///
/// ```no_run
/// mp_mpi::init(); // the first line of `main`
/// ```
pub fn init() {
    if spawned_worker() {
        serve_spawned();
    }
    if !launched_by_mpi() {
        return;
    }
    if let Err(e) = ensure_init() {
        eprintln!("mp-mpi: {e}");
        return;
    }
    // A job started by our own MPI_Comm_spawn without the marker: not ours.
    if matches!(Comm::parent(), Ok(Some(_))) {
        return;
    }
    let world = Comm::world();
    let (Ok(rank), Ok(size)) = (world.rank(), world.size()) else {
        return;
    };
    if rank != 0 {
        worker::serve(world, 0, false);
    }
    let mut w = pool::WORLD.lock().unwrap_or_else(|e| e.into_inner());
    if w.is_none() && size > 1 {
        *w = Some(pool::World {
            slots: Some((1..size).map(dispatch::Slot::new).collect()),
        });
    }
}

/// The number of worker ranks [`Pool::world`](crate::Pool::world) would have (0 when this is
/// not rank 0 of an `mpirun` job of two or more ranks).
pub fn world_workers() -> usize {
    pool::WORLD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|w| w.slots.as_ref().map(Vec::len))
        .unwrap_or(0)
}

fn spawned_worker() -> bool {
    std::env::args_os().any(|a| a == proto::SPAWNED_ARG)
}

/// Serves as a worker of the pool that spawned this process.
fn serve_spawned() -> ! {
    let parent = ensure_init().and_then(|()| Comm::parent());
    match parent {
        Ok(Some(parent)) => worker::serve(parent, 0, true),
        Ok(None) => {
            eprintln!(
                "mp-mpi: started with {} but not by MPI_Comm_spawn",
                proto::SPAWNED_ARG
            );
            std::process::exit(2);
        }
        Err(e) => {
            eprintln!("mp-mpi: {e}");
            std::process::exit(2);
        }
    }
}

extern "C" fn entry_hook(argc: i32, argv: *const *const u8, _envp: *const *const u8) {
    // The standard library's own copy of the arguments may not be there
    // yet: read the loader's.
    if argv.is_null() {
        return;
    }
    for i in 0..argc.max(0) as usize {
        // SAFETY: the loader passes `argc` valid pointers to NUL-terminated
        // strings in `argv`.
        let arg = unsafe { *argv.add(i) };
        if arg.is_null() {
            break;
        }
        // SAFETY: as above.
        let arg = unsafe { std::ffi::CStr::from_ptr(arg.cast()) };
        if arg.to_bytes() == proto::SPAWNED_ARG.as_bytes() {
            serve_spawned();
        }
    }
}

/// Keeps [`ENTRY_HOOK`] in the executable: called from the code that
/// spawns workers, so the linker cannot drop the object that holds it.
pub(crate) fn keep_hook() {
    std::hint::black_box(&ENTRY_HOOK);
}

/// Runs before `main` in every program that links this crate: a process
/// started by [`Pool::spawn`](crate::Pool::spawn) serves there, whatever `main` does first.
#[used]
#[unsafe(link_section = ".init_array")]
static ENTRY_HOOK: extern "C" fn(i32, *const *const u8, *const *const u8) = entry_hook;
