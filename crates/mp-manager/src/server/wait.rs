//! What every handler of an object kind uses: the connection that asks,
//! how an operation waits on its object, and how an operation ends.
//!
//! Blocking operations wait on the object's condition variable in slices
//! of [`SLICE`], and between slices check whether the client hung up, so a
//! dead client's blocked request ends within a slice.

use std::collections::HashSet;
use std::sync::{Condvar, MutexGuard};
use std::time::Duration;

use mp_os::time::Deadline;

use crate::error::RemoteError;
use crate::transport::Transport;
use crate::wire::{Kind, Reply, WireTimeout};

/// How long a blocked request sleeps before checking its client is alive:
/// the one slice of the whole project.
pub(crate) use mp_os::futex::SLICE;

/// One client connection.
pub(super) struct Conn {
    pub(super) id: u64,
    /// The client process's session (see `admit::Session`).
    pub(super) session: u64,
    pub(super) transport: Transport,
    /// Objects on which this connection may hold something (an exclusive
    /// lock, a lock, semaphore units) to give back when it closes.
    pub(super) held: HashSet<u64>,
    /// Joinable queues this connection got items from.
    pub(super) queues: HashSet<u64>,
}

/// Why a wait ended without its condition.
pub(super) enum Stop {
    Timeout,
    PeerGone,
}

/// What one operation comes to. The outer error ends the request (the
/// client is gone, or a timeout that the caller turns into a reply); the
/// inner one is the reply's error.
pub(super) type Outcome = Result<Result<Reply, RemoteError>, Stop>;

pub(super) fn deadline(t: WireTimeout) -> Deadline {
    Deadline::after(t.map(Duration::from_nanos))
}

/// The reply to an operation that does not apply to an object of `kind`.
pub(super) fn wrong<T>(kind: Kind) -> Result<T, RemoteError> {
    Err(RemoteError::WrongKind(format!("{kind:?}")))
}

/// An object's state as far as waiting goes: the connection holding the
/// object's exclusive lock (`lock()` on a proxy), if any, whose requests
/// alone may proceed.
pub(super) trait Exclusive {
    fn excl(&self) -> Option<u64>;
}

/// Waits (holding nothing between slices) until the object is not
/// exclusively held by another connection and `f` returns `Some`.
pub(super) fn wait_for<'a, S: Exclusive, T>(
    cv: &Condvar,
    conn: &Conn,
    mut st: MutexGuard<'a, S>,
    deadline: Deadline,
    mut f: impl FnMut(&mut S) -> Option<T>,
) -> Result<(MutexGuard<'a, S>, T), (MutexGuard<'a, S>, Stop)> {
    loop {
        if st.excl().is_none_or(|c| c == conn.id)
            && let Some(v) = f(&mut st)
        {
            return Ok((st, v));
        }
        if deadline.expired() {
            return Err((st, Stop::Timeout));
        }
        let slice = deadline.remaining().map_or(SLICE, |r| r.min(SLICE));
        st = cv
            .wait_timeout(st, slice)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if conn.transport.socket().peer_gone() {
            return Err((st, Stop::PeerGone));
        }
    }
}

/// One operation's view of the server: the object's condition variable,
/// id and kind, and the connection that asks.
pub(super) struct Cx<'a> {
    pub(super) cv: &'a Condvar,
    pub(super) conn: &'a mut Conn,
    pub(super) id: u64,
    pub(super) kind: Kind,
}

impl<'a> Cx<'a> {
    /// As [`wait_for`].
    pub(super) fn wait_for<S: Exclusive, T>(
        &self,
        st: MutexGuard<'a, S>,
        deadline: Deadline,
        f: impl FnMut(&mut S) -> Option<T>,
    ) -> Result<(MutexGuard<'a, S>, T), (MutexGuard<'a, S>, Stop)> {
        wait_for(self.cv, self.conn, st, deadline, f)
    }

    /// As [`wait_for`] until the timeout `t`: `None` when it passed; the
    /// error when the client went away (the request ends).
    pub(super) fn wait<S: Exclusive, T>(
        &self,
        st: MutexGuard<'a, S>,
        t: WireTimeout,
        f: impl FnMut(&mut S) -> Option<T>,
    ) -> Result<(MutexGuard<'a, S>, Option<T>), Stop> {
        match self.wait_for(st, deadline(t), f) {
            Ok((s, v)) => Ok((s, Some(v))),
            Err((s, Stop::Timeout)) => Ok((s, None)),
            Err((s, Stop::PeerGone)) => {
                drop(s);
                Err(Stop::PeerGone)
            }
        }
    }

    /// The reply to an operation that does not apply to this object.
    pub(super) fn wrong<T>(&self) -> Result<T, RemoteError> {
        wrong(self.kind)
    }
}
