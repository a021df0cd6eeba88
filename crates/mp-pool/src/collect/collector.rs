//! [`Collector`]: where the results of one call land (filled in by the
//! dispatcher or by thread-pool tasks), and [`Chunk`], the results of one
//! chunk.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Waker};
use std::time::Instant;

use crate::Error;

/// How a collector hands its results out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// One final value: every result in input order, or the first failure
    /// (fail fast, as Python's `map`).
    All,
    /// Every item's own result, in input order, once all are in.
    Each,
    /// Items as they come (`imap`): in input order or in arrival order.
    Stream { ordered: bool },
}

pub(super) type Callback<R> = Box<dyn FnOnce(Result<&Vec<R>, &Error>) + Send>;

#[cfg(feature = "progress")]
type Bar = Option<indicatif::ProgressBar>;
#[cfg(not(feature = "progress"))]
type Bar = ();

struct State<R> {
    /// Results per chunk index, until taken.
    chunks: Vec<Option<Chunk<R>>>,
    /// Chunks submitted so far (input error chunks included).
    submitted: usize,
    /// Chunks whose results are in.
    done: usize,
    /// No more chunks will be submitted.
    input_done: bool,
    /// `All` mode: the first failure.
    failure: Option<Error>,
    /// Chunk indexes in arrival order (`Stream { ordered: false }`).
    arrival: VecDeque<usize>,
    /// Every result is in (or, in `All` mode, one failed) and callbacks ran.
    finished: bool,
    /// `All` mode: the final value, until taken.
    value: Option<Result<Vec<R>, Error>>,
    /// `Each` mode: taken.
    taken: bool,
    /// `All` mode: whether the finished call succeeded.
    ok: bool,
    callback: Option<Callback<R>>,
    /// Threads waiting on `cv`, and what they wait for.
    waiters: usize,
    wake_done: usize,
    wake_index: Option<usize>,
    /// Async tasks awaiting the end (`AsyncResult` as a `Future`).
    wakers: Vec<Waker>,
    #[cfg_attr(not(feature = "progress"), allow(dead_code))]
    bar: Bar,
}

/// The results of one call (a map, an apply, an imap), filled in by the
/// dispatcher (process pool) or by rayon tasks (thread pool).
pub(crate) struct Collector<R> {
    st: Mutex<State<R>>,
    cv: Condvar,
    mode: Mode,
    cancelled: AtomicBool,
}

impl<R> fmt::Debug for Collector<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("Collector")
            .field("mode", &self.mode)
            .field("submitted", &st.submitted)
            .field("done", &st.done)
            .field("finished", &st.finished)
            .finish()
    }
}

impl<R> Collector<R> {
    fn lock(&self) -> MutexGuard<'_, State<R>> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<R: Send + 'static> Collector<R> {
    pub(crate) fn new(mode: Mode, callback: Option<Callback<R>>) -> Arc<Collector<R>> {
        Arc::new(Collector {
            st: Mutex::new(State {
                chunks: Vec::new(),
                submitted: 0,
                done: 0,
                input_done: false,
                failure: None,
                arrival: VecDeque::new(),
                finished: false,
                value: None,
                taken: false,
                ok: false,
                callback,
                waiters: 0,
                wake_done: usize::MAX,
                wake_index: None,
                wakers: Vec::new(),
                bar: Bar::default(),
            }),
            cv: Condvar::new(),
            mode,
            cancelled: AtomicBool::new(false),
        })
    }

    /// Whether the remaining tasks are useless (an `All` collector that
    /// already failed): the dispatcher drops them.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    #[cfg(feature = "progress")]
    pub(crate) fn set_bar(&self, bar: indicatif::ProgressBar) {
        self.lock().bar = Some(bar);
    }

    /// Records `n` more submitted chunks, and whether the input is done.
    pub(crate) fn add_submitted(&self, n: usize, input_done: bool) {
        let mut st = self.lock();
        st.submitted += n;
        st.input_done |= input_done;
        self.check_finished(st);
    }

    /// (submitted, done) chunk counts.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        (st.submitted, st.done)
    }

