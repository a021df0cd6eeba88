//! Locks, recursive locks, semaphores and conditions: acquire and release,
//! and a condition's wait and notify.
//!
//! A `Lock` and semaphore units belong to the connection that took them;
//! an `RLock` or a condition's lock to a thread (`Who`), each nested level
//! remembering its connection. What a closed connection held is given back
//! with [`Lock::give_back`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::MutexGuard;

use super::wait::{Cx, Exclusive, Outcome, Stop, deadline};
use crate::error::RemoteError;
use crate::wire::{Op, Reply, Who};

/// The state of a lock-like object.
pub(super) enum Lock {
    /// A `Lock`: the connection holding it.
    Plain(Option<u64>),
    /// An `RLock`.
    Recursive(Owned),
    /// A `Semaphore`: free units, the units each connection holds, and
    /// for a `BoundedSemaphore` the initial value, which a release may not
    /// exceed.
    Semaphore {
        value: u64,
        held: HashMap<u64, u64>,
        bound: Option<u64>,
    },
    /// A `Condition` and its recursive lock.
    Condition(Condition),
}

impl Lock {
    /// A semaphore with `n` units.
    pub(super) fn semaphore(n: u64) -> Lock {
        Lock::Semaphore {
            value: n,
            held: HashMap::new(),
            bound: None,
        }
    }

    /// A semaphore with `n` units that may not be released above `n`.
    pub(super) fn bounded_semaphore(n: u64) -> Lock {
        Lock::Semaphore {
            value: n,
            held: HashMap::new(),
            bound: Some(n),
        }
    }

    /// Gives back what connection `conn` held (it closed).
    pub(super) fn give_back(&mut self, conn: u64) {
        match self {
            Lock::Plain(owner) if *owner == Some(conn) => *owner = None,
            Lock::Recursive(o) if o.held_through(conn) => o.owner = None,
            Lock::Condition(c) if c.lock.held_through(conn) => c.lock.owner = None,
            Lock::Semaphore { value, held, bound } => {
                if let Some(n) = held.remove(&conn) {
                    // A bounded one never has more units, free and held,
                    // than its bound, even when units were also released
                    // by hand.
                    let others: u64 = held.values().sum();
                    let room = bound.map_or(u64::MAX, |b| b.saturating_sub(others));
                    *value = (*value + n).min(room);
                }
            }
            _ => {}
        }
    }
}

/// A recursive lock's owner: the thread, and the connection of each of
/// its nested acquisitions (depth = their number).
#[derive(Default)]
pub(super) struct Owned {
    owner: Option<(Who, Vec<u64>)>,
}

impl Owned {
    fn try_acquire(&mut self, who: Who, conn: u64) -> bool {
        match &mut self.owner {
            None => {
                self.owner = Some((who, vec![conn]));
                true
            }
            Some((w, levels)) if *w == who => {
                levels.push(conn);
                true
            }
            Some(_) => false,
        }
    }

    fn release(&mut self, who: Who, conn: u64) -> Result<(), RemoteError> {
        match &mut self.owner {
            Some((w, levels)) if *w == who => {
                match levels.iter().rposition(|c| *c == conn) {
                    Some(i) => levels.remove(i),
                    None => levels.pop().unwrap_or_default(),
                };
                if levels.is_empty() {
                    self.owner = None;
                }
                Ok(())
            }
            _ => Err(RemoteError::NotOwner),
        }
    }

    fn held_through(&self, conn: u64) -> bool {
        self.owner
            .as_ref()
            .is_some_and(|(_, levels)| levels.contains(&conn))
    }
}

#[derive(Default)]
pub(super) struct Condition {
    lock: Owned,
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
    next_ticket: u64,
}

