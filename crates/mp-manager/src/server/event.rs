//! Events: a flag that waiters wait for.

use std::sync::MutexGuard;

use super::wait::{Cx, Exclusive, Outcome};
use crate::wire::{Op, Reply};

/// Runs one Event operation; `view` finds the flag in the object's state
/// `S`.
pub(super) fn call<'a, S: Exclusive>(
    cx: &mut Cx<'a>,
    mut st: MutexGuard<'a, S>,
    view: fn(&mut S) -> &mut bool,
    op: Op,
) -> Outcome {
    let r = match op {
        Op::EventSet => {
            *view(&mut st) = true;
            cx.cv.notify_all();
            Ok(Reply::Ok)
        }
        Op::EventClear => {
            *view(&mut st) = false;
            Ok(Reply::Ok)
        }
        Op::EventIsSet => Ok(Reply::Bool(*view(&mut st))),
        Op::EventWait(t) => {
            let (s, set) = cx.wait(st, t, |s| view(s).then_some(()))?;
            st = s;
            Ok(Reply::Bool(set.is_some()))
        }
        _ => cx.wrong(),
    };
    drop(st);
    Ok(r)
}