    /// Stores the results of chunk `index`.
    pub(crate) fn deliver(&self, index: usize, results: Chunk<R>) {
        let mut st = self.lock();
        if st.finished && self.mode == Mode::All {
            return;
        }
        if st.chunks.len() <= index {
            st.chunks.resize_with(index + 1, || None);
        }
        if st.chunks[index].is_some() {
            return; // a duplicate (a retried task whose first run did report)
        }
        #[cfg(feature = "progress")]
        if let Some(bar) = &st.bar {
            bar.inc(results.len() as u64);
        }
        if self.mode == Mode::All
            && st.failure.is_none()
            && let Chunk::Mixed(mut results) = results
        {
            let pos = results.iter().position(Result::is_err).unwrap_or(0);
            if let Err(e) = results.swap_remove(pos) {
                st.failure = Some(e);
            }
            self.cancelled.store(true, Ordering::Relaxed);
            st.done += 1;
            self.check_finished(st);
            return;
        }
        st.chunks[index] = Some(results);
        st.done += 1;
        if let Mode::Stream { ordered: false } = self.mode {
            st.arrival.push_back(index);
        }
        self.check_finished(st);
    }

    /// Fails chunk `index` (`nitems` items) with copies of `err`.
    pub(crate) fn fail(&self, index: usize, nitems: usize, err: &Error) {
        let errs = (0..nitems.max(1)).map(|_| Err(err.duplicate())).collect();
        self.deliver(index, Chunk::Mixed(errs));
    }

