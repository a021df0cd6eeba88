//! Pool insights: what each worker did and where its time went.
//!
//! # Where the figures come from
//!
//! * Tasks and items are counted by the dispatcher when a worker's result
//!   arrives (two relaxed additions per chunk, always on).
//! * Times are measured by the worker itself, only when the pool was built
//!   with [`PoolBuilder::insights`](crate::PoolBuilder::insights): a few
//!   clock reads per chunk (none per item), added into a small array in
//!   shared memory that the pool reads at any time, also after the worker
//!   has exited or died.
//!
//! # The stats array (layout version 1)
//!
//! A [`RawArray<u64>`] of [`STATS_LEN`] slots per worker, created by the
//! dispatcher before the worker starts and passed in its arguments. Only
//! the worker writes slots `0..=5` (relaxed atomic stores of a running
//! sum: one writer, so no read-modify-write instruction is needed); the
//! pool only reads them. Times are nanoseconds.
//!
//! | slot | what |
//! |---|---|
//! | 0 `MAIN_AT` | `CLOCK_MONOTONIC` time at which the worker's loop began (0: not yet) |
//! | 1 `INIT` | time in the initializer |
//! | 2 `WAIT` | time waiting for a task (its pipe empty) |
//! | 3 `ARGS` | time receiving tasks: copying a frame out of the pipe, decoding its header |
//! | 4 `RUN` | time in the chunk runner (`codec.rs`): the task function, with each item's decoding and its result's encoding, which are interleaved with the calls |
//! | 5 `RESULTS` | time putting results on the pool's result queue |
//! | 6 | reserved (0) |
//! | 7 `VERSION` | [`STATS_VERSION`], written by the pool at creation |
//!
//! Both sides run the same executable, so the layout cannot differ between
//! them; the version slot documents which layout a dump holds.
//!
//! When a worker leaves the pool (exited, replaced, killed or shut down),
//! the pool copies its slots into its [`Record`] and drops the array: a pool
//! that replaces workers for ever (`max_tasks_per_child`) keeps no file
//! descriptor or mapping per worker it ever started.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use mp_shm::RawArray;

use crate::Error;

pub(crate) const MAIN_AT: usize = 0;
pub(crate) const INIT: usize = 1;
pub(crate) const WAIT: usize = 2;
pub(crate) const ARGS: usize = 3;
pub(crate) const RUN: usize = 4;
pub(crate) const RESULTS: usize = 5;
pub(crate) const VERSION: usize = 7;
/// Slots of a worker's stats array.
pub(crate) const STATS_LEN: usize = 8;
/// The stats array's layout version (slot [`VERSION`]).
pub(crate) const STATS_VERSION: u64 = 1;

/// A fresh stats array.
pub(crate) fn new_stats() -> Result<RawArray<u64>, Error> {
    let a = RawArray::zeroed(STATS_LEN).map_err(Error::channel)?;
    a.set(VERSION, STATS_VERSION);
    Ok(a)
}

/// The worker's side: adds to its own slots.
#[derive(Debug)]
pub(crate) struct Timer<'a>(pub(crate) &'a RawArray<u64>);

impl Timer<'_> {
    /// Adds `ns` to `slot` (this worker is the slot's only writer).
    pub(crate) fn add(&self, slot: usize, ns: u64) {
        self.0.set(slot, self.0.get(slot).wrapping_add(ns));
    }

    pub(crate) fn set(&self, slot: usize, v: u64) {
        self.0.set(slot, v);
    }
}

/// Nanoseconds on `CLOCK_MONOTONIC` (comparable between processes).
pub(crate) fn now() -> u64 {
    mp_os::time::monotonic_ns()
}

/// A worker's times, as far as the pool holds them.
#[derive(Debug)]
pub(crate) enum Stats {
    /// Not measured (insights off).
    Off,
    /// The worker's stats array, while it is in the pool.
    Live(RawArray<u64>),
    /// Its slots, copied when it left the pool (the array is gone).
    Final([u64; STATS_LEN]),
}

/// What the pool keeps about one worker, from its start on, also after it
/// has exited.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) id: u64,
    pub(crate) pid: u32,
    /// When the dispatcher asked for the process (monotonic ns).
    pub(crate) spawned_at: u64,
    pub(crate) stats: Mutex<Stats>,
    pub(crate) tasks: AtomicU64,
    pub(crate) items: AtomicU64,
    pub(crate) exited: AtomicBool,
}

impl Record {
    /// Counts a chunk of `items` whose result came back.
    pub(crate) fn done(&self, items: usize) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// The worker has left the pool: keeps a copy of its slots and drops
    /// its stats array (a file descriptor and a mapping).
    pub(crate) fn retire(&self) {
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Stats::Live(a) = &*stats {
            let mut slots = [0u64; STATS_LEN];
            for (i, v) in slots.iter_mut().enumerate() {
                *v = a.get(i);
            }
            *stats = Stats::Final(slots);
        }
    }

