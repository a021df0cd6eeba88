//! Namespaces: named attributes, listed in name order.

use std::collections::BTreeMap;

use super::wait::wrong;
use crate::error::RemoteError;
use crate::wire::{Bytes, Kind, Op, Reply};

/// Runs one Namespace operation.
pub(super) fn call(n: &mut BTreeMap<String, Bytes>, op: Op) -> Result<Reply, RemoteError> {
    match op {
        Op::Len => Ok(Reply::Count(n.len() as u64)),
        Op::Clear => {
            n.clear();
            Ok(Reply::Ok)
        }
        Op::NsGet(name) => n
            .get(&name)
            .map(|v| Reply::Bytes(v.clone()))
            .ok_or(RemoteError::NoSuchAttribute(name)),
        Op::NsSet(name, v) => {
            n.insert(name, v);
            Ok(Reply::Ok)
        }
        Op::NsDel(name) => match n.remove(&name) {
            Some(_) => Ok(Reply::Ok),
            None => Err(RemoteError::NoSuchAttribute(name)),
        },
        Op::NsItems => Ok(Reply::Named(
            n.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        )),
        _ => wrong(Kind::Namespace),
    }
}
