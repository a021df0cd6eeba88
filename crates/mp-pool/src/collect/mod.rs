//! What a call's results go through: the [`Collector`] of one call
//! (`collector.rs`), the [`Sink`] a backend delivers to (`sink.rs`), the
//! [`Feeder`] that reads the input (`feeder.rs`), and what users hold:
//! [`AsyncResult`], [`IMap`], [`Callbacks`].
//!
//! Files from the bottom up: `collector`, then `sink` and `callbacks`,
//! then `feeder`, `imap` and `async_result`.

mod async_result;
mod callbacks;
mod collector;
mod feeder;
mod imap;
mod sink;
#[cfg(test)]
mod tests;

pub use async_result::AsyncResult;
pub use callbacks::Callbacks;
pub(crate) use collector::{Chunk, Collector, Mode};
pub(crate) use feeder::{Feeder, Input, boxed, boxed_try};
pub use imap::IMap;
pub use sink::{CallKind, Sink, Submit};
