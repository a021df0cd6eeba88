//! Queues and joinable queues: FIFO, optionally bounded; a joinable one
//! counts each client process's tasks until they are marked done.

use std::collections::{HashMap, VecDeque};

use std::sync::MutexGuard;

use super::wait::{Cx, Exclusive, Outcome};
use crate::error::RemoteError;
use crate::wire::{Bytes, Op, Reply};

pub(super) struct Queue {
    items: VecDeque<Bytes>,
    maxsize: u64,
    joinable: bool,
    unfinished: u64,
    /// Items got and not yet marked done, per session (joinable only).
    taken: HashMap<u64, u64>,
    /// Tasks of sessions that ended, for the next `join` to write off.
    dead: u64,
    /// Tasks written off so far.
    lost: u64,
}

impl Queue {
    /// An empty queue of at most `maxsize` items (0: unbounded).
    pub(super) fn new(maxsize: u64, joinable: bool) -> Queue {
        Queue {
            items: VecDeque::new(),
            maxsize,
            joinable,
            unfinished: 0,
            taken: HashMap::new(),
            dead: 0,
            lost: 0,
        }
    }

    /// Writes off the tasks of ended sessions (as many as are unfinished:
    /// a task may have been marked done by another client).
    fn write_off(&mut self) {
        let n = std::mem::take(&mut self.dead).min(self.unfinished);
        self.unfinished -= n;
        self.lost += n;
    }

    /// `session` ended: its tasks are handed to `join` to write off.
    /// Whether it had any.
    pub(super) fn session_ended(&mut self, session: u64) -> bool {
        match self.taken.remove(&session) {
            Some(n) => {
                self.dead += n;
                true
            }
            None => false,
        }
    }
}

/// Runs one queue operation; `view` finds the queue in the object's
/// state `S`.
pub(super) fn call<'a, S: Exclusive>(
    cx: &mut Cx<'a>,
    mut st: MutexGuard<'a, S>,
    view: fn(&mut S) -> &mut Queue,
    op: Op,
) -> Outcome {
    let cv = cx.cv;
    let joinable = view(&mut st).joinable;
    let r = match op {
        Op::Len => Ok(Reply::Count(view(&mut st).items.len() as u64)),
        Op::QueuePut(item, t) => {
            let mut item = Some(item);
            let (s, done) = cx.wait(st, t, |s| {
                let q = view(s);
                (q.maxsize == 0 || (q.items.len() as u64) < q.maxsize).then(|| {
                    q.items.push_back(item.take().expect("once"));
                    if q.joinable {
                        q.unfinished += 1;
                    }
                })
            })?;
            st = s;
            if done.is_some() {
                cv.notify_all();
                Ok(Reply::Ok)
            } else {
                Err(RemoteError::Full)
            }
        }
        Op::QueueGet(t) => {
            let (s, got) = cx.wait(st, t, |s| view(s).items.pop_front())?;
            st = s;
            match got {
                Some(b) => {
                    let q = view(&mut st);
                    if q.joinable {
                        // Whose task it is, until it is marked done.
                        *q.taken.entry(cx.conn.session).or_insert(0) += 1;
                        cx.conn.queues.insert(cx.id);
                    }
                    cv.notify_all();
                    Ok(Reply::Bytes(b))
                }
                None => Err(RemoteError::Empty),
            }
        }
        Op::QueueTaskDone if joinable => {
            let q = view(&mut st);
            if q.unfinished == 0 {
                Err(RemoteError::TaskDoneTooOften)
            } else {
                q.unfinished -= 1;
                if let Some(n) = q.taken.get_mut(&cx.conn.session) {
                    *n -= 1;
                    if *n == 0 {
                        q.taken.remove(&cx.conn.session);
                    }
                }
                cv.notify_all();
                Ok(Reply::Ok)
            }
        }
        Op::QueueJoin(t) if joinable => {
            let lost_before = view(&mut st).lost;
            let (s, done) = cx.wait(st, t, |s| {
                let q = view(s);
                q.write_off();
                (q.unfinished == 0).then_some(())
            })?;
            st = s;
            let lost = view(&mut st).lost - lost_before;
            if lost > 0 {
                // Tasks of clients that went away were written off while
                // this join waited (by it or by another).
                Err(RemoteError::TasksLost { count: lost })
            } else {
                done.map(|_| Reply::Ok).ok_or(RemoteError::Timeout)
            }
        }
        _ => cx.wrong(),
    };
    drop(st);
    Ok(r)
}
