//! The root's side: one dispatcher thread per pool drives every worker
//! with non-blocking calls (`MPI_Isend`, `MPI_Improbe` + `MPI_Imrecv`,
//! `MPI_Test`), polling with backoff, so that neither side ever blocks in
//! a send whose receiver is not receiving.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mp_pool::Error;
use mp_proc::{CallError, RawFunction};

use crate::error::MpiError;
use crate::proto::{self, Backoff, Hello, Setup, Watch};
use crate::raw::{self, Comm};
use crate::worker::{decode, encode};

/// Where the results of a task go (one pool call).
pub(crate) trait Job: Send + Sync {
    /// Chunk `index` (of `nitems` items) finished: the bytes of
    /// `RawFunction::run` (mp-pool's `ChunkRunner`), or why the chunk failed as a whole.
    fn done(&self, index: usize, nitems: usize, out: Result<&[u8], Error>);
    /// Whether the call needs no more results (a failed `map`).
    fn cancelled(&self) -> bool {
        false
    }
}

/// One chunk of a call, ready to send.
pub(crate) struct Task {
    pub(crate) seq: u64,
    pub(crate) index: usize,
    pub(crate) nitems: usize,
    pub(crate) frame: Vec<u8>,
    pub(crate) job: Arc<dyn Job>,
}

/// Encodes a `TASK` body.
pub(crate) fn task_frame(seq: u64, func: RawFunction, chunk: &[u8]) -> Result<Vec<u8>, Error> {
    let mut v = encode(&(seq, func)).map_err(Error::from)?;
    v.extend_from_slice(chunk);
    Ok(v)
}

/// What the pool's handle asks of its dispatcher.
pub(crate) enum Cmd {
    Submit(Vec<Task>),
    Close,
    Terminate,
}

/// What a worker rank is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Its `HELLO` has not arrived.
    Hello,
    /// `SETUP` sent, `READY` awaited.
    Setup,
    Ready,
    /// `RELEASE` or `STOP` sent, the answer awaited.
    Leaving,
    /// Released or stopped.
    Left,
    Lost,
}

/// A worker rank as the root knows it; world workers outlive their pools.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) rank: i32,
    pub(crate) hello: Option<Hello>,
    pub(crate) watch: Option<Watch>,
    pub(crate) phase: Phase,
    last_seen: Instant,
    /// Tasks sent to it, oldest first (a worker runs them in order).
    inflight: VecDeque<u64>,
    sends: Vec<raw::Send>,
}

impl Slot {
    pub(crate) fn new(rank: i32) -> Slot {
        Slot {
            rank,
            hello: None,
            watch: None,
            phase: Phase::Hello,
            last_seen: Instant::now(),
            inflight: VecDeque::new(),
            sends: Vec::new(),
        }
    }

    fn lost_error(&self, why: &str) -> MpiError {
        let (pid, host) = self
            .hello
            .as_ref()
            .map_or((0, String::from("?")), |h| (h.pid, h.host.clone()));
        MpiError::WorkerLost {
            rank: self.rank,
            pid,
            host,
            why: why.to_string(),
        }
    }
}

/// How the pool ends with its workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// `RELEASE`: world workers go back to the process's registry.
    Release,
    /// `STOP`: the workers leave (spawned workers, or the world's at exit).
    Stop,
}

pub(crate) struct Settings {
    pub(crate) init: Option<(RawFunction, Vec<u8>)>,
    /// Chunks kept in flight per worker.
    pub(crate) depth: usize,
    pub(crate) heartbeat_timeout: Duration,
    pub(crate) start_timeout: Duration,
    pub(crate) ending: Ending,
}

/// What the pool handle and the dispatcher share.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// Workers not lost.
    pub(crate) alive: usize,
    /// The initializer failed: every task fails with it.
    pub(crate) broken: Option<String>,
    pub(crate) pids: Vec<u32>,
}

pub(crate) struct Dispatcher {
    comm: Comm,
    slots: Vec<Slot>,
    settings: Settings,
    rx: Receiver<Cmd>,
    status: Arc<Mutex<Status>>,
    pending: VecDeque<Task>,
    /// seq -> (task metadata, worker index)
    running: HashMap<u64, (Running, usize)>,
    recvs: Vec<raw::Recv>,
    closed: bool,
    terminated: bool,
    my_pid: u32,
    my_host: String,
    started: Instant,
}

