//! Group `value`: a shared value changed under its lock by two processes at once.
//!
//! | key | what |
//! |---|---|
//! | `value/mp-incr-2proc` | `*v.lock() += 1` on one `mp_shm::Value<u64>`, 100k times in each of two processes at once, per increment |
//!
//! The two processes are the harness and a forked child (pinned to two CPUs when allowed), which
//! inherits the value's memfd mapping and lock. Each sample starts both on a barrier and ends when
//! both have finished; the final value is checked (200k). The Python twin, `python/value.py`,
//! does `with v.get_lock(): v.value += 1` on a `Value('q')` from the parent and one child.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::kit::{Config, RowBuilder, Stats, Unit, two_processes};

const GROUP: &str = "value";
/// Increments per process and sample.
const PER_PROCESS: u64 = 100_000;

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    match incr_2proc(cfg) {
        Ok(()) => Vec::new(),
        Err(e) => vec![("mp-incr-2proc", e)],
    }
}

fn bump(v: &mp_shm::Value<u64>) {
    for _ in 0..PER_PROCESS {
        *v.lock() += 1;
    }
}

fn incr_2proc(cfg: &Config) -> io::Result<()> {
    let v = mp_shm::Value::new(0u64).map_err(io::Error::other)?;
    let (min, max) = (cfg.pick(3, 1), 100);
    let ((samples, wrong), pin) = two_processes(0, |side| {
        let stop = side.shm().word(0);
        if !side.is_parent() {
            loop {
                side.barrier();
                if stop.load(Ordering::Acquire) != 0 {
                    return (Vec::new(), None);
                }
                bump(&v);
                side.barrier();
            }
        }
        let mut samples: Vec<Duration> = Vec::new();
        let mut wrong = None;
        let start = Instant::now();
        loop {
            let more = samples.len() < min
                || (samples.len() < max && start.elapsed() < cfg.budget && wrong.is_none());
            stop.store(u32::from(!more), Ordering::Release);
            side.barrier();
            if !more {
                return (samples, wrong);
            }
            let t = Instant::now();
            bump(&v);
            side.barrier(); // the child has finished its increments too
            samples.push(t.elapsed());
            let got = v.get();
            if got != 2 * PER_PROCESS {
                wrong = Some(got);
            }
            v.set(0);
        }
    })?;
    if let Some(got) = wrong {
        return Err(io::Error::other(format!(
            "lost increments: {got} != {}",
            2 * PER_PROCESS
        )));
    }
    RowBuilder::new(
        GROUP,
        "value/mp-incr-2proc",
        "2 processes x 100k locked increments",
        "mp Value",
    )
    .baseline(&["value/py-incr-2proc"])
    .note(format!(
        "`*v.lock() += 1` on one Value<u64> (its RLock) from two processes at once (fork), 100k \
         each, per increment; final value checked; {pin}"
    ))
    .stats(Unit::Ns, Stats::per_op(&samples, 2 * PER_PROCESS, Unit::Ns))
    .emit();
    Ok(())
}
