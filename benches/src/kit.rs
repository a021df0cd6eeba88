//! The shared toolkit of the harness: run configuration and sampling, statistics, the JSON row
//! emitter, and the two-process runner with CPU pinning and a start barrier.
//!
//! A group module (`ipc.rs`, `process.rs`, ...) uses only what is re-exported here.

mod row;
mod stats;
mod sys;
mod two;

pub(crate) use row::{RowBuilder, Unit};
pub(crate) use stats::Stats;
pub(crate) use sys::{futex_wait, futex_wake, read_exact, write_all};
pub(crate) use two::{Pinning, Shm, Side, two_processes};

use std::time::{Duration, Instant};

/// How long and how hard each row is measured; `--quick` shrinks everything.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Config {
    /// `--quick` was given: fewer iterations, smaller item counts.
    pub(crate) quick: bool,
    /// Wall-clock budget for the sampling loop of one row (warm-up not included).
    pub(crate) budget: Duration,
}

impl Config {
    /// The configuration for a full or a quick run.
    pub(crate) fn new(quick: bool) -> Self {
        let budget = if quick {
            Duration::from_millis(150)
        } else {
            Duration::from_millis(1000)
        };
        Self { quick, budget }
    }

    /// Picks `full` or `quick` depending on the mode.
    pub(crate) fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }

    /// Calls `f` until the budget is spent, at least `min` and at most `max` times, and returns
    /// what each call measured. `f` returns the duration it measured itself (so set-up inside
    /// `f` can stay out of the figure).
    pub(crate) fn sample(
        &self,
        min: usize,
        max: usize,
        mut f: impl FnMut() -> Duration,
    ) -> Vec<Duration> {
        let start = Instant::now();
        let mut out = Vec::with_capacity(max.min(1 << 16));
        while out.len() < max && (out.len() < min || start.elapsed() < self.budget) {
            out.push(f());
        }
        out
    }
}

/// Times `f` once.
pub(crate) fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}
