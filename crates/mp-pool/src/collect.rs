//! Where results land: [`Collector`] (one per map / apply call), and what
//! users hold: [`AsyncResult`], [`IMap`], [`Callbacks`].

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::{BoxError, Error};

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

type Callback<R> = Box<dyn FnOnce(Result<&Vec<R>, &Error>) + Send>;

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

/// Callbacks run when an asynchronous call finishes, on the pool's
/// dispatcher thread (a thread-pool worker for [`ThreadPool`](crate::ThreadPool)),
/// before [`AsyncResult::ready`] turns true: Python's `callback` and
/// `error_callback`. Keep them short: they hold up the delivery of other
/// results.
///
/// ```
/// use std::sync::mpsc;
/// use mp_pool::{Callbacks, ThreadPool};
///
/// let pool = ThreadPool::new(2)?;
/// let (tx, rx) = mpsc::channel();
/// let r = pool.apply_async_with(|x: i32| x + 1, 41, Callbacks::new().on_success(move |v: &i32| {
///     tx.send(*v).unwrap();
/// }))?;
/// assert_eq!(r.get()?, 42);
/// assert_eq!(rx.recv().unwrap(), 42);
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub struct Callbacks<T> {
    pub(crate) on_success: Option<OnSuccess<T>>,
    pub(crate) on_error: Option<OnError>,
}

type OnSuccess<T> = Box<dyn FnOnce(&T) + Send>;
type OnError = Box<dyn FnOnce(&Error) + Send>;

impl<T> fmt::Debug for Callbacks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Callbacks")
            .field("on_success", &self.on_success.is_some())
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl<T> Default for Callbacks<T> {
    fn default() -> Self {
        Callbacks {
            on_success: None,
            on_error: None,
        }
    }
}

impl<T> Callbacks<T> {
    /// No callbacks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `f` with the result when the call succeeds (Python's `callback`).
    pub fn on_success(mut self, f: impl FnOnce(&T) + Send + 'static) -> Self {
        self.on_success = Some(Box::new(f));
        self
    }

    /// Runs `f` with the error when the call fails (Python's `error_callback`).
    pub fn on_error(mut self, f: impl FnOnce(&Error) + Send + 'static) -> Self {
        self.on_error = Some(Box::new(f));
        self
    }
}

impl<R: Send + 'static> Callbacks<Vec<R>> {
    pub(crate) fn into_callback(self) -> Option<Callback<R>> {
        if self.on_success.is_none() && self.on_error.is_none() {
            return None;
        }
        Some(Box::new(move |r: Result<&Vec<R>, &Error>| match r {
            Ok(v) => {
                if let Some(f) = self.on_success {
                    f(v)
                }
            }
            Err(e) => {
                if let Some(f) = self.on_error {
                    f(e)
                }
            }
        }))
    }
}

impl<R: Send + 'static> Callbacks<R> {
    /// For a single-item call: the callback sees the item.
    pub(crate) fn into_item_callback(self) -> Option<Callback<R>> {
        if self.on_success.is_none() && self.on_error.is_none() {
            return None;
        }
        Some(Box::new(move |r: Result<&Vec<R>, &Error>| match r {
            Ok(v) => {
                if let (Some(f), Some(x)) = (self.on_success, v.first()) {
                    f(x)
                }
            }
            Err(e) => {
                if let Some(f) = self.on_error {
                    f(e)
                }
            }
        }))
    }
}

/// The pending result of an asynchronous call (`apply_async`,
/// `map_async`): Python's `AsyncResult`.
///
/// [`get`](AsyncResult::get) hands the value out once (it moves); later
/// calls return [`Error::ResultTaken`]. Dropping an `AsyncResult` does not
/// cancel the task.
///
/// ```
/// use std::time::Duration;
/// use mp_pool::ThreadPool;
///
/// let pool = ThreadPool::new(2)?;
/// let r = pool.apply_async(|ms: u64| { std::thread::sleep(Duration::from_millis(ms)); ms }, 50)?;
/// assert!(matches!(r.get_timeout(Duration::from_millis(1)), Err(mp_pool::Error::Timeout)));
/// r.wait();
/// assert!(r.ready());
/// assert!(r.successful()?);
/// assert_eq!(r.get()?, 50);
/// # Ok::<(), mp_pool::Error>(())
/// ```
pub struct AsyncResult<T> {
    coll: Arc<dyn Source<T>>,
}

