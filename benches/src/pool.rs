//! Group `pool`: in-process parallel maps (rayon) and the OS limit for starting worker
//! processes, the references for a process pool.
//!
//! | key | what |
//! |---|---|
//! | `pool/fork2` | start + teardown of two trivial worker processes (`fork` x 2, `waitpid` x 2) |
//! | `pool/seq-trivial` | sequential map of `x * 2 + 1` over 100k items, per item |
//! | `pool/rayon-trivial` | the same with rayon's `par_iter` on the global pool, per item |
//! | `pool/seq-cpu` | sequential map over N items of about 100 us of arithmetic each, total |
//! | `pool/rayon-cpu` | the same with rayon, total |
//! | `pool/mp-start` | `mp_pool::Pool::new(2)`, `close`, `join` |
//! | `pool/mp-map` | `Pool(2).map` of `x * 2 + 1` over 100k items, default chunksize, per item |
//! | `pool/mp-map-chunk1` | the same with chunksize 1 (100k items, quick: 10k), per item |
//! | `pool/mp-imap-unordered` | `Pool(2).imap_unordered` of `x * 2 + 1` over 10k items, default chunksize (1), per item |
//! | `pool/mp-cpu` | `Pool(2).map` over the CPU-bound items, default chunksize, total |
//!
//! N is [`cpu_items`] (4000, `--quick`: 1000); the Python script `pool.py` uses the same N and
//! calibrates its own loop to the same 100 us per item. Rows for mp `Pool` belong here: see
//! `benches/README.md`. This group starts rayon's thread pool, so it must run after any group
//! that forks with [`crate::kit::two_processes`] in the same process.

use std::hint::black_box;
use std::io;
use std::time::Duration;

use rayon::prelude::*;

use crate::kit::{Config, RowBuilder, Stats, Unit, time};
use crate::process::{fork_trivial, reap};

const GROUP: &str = "pool";
/// Items of the trivial maps.
pub(crate) const TRIVIAL_ITEMS: u64 = 100_000;
/// Items of the `imap_unordered` row.
const IMAP_ITEMS: u64 = 10_000;
/// Work per item of the CPU-bound maps.
pub(crate) const CPU_ITEM: Duration = Duration::from_micros(100);

/// Items of the CPU-bound maps.
pub(crate) fn cpu_items(cfg: &Config) -> u64 {
    cfg.pick(4000, 1000)
}

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    let mut failed = Vec::new();
    if let Err(e) = fork2(cfg) {
        failed.push(("fork2", e));
    }
    if let Err(e) = mp_start(cfg) {
        failed.push(("mp-start", e));
    }
    trivial(cfg);
    if let Err(e) = mp_trivial(cfg) {
        failed.push(("mp-map", e));
    }
    if let Err(e) = mp_imap_unordered(cfg) {
        failed.push(("mp-imap-unordered", e));
    }
    cpu_bound(cfg);
    failed
}

fn pool_err(e: mp_pool::Error) -> io::Error {
    io::Error::other(e)
}

