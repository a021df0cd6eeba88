//! A task: one chunk of one call, as the dispatcher handles it ([`TaskRec`]),
//! and the call it reports to ([`Job`]).

use std::any::Any;
use std::sync::Arc;

use mp_proc::CallError;

use crate::Error;
use crate::collect::{Chunk, Collector};

/// Type-erased results sink of one call.
pub(crate) trait Job: Send + Sync {
    /// A task's worker output: the encoded `Vec<Result<R, CallError>>`.
    fn complete(&self, index: usize, nitems: usize, out: Result<Vec<u8>, CallError>);
    /// A task failed as a whole.
    fn fail(&self, index: usize, nitems: usize, err: &Error);
    /// Whether the remaining tasks are useless.
    fn cancelled(&self) -> bool;
    /// Called when the task is about to be handed to a worker (again, after
    /// a steal or a retry); `false` drops the task instead (it was
    /// cancelled meanwhile). An executor's future turns "running" here.
    fn start(&self) -> bool {
        true
    }
}

impl<R: serde::de::DeserializeOwned + Send + 'static> Job for Collector<R> {
    fn complete(&self, index: usize, nitems: usize, out: Result<Vec<u8>, CallError>) {
        let results = match out.and_then(|bytes| mp_proc::decode_chunk_results::<R>(&bytes)) {
            Ok(mp_proc::ChunkResults::Ok(v)) => Chunk::Ok(v),
            Ok(mp_proc::ChunkResults::Mixed(v)) => {
                Chunk::Mixed(v.into_iter().map(|r| r.map_err(Error::from)).collect())
            }
            Err(e) => return self.fail(index, nitems, &Error::from(e)),
        };
        if results.len() != nitems {
            let e = Error::Decode(format!("{} results for {nitems} items", results.len()));
            return self.fail(index, nitems, &e);
        }
        self.deliver(index, results);
    }

    fn fail(&self, index: usize, nitems: usize, err: &Error) {
        Collector::fail(self, index, nitems, err);
    }

    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }
}

/// One task: a chunk of one call.
pub(crate) struct TaskRec {
    pub(crate) job: Arc<dyn Job>,
    pub(crate) index: usize,
    pub(crate) nitems: usize,
    pub(crate) seq: u64,
    /// Header and payload, ready to send.
    pub(crate) frame: Vec<u8>,
    /// Values whose descriptors the frame refers to through `/proc`: kept
    /// open until the task is over (held for its `Drop` only).
    #[allow(dead_code)]
    pub(crate) keep: Option<Box<dyn Any + Send>>,
    pub(crate) attempts: u32,
}
