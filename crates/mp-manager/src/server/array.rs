//! Arrays: a fixed number of items of one type (Python's
//! `manager.Array(typecode, seq)`), read and written in place.

use super::list;
use super::wait::wrong;
use crate::error::RemoteError;
use crate::wire::{Bytes, Kind, Op, Reply};

/// Runs one Array operation: those of a list that keep its length.
pub(super) fn call(a: &mut Vec<Bytes>, op: Op) -> Result<Reply, RemoteError> {
    match op {
        Op::Len | Op::ListGet(_) | Op::ListSet(..) | Op::ListSlice(..) | Op::ListSnapshot => {
            list::call(a, op)
        }
        _ => wrong(Kind::Array),
    }
}