impl<T> fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncResult")
            .field("ready", &self.coll.finished())
            .finish()
    }
}

/// What an [`AsyncResult`] reads from.
trait Source<T>: Send + Sync {
    fn wait(&self, deadline: Option<Instant>) -> bool;
    fn finished(&self) -> bool;
    fn take(&self, deadline: Option<Instant>) -> Result<T, Error>;
    fn successful(&self) -> Result<bool, Error>;
    fn poll_finished(&self, cx: &mut Context<'_>) -> bool;
}

struct AllOf<R>(Arc<Collector<R>>);
struct OneOf<R>(Arc<Collector<R>>);

impl<R: Send + 'static> Source<Vec<R>> for AllOf<R> {
    fn wait(&self, deadline: Option<Instant>) -> bool {
        self.0.wait_finished(deadline)
    }
    fn finished(&self) -> bool {
        self.0.is_finished()
    }
    fn take(&self, deadline: Option<Instant>) -> Result<Vec<R>, Error> {
        self.0.take_all(deadline)
    }
    fn successful(&self) -> Result<bool, Error> {
        self.0.successful()
    }
    fn poll_finished(&self, cx: &mut Context<'_>) -> bool {
        self.0.poll_finished(cx)
    }
}

impl<R: Send + 'static> Source<R> for OneOf<R> {
    fn wait(&self, deadline: Option<Instant>) -> bool {
        self.0.wait_finished(deadline)
    }
    fn finished(&self) -> bool {
        self.0.is_finished()
    }
    fn take(&self, deadline: Option<Instant>) -> Result<R, Error> {
        let v = self.0.take_all(deadline)?;
        v.into_iter()
            .next()
            .ok_or_else(|| Error::Decode("an apply produced no result".into()))
    }
    fn successful(&self) -> Result<bool, Error> {
        self.0.successful()
    }
    fn poll_finished(&self, cx: &mut Context<'_>) -> bool {
        self.0.poll_finished(cx)
    }
}

impl<R: Send + 'static> AsyncResult<Vec<R>> {
    pub(crate) fn all(c: Arc<Collector<R>>) -> Self {
        AsyncResult {
            coll: Arc::new(AllOf(c)),
        }
    }
}

impl<R: Send + 'static> AsyncResult<R> {
    pub(crate) fn one(c: Arc<Collector<R>>) -> Self {
        AsyncResult {
            coll: Arc::new(OneOf(c)),
        }
    }
}

fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<T> AsyncResult<T> {
    /// Waits for the result and takes it.
    ///
    /// # Errors
    ///
    /// The task's failure ([`Error::TaskPanicked`], [`Error::WorkerDied`],
    /// ...), or [`Error::ResultTaken`] on a second call.
    pub fn get(&self) -> Result<T, Error> {
        self.coll.take(None)
    }

    /// Waits at most `timeout` for the result and takes it.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if it is not ready by then (it stays pending and
    /// can be waited for again); otherwise as [`get`](AsyncResult::get).
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.coll.take(deadline(timeout))
    }

    /// Waits until the result is ready.
    pub fn wait(&self) {
        self.coll.wait(None);
    }

    /// Waits at most `timeout`; returns whether the result is ready.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.coll.wait(deadline(timeout))
    }

    /// Whether the call has finished (successfully or not).
    pub fn ready(&self) -> bool {
        self.coll.finished()
    }

    /// Whether the call finished without error.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] if it has not finished (Python raises
    /// `ValueError`).
    pub fn successful(&self) -> Result<bool, Error> {
        self.coll.successful()
    }
}

/// Awaiting an `AsyncResult` takes its value, as [`get`](AsyncResult::get)
/// does, without blocking the thread: the task is woken from the pool's
/// completion path (the dispatcher thread, or the thread-pool thread that
/// finished the call).
///
/// ```
/// use mp_pool::ThreadPool;
///
/// let pool = ThreadPool::new(2)?;
/// let r = pool.apply_async(|x: i32| x * 2, 21)?;
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let v = rt.block_on(async { r.await })?;
/// assert_eq!(v, 42);
/// # Ok::<(), mp_pool::Error>(())
/// ```
impl<T> std::future::Future for AsyncResult<T> {
    type Output = Result<T, Error>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.coll.poll_finished(cx) {
            Poll::Ready(self.coll.take(None))
        } else {
            Poll::Pending
        }
    }
}

