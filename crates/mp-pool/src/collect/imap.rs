//! [`IMap`]: the iterator of `imap` and its variants.

use std::fmt;
use std::sync::Arc;

use super::collector::{ChunkIter, Collector};
use super::feeder::{FeedMore, Feeder};
use crate::Error;

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