fn mp_start(cfg: &Config) -> io::Result<()> {
    // The first pool also starts the fork server: keep it out of the figures.
    let p = mp_pool::Pool::new(2).map_err(pool_err)?;
    p.close();
    p.join().map_err(pool_err)?;
    let mut err = None;
    let samples = cfg.sample(10, 2000, || {
        time(|| {
            let r = mp_pool::Pool::new(2).and_then(|p| {
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
        "pool/mp-start",
        "start + teardown, 2 workers",
        "mp Pool(2)",
    )
    .baseline(&["pool/fork2", "pool/py-start"])
    .note("Pool::new(2), close(), join(); forkserver start method, workers started one after the other")
    .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
    .emit();
    Ok(())
}

/// The trivial function of the mp rows (a `fn` item: it travels to the workers).
pub(crate) fn double(x: u64) -> u64 {
    x.wrapping_mul(2).wrapping_add(1)
}

fn mp_trivial(cfg: &Config) -> io::Result<()> {
    let pool = mp_pool::Pool::new(2).map_err(pool_err)?;
    let items: Vec<u64> = (0..TRIVIAL_ITEMS).collect();
    let expect: Vec<u64> = items.iter().copied().map(double).collect();
    // Warm-up (and a check).
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
        "pool/mp-map",
        "map trivial, 100k items",
        "mp Pool(2)",
    )
    .baseline(&["pool/py-map", "pool/rayon-trivial"])
    .note(format!(
        "Pool(2).map(x*2+1), default chunksize ({} chunks); {ms:.2} ms per map",
        2 * 4
    ))
    .stats(Unit::Us, Stats::per_op(&samples, TRIVIAL_ITEMS, Unit::Us))
    .emit();

    let n1 = cfg.pick(TRIVIAL_ITEMS, 10_000);
    let few: Vec<u64> = (0..n1).collect();
    let samples = cfg.sample(1, 100, || {
        let input = few.clone();
        time(|| match pool.map_chunked(double, input, 1) {
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
        "pool/mp-map-chunk1",
        "map trivial, 100k items",
        "mp Pool(2) chunksize=1",
    )
    .baseline(&["pool/py-map-chunk1", "ipc/futex/8"])
    .note(format!(
        "Pool(2).map_chunked(f, items, 1) over {n1} items, per item; one message per item each way"
    ))
    .stats(Unit::Us, Stats::per_op(&samples, n1, Unit::Us))
    .emit();
    pool.close();
    pool.join().map_err(pool_err)
}

fn mp_imap_unordered(cfg: &Config) -> io::Result<()> {
    let pool = mp_pool::Pool::new(2).map_err(pool_err)?;
    let expect: u64 = (0..IMAP_ITEMS).map(double).sum();
    let once = || -> io::Result<()> {
        let mut sum = 0u64;
        for r in pool
            .imap_unordered(double, 0..IMAP_ITEMS)
            .map_err(pool_err)?
        {
            sum += r.map_err(pool_err)?;
        }
        if sum != expect {
            return Err(io::Error::other("imap_unordered: wrong results"));
        }
        Ok(())
    };
    once()?; // warm-up (and a check)
    let mut err = None;
    let samples = cfg.sample(1, 100, || {
        time(|| {
            if let Err(e) = once() {
                err = Some(e);
            }
        })
    });
    pool.close();
    let joined = pool.join().map_err(pool_err);
    if let Some(e) = err {
        return Err(e);
    }
    joined?;
    RowBuilder::new(
        GROUP,
        "pool/mp-imap-unordered",
        "imap_unordered trivial, 10k items",
        "mp Pool(2)",
    )
    .baseline(&["pool/py-imap-unordered", "pool/mp-map-chunk1"])
    .note(format!(
        "Pool(2).imap_unordered(x*2+1, 0..{IMAP_ITEMS}), default chunksize 1, results summed as \
         they come; per item"
    ))
    .stats(Unit::Us, Stats::per_op(&samples, IMAP_ITEMS, Unit::Us))
    .emit();
    Ok(())
}

/// The CPU-bound function of the mp rows: `burn(iters, seed)`.
pub(crate) fn burn_item((iters, seed): (u64, u64)) -> u64 {
    burn(iters, seed)
}

fn fork2(cfg: &Config) -> io::Result<()> {
    let mut err = None;
    let samples = cfg.sample(20, 5000, || {
        time(|| {
            let r = fork_trivial().and_then(|a| {
                let b = fork_trivial();
                let ra = reap(a);
                b.and_then(reap).and(ra)
            });
            if let Err(e) = r {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    RowBuilder::new(
        GROUP,
        "pool/fork2",
        "start + teardown, 2 workers",
        "raw fork x2 + waitpid",
    )
    .baseline(&["process/fork"])
    .note("two trivial children forked back to back, then both reaped")
    .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
    .emit();
    Ok(())
}

fn trivial(cfg: &Config) {
    let items: Vec<u64> = (0..TRIVIAL_ITEMS).collect();
    let f = |x: &u64| x.wrapping_mul(2).wrapping_add(1);
    // Start rayon's global pool outside the figures.
    black_box(items.par_iter().map(f).collect::<Vec<u64>>());
    let seq = cfg.sample(5, 10_000, || {
        time(|| {
            black_box(black_box(&items).iter().map(f).collect::<Vec<u64>>());
        })
    });
    let par = cfg.sample(5, 10_000, || {
        time(|| {
            black_box(black_box(&items).par_iter().map(f).collect::<Vec<u64>>());
        })
    });
    let total = |s: &[Duration]| Stats::per_op(s, 1, Unit::Ms).p50;
    RowBuilder::new(
        GROUP,
        "pool/seq-trivial",
        "map trivial, 100k items",
        "Rust sequential",
    )
    .note(format!(
        "iter().map(x*2+1).collect(); {:.3} ms per map",
        total(&seq)
    ))
    .stats(Unit::Us, Stats::per_op(&seq, TRIVIAL_ITEMS, Unit::Us))
    .emit();
    RowBuilder::new(
        GROUP,
        "pool/rayon-trivial",
        "map trivial, 100k items",
        "rayon",
    )
    .baseline(&["pool/seq-trivial"])
    .note(format!(
        "par_iter().map(x*2+1).collect() on {} threads; {:.3} ms per map",
        rayon::current_num_threads(),
        total(&par)
    ))
    .stats(Unit::Us, Stats::per_op(&par, TRIVIAL_ITEMS, Unit::Us))
    .emit();
}

/// About `iters` dependent multiply-add-shift steps: work that neither vectorises nor folds.
pub(crate) fn burn(iters: u64, seed: u64) -> u64 {
    let mut x = seed | 1;
    for i in 0..black_box(iters) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
        x ^= x >> 29;
    }
    x
}

/// The number of [`burn`] iterations that take about `target` on this machine (best of five
/// timings per step, so noise from other processes does not inflate the work).
pub(crate) fn calibrate(target: Duration) -> u64 {
    let mut iters = 10_000u64;
    for _ in 0..4 {
        let best = (0..5)
            .map(|s| {
                time(|| {
                    black_box(burn(iters, s));
                })
            })
            .min()
            .unwrap_or(target)
            .max(Duration::from_nanos(100));
        iters = ((iters as f64) * target.as_secs_f64() / best.as_secs_f64()).max(1.0) as u64;
    }
    iters
}

fn cpu_bound(cfg: &Config) {
    let n = cpu_items(cfg);
    let iters = calibrate(CPU_ITEM);
    let items: Vec<u64> = (0..n).collect();
    let work = |&s: &u64| burn(iters, s);
    let min = cfg.pick(3, 2);
    let seq = cfg.sample(min, 100, || {
        time(|| {
            black_box(items.iter().map(work).fold(0, u64::wrapping_add));
        })
    });
    let par = cfg.sample(min, 100, || {
        time(|| {
            black_box(items.par_iter().map(work).reduce(|| 0, u64::wrapping_add));
        })
    });
    let what = format!(
        "{n} items of ~{} us arithmetic ({iters} iterations)",
        CPU_ITEM.as_micros()
    );
    let name = format!("map CPU-bound, {n} items");
    RowBuilder::new(GROUP, "pool/seq-cpu", &name, "Rust sequential")
        .note(&what)
        .stats(Unit::Ms, Stats::per_op(&seq, 1, Unit::Ms))
        .emit();
    RowBuilder::new(GROUP, "pool/rayon-cpu", &name, "rayon")
        .baseline(&["pool/seq-cpu"])
        .note(format!("{what}; {} threads", rayon::current_num_threads()))
        .stats(Unit::Ms, Stats::per_op(&par, 1, Unit::Ms))
        .emit();
    let pool = match mp_pool::Pool::new(2) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pool/mp-cpu: {e}");
            return;
        }
    };
    let work: Vec<(u64, u64)> = items.iter().map(|&s| (iters, s)).collect();
    let _ = pool.map(burn_item, work.clone()); // warm-up
    let mut err = None;
    let mp = cfg.sample(min, 100, || {
        let input = work.clone();
        time(|| match pool.map(burn_item, input) {
            Ok(v) => {
                black_box(v);
            }
            Err(e) => err = Some(e),
        })
    });
    if let Some(e) = err {
        eprintln!("pool/mp-cpu: {e}");
        return;
    }
    RowBuilder::new(GROUP, "pool/mp-cpu", &name, "mp Pool(2)")
        .baseline(&["pool/rayon-cpu", "pool/seq-cpu", "pool/py-cpu"])
        .note(format!("{what}; Pool(2).map, default chunksize"))
        .stats(Unit::Ms, Stats::per_op(&mp, 1, Unit::Ms))
        .emit();
}
