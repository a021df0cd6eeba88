//! [`Feeder`]: reads a call's input in chunks, a window ahead of its
//! results, and hands the chunks to the pool.

use std::sync::Arc;

use super::collector::{Chunk, Collector};
use super::sink::Submit;
use crate::{BoxError, Error};

pub(crate) type Input<'a, A> = Box<dyn Iterator<Item = Result<A, BoxError>> + 'a>;
/// A feeder hands chunks over once it has this many items ...
const FLUSH_ITEMS: usize = 2048;
/// ... or this many chunks.
const FLUSH_CHUNKS: usize = 256;

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
pub(super) trait FeedMore {
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