/// The iterator of `imap` / `imap_unordered`: each task's result, in input
/// order (`imap`) or as they finish (`imap_unordered`).
///
/// The input is read lazily, a window of chunks ahead of the results, by
/// the thread that calls [`next`](Iterator::next); an input that yields
/// `Err` (`try_imap`) produces one `Err(Error::Input)` item at its position
/// and ends the input there.
pub struct IMap<'a, R> {
    coll: Arc<Collector<R>>,
    feed: Box<dyn FeedMore + 'a>,
    feeding: bool,
    cursor: usize,
    low_water: usize,
    current: ChunkIter<R>,
}

impl<R> fmt::Debug for IMap<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IMap")
            .field("collector", &self.coll)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Send + 'static> IMap<'a, R> {
    pub(crate) fn new<A: 'a>(
        coll: Arc<Collector<R>>,
        low_water: usize,
        feed: Feeder<'a, A, R>,
    ) -> Self {
        IMap {
            coll,
            feed: Box::new(feed),
            feeding: true,
            cursor: 0,
            low_water,
            current: ChunkIter::Ok(Vec::new().into_iter()),
        }
    }
}

impl<R: Send + 'static> Iterator for IMap<'_, R> {
    type Item = Result<R, Error>;

    fn next(&mut self) -> Option<Result<R, Error>> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(r);
            }
            match self
                .coll
                .next_chunk(self.cursor, self.low_water, self.feeding)
            {
                Some(Some(chunk)) => {
                    self.cursor += 1;
                    self.current = chunk.into_iter();
                }
                Some(None) => return None,
                None => {
                    if let Err(e) = self.feed.feed_more() {
                        // The pool went away: end the stream with its error.
                        self.feeding = false;
                        self.coll.add_submitted(0, true);
                        return Some(Err(e));
                    }
                    // Stop asking for more only once the input has ended
                    // (the collector then knows the last chunk). The counts
                    // say nothing about it: the workers may finish what was
                    // just handed over before the counts are read, and a
                    // stream that stopped feeding then would wait for
                    // results of chunks that were never submitted.
                    if self.feed.input_ended() {
                        self.feeding = false;
                    }
                }
            }
        }
    }
}

pub(crate) type Input<'a, A> = Box<dyn Iterator<Item = Result<A, BoxError>> + 'a>;
/// A feeder hands chunks over once it has this many items ...
const FLUSH_ITEMS: usize = 2048;
/// ... or this many chunks.
const FLUSH_CHUNKS: usize = 256;

type Submit<'a, A> = Box<dyn FnMut(Vec<(usize, Vec<A>)>) -> Result<(), Error> + 'a>;

pub(crate) fn boxed<'a, A: 'a>(items: impl IntoIterator<Item = A> + 'a) -> Input<'a, A> {
    Box::new(items.into_iter().map(Ok))
}

pub(crate) fn boxed_try<'a, A: 'a, E: Into<BoxError> + 'a>(
    items: impl IntoIterator<Item = Result<A, E>> + 'a,
) -> Input<'a, A> {
    Box::new(items.into_iter().map(|r| r.map_err(Into::into)))
}

/// Reads the input of one call in chunks, a window ahead of its results,
/// and hands the chunks to the pool (`submit`).
pub(crate) struct Feeder<'a, A, R> {
    input: Input<'a, A>,
    chunksize: usize,
    coll: Arc<Collector<R>>,
    submit: Submit<'a, A>,
    next: usize,
    done: bool,
    window: usize,
}

/// The part of a [`Feeder`] an [`IMap`] needs, without the item type.
trait FeedMore {
    fn feed_more(&mut self) -> Result<(), Error>;
    /// Whether the input has ended (every chunk has been submitted).
    fn input_ended(&self) -> bool;
}

impl<A, R: Send + 'static> FeedMore for Feeder<'_, A, R> {
    fn feed_more(&mut self) -> Result<(), Error> {
        self.feed()
    }

    fn input_ended(&self) -> bool {
        self.done
    }
}

