//! The worker process: its configuration, the messages it exchanges with
//! the dispatcher, and its loop.
//!
//! # Wire format
//!
//! * Dispatcher to worker, one simplex [`PipeEnd`] per worker, one message
//!   per task: a postcard [`TaskHeader`] (task sequence number, the
//!   function as a [`RawFunction`]) immediately followed by the postcard
//!   encoding of the chunk's `Vec<A>` (an `apply` is a chunk of one). The
//!   caller's thread builds the whole frame once; the dispatcher sends it
//!   as it is (`send_bytes`). An empty message tells the worker to exit.
//! * Workers to dispatcher, one shared [`Queue<Msg>`]: [`Msg::Done`] with
//!   the postcard `Vec<Result<R, CallError>>` of the chunk (as
//!   `codec::ChunkRunner` returns it), [`Msg::InitFailed`], and
//!   [`Msg::Wake`] (sent by the pool's own threads to wake the dispatcher).

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mp_channel::{Bytes, PipeEnd, Queue};
use mp_proc::{CallError, RawFunction};
use mp_shm::{RawArray, RawValue};
use serde::{Deserialize, Serialize};

use crate::insights::{self, Timer};

/// Messages to the dispatcher.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Msg {
    /// A task finished: the encoded `Vec<Result<R, CallError>>`, or why the
    /// chunk as a whole could not run.
    Done {
        worker: u64,
        seq: u64,
        out: Result<Bytes, CallError>,
    },
    /// The initializer failed; the worker exits.
    InitFailed { worker: u64, message: String },
    /// Wakes the dispatcher (new submissions, close, terminate).
    Wake,
}

/// What precedes a task's payload in its frame.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct TaskHeader {
    pub(crate) seq: u64,
    pub(crate) func: RawFunction,
}

/// A descriptor passed to the worker in its start arguments
/// (`PassFd<Arc<OwnedFd>>`).
pub(crate) use mp_os::handle::Fd as PassFd;

/// The initializer: a function of one argument, its encoded argument and
/// the descriptors of the handles in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Init {
    pub(crate) func: RawFunction,
    pub(crate) args: Bytes,
    pub(crate) fds: Vec<PassFd<Arc<OwnedFd>>>,
    /// What keeps the channels in the arguments connected (in the pool's
    /// process only; see `mp_os::handle::collect_handles`).
    #[serde(skip)]
    pub(crate) _keep: Option<Arc<mp_os::handle::Transits>>,
}

/// The arguments of [`worker_main`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerConfig {
    pub(crate) id: u64,
    pub(crate) tasks: PipeEnd,
    pub(crate) inbox: Queue<Msg>,
    pub(crate) init: Option<Init>,
    /// Tasks before the worker exits (0: no limit).
    pub(crate) max_tasks: u64,
    /// The claim word: see [`claim`].
    pub(crate) claim: RawValue<u64>,
    /// Where the worker adds up its times (`insights.rs`); `None`: not
    /// measured.
    pub(crate) stats: Option<RawArray<u64>>,
}

/// The claim word of a worker, a `u64` in shared memory: the index (in
/// this worker's pipe order) of the next task that may start. The worker
/// starts task `k` by moving it from `k` to `k + 1`; the dispatcher takes
/// back tasks that have not started (to give them to an idle worker) by
/// moving it from `s` to the number of tasks sent, and the worker then
/// skips them. After a worker dies, tasks below the word had started.
pub(crate) fn claim(v: &RawValue<u64>) -> &AtomicU64 {
    // SAFETY: the value is a u64 in a shared mapping that `v` keeps alive,
    // 8-byte aligned (the segment payload is page aligned), and every
    // process accesses it only atomically.
    unsafe { &*v.as_ptr().cast::<AtomicU64>() }
}

/// The worker process's target.
pub(crate) fn worker_main(cfg: WorkerConfig) {
    let timer = cfg.stats.as_ref().map(Timer);
    if let Some(t) = &timer {
        t.set(insights::MAIN_AT, insights::now());
    }
    if let Some(init) = cfg.init {
        let t0 = timer.as_ref().map(|_| insights::now());
        let fds = init
            .fds
            .into_iter()
            .map(|f| Arc::try_unwrap(f.0).or_else(|a| a.try_clone()))
            .collect::<Result<Vec<OwnedFd>, _>>();
        let r = match fds {
            // SAFETY: `init.func` was made by `Function::raw` in the pool's
            // process, which runs this same executable, and came here in
            // this process's start arguments.
            Ok(fds) => unsafe { init.func.call(&init.args.0, fds) }.map(|_| ()),
            Err(e) => Err(CallError::BadInput(e.to_string())),
        };
        if let (Some(t), Some(t0)) = (&timer, t0) {
            t.add(insights::INIT, insights::now() - t0);
        }
        if let Err(e) = r {
            let message = match e {
                CallError::Panicked(m) => format!("panicked: {m}"),
                other => other.to_string(),
            };
            let _ = cfg.inbox.put(Msg::InitFailed {
                worker: cfg.id,
                message,
            });
            return;
        }
    }
    let mut count = 0u64;
    let word = claim(&cfg.claim);
    let mut k = 0u64;
    loop {
        // With insights on: the time until a task is there, then the time
        // to copy it out (nothing is measured otherwise).
        let t0 = timer.as_ref().map(|t| {
            let t0 = insights::now();
            cfg.tasks.poll_timeout(None);
            let t1 = insights::now();
            t.add(insights::WAIT, t1 - t0);
            t1
        });
        let frame = match cfg.tasks.recv_bytes() {
            Ok(f) => f,
            Err(_) => return, // the pool has gone
        };
        if frame.is_empty() {
            return; // told to exit
        }
        let mine = k;
        k += 1;
        if word
            .compare_exchange(mine, mine + 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            continue; // taken back by the dispatcher
        }
        let (hdr, payload) = match postcard::take_from_bytes::<TaskHeader>(&frame) {
            Ok(x) => x,
            Err(_) => return, // not from our pool: leave rather than guess
        };
        let t1 = timer.as_ref().zip(t0).map(|(t, t0)| {
            let t1 = insights::now();
            t.add(insights::ARGS, t1 - t0);
            t1
        });
        // SAFETY: the frame comes from the pool's dispatcher over this
        // worker's private pipe; `hdr.func` was made by `Function::raw` in
        // the pool's process, which runs this same executable.
        let out = unsafe { hdr.func.run(payload) };
        let t2 = timer.as_ref().zip(t1).map(|(t, t1)| {
            let t2 = insights::now();
            t.add(insights::RUN, t2 - t1);
            t2
        });
        let msg = Msg::Done {
            worker: cfg.id,
            seq: hdr.seq,
            out: out.map(Bytes),
        };
        if cfg.inbox.put(msg).is_err() {
            return;
        }
        if let Some((t, t2)) = timer.as_ref().zip(t2) {
            t.add(insights::RESULTS, insights::now() - t2);
        }
        count += 1;
        if cfg.max_tasks != 0 && count >= cfg.max_tasks {
            return;
        }
    }
}
