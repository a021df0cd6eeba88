//! Dicts, in insertion order as Python's.

use indexmap::IndexMap;

use super::wait::wrong;
use crate::error::RemoteError;
use crate::wire::{Bytes, Kind, Op, Reply};

/// A dict that remembers insertion order, as Python's does: a value
/// replaced keeps its key's place, a key removed and inserted again goes
/// to the end.
pub(super) type Dict = IndexMap<Bytes, Bytes>;

/// Runs one dict operation.
pub(super) fn call(d: &mut Dict, op: Op) -> Result<Reply, RemoteError> {
    match op {
        Op::Len => Ok(Reply::Count(d.len() as u64)),
        Op::Clear => {
            d.clear();
            Ok(Reply::Ok)
        }
        Op::DictGet(k) => Ok(Reply::MaybeBytes(d.get(&k).cloned())),
        Op::DictSet(k, v) => Ok(Reply::MaybeBytes(d.insert(k, v))),
        Op::DictSetDefault(k, v) => match d.get(&k) {
            Some(e) => Ok(Reply::Bytes(e.clone())),
            None => {
                d.insert(k, v.clone());
                Ok(Reply::Bytes(v))
            }
        },
        // Keeps the order of the others (a linear move of the entries
        // after it).
        Op::DictRemove(k) => Ok(Reply::MaybeBytes(d.shift_remove(&k))),
        Op::DictContains(k) => Ok(Reply::Bool(d.contains_key(&k))),
        Op::DictItems => Ok(Reply::Pairs(
            d.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )),
        Op::DictKeys => Ok(Reply::Seq(d.keys().cloned().collect())),
        Op::DictValues => Ok(Reply::Seq(d.values().cloned().collect())),
        Op::DictUpdate(items) => {
            d.extend(items);
            Ok(Reply::Ok)
        }
        // Python pops the most recently inserted item.
        Op::DictPopItem => match d.pop() {
            Some((k, v)) => Ok(Reply::Pair(k, v)),
            None => Err(RemoteError::MissingKey),
        },
        _ => wrong(Kind::Dict),
    }
}