struct Running {
    index: usize,
    nitems: usize,
    job: Arc<dyn Job>,
}

impl Dispatcher {
    pub(crate) fn new(
        comm: Comm,
        slots: Vec<Slot>,
        settings: Settings,
        rx: Receiver<Cmd>,
        status: Arc<Mutex<Status>>,
    ) -> Dispatcher {
        Dispatcher {
            comm,
            slots,
            settings,
            rx,
            status,
            pending: VecDeque::new(),
            running: HashMap::new(),
            recvs: Vec::new(),
            closed: false,
            terminated: false,
            my_pid: std::process::id(),
            my_host: raw::processor_name(),
            started: Instant::now(),
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the pool until it is closed (and drained) or terminated, then
    /// releases or stops the workers; returns their slots.
    pub(crate) fn run(mut self) -> (Comm, Vec<Slot>) {
        for s in &mut self.slots {
            s.last_seen = Instant::now();
        }
        for i in 0..self.slots.len() {
            if self.slots[i].phase == Phase::Left {
                self.slots[i].phase = Phase::Ready; // a world worker back in service
                self.setup(i);
            }
        }
        self.publish();
        let mut backoff = Backoff::default();
        let mut last_check = Instant::now();
        loop {
            let mut progress = self.commands();
            if let Err(e) = self.poll(&mut progress) {
                self.fatal(e);
            }
            self.assign(&mut progress);
            if last_check.elapsed() >= Duration::from_millis(20) {
                last_check = Instant::now();
                self.check_liveness();
            }
            if self.terminated {
                self.fail_all(&Error::Terminated);
            }
            if self.slots.iter().all(|s| s.phase == Phase::Lost) {
                self.fail_all(&MpiError::NoWorkers.into());
            }
            let drained = self.pending.is_empty() && self.running.is_empty();
            if (self.closed && drained) || self.terminated {
                break;
            }
            if progress {
                backoff.reset();
            } else {
                let d = backoff.next_delay();
                match self.rx.recv_timeout(d.max(Duration::from_micros(1))) {
                    Ok(cmd) => {
                        self.command(cmd);
                        backoff.reset();
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.closed = true,
                }
            }
        }
        self.leave();
        (self.comm, self.slots)
    }

    /// Stops the workers without running anything (the world's workers
    /// at exit).
    pub(crate) fn stop_only(mut self) {
        for s in &mut self.slots {
            s.last_seen = Instant::now();
        }
        self.leave();
    }

    /// Sends `tag` with `body` to worker `i`; a failed send loses it.
    fn send(&mut self, i: usize, tag: i32, body: Vec<u8>) -> bool {
        match raw::isend(self.comm, self.slots[i].rank, tag, body) {
            Ok(s) => {
                self.slots[i].sends.push(s);
                true
            }
            Err(e) => {
                self.lose(i, &e.to_string());
                false
            }
        }
    }

    fn setup(&mut self, i: usize) {
        let setup = Setup {
            root_pid: self.my_pid,
            root_host: self.my_host.clone(),
            init: self.settings.init.clone(),
        };
        match encode(&setup) {
            Ok(b) => {
                if self.send(i, proto::SETUP, b) {
                    self.slots[i].phase = Phase::Setup;
                }
            }
            Err(e) => self.fatal(e),
        }
    }

    fn commands(&mut self) -> bool {
        let mut any = false;
        while let Ok(cmd) = self.rx.try_recv() {
            self.command(cmd);
            any = true;
        }
        any
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Submit(tasks) => {
                let broken = self.status().broken.clone();
                for t in tasks {
                    if let Some(m) = &broken {
                        t.job.done(
                            t.index,
                            t.nitems,
                            Err(Error::Initializer { message: m.clone() }),
                        );
                    } else if self.terminated {
                        t.job.done(t.index, t.nitems, Err(Error::Terminated));
                    } else {
                        self.pending.push_back(t);
                    }
                }
            }
            Cmd::Close => self.closed = true,
            Cmd::Terminate => {
                self.closed = true;
                self.terminated = true;
            }
        }
    }

    /// Completes sends, takes arrived messages, handles finished receives.
    fn poll(&mut self, progress: &mut bool) -> Result<(), MpiError> {
        for i in 0..self.slots.len() {
            let mut k = 0;
            while k < self.slots[i].sends.len() {
                if self.slots[i].sends[k].test()? {
                    self.slots[i].sends.swap_remove(k);
                    *progress = true;
                } else {
                    k += 1;
                }
            }
        }
        while let Some(r) = raw::take_message(self.comm, None)? {
            self.recvs.push(r);
            *progress = true;
        }
        let mut k = 0;
        while k < self.recvs.len() {
            if self.recvs[k].test()? {
                let r = self.recvs.swap_remove(k);
                let (src, tag) = (r.source, r.tag);
                self.message(src, tag, r.into_data());
                *progress = true;
            } else {
                k += 1;
            }
        }
        Ok(())
    }

    fn message(&mut self, src: i32, tag: i32, body: Vec<u8>) {
        let Some(i) = self.slots.iter().position(|s| s.rank == src) else {
            return; // not one of this pool's workers
        };
        self.slots[i].last_seen = Instant::now();
        if self.slots[i].phase == Phase::Lost {
            return;
        }
        match tag {
            proto::BEAT => {}
            proto::HELLO => match decode::<Hello>(&body) {
                Ok(h) => {
                    self.slots[i].watch = Some(Watch::new(h.pid, &h.host, &self.my_host));
                    self.slots[i].hello = Some(h);
                    self.publish();
                    if self.slots[i].phase == Phase::Hello {
                        self.setup(i);
                    }
                }
                Err(e) => self.lose(i, &e.to_string()),
            },
            proto::READY => match decode::<Result<(), String>>(&body) {
                Ok(Ok(())) => {
                    if self.slots[i].phase == Phase::Setup {
                        self.slots[i].phase = Phase::Ready;
                    }
                }
                Ok(Err(m)) => {
                    self.slots[i].phase = Phase::Ready;
                    self.status().broken = Some(m.clone());
                    self.fail_all(&Error::Initializer { message: m });
                }
                Err(e) => self.lose(i, &e.to_string()),
            },
            proto::RESULT => self.result(i, &body),
            proto::RELEASED | proto::BYE => {
                if self.slots[i].phase == Phase::Leaving {
                    self.slots[i].phase = Phase::Left;
                }
            }
            other => self.lose(i, &format!("unexpected message tag {other}")),
        }
    }

    fn result(&mut self, i: usize, body: &[u8]) {
        if body.len() < 9 {
            self.lose(i, "a result message too short");
            return;
        }
        let seq = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        if let Some(p) = self.slots[i].inflight.iter().position(|&s| s == seq) {
            self.slots[i].inflight.remove(p);
        }
        let Some((run, _)) = self.running.remove(&seq) else {
            return; // a task of a call already failed or terminated
        };
        let payload = &body[9..];
        let out = match body[8] {
            0 => Ok(payload),
            _ => Err(match decode::<CallError>(payload) {
                Ok(c) => Error::from(c),
                Err(e) => Error::from(e),
            }),
        };
        run.job.done(run.index, run.nitems, out);
    }

    /// Hands pending tasks to ready workers with room, the least loaded
    /// first (dynamic load balancing by chunks).
    fn assign(&mut self, progress: &mut bool) {
        while !self.pending.is_empty() {
            let best = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.phase == Phase::Ready && s.inflight.len() < self.settings.depth)
                .min_by_key(|(_, s)| s.inflight.len())
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let t = self.pending.pop_front().expect("not empty");
            if t.job.cancelled() {
                continue;
            }
            let Task {
                seq,
                index,
                nitems,
                frame,
                job,
            } = t;
            self.running
                .insert(seq, (Running { index, nitems, job }, i));
            self.slots[i].inflight.push_back(seq);
            self.send(i, proto::TASK, frame);
            *progress = true;
        }
    }

    fn check_liveness(&mut self) {
        let now = Instant::now();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if matches!(s.phase, Phase::Lost | Phase::Left) {
                continue;
            }
            let why = if s.watch.as_ref().is_some_and(Watch::ended) {
                Some("the process exited".to_string())
            } else if s.phase == Phase::Hello
                && now.duration_since(self.started) > self.settings.start_timeout
            {
                Some(format!(
                    "no hello within {:?} of the start",
                    self.settings.start_timeout
                ))
            } else if s.phase != Phase::Hello
                && now.duration_since(s.last_seen) > self.settings.heartbeat_timeout
            {
                Some(format!(
                    "silent for {:?} (no heartbeat)",
                    now.duration_since(s.last_seen)
                ))
            } else {
                None
            };
            if let Some(why) = why {
                self.lose(i, &why);
            }
        }
    }