    fn snapshot(&self) -> WorkerInsights {
        let ns = Duration::from_nanos;
        let mut w = WorkerInsights {
            worker: self.id + 1,
            pid: self.pid,
            running: !self.exited.load(Ordering::Relaxed),
            tasks: self.tasks.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
            startup: Duration::ZERO,
            init: Duration::ZERO,
            working: Duration::ZERO,
            waiting: Duration::ZERO,
            args: Duration::ZERO,
            results: Duration::ZERO,
        };
        let stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        let get = |slot: usize| match &*stats {
            Stats::Off => None,
            Stats::Live(a) => Some(a.get(slot)),
            Stats::Final(v) => Some(v[slot]),
        };
        if let Some(main_at) = get(MAIN_AT) {
            if main_at != 0 {
                w.startup = ns(main_at.saturating_sub(self.spawned_at));
            }
            w.init = ns(get(INIT).unwrap_or(0));
            w.working = ns(get(RUN).unwrap_or(0));
            w.waiting = ns(get(WAIT).unwrap_or(0));
            w.args = ns(get(ARGS).unwrap_or(0));
            w.results = ns(get(RESULTS).unwrap_or(0));
        }
        w
    }
}

/// What the workers of a [`Pool`](crate::Pool) have done so far and where
/// their time went: [`Pool::insights`](crate::Pool::insights).
///
/// `Display` prints a compact table, one line per worker (those that have
/// exited too: replaced after `max_tasks_per_child`, killed, or gone with
/// the pool) and a total:
///
/// ```text
/// worker     pid  state    tasks  items    start     init  working  waiting     args  results
///      1   14427  running     12     12   2.09ms  30.12ms 100.10ms  47.60ms    117us  17.31ms
///      2   14428  running     12     12    972us  30.11ms  92.93ms   4.82ms     68us  19.44ms
///  total                      24     24   3.07ms  60.23ms 193.04ms  52.43ms    185us  36.75ms
/// ```
///
/// (Two workers with a 30 ms initializer, 20 tasks of 5 ms and 4 tasks
/// that return 1 MiB each: `tests/insights.rs`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insights {
    /// Whether times were measured ([`PoolBuilder::insights`](crate::PoolBuilder::insights));
    /// without it every time is zero and only the counts are kept.
    pub timed: bool,
    /// One entry per worker ever started, in start order.
    pub workers: Vec<WorkerInsights>,
}

/// One worker's share of [`Insights`].
///
/// Times add up over the worker's life. `working` includes decoding each
/// argument and encoding each result (they are interleaved with the calls,
/// item by item); `args` and `results` are the transfers around them:
/// copying a task out of the worker's pipe, and putting its results on the
/// result queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInsights {
    /// The worker's number: its process is named `PoolWorker-{worker}`.
    pub worker: u64,
    /// Its process id.
    pub pid: u32,
    /// Still in the pool (not replaced, killed or shut down).
    pub running: bool,
    /// Tasks (chunks) whose results came back.
    pub tasks: u64,
    /// Items in those tasks.
    pub items: u64,
    /// From asking for the process to the worker's code running (process
    /// start, arguments, attaching the channels).
    pub startup: Duration,
    /// In the initializer.
    pub init: Duration,
    /// In the task function (with each item's decoding and encoding).
    pub working: Duration,
    /// Waiting for a task.
    pub waiting: Duration,
    /// Receiving tasks (arguments).
    pub args: Duration,
    /// Sending results.
    pub results: Duration,
}

impl Insights {
    pub(crate) fn collect(timed: bool, records: &[std::sync::Arc<Record>]) -> Insights {
        Insights {
            timed,
            workers: records.iter().map(|r| r.snapshot()).collect(),
        }
    }

    /// The sums over every worker (`worker` and `pid` are 0; `running`
    /// says whether any worker is).
    ///
    /// ```
    /// use mp_pool::Pool;
    ///
    /// fn double(x: u32) -> u32 { x * 2 }
    ///
    /// let pool = Pool::builder().processes(2).insights(true).build()?;
    /// pool.map_chunked(double, 0..100, 10)?;
    /// let total = pool.insights().total();
    /// assert_eq!((total.tasks, total.items), (10, 100));
    /// # Ok::<(), mp_pool::Error>(())
    /// ```
    pub fn total(&self) -> WorkerInsights {
        let mut t = WorkerInsights {
            worker: 0,
            pid: 0,
            running: false,
            tasks: 0,
            items: 0,
            startup: Duration::ZERO,
            init: Duration::ZERO,
            working: Duration::ZERO,
            waiting: Duration::ZERO,
            args: Duration::ZERO,
            results: Duration::ZERO,
        };
        for w in &self.workers {
            t.running |= w.running;
            t.tasks += w.tasks;
            t.items += w.items;
            t.startup += w.startup;
            t.init += w.init;
            t.working += w.working;
            t.waiting += w.waiting;
            t.args += w.args;
            t.results += w.results;
        }
        t
    }
}

