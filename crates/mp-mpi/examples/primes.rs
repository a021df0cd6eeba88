//! Counts the primes below a bound with one function on three pools: a
//! process pool (`mp_pool::Pool`), a thread pool (`mp_pool::ThreadPool`)
//! and MPI ranks (`mp_mpi::Pool`), and prints each one's time.
//!
//! ```text
//! cargo run -p mp-mpi --features mpi --release --example primes          # spawns 2 MPI workers
//! mpirun -np 3 target/release/examples/primes                           # ranks 1 and 2 work
//! ```
//!
//! (As root, and on a machine with fewer cores than ranks, OpenMPI wants
//! the variables that `cargo xtask mpi` sets: see the crate README.)

use std::time::Instant;

use mp_pool::{Error, TaskPool};

/// Whether `n` is prime, by trial division.
fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// The number of primes below `below`, on any pool: written once against
/// the shared pool interface.
fn count_primes<P: TaskPool>(pool: &P, below: u64) -> Result<usize, Error> {
    let flags = pool.map(is_prime, 0..below)?;
    Ok(flags.into_iter().filter(|&p| p).count())
}

fn timed(name: &str, n: usize, run: impl FnOnce() -> Result<usize, Error>) -> Result<usize, Error> {
    let t = Instant::now();
    let count = run()?;
    println!(
        "{name:<22} {n} workers: {count} primes in {:>8.1?}",
        t.elapsed()
    );
    Ok(count)
}

fn main() -> Result<(), Error> {
    mp_mpi::init(); // under mpirun, ranks 1.. serve here and never return
    let below: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let mpi = match mp_mpi::world_workers() {
        0 => mp_mpi::Pool::spawn(2)?,
        _ => mp_mpi::Pool::world()?,
    };
    let n = mpi.processes();
    println!("primes below {below}");
    let a = timed("mp_mpi::Pool", n, || count_primes(&mpi, below))?;
    let pool = mp_pool::Pool::new(n)?;
    let b = timed("mp_pool::Pool", n, || count_primes(&pool, below))?;
    let threads = mp_pool::ThreadPool::new(n)?;
    let c = timed("mp_pool::ThreadPool", n, || count_primes(&threads, below))?;
    assert!(a == b && b == c, "the pools disagree: {a}, {b}, {c}");
    pool.close();
    pool.join()?;
    mpi.close();
    mpi.join()
}
