//! One object the server holds: its kind, its state (one [`Data`]
//! variant per kind), and the dispatch of an operation to the handler of
//! its kind.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use mp_os::time::Deadline;

use super::barrier::{self, Barrier};
use super::custom::{self, Custom};
use super::dict::{self, Dict};
use super::locks::{self, Lock};
use super::queue::{self, Queue};
use super::wait::{self, Conn, Cx, Exclusive, Outcome};
use super::{array, event, list, namespace, value};
use crate::error::RemoteError;
use crate::wire::{Bytes, Kind, Op, Reply, WireTimeout};

pub(super) struct Object {
    pub(super) kind: Kind,
    pub(super) state: Mutex<State>,
    pub(super) cv: Condvar,
}

pub(super) struct State {
    /// The connection holding the object's exclusive lock (`lock()` on a
    /// proxy), if any. Other connections' requests wait.
    excl: Option<u64>,
    data: Data,
}

impl Exclusive for State {
    fn excl(&self) -> Option<u64> {
        self.excl
    }
}

pub(super) enum Data {
    Dict(Dict),
    List(Vec<Bytes>),
    Namespace(BTreeMap<String, Bytes>),
    Value(Bytes),
    Queue(Queue),
    /// A `Lock`, `RLock`, `Semaphore` or `Condition`.
    Lock(Lock),
    Event(bool),
    Barrier(Barrier),
    Custom(Custom),
    Array(Vec<Bytes>),
}

impl Object {
    pub(super) fn new(kind: Kind, data: Data) -> Object {
        Object {
            kind,
            state: Mutex::new(State { excl: None, data }),
            cv: Condvar::new(),
        }
    }

    /// Runs one operation for connection `conn`: waits for another
    /// connection's exclusive lock to go away (blocking operations wait
    /// for it in their own loops), then hands the operation to the handler
    /// of the object's kind.
    pub(super) fn call(&self, conn: &mut Conn, id: u64, op: Op) -> Outcome {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let blocking = matches!(
            op,
            Op::ObjLock(_)
                | Op::QueuePut(..)
                | Op::QueueGet(_)
                | Op::QueueJoin(_)
                | Op::Acquire(..)
                | Op::CondWait(..)
                | Op::EventWait(_)
                | Op::BarrierWait(_)
        );
        let mut st = if blocking {
            st
        } else {
            match wait::wait_for(&self.cv, conn, st, Deadline::never(), |_| Some(())) {
                Ok((st, ())) => st,
                Err((_, stop)) => return Err(stop),
            }
        };
        let mut cx = Cx {
            cv: &self.cv,
            conn,
            id,
            kind: self.kind,
        };
        let r = match op {
            Op::ObjLock(t) => return lock(&mut cx, st, t),
            Op::ObjUnlock => unlock(&mut cx, &mut st),
            op => match &mut st.data {
                Data::Dict(d) => dict::call(d, op),
                Data::List(l) => list::call(l, op),
                Data::Namespace(n) => namespace::call(n, op),
                Data::Value(v) => value::call(v, op),
                Data::Custom(c) => custom::call(c, op),
                Data::Array(a) => array::call(a, op),
                Data::Queue(_) => return queue::call(&mut cx, st, view_queue, op),
                Data::Lock(_) => return locks::call(&mut cx, st, view_lock, op),
                Data::Event(_) => return event::call(&mut cx, st, view_event, op),
                Data::Barrier(_) => return barrier::call(&mut cx, st, view_barrier, op),
            },
        };
        drop(st);
        Ok(r)
    }

    /// Gives back what connection `conn` held (it closed): the exclusive
    /// lock, a lock, semaphore units, a condition's lock.
    pub(super) fn give_back(&self, conn: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.excl == Some(conn) {
            st.excl = None;
        }
        if let Data::Lock(l) = &mut st.data {
            l.give_back(conn);
        }
        self.cv.notify_all();
    }

    /// The session `session` ended: a joinable queue hands the tasks it
    /// took to `join` to write off.
    pub(super) fn session_ended(&self, session: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Data::Queue(q) = &mut st.data
            && q.session_ended(session)
        {
            self.cv.notify_all();
        }
    }
}

/// Takes the object's exclusive lock for this connection (`lock()` on a
/// proxy), waiting at most `t`.
fn lock<'a>(cx: &mut Cx<'a>, st: MutexGuard<'a, State>, t: WireTimeout) -> Outcome {
    let me = cx.conn.id;
    let (st, got) = cx.wait(st, t, |s: &mut State| {
        if s.excl.is_none() {
            s.excl = Some(me);
            Some(())
        } else {
            None // held by this connection already: wait (no recursion)
        }
    })?;
    drop(st);
    Ok(if got.is_some() {
        cx.conn.held.insert(cx.id);
        Ok(Reply::Ok)
    } else {
        Err(RemoteError::Timeout)
    })
}

/// Gives the object's exclusive lock back.
fn unlock(cx: &mut Cx<'_>, st: &mut State) -> Result<Reply, RemoteError> {
    if st.excl == Some(cx.conn.id) {
        st.excl = None;
        cx.cv.notify_all();
        Ok(Reply::Ok)
    } else {
        Err(RemoteError::NotOwner)
    }
}

fn view_queue(s: &mut State) -> &mut Queue {
    match &mut s.data {
        Data::Queue(q) => q,
        _ => unreachable!("an object's kind never changes"),
    }
}

fn view_lock(s: &mut State) -> &mut Lock {
    match &mut s.data {
        Data::Lock(l) => l,
        _ => unreachable!("an object's kind never changes"),
    }
}

fn view_event(s: &mut State) -> &mut bool {
    match &mut s.data {
        Data::Event(f) => f,
        _ => unreachable!("an object's kind never changes"),
    }
}

fn view_barrier(s: &mut State) -> &mut Barrier {
    match &mut s.data {
        Data::Barrier(b) => b,
        _ => unreachable!("an object's kind never changes"),
    }
}
