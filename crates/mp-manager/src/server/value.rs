//! Values: one stored value.

use super::wait::wrong;
use crate::error::RemoteError;
use crate::wire::{Bytes, Kind, Op, Reply};

/// Runs one Value operation.
pub(super) fn call(v: &mut Bytes, op: Op) -> Result<Reply, RemoteError> {
    match op {
        Op::ValueGet => Ok(Reply::Bytes(v.clone())),
        Op::ValueSet(new) => Ok(Reply::Bytes(std::mem::replace(v, new))),
        _ => wrong(Kind::Value),
    }
}
