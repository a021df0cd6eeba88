//! The pool over MPI, in the two ways it starts. A test binary of its own
//! (no libtest harness: under `mpirun` every rank runs `main`, and ranks
//! 1.. must become workers before anything else):
//!
//! * `mpirun -np 4 --enable-recovery target/.../mpirun-HASH`: world mode,
//!   rank 0 runs the cases on `Pool::world()` (`cargo xtask mpi`);
//! * `cargo test -p mp-mpi` (a plain run): spawn mode, each case on
//!   `Pool::spawn`.
//!
//! OpenMPI is kept to loopback and shared memory (the variables below,
//! unless already set).

use mp_pool::TaskPool as _;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mp_mpi::{MpiError, Pool};
use mp_pool::Error;

fn square(x: u64) -> u64 {
    x * x
}

fn add((a, b): (i32, i32)) -> i32 {
    a + b
}

fn shout(s: String) -> String {
    s.to_uppercase()
}

fn check(x: i32) -> i32 {
    assert!(x != 2, "two is not allowed");
    x
}

fn my_pid(x: u32) -> u32 {
    std::thread::sleep(Duration::from_millis(2 + u64::from(x % 3)));
    std::process::id()
}

/// Bytes past any eager limit, both ways.
fn reverse(v: Vec<u8>) -> Vec<u8> {
    v.into_iter().rev().collect()
}

static BASE: AtomicU64 = AtomicU64::new(0);

fn set_base(b: u64) {
    BASE.store(b, Ordering::SeqCst);
}

fn plus_base(x: u64) -> u64 {
    x + BASE.load(Ordering::SeqCst)
}

fn bad_init(_: u8) {
    panic!("cannot set up");
}

fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// Kills its own worker for item 3.
fn die_at_3(x: u32) -> u32 {
    if x == 3 {
        // SAFETY: raising a signal at this process.
        unsafe { libc::raise(libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(5));
    x
}

type Case = (&'static str, fn(&dyn Fn() -> Pool) -> Result<(), String>);

fn map_and_friends(pool: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = pool();
    let want: Vec<u64> = (0..1000).map(|x| x * x).collect();
    expect_eq(p.map(square, 0..1000).map_err(s)?, want.clone())?;
    for cs in [1, 7, 1000, 5000] {
        expect_eq(p.map_chunked(square, 0..1000, cs).map_err(s)?, want.clone())?;
    }
    expect_eq(p.map(square, Vec::new()).map_err(s)?, Vec::<u64>::new())?;
    expect_eq(p.starmap(add, [(1, 2), (3, 4)]).map_err(s)?, vec![3, 7])?;
    expect_eq(p.apply(square, 12).map_err(s)?, 144)?;
    expect_eq(
        p.map(shout, ["ab".to_string(), String::new(), "xyz".into()])
            .map_err(s)?,
        vec!["AB".to_string(), String::new(), "XYZ".into()],
    )?;
    if !matches!(
        p.map_chunked(square, 0..3, 0),
        Err(Error::InvalidArgument(_))
    ) {
        return Err("chunksize 0 accepted".into());
    }
    p.close();
    p.join().map_err(s)
}

/// Written once against the shared pool interface.
fn sum_of_squares<P: mp_pool::TaskPool>(pool: &P, n: u64) -> Result<u64, Error> {
    Ok(pool.map(square, 0..n)?.into_iter().sum())
}

fn async_and_streams(pool: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = pool();
    let want: Vec<u64> = (0..300).map(|x| x * x).collect();
    let got: Vec<u64> = p
        .imap(square, 0..300)
        .map_err(s)?
        .collect::<Result<_, _>>()
        .map_err(s)?;
    expect_eq(got, want.clone())?;
    let mut got: Vec<u64> = p
        .imap_unordered_chunked(square, 0..300, 7)
        .map_err(s)?
        .collect::<Result<_, _>>()
        .map_err(s)?;
    got.sort_unstable();
    expect_eq(got, want.clone())?;
    expect_eq(p.apply_async(square, 7).map_err(s)?.get().map_err(s)?, 49)?;
    expect_eq(
        p.map_async(square, 0..300).map_err(s)?.get().map_err(s)?,
        want,
    )?;
    let firsts: Vec<u64> = p
        .imap(square, 0..1_000_000)
        .map_err(s)?
        .take(3)
        .collect::<Result<_, _>>()
        .map_err(s)?;
    expect_eq(firsts, vec![0, 1, 4])?;
    expect_eq(sum_of_squares(&p, 100).map_err(s)?, 328_350)?;
    p.close();
    p.join().map_err(s)
}

fn big_messages(pool: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = pool();
    let inputs: Vec<Vec<u8>> = (0..6u8)
        .map(|k| (0..3_000_000u32).map(|i| (i as u8) ^ k).collect())
        .collect();
    let want: Vec<Vec<u8>> = inputs
        .iter()
        .map(|v| v.iter().rev().copied().collect())
        .collect();
    expect_eq(p.map_chunked(reverse, inputs, 1).map_err(s)?, want)?;
    p.close();
    p.join().map_err(s)
}

fn panics(pool: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = pool();
    match p.map(check, [1, 2, 3]) {
        Err(Error::TaskPanicked { message }) if message.contains("two is not allowed") => {}
        other => return Err(format!("map of a panicking task: {other:?}")),
    }
    let r = p.map_results(check, [1, 2, 3]).map_err(s)?;
    if !(matches!(r[0], Ok(1)) && r[1].is_err() && matches!(r[2], Ok(3))) {
        return Err(format!("map_results: {r:?}"));
    }
    // The workers go on.
    expect_eq(p.map(square, 0..10).map_err(s)?.len(), 10)?;
    p.close();
    p.join().map_err(s)
}

fn balance(pool: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = pool();
    let pids: HashSet<u32> = p
        .map_chunked(my_pid, 0..60, 1)
        .map_err(s)?
        .into_iter()
        .collect();
    let want: HashSet<u32> = p.pids().into_iter().collect();
    if pids != want {
        return Err(format!("tasks ran on {pids:?}, workers are {want:?}"));
    }
    p.close();
    p.join().map_err(s)
}

fn lifecycle(pool: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = pool();
    if !matches!(p.join(), Err(Error::StillRunning)) {
        return Err("join before close".into());
    }
    p.close();
    if !matches!(p.map(square, [1]), Err(Error::Closed)) {
        return Err("map after close".into());
    }
    p.join().map_err(s)?;
    // A running pool that is dropped terminates.
    let p = pool();
    expect_eq(p.map(square, [3]).map_err(s)?, vec![9])?;
    drop(p);
    Ok(())
}

fn terminate_running(pool: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = Arc::new(pool());
    let p2 = p.clone();
    let t = std::thread::spawn(move || p2.map_chunked(sleep_ms, vec![50; 200], 1));
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    p.terminate();
    let r = t
        .join()
        .map_err(|_| "the map thread panicked".to_string())?;
    if !matches!(r, Err(Error::Terminated)) {
        return Err(format!("map after terminate: {r:?}"));
    }
    if start.elapsed() > Duration::from_secs(60) {
        return Err("terminate took over a minute".into());
    }
    Ok(())
}

fn initializer(make: &dyn Fn() -> Pool) -> Result<(), String> {
    let _ = make; // builds its own pools
    let p = builder_pool(Pool::builder().initializer(set_base, 1000))?;
    expect_eq(p.map(plus_base, [1, 2]).map_err(s)?, vec![1001, 1002])?;
    p.close();
    p.join().map_err(s)?;
    let p = builder_pool(Pool::builder().initializer(bad_init, 0))?;
    match p.map(square, [1, 2, 3]) {
        Err(Error::Initializer { message }) if message.contains("cannot set up") => {}
        other => return Err(format!("map on a broken pool: {other:?}")),
    }
    p.close();
    p.join().map_err(s)
}

fn worker_death(make: &dyn Fn() -> Pool) -> Result<(), String> {
    let p = make();
    let before = p.alive();
    let start = Instant::now();
    match p.map_chunked(die_at_3, 0..40, 1) {
        Err(e) if e.to_string().contains("is lost") => {}
        other => return Err(format!("map with a dying worker: {other:?}")),
    }
    if start.elapsed() > Duration::from_secs(60) {
        return Err("the death took over a minute to notice".into());
    }
    // The others go on.
    expect_eq(p.map(square, 0..100).map_err(s)?.len(), 100)?;
    expect_eq(p.alive(), before - 1)?;
    p.close();
    p.join().map_err(s)
}

fn builder_pool(b: mp_mpi::PoolBuilder) -> Result<Pool, String> {
    if mp_mpi::world_workers() > 0 {
        b.world().map_err(s)
    } else {
        b.spawn(2).map_err(s)
    }
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn expect_eq<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        let g = format!("{got:?}");
        let w = format!("{want:?}");
        Err(format!(
            "got {}, want {}",
            &g[..g.len().min(200)],
            &w[..w.len().min(200)]
        ))
    }
}

fn set_default(var: &str, value: &str) {
    if std::env::var_os(var).is_none() {
        // SAFETY: called first in `main`, before any other thread starts.
        unsafe { std::env::set_var(var, value) };
    }
}

fn main() {
    // Loopback and shared memory only, as root too, more workers than
    // cores: for a spawned job (mpirun passes its own to a world job).
    for (k, v) in [
        ("OMPI_ALLOW_RUN_AS_ROOT", "1"),
        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"),
        ("OMPI_MCA_btl", "self,vader,tcp"),
        ("OMPI_MCA_btl_tcp_if_include", "lo"),
        ("OMPI_MCA_oob_tcp_if_include", "lo"),
        ("OMPI_MCA_rmaps_base_oversubscribe", "1"),
    ] {
        set_default(k, v);
    }
    mp_mpi::init();
    let world = mp_mpi::world_workers();
    let mode = if world > 0 { "world" } else { "spawn" };
    let make: Box<dyn Fn() -> Pool> = if world > 0 {
        Box::new(|| Pool::world().expect("world pool"))
    } else {
        Box::new(|| Pool::spawn(2).expect("spawned pool"))
    };
    let mut cases: Vec<Case> = vec![
        ("map_and_friends", map_and_friends),
        ("async_and_streams", async_and_streams),
        ("big_messages", big_messages),
        ("panics", panics),
        ("balance", balance),
        ("lifecycle", lifecycle),
        ("terminate_running", terminate_running),
        ("initializer", initializer),
        // Last: in world mode it costs a worker for good.
        ("worker_death", worker_death),
    ];
    if world == 0 {
        cases.push(("spawn_errors", |_| {
            if !matches!(Pool::spawn(0), Err(Error::InvalidArgument(_))) {
                return Err("spawn(0) accepted".into());
            }
            match Pool::world() {
                Err(e) if matches!(MpiError::of(&e), Some(MpiError::Setup(_))) => Ok(()),
                other => Err(format!("world pool outside mpirun: {other:?}")),
            }
        }));
    } else {
        cases.push(("one_world_pool_at_a_time", |_| {
            let p = Pool::world().map_err(s)?;
            match Pool::world() {
                Err(e) if matches!(MpiError::of(&e), Some(MpiError::Setup(_))) => {}
                other => return Err(format!("a second world pool: {other:?}")),
            }
            p.close();
            p.join().map_err(s)?;
            let p = Pool::world().map_err(s)?;
            expect_eq(p.map(square, [2]).map_err(s)?, vec![4])?;
            Ok(())
        }));
    }
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    println!("mp-mpi tests, {mode} mode ({} cases)", cases.len());
    for (name, case) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = Instant::now();
        match case(&*make) {
            Ok(()) => {
                passed += 1;
                println!("test {mode}::{name} ... ok ({:.2?})", start.elapsed());
            }
            Err(e) => {
                failed += 1;
                println!("test {mode}::{name} ... FAILED: {e}");
            }
        }
    }
    println!("test result: {passed} passed; {failed} failed ({mode} mode)");
    if failed > 0 {
        std::process::exit(1);
    }
}