    /// Finishes if everything is in; runs the callback; wakes waiters.
    fn check_finished<'s>(&'s self, mut st: MutexGuard<'s, State<R>>) {
        if !st.finished {
            let complete = st.input_done && st.done >= st.submitted;
            let failed = self.mode == Mode::All && st.failure.is_some();
            if complete || failed {
                if self.mode == Mode::All {
                    let value = match st.failure.take() {
                        Some(e) => Err(e),
                        None => Ok(concat_ok(std::mem::take(&mut st.chunks))),
                    };
                    if let Some(cb) = st.callback.take() {
                        // Python runs callbacks before the result is ready.
                        drop(st);
                        cb(value.as_ref());
                        st = self.lock();
                    }
                    st.ok = value.is_ok();
                    st.value = Some(value);
                }
                #[cfg(feature = "progress")]
                if let Some(bar) = st.bar.take() {
                    bar.finish();
                }
                st.finished = true;
                if st.waiters > 0 {
                    self.cv.notify_all();
                }
                let wakers = std::mem::take(&mut st.wakers);
                drop(st);
                wakers.into_iter().for_each(Waker::wake);
                return;
            }
        }
        if st.waiters > 0 {
            let idx_ready = st
                .wake_index
                .is_some_and(|i| st.chunks.get(i).is_some_and(Option::is_some));
            if idx_ready || st.done >= st.wake_done || !st.arrival.is_empty() {
                self.cv.notify_all();
            }
        }
    }

    /// Waits until `ready(state)` holds or `deadline` passes; returns the
    /// guard and whether it holds.
    fn wait_for(
        &self,
        deadline: Option<Instant>,
        wake_done: usize,
        wake_index: Option<usize>,
        ready: impl Fn(&State<R>) -> bool,
    ) -> (MutexGuard<'_, State<R>>, bool) {
        let mut st = self.lock();
        loop {
            if ready(&st) {
                return (st, true);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| d <= now) {
                return (st, false);
            }
            st.waiters += 1;
            st.wake_done = st.wake_done.min(wake_done);
            st.wake_index = wake_index;
            st = match deadline {
                None => self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    self.cv
                        .wait_timeout(st, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
            st.waiters -= 1;
            if st.waiters == 0 {
                st.wake_done = usize::MAX;
                st.wake_index = None;
            }
        }
    }

    /// Waits until at most `window` submitted chunks are unfinished (or
    /// everything finished).
    pub(crate) fn wait_below(&self, window: usize) {
        let target = self.lock().submitted.saturating_sub(window);
        let _ = self.wait_for(None, target, None, |st| {
            st.finished || st.submitted.saturating_sub(st.done) <= window
        });
    }

    pub(crate) fn wait_finished(&self, deadline: Option<Instant>) -> bool {
        self.wait_for(deadline, usize::MAX, None, |st| st.finished)
            .1
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.lock().finished
    }

    /// Whether the call has finished; if not, `cx`'s waker is woken when
    /// it does.
    pub(crate) fn poll_finished(&self, cx: &mut Context<'_>) -> bool {
        let mut st = self.lock();
        if st.finished {
            return true;
        }
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        false
    }

    /// `All` mode: takes the final value (waiting first).
    pub(crate) fn take_all(&self, deadline: Option<Instant>) -> Result<Vec<R>, Error> {
        let (mut st, ok) = self.wait_for(deadline, usize::MAX, None, |st| st.finished);
        if !ok {
            return Err(Error::Timeout);
        }
        st.value.take().unwrap_or(Err(Error::ResultTaken))
    }

    /// `All` mode: whether the finished value is a success.
    pub(crate) fn successful(&self) -> Result<bool, Error> {
        let st = self.lock();
        if !st.finished {
            return Err(Error::NotReady);
        }
        Ok(st.ok)
    }

    /// `Each` mode: every item's result in order (waiting first).
    pub(crate) fn take_each(&self) -> Result<Vec<Result<R, Error>>, Error> {
        let (mut st, _) = self.wait_for(None, usize::MAX, None, |st| st.finished);
        if st.taken {
            return Err(Error::ResultTaken);
        }
        st.taken = true;
        Ok(std::mem::take(&mut st.chunks)
            .into_iter()
            .flatten()
            .flat_map(Chunk::into_results)
            .collect())
    }

    /// `Stream` mode: the next chunk's results, `Some(None)` when the stream
    /// is over; `None` when the caller should feed more input first (at most
    /// `low_water` submitted chunks are unfinished and `can_feed`).
    /// `cursor` is the next chunk index (ordered).
    pub(crate) fn next_chunk(
        &self,
        cursor: usize,
        low_water: usize,
        can_feed: bool,
    ) -> Option<Option<Chunk<R>>> {
        let ordered = matches!(self.mode, Mode::Stream { ordered: true });
        let want = ordered.then_some(cursor);
        let target = if can_feed {
            self.lock().submitted.saturating_sub(low_water)
        } else {
            usize::MAX
        };
        let (mut st, _) = self.wait_for(None, target, want, |st| {
            let have = if ordered {
                st.chunks.get(cursor).is_some_and(Option::is_some)
            } else {
                !st.arrival.is_empty()
            };
            have || (st.input_done && st.done >= st.submitted)
                || (can_feed && st.submitted.saturating_sub(st.done) <= low_water)
        });
        let idx = if ordered {
            Some(cursor).filter(|&c| st.chunks.get(c).is_some_and(Option::is_some))
        } else {
            st.arrival.pop_front()
        };
        match idx {
            Some(i) => Some(st.chunks[i].take()),
            None if st.input_done && st.done >= st.submitted => Some(None),
            None => None, // feed more
        }
    }
}

/// The results of one chunk: all values (the common case, no per-item
/// `Result` in memory), or each item's own result.
pub(crate) enum Chunk<R> {
    Ok(Vec<R>),
    Mixed(Vec<Result<R, Error>>),
}

impl<R> Chunk<R> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Chunk::Ok(v) => v.len(),
            Chunk::Mixed(v) => v.len(),
        }
    }

    fn into_results(self) -> Vec<Result<R, Error>> {
        match self {
            Chunk::Ok(v) => v.into_iter().map(Ok).collect(),
            Chunk::Mixed(v) => v,
        }
    }

    pub(super) fn into_iter(self) -> ChunkIter<R> {
        match self {
            Chunk::Ok(v) => ChunkIter::Ok(v.into_iter()),
            Chunk::Mixed(v) => ChunkIter::Mixed(v.into_iter()),
        }
    }

    /// Builds a chunk from per-item results.
    pub(crate) fn from_results(v: Vec<Result<R, Error>>) -> Chunk<R> {
        if v.iter().all(Result::is_ok) {
            Chunk::Ok(v.into_iter().flatten().collect())
        } else {
            Chunk::Mixed(v)
        }
    }
}

/// Concatenates chunks that are all `Chunk::Ok`.
fn concat_ok<R>(chunks: Vec<Option<Chunk<R>>>) -> Vec<R> {
    let total = chunks
        .iter()
        .map(|c| match c {
            Some(Chunk::Ok(v)) => v.len(),
            _ => 0,
        })
        .sum();
    let mut out = Vec::with_capacity(total);
    for c in chunks.into_iter().flatten() {
        match c {
            Chunk::Ok(mut v) => out.append(&mut v),
            Chunk::Mixed(v) => out.extend(v.into_iter().flatten()),
        }
    }
    out
}

pub(super) enum ChunkIter<R> {
    Ok(std::vec::IntoIter<R>),
    Mixed(std::vec::IntoIter<Result<R, Error>>),
}

impl<R> Iterator for ChunkIter<R> {
    type Item = Result<R, Error>;
    fn next(&mut self) -> Option<Result<R, Error>> {
        match self {
            ChunkIter::Ok(i) => i.next().map(Ok),
            ChunkIter::Mixed(i) => i.next(),
        }
    }
}
