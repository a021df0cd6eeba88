//! What a [`Pool`](crate::Pool)'s handle and its dispatcher thread share:
//! the settings, the result queue, the tasks waiting for the dispatcher,
//! and the pool's state.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mp_channel::{Queue, WaitMode};
use mp_proc::{RawFunction, StartMethod};
use serde::Serialize;

use crate::Error;
use crate::insights::Record;
use crate::task::{Job, TaskRec};
use crate::worker::{Init, Msg, TaskHeader};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Running,
    Closed,
    Terminated,
}

pub(crate) struct Config {
    pub(crate) processes: usize,
    pub(crate) init: Option<Init>,
    pub(crate) max_tasks_per_child: u64,
    pub(crate) chunksize: Option<usize>,
    pub(crate) start_method: Option<StartMethod>,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) wait_mode: WaitMode,
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    pub(crate) progress: bool,
    /// Workers measure their times (`Pool::insights`).
    pub(crate) insights: bool,
}

pub(crate) struct Ctl {
    pub(crate) state: State,
    pub(crate) pending: VecDeque<TaskRec>,
    pub(crate) broken: Option<String>,
}

/// What the pool's handle and its dispatcher thread share.
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    pub(crate) inbox: Queue<Msg>,
    /// Set when `ctl` has news for the dispatcher.
    pub(crate) wake: AtomicBool,
    ctl: Mutex<Ctl>,
    pub(crate) pids: Mutex<Vec<u32>>,
    /// Every worker started, for `Pool::insights`.
    pub(crate) records: Mutex<Vec<Arc<Record>>>,
    seq: AtomicU64,
}

impl Shared {
    pub(crate) fn new(cfg: Config, inbox: Queue<Msg>) -> Shared {
        Shared {
            cfg,
            inbox,
            wake: AtomicBool::new(false),
            ctl: Mutex::new(Ctl {
                state: State::Running,
                pending: VecDeque::new(),
                broken: None,
            }),
            pids: Mutex::new(Vec::new()),
            records: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Ctl> {
        self.ctl.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the dispatcher to terminate the pool (kill the workers, fail
    /// what is left) without waiting for it: callable from the dispatcher
    /// thread itself (a completion path).
    pub(crate) fn terminate_soon(&self) {
        self.lock().state = State::Terminated;
        self.kick();
    }

    /// Wakes the dispatcher.
    pub(crate) fn kick(&self) {
        if !self.wake.swap(true, Ordering::AcqRel) {
            let _ = self.inbox.put(Msg::Wake);
        }
    }

    pub(crate) fn check_running(&self) -> Result<(), Error> {
        let ctl = self.lock();
        if let Some(m) = &ctl.broken {
            return Err(Error::Initializer { message: m.clone() });
        }
        if ctl.state != State::Running {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Queues tasks for the dispatcher. On error the tasks are failed.
    pub(crate) fn submit(&self, tasks: Vec<TaskRec>) -> Result<(), Error> {
        if tasks.is_empty() {
            return Ok(());
        }
        let mut ctl = self.lock();
        let err = if let Some(m) = &ctl.broken {
            Some(Error::Initializer { message: m.clone() })
        } else if ctl.state != State::Running {
            Some(Error::Closed)
        } else {
            None
        };
        if let Some(e) = err {
            drop(ctl);
            for t in tasks {
                t.job.fail(t.index, t.nitems, &e);
            }
            return Err(e);
        }
        ctl.pending.extend(tasks);
        drop(ctl);
        self.kick();
        Ok(())
    }

    /// Builds the frame of one task.
    pub(crate) fn task<A: Serialize + Send + 'static>(
        &self,
        func: RawFunction,
        job: &Arc<dyn Job>,
        index: usize,
        items: Vec<A>,
    ) -> Result<TaskRec, Error> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let nitems = items.len();
        let hdr = TaskHeader { seq, func };
        let enc = |mut frame: Vec<u8>| {
            let chunk = mp_proc::encode_chunk(&items)
                .map_err(|e| Error::Call(mp_proc::CallError::BadInput(e.to_string())))?;
            frame.extend_from_slice(&chunk);
            Ok::<Vec<u8>, Error>(frame)
        };
        let head = || {
            let mut v = Vec::with_capacity(64 + nitems * std::mem::size_of::<A>());
            v.extend_from_slice(
                &postcard::to_allocvec(&hdr).map_err(|e| Error::Decode(e.to_string()))?,
            );
            Ok(v)
        };
        let (frame, fds, transits) = mp_os::handle::collect_handles(|| head().and_then(enc));
        let mut frame = frame?;
        let mut keep: Option<Box<dyn std::any::Any + Send>> = None;
        if !fds.is_empty() {
            // Handles in the items: write them as `/proc/PID/fd/N`
            // references and keep the items (their descriptors) alive until
            // the task is over. This first encoding is thrown away, and
            // what it registered with it.
            drop((fds, transits));
            frame = head().and_then(enc)?;
            keep = Some(Box::new(items));
        }
        Ok(TaskRec {
            job: job.clone(),
            index,
            nitems,
            seq,
            frame,
            keep,
            attempts: 0,
        })
    }
}
