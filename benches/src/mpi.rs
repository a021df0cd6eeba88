//! Group `mpi`: `mp_mpi::Pool` (the pool API on MPI ranks), its workers
//! spawned with `MPI_Comm_spawn` on this host, beside the `pool` group's
//! rows for `mp_pool::Pool`.
//!
//! | key | what |
//! |---|---|
//! | `pool/mpi-start` | `mp_mpi::Pool::spawn(2)`, `close`, `join` |
//! | `pool/mpi-map` | its `map` of `x * 2 + 1` over 100k items, default chunksize, per item |
//! | `pool/mpi-cpu` | its `map` over the CPU-bound items of `pool/mp-cpu`, total |
//!
//! Built with the harness's `mpi` feature (`cargo xtask bench` turns it
//! on where `mpicc` is found) and run with the environment of `cargo xtask
//! mpi` (loopback and shared memory only). Without the feature the group
//! says so and emits nothing.

use std::io;

#[cfg(feature = "mpi")]
use mp_pool::TaskPool as _;

#[cfg(feature = "mpi")]
use std::hint::black_box;

use crate::kit::Config;
#[cfg(feature = "mpi")]
use crate::kit::{RowBuilder, Stats, Unit, time};
#[cfg(feature = "mpi")]
use crate::pool::{CPU_ITEM, TRIVIAL_ITEMS, burn_item, calibrate, cpu_items, double};

#[cfg(feature = "mpi")]
const GROUP: &str = "mpi";

/// Why the group has no rows in this build.
#[cfg(not(feature = "mpi"))]
pub(crate) const MISSING: &str = "mp-bench was built without its `mpi` feature: \
     `cargo xtask bench` turns it on where `mpicc` is found (install OpenMPI: see crates/mp-mpi/README.md)";

/// Runs every row of the group.
#[cfg(not(feature = "mpi"))]
pub(crate) fn run(_cfg: &Config) -> Vec<(&'static str, io::Error)> {
    eprintln!("mp-bench: mpi: no rows: {MISSING}");
    Vec::new()
}

/// Runs every row of the group.
#[cfg(feature = "mpi")]
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    let mut failed = Vec::new();
    if let Err(e) = start(cfg) {
        failed.push(("mpi-start", e));
    }
    match mp_mpi::Pool::spawn(2) {
        Ok(pool) => {
            if let Err(e) = trivial(cfg, &pool) {
                failed.push(("mpi-map", e));
            }
            if let Err(e) = cpu(cfg, &pool) {
                failed.push(("mpi-cpu", e));
            }
            pool.close();
            if let Err(e) = pool.join() {
                failed.push(("mpi-map", pool_err(e)));
            }
        }
        Err(e) => failed.push(("mpi-map", pool_err(e))),
    }
    failed
}

#[cfg(feature = "mpi")]
fn pool_err(e: mp_pool::Error) -> io::Error {
    io::Error::other(e)
}

#[cfg(feature = "mpi")]
fn start(cfg: &Config) -> io::Result<()> {
    // The first spawn also initializes MPI and starts OpenMPI's daemon:
    // keep it out of the figures.
    let p = mp_mpi::Pool::spawn(2).map_err(pool_err)?;
    p.close();
    p.join().map_err(pool_err)?;
    let mut err = None;
    let samples = cfg.sample(cfg.pick(3, 2), 50, || {
        time(|| {
            let r = mp_mpi::Pool::spawn(2).and_then(|p| {
                p.close();
                p.join()
            });
            if let Err(e) = r {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(pool_err(e));
    }
    RowBuilder::new(
        GROUP,
        "pool/mpi-start",
        "start + teardown, 2 workers",
        "mp_mpi Pool::spawn(2)",
    )
    .baseline(&["pool/mp-start"])
    .note("MPI_Comm_spawn of 2 ranks, hello and setup, close, join (stop, disconnect)")
    .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
    .emit();
    Ok(())
}

#[cfg(feature = "mpi")]
fn trivial(cfg: &Config, pool: &mp_mpi::Pool) -> io::Result<()> {
    let items: Vec<u64> = (0..TRIVIAL_ITEMS).collect();
    let expect: Vec<u64> = items.iter().copied().map(double).collect();
    if pool.map(double, items.clone()).map_err(pool_err)? != expect {
        return Err(io::Error::other("wrong results"));
    }
    let mut err = None;
    let samples = cfg.sample(5, 10_000, || {
        let input = items.clone();
        time(|| match pool.map(double, input) {
            Ok(v) => {
                black_box(v);
            }
            Err(e) => err = Some(e),
        })
    });
    if let Some(e) = err {
        return Err(pool_err(e));
    }
    let ms = Stats::per_op(&samples, 1, Unit::Ms).p50;
    RowBuilder::new(
        GROUP,
        "pool/mpi-map",
        "map trivial, 100k items",
        "mp_mpi Pool::spawn(2)",
    )
    .baseline(&["pool/mp-map", "pool/rayon-trivial"])
    .note(format!(
        "map(x*2+1), default chunksize (8 chunks); {ms:.2} ms per map"
    ))
    .stats(Unit::Us, Stats::per_op(&samples, TRIVIAL_ITEMS, Unit::Us))
    .emit();
    Ok(())
}

#[cfg(feature = "mpi")]
fn cpu(cfg: &Config, pool: &mp_mpi::Pool) -> io::Result<()> {
    let n = cpu_items(cfg);
    let iters = calibrate(CPU_ITEM);
    let work: Vec<(u64, u64)> = (0..n).map(|s| (iters, s)).collect();
    let _ = pool.map(burn_item, work.clone()).map_err(pool_err)?; // warm-up
    let mut err = None;
    let samples = cfg.sample(cfg.pick(3, 2), 100, || {
        let input = work.clone();
        time(|| match pool.map(burn_item, input) {
            Ok(v) => {
                black_box(v);
            }
            Err(e) => err = Some(e),
        })
    });
    if let Some(e) = err {
        return Err(pool_err(e));
    }
    RowBuilder::new(
        GROUP,
        "pool/mpi-cpu",
        &format!("map CPU-bound, {n} items"),
        "mp_mpi Pool::spawn(2)",
    )
    .baseline(&["pool/mp-cpu", "pool/seq-cpu"])
    .note(format!(
        "{n} items of ~{} us arithmetic ({iters} iterations); map, default chunksize",
        CPU_ITEM.as_micros()
    ))
    .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
    .emit();
    Ok(())
}