/// Runs one operation on a lock, recursive lock, semaphore or condition;
/// `view` finds it in the object's state `S`.
pub(super) fn call<'a, S: Exclusive>(
    cx: &mut Cx<'a>,
    mut st: MutexGuard<'a, S>,
    view: fn(&mut S) -> &mut Lock,
    op: Op,
) -> Outcome {
    let cv = cx.cv;
    let r = match op {
        Op::Acquire(who, t) => {
            let me = cx.conn.id;
            let (s, got) = cx.wait(st, t, |s| match view(s) {
                Lock::Plain(owner) => owner.is_none().then(|| *owner = Some(me)),
                Lock::Recursive(o) => o.try_acquire(who, me).then_some(()),
                Lock::Condition(c) => c.lock.try_acquire(who, me).then_some(()),
                Lock::Semaphore { value, held, .. } => (*value > 0).then(|| {
                    *value -= 1;
                    *held.entry(me).or_insert(0) += 1;
                }),
            })?;
            st = s;
            if got.is_some() {
                cx.conn.held.insert(cx.id);
            }
            Ok(Reply::Bool(got.is_some()))
        }
        Op::Release(who) => {
            let me = cx.conn.id;
            let r = match view(&mut st) {
                Lock::Plain(owner) => match owner.take() {
                    Some(_) => Ok(Reply::Ok),
                    None => Err(RemoteError::NotOwner),
                },
                Lock::Recursive(o) => o.release(who, me).map(|_| Reply::Ok),
                Lock::Condition(c) => c.lock.release(who, me).map(|_| Reply::Ok),
                Lock::Semaphore { value, bound, .. } if bound.is_some_and(|b| *value >= b) => {
                    Err(RemoteError::ReleasedTooOften)
                }
                Lock::Semaphore { value, held, .. } => {
                    *value += 1;
                    if let Some(n) = held.get_mut(&me) {
                        *n -= 1;
                        if *n == 0 {
                            held.remove(&me);
                        }
                    }
                    Ok(Reply::Ok)
                }
            };
            if r.is_ok() {
                cv.notify_all();
            }
            r
        }
        Op::CondWait(who, t) => {
            let Lock::Condition(c) = view(&mut st) else {
                return Ok(cx.wrong());
            };
            match c.lock.owner.take() {
                Some((w, levels)) if w == who => {
                    // Release the lock fully, wait for a notification,
                    // then take the lock back at the same depth.
                    c.next_ticket += 1;
                    let ticket = c.next_ticket;
                    c.waiting.push_back(ticket);
                    cv.notify_all();
                    let (s, woken) = match cx.wait_for(st, deadline(t), |s| match view(s) {
                        Lock::Condition(c) => c.notified.remove(&ticket).then_some(()),
                        _ => None,
                    }) {
                        Ok((s, ())) => (s, true),
                        Err((s, Stop::Timeout)) => (s, false),
                        Err((mut s, Stop::PeerGone)) => {
                            if let Lock::Condition(c) = view(&mut s) {
                                c.waiting.retain(|x| *x != ticket);
                                c.notified.remove(&ticket);
                            }
                            return Err(Stop::PeerGone);
                        }
                    };
                    st = s;
                    if !woken && let Lock::Condition(c) = view(&mut st) {
                        c.waiting.retain(|x| *x != ticket);
                    }
                    let (s, _) = cx.wait(st, None, |s| match view(s) {
                        Lock::Condition(c) if c.lock.owner.is_none() => {
                            c.lock.owner = Some((who, levels.clone()));
                            Some(())
                        }
                        _ => None,
                    })?;
                    st = s;
                    Ok(Reply::Bool(woken))
                }
                other => {
                    c.lock.owner = other;
                    Err(RemoteError::NotOwner)
                }
            }
        }
        Op::CondNotify(n) => match view(&mut st) {
            Lock::Condition(c) => {
                for _ in 0..n {
                    match c.waiting.pop_front() {
                        Some(t) => {
                            c.notified.insert(t);
                        }
                        None => break,
                    }
                }
                cv.notify_all();
                Ok(Reply::Ok)
            }
            _ => cx.wrong(),
        },
        _ => cx.wrong(),
    };
    drop(st);
    Ok(r)
}