/// A time in a table cell: `812us`, `20.12ms`, `3.41s`.
fn cell(d: Duration, timed: bool) -> String {
    if !timed {
        return "-".into();
    }
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0}us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2}ms", s * 1e3)
    } else {
        format!("{s:.2}s")
    }
}

impl fmt::Display for Insights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6} {:>7}  {:<7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "worker",
            "pid",
            "state",
            "tasks",
            "items",
            "start",
            "init",
            "working",
            "waiting",
            "args",
            "results"
        )?;
        let line = |f: &mut fmt::Formatter<'_>, w: &WorkerInsights, name: &str, pid: &str| {
            let t = self.timed;
            let state = match (name, w.running) {
                ("total", _) => "",
                (_, true) => "running",
                (_, false) => "exited",
            };
            writeln!(
                f,
                "{name:>6} {pid:>7}  {state:<7} {:>6} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                w.tasks,
                w.items,
                cell(w.startup, t),
                cell(w.init, t),
                cell(w.working, t),
                cell(w.waiting, t),
                cell(w.args, t),
                cell(w.results, t),
            )
        };
        for w in &self.workers {
            line(f, w, &w.worker.to_string(), &w.pid.to_string())?;
        }
        line(f, &self.total(), "total", "")?;
        if !self.timed {
            writeln!(
                f,
                "(times not measured: build the pool with PoolBuilder::insights(true))"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, stats: Option<&RawArray<u64>>) -> Record {
        Record {
            id,
            pid: 100 + id as u32,
            spawned_at: 1_000,
            stats: Mutex::new(stats.map_or(Stats::Off, |a| Stats::Live(a.clone()))),
            tasks: AtomicU64::new(0),
            items: AtomicU64::new(0),
            exited: AtomicBool::new(false),
        }
    }

    #[test]
    fn snapshots_read_the_workers_slots() {
        let s = new_stats().unwrap();
        let r = record(0, Some(&s));
        assert_eq!(s.get(VERSION), STATS_VERSION);
        let t = Timer(&s);
        t.set(MAIN_AT, 1_000 + 450_000);
        t.add(INIT, 20_000_000);
        t.add(RUN, 1_500_000_000);
        t.add(RUN, 500_000_000);
        t.add(WAIT, 7_000);
        t.add(ARGS, 40_000);
        t.add(RESULTS, 60_000);
        r.done(3);
        r.done(4);
        let w = r.snapshot();
        assert_eq!((w.worker, w.pid, w.running), (1, 100, true));
        assert_eq!((w.tasks, w.items), (2, 7));
        assert_eq!(w.startup, Duration::from_micros(450));
        assert_eq!(w.init, Duration::from_millis(20));
        assert_eq!(w.working, Duration::from_secs(2));
        assert_eq!(w.waiting, Duration::from_micros(7));
        assert_eq!(w.args, Duration::from_micros(40));
        assert_eq!(w.results, Duration::from_micros(60));
        // Once retired, the record holds a copy: later writes to the array
        // (there are none in a pool: the worker is gone) do not show.
        r.retire();
        assert!(matches!(*r.stats.lock().unwrap(), Stats::Final(_)));
        t.add(RUN, 1);
        let after = r.snapshot();
        assert_eq!(after, w);
    }

    #[test]
    fn the_table_has_a_line_per_worker_and_a_total() {
        let (sa, sb) = (new_stats().unwrap(), new_stats().unwrap());
        let a = std::sync::Arc::new(record(0, Some(&sa)));
        let b = std::sync::Arc::new(record(1, Some(&sb)));
        Timer(&sa).add(RUN, 2_500_000);
        Timer(&sb).add(RUN, 1_000_000_000);
        a.done(5);
        b.done(1);
        b.exited.store(true, Ordering::Relaxed);
        let i = Insights::collect(true, &[a, b]);
        assert_eq!(i.total().tasks, 2);
        assert_eq!(i.total().items, 6);
        assert_eq!(i.total().working, Duration::from_micros(1_002_500));
        let text = i.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("worker     pid  state"), "{text}");
        assert!(
            lines[1].contains("running") && lines[1].contains("2.50ms"),
            "{text}"
        );
        assert!(
            lines[2].contains("exited") && lines[2].contains("1.00s"),
            "{text}"
        );
        assert!(lines[3].trim_start().starts_with("total"), "{text}");
        assert!(lines[3].contains("1.00s"), "{text}");

        let untimed = Insights::collect(false, &[std::sync::Arc::new(record(0, None))]);
        let text = untimed.to_string();
        assert!(text.contains("times not measured"), "{text}");
        assert!(text.lines().nth(1).unwrap().ends_with("       -"), "{text}");
    }
}
