//! [`Sink`]: what a pool backend delivers a call's results to, with
//! [`Submit`] and [`CallKind`], the rest of a backend's side of a call.

use std::fmt;
use std::sync::Arc;

use super::collector::{Chunk, Collector};
use crate::Error;

/// What a pool's [`TaskPool::start_call`](crate::TaskPool::start_call) returns: hands chunks of the
/// call's input to the workers, each as its index in the call (0, 1, 2,
/// ...) and its items. It is called from the calling thread, as the input
/// is read; the results go to the call's [`Sink`], from any thread.
///
/// # Errors
///
/// The pool's refusal (closed, terminated, broken): the backend fails the
/// chunks it was given (through the sink) and returns the error; the call
/// reads no more input.
pub type Submit<'a, A> = Box<dyn FnMut(Vec<(usize, Vec<A>)>) -> Result<(), Error> + 'a>;

/// What kind of call a [`Sink`] collects for: a backend may choose its
/// chunking, or show progress, by it.
///
/// ```
/// use mp_pool::CallKind;
///
/// let k = CallKind::Map { items: 10 };
/// assert!(matches!(k, CallKind::Map { items: 10 }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallKind {
    /// A blocking map (`map`, `map_chunked`, `starmap`, `try_map`,
    /// `map_results`) of this many items.
    Map {
        /// The number of items.
        items: usize,
    },
    /// A stream (`imap` and its variants): the length is not known.
    Stream,
    /// An asynchronous call (`map_async`, `apply_async`, ...).
    Async,
}

/// Where the results of one call go: a backend delivers each chunk's
/// results here, in any order and from any thread, and the call's
/// [`AsyncResult`](crate::AsyncResult), [`IMap`](crate::IMap) or blocking map hands them out. Clones share
/// the call.
///
/// ```
/// use mp_pool::{CallKind, Error, Sink, Submit, TaskPool};
///
/// // A "pool" that runs every chunk at once on the calling thread.
/// struct Inline;
///
/// impl TaskPool for Inline {
///     fn processes(&self) -> usize { 1 }
///     fn check_running(&self) -> Result<(), Error> { Ok(()) }
///     fn start_call<'a, A, R>(&'a self, f: fn(A) -> R, sink: &Sink<R>) -> Result<Submit<'a, A>, Error>
///     where
///         A: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
///         R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
///     {
///         let sink = sink.clone();
///         Ok(Box::new(move |chunks: Vec<(usize, Vec<A>)>| {
///             for (index, items) in chunks {
///                 if !sink.is_cancelled() {
///                     sink.deliver(index, items.into_iter().map(f).collect());
///                 }
///             }
///             Ok(())
///         }))
///     }
///     fn close(&self) {}
///     fn terminate(&self) {}
///     fn join(&self) -> Result<(), Error> { Ok(()) }
/// }
///
/// fn square(x: u32) -> u32 { x * x }
/// assert_eq!(Inline.map(square, 0..4)?, [0, 1, 4, 9]);
/// let total: u32 = Inline.imap_unordered(square, 0..4)?.map(Result::unwrap).sum();
/// assert_eq!(total, 14);
/// # Ok::<(), Error>(())
/// ```
pub struct Sink<R> {
    coll: Arc<Collector<R>>,
    kind: CallKind,
}

impl<R> Clone for Sink<R> {
    fn clone(&self) -> Self {
        Sink {
            coll: self.coll.clone(),
            kind: self.kind,
        }
    }
}

impl<R> fmt::Debug for Sink<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink")
            .field("kind", &self.kind)
            .field("collector", &self.coll)
            .finish()
    }
}

impl<R: Send + 'static> Sink<R> {
    pub(crate) fn new(coll: Arc<Collector<R>>, kind: CallKind) -> Sink<R> {
        Sink { coll, kind }
    }

    pub(crate) fn collector(&self) -> &Arc<Collector<R>> {
        &self.coll
    }

    pub(crate) fn into_collector(self) -> Arc<Collector<R>> {
        self.coll
    }

    /// The kind of call.
    pub fn kind(&self) -> CallKind {
        self.kind
    }

    /// Delivers the results of chunk `index`, one per item, all successes.
    /// A chunk delivered twice (a task run again) keeps its first results.
    pub fn deliver(&self, index: usize, results: Vec<R>) {
        self.coll.deliver(index, Chunk::Ok(results));
    }

    /// Delivers every item's own result of chunk `index` (a task failure
    /// fails only its item: a panic is [`Error::TaskPanicked`]).
    pub fn deliver_each(&self, index: usize, results: Vec<Result<R, Error>>) {
        self.coll.deliver(index, Chunk::from_results(results));
    }

    /// Fails chunk `index`, of `nitems` items, as a whole (its worker died,
    /// the pool was terminated, ...): each item gets a copy of `err`.
    pub fn fail(&self, index: usize, nitems: usize, err: &Error) {
        self.coll.fail(index, nitems, err);
    }

    /// Whether the call's other chunks are useless (a `map` that already
    /// failed): a backend may drop them instead of running them.
    pub fn is_cancelled(&self) -> bool {
        self.coll.is_cancelled()
    }
}