impl<'a, A, R: Send + 'static> Feeder<'a, A, R> {
    pub(crate) fn new(
        input: Input<'a, A>,
        chunksize: usize,
        coll: Arc<Collector<R>>,
        window: usize,
        submit: Submit<'a, A>,
    ) -> Result<Self, Error> {
        if chunksize == 0 {
            return Err(Error::InvalidArgument(
                "chunksize must be at least 1".into(),
            ));
        }
        Ok(Feeder {
            input,
            chunksize,
            coll,
            submit,
            next: 0,
            done: false,
            window,
        })
    }

    /// Submits chunks until `window` are unfinished or the input ends.
    ///
    /// # Errors
    ///
    /// The pool's refusal (closed, terminated, broken): the chunks of this
    /// round are failed with it and the input is not read further.
    pub(crate) fn feed(&mut self) -> Result<(), Error> {
        if self.done {
            return Ok(());
        }
        let (s, d) = self.coll.counts();
        let mut room = self.window.saturating_sub(s.saturating_sub(d));
        let mut batch = Vec::new();
        let mut batch_items = 0;
        let mut input_err = None;
        let mut submitted = Ok(());
        while room > 0 && !self.done {
            let mut items = Vec::with_capacity(self.chunksize.min(1 << 16));
            while items.len() < self.chunksize {
                match self.input.next() {
                    Some(Ok(a)) => items.push(a),
                    Some(Err(e)) => {
                        input_err = Some(e);
                        self.done = true;
                        break;
                    }
                    None => {
                        self.done = true;
                        break;
                    }
                }
            }
            if !items.is_empty() {
                batch_items += items.len();
                batch.push((self.next, items));
                self.next += 1;
                room -= 1;
            }
            // Hand big chunks over at once, so that workers start while the
            // rest of the input is encoded; batch small ones.
            if batch_items >= FLUSH_ITEMS || batch.len() >= FLUSH_CHUNKS {
                self.coll.add_submitted(batch.len(), false);
                batch_items = 0;
                submitted = (self.submit)(std::mem::take(&mut batch));
                if submitted.is_err() {
                    break;
                }
            }
        }
        if submitted.is_ok() {
            self.coll
                .add_submitted(batch.len() + usize::from(input_err.is_some()), false);
            submitted = (self.submit)(batch);
            if let Some(e) = input_err {
                self.coll
                    .deliver(self.next, Chunk::Mixed(vec![Err(Error::Input(e))]));
                self.next += 1;
            }
        }
        if self.done || submitted.is_err() {
            self.done = true;
            self.coll.add_submitted(0, true);
        }
        submitted
    }

    /// Feeds the whole input, waiting for results to make room.
    pub(crate) fn run_to_end(&mut self) -> Result<(), Error> {
        loop {
            self.feed()?;
            if self.done {
                return Ok(());
            }
            self.coll.wait_below(self.window / 2);
            if self.coll.is_finished() {
                return Ok(());
            }
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

    fn into_iter(self) -> ChunkIter<R> {
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

enum ChunkIter<R> {
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

#[cfg(test)]
mod tests {
    //! A model of the streaming window: the real [`Collector`], [`Feeder`]
    //! and [`IMap`], with simulated workers that finish chunks at scripted
    //! points (while the input is read, inside the hand-over, or later on a
    //! thread), so that the races between the caller's accounting and the
    //! workers' progress are played out, the extreme ones (workers done
    //! before the caller looks) deterministically.

    use super::*;
    use std::sync::mpsc;
    use std::thread;

    /// xorshift64*: reproducible schedules without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        }
    }

    /// When the simulated workers finish chunks on the caller's thread.
    #[derive(Clone, Copy, Debug)]
    enum Policy {
        /// Never: only the background worker finishes chunks.
        Lazy,
        /// Every chunk, as soon as it is handed over (workers infinitely
        /// faster than the caller).
        AllOnSubmit,
        /// A random number of them, in random order, at each hand-over.
        RandomOnSubmit,
        /// One at random, now and then, while the input is read, and a
        /// random number at each hand-over.
        WhileReading,
    }

    struct Sim {
        coll: Arc<Collector<u64>>,
        /// Chunks handed over and not finished.
        outstanding: Mutex<Vec<(usize, Vec<u64>)>>,
        rng: Mutex<Rng>,
        window: usize,
    }

    impl Sim {
        /// Finishes up to `k` outstanding chunks, picked at random.
        fn finish(&self, k: usize) {
            for _ in 0..k {
                let picked = {
                    let mut out = self.outstanding.lock().unwrap();
                    if out.is_empty() {
                        return;
                    }
                    let i = self.rng.lock().unwrap().below(out.len());
                    out.swap_remove(i)
                };
                self.deliver(picked);
            }
        }

        fn deliver(&self, (index, items): (usize, Vec<u64>)) {
            let results = items.into_iter().map(|x| 2 * x + 1).collect();
            self.coll.deliver(index, Chunk::Ok(results));
        }

        fn random(&self, n: usize) -> usize {
            self.rng.lock().unwrap().below(n)
        }
    }

    /// Streams `items` items through a window of `window` chunks and checks
    /// what the stream hands out.
    fn run(window: usize, chunksize: usize, items: u64, ordered: bool, policy: Policy) {
        let coll = Collector::new(Mode::Stream { ordered }, None);
        let sim = Arc::new(Sim {
            coll: coll.clone(),
            outstanding: Mutex::new(Vec::new()),
            rng: Mutex::new(Rng(0x9e37_79b9_7f4a_7c15 ^ (window as u64) << 8 ^ items)),
            window,
        });
        let stop = Arc::new(AtomicBool::new(false));
        // The background worker: finishes the oldest chunk every so often,
        // so that a correct stream always completes.
        let bg = {
            let (sim, stop) = (sim.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let next = {
                        let mut out = sim.outstanding.lock().unwrap();
                        (!out.is_empty()).then(|| out.remove(0))
                    };
                    match next {
                        Some(c) => sim.deliver(c),
                        None => thread::sleep(Duration::from_micros(50)),
                    }
                }
            })
        };
        let input: Input<'_, u64> = {
            let sim = sim.clone();
            Box::new((0..items).map(move |x| {
                if matches!(policy, Policy::WhileReading) && sim.random(4) == 0 {
                    sim.finish(1);
                }
                Ok(x)
            }))
        };
        let submit: Submit<'_, u64> = {
            let sim = sim.clone();
            Box::new(move |chunks: Vec<(usize, Vec<u64>)>| {
                let (s, d) = sim.coll.counts();
                assert!(
                    s - d <= sim.window,
                    "{} unfinished chunks in a window of {}",
                    s - d,
                    sim.window
                );
                let n = chunks.len();
                sim.outstanding.lock().unwrap().extend(chunks);
                match policy {
                    Policy::Lazy => {}
                    Policy::AllOnSubmit => sim.finish(usize::MAX),
                    Policy::RandomOnSubmit | Policy::WhileReading => {
                        let k = sim.random(n + 2);
                        sim.finish(k);
                    }
                }
                Ok(())
            })
        };
        let mut feeder = Feeder::new(input, chunksize, coll.clone(), window, submit).unwrap();
        feeder.feed().unwrap();
        let out: Vec<u64> = IMap::new(coll, window / 2, feeder)
            .map(Result::unwrap)
            .collect();
        stop.store(true, Ordering::Relaxed);
        bg.join().unwrap();
        let what = format!("window {window}, chunksize {chunksize}, {items} items, {policy:?}");
        assert_eq!(out.len() as u64, items, "{what}");
        if ordered {
            assert!(
                out.iter().zip(0..).all(|(&r, x)| r == 2 * x + 1),
                "out of order: {what}"
            );
        } else {
            let mut seen = vec![false; items as usize];
            for r in out {
                let x = (r as usize - 1) / 2;
                assert!(!std::mem::replace(&mut seen[x], true), "{x} twice: {what}");
            }
        }
    }

    #[test]
    fn window_accounting_never_stalls_and_loses_nothing() {
        let policies = [
            Policy::Lazy,
            Policy::AllOnSubmit,
            Policy::RandomOnSubmit,
            Policy::WhileReading,
        ];
        for window in [1, 2, 3, 8, 64, 1024] {
            for chunksize in [1, 3] {
                let long = (3 * window * chunksize + 1) as u64;
                for items in [0, 1, long] {
                    for ordered in [true, false] {
                        for policy in policies {
                            let what = format!(
                                "window {window}, chunksize {chunksize}, {items} items, \
                                 ordered {ordered}, {policy:?}"
                            );
                            let (tx, rx) = mpsc::channel();
                            let t = thread::spawn(move || {
                                run(window, chunksize, items, ordered, policy);
                                let _ = tx.send(());
                            });
                            match rx.recv_timeout(Duration::from_secs(30)) {
                                Ok(()) => t.join().unwrap(),
                                Err(mpsc::RecvTimeoutError::Timeout) => {
                                    panic!("the stream stalled: {what}")
                                }
                                Err(mpsc::RecvTimeoutError::Disconnected) => {
                                    if let Err(e) = t.join() {
                                        std::panic::resume_unwind(e);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
