//! One call of a pool (a map, an apply, an imap), written once for every
//! backend: the [`TaskPool`](crate::TaskPool) methods and
//! [`ThreadPool`](crate::ThreadPool)'s closure methods both come here, with
//! a `start` function that opens the call on their workers.

use std::sync::Arc;

use crate::collect::{
    AsyncResult, CallKind, Callbacks, Collector, Feeder, IMap, Input, Mode, Sink, Submit, boxed,
};
use crate::{BoxError, Error};

/// What a call needs to know of its pool.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) processes: usize,
    /// The pool's chunk size for calls that give none.
    pub(crate) chunksize: Option<usize>,
    /// Chunks a blocking or streaming call keeps submitted ahead.
    pub(crate) window: usize,
}

/// The default chunk size of `map`: Python's `ceil(len / (4 * processes))`.
pub(crate) fn auto_chunksize(len: usize, processes: usize) -> usize {
    len.div_ceil(processes.max(1) * 4).max(1)
}

/// Reads an input that can fail to the end (`try_map`).
pub(crate) fn collect_input<A, E: Into<BoxError>>(
    items: impl IntoIterator<Item = Result<A, E>>,
) -> Result<Vec<A>, Error> {
    items
        .into_iter()
        .collect::<Result<Vec<A>, E>>()
        .map_err(|e| Error::Input(e.into()))
}

/// Runs a collected input to the end on this thread; the collector holds
/// the results.
pub(crate) fn blocking<'a, A: 'a, R: Send + 'static>(
    plan: Plan,
    items: Vec<A>,
    chunksize: Option<usize>,
    mode: Mode,
    start: impl FnOnce(&Sink<R>) -> Result<Submit<'a, A>, Error>,
) -> Result<Arc<Collector<R>>, Error> {
    let len = items.len();
    let cs = chunksize
        .or(plan.chunksize)
        .unwrap_or_else(|| auto_chunksize(len, plan.processes));
    let sink = Sink::new(Collector::new(mode, None), CallKind::Map { items: len });
    let submit = start(&sink)?;
    let coll = sink.into_collector();
    Feeder::new(boxed(items), cs, coll.clone(), plan.window, submit)?.run_to_end()?;
    Ok(coll)
}

/// `map`: every result in order, or the first failure.
pub(crate) fn map<'a, A: 'a, R: Send + 'static>(
    plan: Plan,
    items: Vec<A>,
    chunksize: Option<usize>,
    start: impl FnOnce(&Sink<R>) -> Result<Submit<'a, A>, Error>,
) -> Result<Vec<R>, Error> {
    blocking(plan, items, chunksize, Mode::All, start)?.take_all(None)
}

/// `map_results`: every item's own result.
pub(crate) fn map_results<'a, A: 'a, R: Send + 'static>(
    plan: Plan,
    items: Vec<A>,
    start: impl FnOnce(&Sink<R>) -> Result<Submit<'a, A>, Error>,
) -> Result<Vec<Result<R, Error>>, Error> {
    blocking(plan, items, None, Mode::Each, start)?.take_each()
}

/// `map_async`: submits every chunk now.
pub(crate) fn map_async<'a, A: 'a, R: Send + 'static>(
    plan: Plan,
    items: Vec<A>,
    chunksize: Option<usize>,
    callbacks: Callbacks<Vec<R>>,
    start: impl FnOnce(&Sink<R>) -> Result<Submit<'a, A>, Error>,
) -> Result<AsyncResult<Vec<R>>, Error> {
    let cs = chunksize
        .or(plan.chunksize)
        .unwrap_or_else(|| auto_chunksize(items.len(), plan.processes));
    let sink = Sink::new(
        Collector::new(Mode::All, callbacks.into_callback()),
        CallKind::Async,
    );
    let submit = start(&sink)?;
    let coll = sink.into_collector();
    Feeder::new(boxed(items), cs, coll.clone(), usize::MAX, submit)?.feed()?;
    Ok(AsyncResult::all(coll))
}

/// `apply_async`: one task of one item.
pub(crate) fn apply_async<'a, A: 'a, R: Send + 'static>(
    arg: A,
    callbacks: Callbacks<R>,
    start: impl FnOnce(&Sink<R>) -> Result<Submit<'a, A>, Error>,
) -> Result<AsyncResult<R>, Error> {
    let sink = Sink::new(
        Collector::new(Mode::All, callbacks.into_item_callback()),
        CallKind::Async,
    );
    let submit = start(&sink)?;
    let coll = sink.into_collector();
    Feeder::new(boxed([arg]), 1, coll.clone(), usize::MAX, submit)?.feed()?;
    Ok(AsyncResult::one(coll))
}

/// `imap` and its variants: the input read lazily, a window ahead.
pub(crate) fn stream<'a, A: 'a, R: Send + 'static>(
    plan: Plan,
    input: Input<'a, A>,
    chunksize: Option<usize>,
    ordered: bool,
    start: impl FnOnce(&Sink<R>) -> Result<Submit<'a, A>, Error>,
) -> Result<IMap<'a, R>, Error> {
    let cs = chunksize.or(plan.chunksize).unwrap_or(1);
    let sink = Sink::new(
        Collector::new(Mode::Stream { ordered }, None),
        CallKind::Stream,
    );
    let submit = start(&sink)?;
    let coll = sink.into_collector();
    let mut feeder = Feeder::new(input, cs, coll.clone(), plan.window, submit)?;
    feeder.feed()?;
    Ok(IMap::new(coll, plan.window / 2, feeder))
}