    /// Marks worker `i` lost and fails the tasks it held.
    fn lose(&mut self, i: usize, why: &str) {
        if self.slots[i].phase == Phase::Lost {
            return;
        }
        let err = self.slots[i].lost_error(why);
        self.slots[i].phase = Phase::Lost;
        for s in self.slots[i].sends.drain(..) {
            s.abandon();
        }
        let seqs: Vec<u64> = self.slots[i].inflight.drain(..).collect();
        for seq in seqs {
            if let Some((run, _)) = self.running.remove(&seq) {
                run.job.done(run.index, run.nitems, Err(err.clone().into()));
            }
        }
        self.publish();
    }

    fn publish(&self) {
        let alive = self.slots.iter().filter(|s| s.phase != Phase::Lost).count();
        let pids = self
            .slots
            .iter()
            .filter(|s| s.phase != Phase::Lost)
            .filter_map(|s| s.hello.as_ref().map(|h| h.pid))
            .collect();
        let mut st = self.status();
        st.alive = alive;
        st.pids = pids;
    }

    fn fail_all(&mut self, e: &Error) {
        for t in self.pending.drain(..) {
            t.job.done(t.index, t.nitems, Err(dup(e)));
        }
        for (_, (run, _)) in self.running.drain() {
            run.job.done(run.index, run.nitems, Err(dup(e)));
        }
        for s in &mut self.slots {
            s.inflight.clear();
        }
    }

