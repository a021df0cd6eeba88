//! Lists, indexed as Python's (negative indexes count from the end).

use super::wait::wrong;
use crate::error::RemoteError;
use crate::wire::{Bytes, Kind, Op, Reply};

/// Python-style index: negative counts from the end.
fn index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let j = if i < 0 { i + len } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

/// Python's insert position: clamped into `0..=len`.
pub(super) fn insert_pos(i: i64, len: usize) -> usize {
    let l = len as i64;
    let j = if i < 0 { (i + l).max(0) } else { i.min(l) };
    j as usize
}

/// Runs one list operation.
pub(super) fn call(l: &mut Vec<Bytes>, op: Op) -> Result<Reply, RemoteError> {
    match op {
        Op::Len => Ok(Reply::Count(l.len() as u64)),
        Op::Clear => {
            l.clear();
            Ok(Reply::Ok)
        }
        Op::ListGet(i) => index(i, l.len())
            .map(|j| Reply::Bytes(l[j].clone()))
            .ok_or(RemoteError::IndexOutOfRange),
        Op::ListSet(i, v) => match index(i, l.len()) {
            Some(j) => {
                l[j] = v;
                Ok(Reply::Ok)
            }
            None => Err(RemoteError::IndexOutOfRange),
        },
        Op::ListAppend(v) => {
            l.push(v);
            Ok(Reply::Count(l.len() as u64))
        }
        Op::ListExtend(vs) => {
            l.extend(vs);
            Ok(Reply::Count(l.len() as u64))
        }
        Op::ListInsert(i, v) => {
            let j = insert_pos(i, l.len());
            l.insert(j, v);
            Ok(Reply::Ok)
        }
        Op::ListPop(i) => match index(i.unwrap_or(-1), l.len()) {
            Some(j) => Ok(Reply::Bytes(l.remove(j))),
            None => Err(RemoteError::IndexOutOfRange),
        },
        Op::ListDelete(i) => match index(i, l.len()) {
            Some(j) => {
                l.remove(j);
                Ok(Reply::Ok)
            }
            None => Err(RemoteError::IndexOutOfRange),
        },
        Op::ListRemove(v) => match l.iter().position(|x| *x == v) {
            Some(j) => {
                l.remove(j);
                Ok(Reply::Ok)
            }
            None => Err(RemoteError::NotInList),
        },
        Op::ListIndex(v) => l
            .iter()
            .position(|x| *x == v)
            .map(|j| Reply::Count(j as u64))
            .ok_or(RemoteError::NotInList),
        Op::ListCount(v) => Ok(Reply::Count(l.iter().filter(|x| **x == v).count() as u64)),
        Op::ListContains(v) => Ok(Reply::Bool(l.contains(&v))),
        Op::ListSnapshot => Ok(Reply::Seq(l.clone())),
        Op::ListSlice(a, b) => {
            let a = insert_pos(a, l.len());
            let b = insert_pos(b, l.len()).max(a);
            Ok(Reply::Seq(l[a..b].to_vec()))
        }
        Op::ListReplace(vs) => {
            *l = vs;
            Ok(Reply::Ok)
        }
        Op::ListReverse => {
            l.reverse();
            Ok(Reply::Ok)
        }
        _ => wrong(Kind::List),
    }
}
