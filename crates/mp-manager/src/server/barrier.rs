//! Barriers: a fixed number of parties wait for each other; a timeout
//! breaks the barrier, as Python's does.

use std::sync::MutexGuard;

use super::wait::{Cx, Exclusive, Outcome, Stop, deadline};
use crate::error::RemoteError;
use crate::wire::{Op, Reply};

pub(super) struct Barrier {
    parties: u64,
    count: u64,
    generation: u64,
    /// The last generation that completed (its waiters succeed).
    completed: Option<u64>,
    broken: bool,
}

impl Barrier {
    /// A barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// `BadRequest` for none.
    pub(super) fn new(parties: u64) -> Result<Barrier, RemoteError> {
        if parties == 0 {
            return Err(RemoteError::BadRequest(
                "a barrier needs at least one party".into(),
            ));
        }
        Ok(Barrier {
            parties,
            count: 0,
            generation: 0,
            completed: None,
            broken: false,
        })
    }
}

/// Runs one Barrier operation; `view` finds the barrier in the object's
/// state `S`.
pub(super) fn call<'a, S: Exclusive>(
    cx: &mut Cx<'a>,
    mut st: MutexGuard<'a, S>,
    view: fn(&mut S) -> &mut Barrier,
    op: Op,
) -> Outcome {
    let cv = cx.cv;
    let b = view(&mut st);
    let r = match op {
        Op::BarrierWait(_) if b.broken => Err(RemoteError::BrokenBarrier),
        Op::BarrierWait(t) => {
            let idx = b.count;
            b.count += 1;
            if b.count == b.parties {
                b.completed = Some(b.generation);
                b.generation += 1;
                b.count = 0;
                cv.notify_all();
                Ok(Reply::Count(idx))
            } else {
                let gen_ = b.generation;
                let r = cx.wait_for(st, deadline(t), |s| {
                    let b = view(s);
                    (b.generation != gen_ || b.broken).then_some(())
                });
                let (s, outcome) = match r {
                    Ok((s, ())) => (s, None),
                    Err((s, stop)) => (s, Some(stop)),
                };
                st = s;
                let b = view(&mut st);
                match outcome {
                    None if b.completed == Some(gen_) => Ok(Reply::Count(idx)),
                    None => Err(RemoteError::BrokenBarrier),
                    Some(stop) => {
                        // A timeout breaks the barrier (as Python's
                        // does); a vanished waiter only withdraws.
                        if b.generation == gen_ {
                            b.count = b.count.saturating_sub(1);
                        }
                        if let Stop::PeerGone = stop {
                            return Err(Stop::PeerGone);
                        }
                        b.broken = true;
                        cv.notify_all();
                        Err(RemoteError::BrokenBarrier)
                    }
                }
            }
        }
        Op::BarrierReset => {
            b.generation += 1;
            b.count = 0;
            b.broken = false;
            cv.notify_all();
            Ok(Reply::Ok)
        }
        Op::BarrierAbort => {
            b.broken = true;
            cv.notify_all();
            Ok(Reply::Ok)
        }
        Op::BarrierInfo => Ok(Reply::Barrier(b.parties, b.count, b.broken)),
        _ => cx.wrong(),
    };
    drop(st);
    Ok(r)
}