    /// An MPI call of the root itself failed: the pool cannot go on.
    fn fatal(&mut self, e: MpiError) {
        self.fail_all(&e.clone().into());
        self.status().broken = Some(e.to_string());
        self.terminated = true;
        self.closed = true;
    }

    /// Releases (or stops) every worker still there and waits for each
    /// to answer, to die, or to fall silent.
    fn leave(&mut self) {
        let tag = match self.settings.ending {
            Ending::Release => proto::RELEASE,
            Ending::Stop => proto::STOP,
        };
        for i in 0..self.slots.len() {
            match self.slots[i].phase {
                Phase::Lost => {}
                Phase::Hello => {
                    // Never heard of: a spawned worker that has not started.
                    if self.settings.ending == Ending::Stop {
                        self.send(i, tag, Vec::new());
                        self.slots[i].phase = Phase::Leaving;
                    }
                }
                Phase::Left if self.settings.ending == Ending::Release => {}
                _ => {
                    if self.send(i, tag, Vec::new()) {
                        self.slots[i].phase = Phase::Leaving;
                    }
                }
            }
        }
        let mut backoff = Backoff::default();
        let mut last_check = Instant::now();
        while self
            .slots
            .iter()
            .any(|s| matches!(s.phase, Phase::Leaving | Phase::Hello))
        {
            let mut progress = false;
            if let Err(e) = self.poll(&mut progress) {
                for i in 0..self.slots.len() {
                    if self.slots[i].phase != Phase::Left {
                        self.lose(i, &e.to_string());
                    }
                }
                break;
            }
            // Tasks that a terminated pool still had out come back and are
            // dropped in `result`.
            self.fail_all(&Error::Terminated);
            if last_check.elapsed() >= Duration::from_millis(20) {
                last_check = Instant::now();
                self.check_liveness();
            }
            if progress {
                backoff.reset();
            } else {
                backoff.snooze();
            }
        }
        // Every send is complete once its worker answered; drop the others.
        for s in &mut self.slots {
            for mut snd in s.sends.drain(..) {
                if !snd.test().unwrap_or(false) {
                    snd.abandon();
                }
            }
        }
        self.publish();
    }
}

fn dup(e: &Error) -> Error {
    match e {
        Error::Terminated => Error::Terminated,
        Error::Initializer { message } => Error::Initializer {
            message: message.clone(),
        },
        other => crate::error::dup_error(other),
    }
}
