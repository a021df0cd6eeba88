//! The dispatcher thread: owns the worker processes, sends them tasks,
//! collects results, notices deaths and timeouts, replaces workers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mp_channel::{Pipe, PipeEnd};
use mp_proc::Process;
use mp_shm::RawValue;

use crate::Error;
use crate::insights::{self, Record};
use crate::shared::{Shared, State};
use crate::task::TaskRec;
use crate::worker::{Msg, WorkerConfig, claim, worker_main};

/// How often worker liveness and task deadlines are checked.
const TICK: Duration = Duration::from_millis(10);
/// Ring bytes of a worker's task pipe.
pub(crate) const TASK_RING: usize = 1 << 20;
/// Most tasks in flight per worker (tiny tasks).
const MAX_DEPTH: usize = 64;

struct Worker {
    id: u64,
    proc: Process<()>,
    pid: u32,
    tx: PipeEnd,
    claim: RawValue<u64>,
    /// Tasks sent so far (the pipe index of the next one).
    next_k: u64,
    /// Tasks sent and not reported, with their pipe index.
    inflight: VecDeque<(u64, TaskRec)>,
    inflight_bytes: usize,
    /// Since when the oldest in-flight task has (probably) been running.
    head_since: Instant,
    sent: u64,
    /// Has been sent its last task (max_tasks_per_child): exits by itself.
    retiring: bool,
    /// Killed for running over the task timeout.
    timed_out: bool,
    /// A send failed: it is dying.
    gone: bool,
    /// Mean task time (seconds), exponentially weighted.
    avg: f64,
    /// What `Pool::insights` reports about it.
    rec: Arc<Record>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Out of the pool: exited, replaced, killed or shut down.
        self.rec.exited.store(true, Ordering::Relaxed);
        self.rec.retire();
    }
}

impl Worker {
    fn depth(&self) -> usize {
        if self.avg == 0.0 {
            1
        } else if self.avg < 20e-6 {
            MAX_DEPTH
        } else if self.avg < 200e-6 {
            8
        } else if self.avg < 2e-3 {
            2
        } else {
            1
        }
    }
}

pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    workers: Vec<Worker>,
    queue: VecDeque<TaskRec>,
    next_worker: u64,
    state: State,
    broken: Option<String>,
    last_check: Instant,
    rr: usize,
}

impl Dispatcher {
    /// Starts the workers; returns the dispatcher to run on its thread.
    pub(crate) fn start(shared: Arc<Shared>) -> Result<Dispatcher, Error> {
        let mut d = Dispatcher {
            shared,
            workers: Vec::new(),
            queue: VecDeque::new(),
            next_worker: 0,
            state: State::Running,
            broken: None,
            last_check: Instant::now(),
            rr: 0,
        };
        for _ in 0..d.shared.cfg.processes {
            if let Err(e) = d.spawn_worker() {
                d.kill_all();
                return Err(e);
            }
        }
        Ok(d)
    }

    fn spawn_worker(&mut self) -> Result<(), Error> {
        let cfg = &self.shared.cfg;
        let (rx, tx) = Pipe::builder()
            .duplex(false)
            .capacity(TASK_RING)
            .wait_mode(cfg.wait_mode)
            .build()
            .map_err(Error::channel)?;
        let claim_word = RawValue::new(0u64).map_err(Error::channel)?;
        let stats = if cfg.insights {
            Some(insights::new_stats()?)
        } else {
            None
        };
        let id = self.next_worker;
        self.next_worker += 1;
        let wc = WorkerConfig {
            id,
            tasks: rx,
            inbox: self.shared.inbox.clone(),
            init: cfg.init.clone(),
            max_tasks: cfg.max_tasks_per_child,
            claim: claim_word.clone(),
            stats: stats.clone(),
        };
        let mut p = Process::new(worker_main, wc)
            .daemon(true)
            .name(format!("PoolWorker-{}", id + 1));
        if let Some(m) = cfg.start_method {
            p = p.start_method(m);
        }
        let spawned_at = insights::now();
        p.start()?;
        let pid = p.pid().unwrap_or(0);
        let rec = Arc::new(Record {
            id,
            pid,
            spawned_at,
            stats: std::sync::Mutex::new(match stats {
                Some(a) => insights::Stats::Live(a),
                None => insights::Stats::Off,
            }),
            tasks: Default::default(),
            items: Default::default(),
            exited: Default::default(),
        });
        self.shared
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(rec.clone());
        self.workers.push(Worker {
            id,
            proc: p,
            pid,
            tx,
            claim: claim_word,
            next_k: 0,
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            head_since: Instant::now(),
            sent: 0,
            retiring: false,
            timed_out: false,
            gone: false,
            avg: 0.0,
            rec,
        });
        self.publish_pids();
        Ok(())
    }

