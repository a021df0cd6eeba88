//! What every channel handle (a `PipeEnd`, a `Queue`) does with the rings
//! of its `Attach`: encode and write a value, read one into a sink, map the
//! ring's errors to the public ones, readiness for `wait`, and the handle's
//! own serde form.

use std::cell::RefCell;
use std::os::fd::BorrowedFd;

use mp_os::time::Deadline;
use serde::Serialize;

use crate::attach::{Attach, GUARDED};
use crate::error::{RecvFailure as RecvError, SendFailure as SendError};
use crate::ring::{KEEP_SCRATCH, Ring, RingReadError, RingWriteError, Sink};

/// How a call treats a deadline that passes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Blocking without a timeout.
    Block,
    /// With a timeout: `Timeout` errors.
    Timed,
    /// Non-blocking: `Full` / `Empty` errors.
    Try,
}

thread_local! {
    /// This thread's buffer for encoding values (see [`KEEP_SCRATCH`]).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Values whose in-memory size is at most this are first encoded into a
/// buffer on the stack (numbers, small structs, short strings and vectors).
const STACK_VALUE: usize = 32;
/// That stack buffer's size.
const STACK_BUF: usize = 64;

/// Encodes `value` into a buffer (on the stack for a small value, else a
/// reused per-thread one) and runs `f` on it.
#[inline]
pub(crate) fn with_encoded<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, postcard::Error> {
    if std::mem::size_of_val(value) <= STACK_VALUE {
        let mut buf = [0u8; STACK_BUF];
        match crate::codec::to_slice(value, &mut buf) {
            Ok(b) => return Ok(f(b)),
            // Longer than it looked (a string or vector): the heap buffer.
            Err(postcard::Error::SerializeBufferFull) => {}
            Err(e) => return Err(e),
        }
    }
    with_encoded_heap(value, f)
}

fn with_encoded_heap<T: Serialize + ?Sized, R>(
    value: &T,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, postcard::Error> {
    let mut buf = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    buf.clear();
    let buf = crate::codec::to_extend(value, buf)?;
    let r = f(&buf);
    if buf.capacity() <= KEEP_SCRATCH {
        SCRATCH.with(|s| *s.borrow_mut() = buf);
    }
    Ok(r)
}

/// Writes `bytes` to the send ring of `a`.
pub(crate) fn write_bytes(
    a: &Attach,
    bytes: &[u8],
    deadline: Deadline,
    call: Call,
) -> Result<(), SendError> {
    let ring = match a.send_ring() {
        Some(r) if a.can_send() => r,
        _ => return Err(SendError::Closed(())),
    };
    let w = a.waiter(deadline);
    // The deadline bounds the whole call, every fragment of a streamed
    // message included; a non-blocking call completes a streamed message
    // it could start.
    let rest = if call == Call::Try {
        Deadline::never()
    } else {
        deadline
    };
    ring.write_within(bytes, &w, a.chan.maxsize, rest)
        .map_err(|e| match (e, call) {
            (RingWriteError::Disconnected, _) => SendError::Disconnected(()),
            (RingWriteError::Corrupt, _) => SendError::Corrupt(()),
            (RingWriteError::Timeout, Call::Try) => SendError::Full(()),
            (RingWriteError::Timeout, _) => SendError::Timeout(()),
        })
}

/// Encodes and writes `value`.
pub(crate) fn write_value<T: Serialize + ?Sized>(
    a: &Attach,
    value: &T,
    deadline: Deadline,
    call: Call,
) -> Result<(), SendError> {
    if !a.can_send() {
        return Err(SendError::Closed(()));
    }
    match with_encoded(value, |b| write_bytes(a, b, deadline, call)) {
        Ok(r) => r,
        Err(e) => Err(SendError::Encode((), e)),
    }
}

/// Reads one message of the receive ring of `a` into `sink`.
pub(crate) fn read<S: Sink>(
    a: &Attach,
    sink: &mut S,
    deadline: Deadline,
    call: Call,
) -> Result<S::Out, RecvError> {
    let ring = match a.recv_ring() {
        Some(r) if a.can_recv() => r,
        _ => return Err(RecvError::Closed),
    };
    let w = a.waiter(deadline);
    ring.read(sink, &w).map_err(|e| map_rerr(e, call))
}

pub(crate) fn map_rerr(e: RingReadError, call: Call) -> RecvError {
    match e {
        RingReadError::Timeout if call == Call::Try => RecvError::Empty,
        RingReadError::Timeout => RecvError::Timeout,
        RingReadError::Disconnected => RecvError::Disconnected,
        RingReadError::TooShort(n) => RecvError::TooShort {
            needed: usize::try_from(n).unwrap_or(usize::MAX),
        },
        RingReadError::Corrupt(m) => RecvError::Corrupt(m),
        // postcard drops the reason a handle failed to re-attach.
        RingReadError::Decode(e) => match mp_os::handle::take_attach_error() {
            Some(why) => RecvError::Attach(why),
            None => RecvError::Decode(e),
        },
    }
}

/// Readiness for `wait()`: a receive would not block. Drains the eventfd
/// and signals it again when ready, so other pollers keep their wake-up.
pub(crate) fn is_ready(a: &Attach, slow: bool) -> bool {
    let Some(i) = a.recv else { return false };
    let drained = a.chan.drain_efd(i);
    let ring: &Ring = a.chan.ring(i);
    let slow = slow || a.slow_check_due();
    let ready = !a.can_recv() || ring.readable(slow, crate::sync::tid());
    if ready && drained {
        a.chan.signal_efd(i);
    }
    ready
}

pub(crate) fn readiness_fd(a: &Attach) -> BorrowedFd<'_> {
    a.chan.efd(a.recv.unwrap_or(0))
}

pub(crate) fn register(a: &Attach, on: bool) {
    if let Some(r) = a.recv_ring() {
        r.poller(on);
    }
}

/// Serializes a handle (see `chan::WireOut`).
pub(crate) fn serialize_handle<S: serde::Serializer>(a: &Attach, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::Error;
    if a.closed() {
        return Err(S::Error::custom("cannot send a closed channel handle"));
    }
    // Inside a transport the channel must stay connected until a receiver
    // has attached: the carrier keeps a guard (`collect_handles`), or else
    // the first receiver releases the sender's extra registration.
    let transit = if !mp_os::handle::in_transport() {
        0
    } else if mp_os::handle::keeps_transits() {
        let kept = a
            .transit_guard()
            .is_some_and(|g| mp_os::handle::keep_in_transit(Box::new(g)).is_ok());
        if kept { GUARDED } else { 0 }
    } else {
        a.add_transit()
    };
    let send = a.send.filter(|_| a.can_send());
    let recv = a.recv.filter(|_| a.can_recv());
    let r = a
        .chan
        .wire(send, recv, a.mode().to_u8(), transit)
        .serialize(s);
    if r.is_err() {
        a.release_transit(transit);
    }
    r
}

/// Deserializes a handle of channel `kind`.
pub(crate) fn deserialize_handle<'de, D: serde::Deserializer<'de>>(
    d: D,
    kind: u32,
) -> Result<std::sync::Arc<Attach>, D::Error> {
    use serde::Deserialize;
    let w = crate::chan::WireIn::deserialize(d)?;
    let (send, recv, mode, transit) = (w.send, w.recv, w.mode, w.transit);
    let chan = w.into_chan(kind).map_err(mp_os::handle::attach_error)?;
    let a = Attach::new(
        std::sync::Arc::new(chan),
        send,
        recv,
        crate::ring::WaitMode::from_u8(mode),
    );
    if transit == GUARDED {
        // The carrier keeps (or handed us) the sender's registration.
        if mp_os::handle::handed_over() {
            a.take_handed_over();
        }
    } else {
        a.release_transit(transit);
    }
    Ok(a)
}