    fn publish_pids(&self) {
        let pids = self
            .workers
            .iter()
            .filter(|w| !w.retiring)
            .map(|w| w.pid)
            .collect();
        *self.shared.pids.lock().unwrap_or_else(|e| e.into_inner()) = pids;
    }

    /// The dispatcher thread's body.
    pub(crate) fn run(mut self) {
        loop {
            self.take_submissions();
            if self.state == State::Terminated {
                self.terminate();
                return;
            }
            self.dispatch();
            if self.state == State::Closed
                && self.queue.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty())
            {
                self.shutdown();
                return;
            }
            let wait = self.next_wait();
            match self.shared.inbox.get_timeout(wait) {
                Ok(msg) => {
                    self.handle(msg);
                    // Drain what else is there before the periodic work.
                    for _ in 0..256 {
                        match self.shared.inbox.get_nowait() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => {}
            }
            if self.last_check.elapsed() >= TICK {
                self.check_workers();
                self.last_check = Instant::now();
            }
        }
    }

    fn next_wait(&self) -> Duration {
        let mut wait = TICK.saturating_sub(self.last_check.elapsed());
        if let Some(t) = self.shared.cfg.task_timeout {
            for w in &self.workers {
                if !w.inflight.is_empty() {
                    let left = (w.head_since + t).saturating_duration_since(Instant::now());
                    wait = wait.min(left);
                }
            }
        }
        wait.max(Duration::from_micros(100))
    }

    fn take_submissions(&mut self) {
        if !self.shared.wake.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut ctl = self.shared.lock();
        self.queue.extend(ctl.pending.drain(..));
        self.state = ctl.state;
        drop(ctl);
        if let Some(msg) = &self.broken {
            let e = Error::Initializer {
                message: msg.clone(),
            };
            for t in self.queue.drain(..) {
                t.job.fail(t.index, t.nitems, &e);
            }
        }
    }

    /// Sends queued tasks to workers with room, round robin.
    fn dispatch(&mut self) {
        let n = self.workers.len();
        if n == 0 {
            return;
        }
        let mut idle_rounds = 0;
        while !self.queue.is_empty() && idle_rounds < n {
            let i = self.rr % n;
            self.rr = self.rr.wrapping_add(1);
            if self.try_send(i) {
                idle_rounds = 0;
            } else {
                idle_rounds += 1;
            }
        }
        if self.queue.is_empty() && self.steal() {
            self.dispatch();
        }
    }

    /// When a worker is idle and nothing is queued, takes back the tasks
    /// that another worker has not started (it is busy with a long one)
    /// and queues them again. Returns whether anything was taken.
    fn steal(&mut self) -> bool {
        let idle = self
            .workers
            .iter()
            .any(|w| w.inflight.is_empty() && !w.retiring && !w.timed_out && !w.gone);
        if !idle {
            return false;
        }
        let Some(v) = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.inflight.len() >= 2 && !w.gone && !w.timed_out)
            .max_by_key(|(_, w)| w.inflight.len())
            .map(|(i, _)| i)
        else {
            return false;
        };
        let w = &mut self.workers[v];
        let word = claim(&w.claim);
        let mut s = word.load(Ordering::SeqCst);
        loop {
            if s >= w.next_k {
                return false; // everything has started
            }
            match word.compare_exchange(s, w.next_k, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        // Tasks with index >= s will be skipped by the worker.
        let mut taken = Vec::new();
        while w.inflight.back().is_some_and(|(k, _)| *k >= s) {
            let (_, t) = w.inflight.pop_back().expect("checked");
            w.inflight_bytes -= t.frame.len();
            w.sent -= 1;
            taken.push(t);
        }
        if w.retiring {
            // It will not reach its task limit now: tell it to leave.
            let _ = w.tx.send_bytes(&[]);
        }
        let any = !taken.is_empty();
        for t in taken {
            self.queue.push_front(t);
        }
        any
    }

    /// Sends the next queued task to worker `i` if it has room.
    fn try_send(&mut self, i: usize) -> bool {
        let max_tasks = self.shared.cfg.max_tasks_per_child;
        let w = &self.workers[i];
        if w.retiring || w.timed_out || w.gone || w.inflight.len() >= w.depth() {
            return false;
        }
        // Skip tasks of calls that already failed.
        while self.queue.front().is_some_and(|t| t.job.cancelled()) {
            self.queue.pop_front();
        }
        let Some(front) = self.queue.front() else {
            return false;
        };
        if !w.inflight.is_empty() && w.inflight_bytes + front.frame.len() > TASK_RING / 2 {
            return false;
        }
        let task = self.queue.pop_front().expect("checked");
        if !task.job.start() {
            return true; // cancelled just now: dropped
        }
        let w = &mut self.workers[i];
        if w.tx.send_bytes(&task.frame).is_err() {
            // The worker is gone; its death is handled by the next check.
            self.queue.push_front(task);
            w.gone = true; // no more sends to it
            return false;
        }
        if w.inflight.is_empty() {
            w.head_since = Instant::now();
        }
        w.inflight_bytes += task.frame.len();
        w.inflight.push_back((w.next_k, task));
        w.next_k += 1;
        w.sent += 1;
        if max_tasks != 0 && w.sent >= max_tasks {
            w.retiring = true;
            // Start the successor now so that no time is lost.
            if self.broken.is_none() && self.state != State::Terminated {
                if let Err(e) = self.spawn_worker() {
                    self.break_pool(e.to_string());
                }
            } else {
                self.publish_pids();
            }
        }
        true
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Wake => {}
            Msg::Done { worker, seq, out } => {
                let Some(i) = self.workers.iter().position(|w| w.id == worker) else {
                    return;
                };
                let w = &mut self.workers[i];
                let Some(pos) = w.inflight.iter().position(|t| t.1.seq == seq) else {
                    return;
                };
                let (_, task) = w.inflight.remove(pos).expect("found");
                w.inflight_bytes -= task.frame.len();
                w.rec.done(task.nitems);
                let now = Instant::now();
                let took = now.saturating_duration_since(w.head_since).as_secs_f64();
                w.avg = if w.avg == 0.0 {
                    took.max(1e-9)
                } else {
                    0.8 * w.avg + 0.2 * took.max(1e-9)
                };
                w.head_since = now;
                // Keep this worker busy before decoding its results.
                while !self.queue.is_empty() && self.try_send(i) {}
                task.job.complete(task.index, task.nitems, out.map(|b| b.0));
                drop(task);
            }
            Msg::InitFailed { worker: _, message } => self.break_pool(message),
        }
    }

    /// The initializer (or a worker start) failed: fail everything, start
    /// no more workers.
    fn break_pool(&mut self, message: String) {
        if self.broken.is_none() {
            self.shared.lock().broken = Some(message.clone());
        }
        let e = Error::Initializer {
            message: message.clone(),
        };
        self.broken = Some(message);
        for t in self.queue.drain(..) {
            t.job.fail(t.index, t.nitems, &e);
        }
        for w in &mut self.workers {
            for (_, t) in w.inflight.drain(..) {
                t.job.fail(t.index, t.nitems, &e);
            }
            w.inflight_bytes = 0;
        }
    }

    /// Notices dead workers and overdue tasks.
    fn check_workers(&mut self) {
        if let Some(t) = self.shared.cfg.task_timeout {
            for w in &mut self.workers {
                if !w.inflight.is_empty() && !w.timed_out && w.head_since.elapsed() > t {
                    w.timed_out = true;
                    let _ = w.proc.kill();
                }
            }
        }
        let mut i = 0;
        while i < self.workers.len() {
            if self.workers[i].proc.is_alive() {
                i += 1;
                continue;
            }
            // Results it sent before dying are already in the inbox.
            while let Ok(m) = self.shared.inbox.get_nowait() {
                self.handle(m);
            }
            let w = self.workers.remove(i);
            self.worker_exited(w);
        }
    }

    fn worker_exited(&mut self, mut w: Worker) {
        let _ = w.proc.join();
        let code = w.proc.exitcode().unwrap_or(-libc::SIGKILL);
        let started_below = claim(&w.claim).load(Ordering::SeqCst);
        let tasks = std::mem::take(&mut w.inflight);
        let (started, unstarted): (Vec<_>, Vec<_>) =
            tasks.into_iter().partition(|(k, _)| *k < started_below);
        // Tasks that never started run elsewhere, first.
        for (_, t) in unstarted.into_iter().rev() {
            self.queue.push_front(t);
        }
        // The task it was running (at most one: results come in order).
        let mut failed = Vec::new();
        for (_, mut t) in started {
            if t.attempts < self.shared.cfg.retries {
                t.attempts += 1;
                self.queue.push_front(t);
            } else {
                failed.push(t);
            }
        }
        // Replace it before failing its task, so that a caller woken by
        // the failure sees the new worker.
        let replace = !w.retiring
            && self.broken.is_none()
            && self.state != State::Terminated
            && !(self.state == State::Closed
                && self.queue.is_empty()
                && self.workers.iter().all(|w| w.inflight.is_empty()));
        if replace {
            if let Err(e) = self.spawn_worker() {
                self.break_pool(e.to_string());
            }
        } else {
            self.publish_pids();
        }
        for t in failed {
            let err = if w.timed_out && self.shared.cfg.task_timeout.is_some() {
                Error::TaskTimeout {
                    timeout: self.shared.cfg.task_timeout.unwrap_or_default(),
                    pid: w.pid,
                }
            } else {
                Error::WorkerDied {
                    pid: w.pid,
                    exitcode: code,
                }
            };
            t.job.fail(t.index, t.nitems, &err);
        }
    }

    /// Close: every task is done; tell the workers to exit and reap them.
    fn shutdown(&mut self) {
        for w in &self.workers {
            let _ = w.tx.send_bytes(&[]);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for w in &self.workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if !matches!(w.proc.join_timeout(left), Ok(Some(()))) && w.proc.is_alive() {
                let _ = w.proc.kill();
                let _ = w.proc.join();
            }
        }
        self.workers.clear();
        self.publish_pids();
    }

    /// Terminate: kill the workers, fail everything.
    fn terminate(&mut self) {
        self.kill_all();
        for t in self.queue.drain(..) {
            t.job.fail(t.index, t.nitems, &Error::Terminated);
        }
        for w in &mut self.workers {
            for (_, t) in w.inflight.drain(..) {
                t.job.fail(t.index, t.nitems, &Error::Terminated);
            }
        }
        self.workers.clear();
        self.publish_pids();
        // Anything submitted meanwhile (the pool refuses new work once
        // terminated, but be thorough).
        let mut ctl = self.shared.lock();
        for t in ctl.pending.drain(..) {
            t.job.fail(t.index, t.nitems, &Error::Terminated);
        }
    }

    /// SIGTERM every worker, SIGKILL what is left after a short grace
    /// period, and reap them all.
    fn kill_all(&mut self) {
        for w in &self.workers {
            let _ = w.proc.terminate();
        }
        let deadline = Instant::now() + Duration::from_millis(200);
        for w in &self.workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if !matches!(w.proc.join_timeout(left), Ok(Some(()))) && w.proc.is_alive() {
                let _ = w.proc.kill();
            }
            let _ = w.proc.join();
        }
    }
}

/// If the dispatcher thread panics (a bug), nothing would ever complete
/// the calls waiting on it: fail them all, kill the workers, and refuse new
/// work, so that no caller hangs.
impl Drop for Dispatcher {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.lock().state = State::Terminated;
            self.terminate();
        }
    }
}
