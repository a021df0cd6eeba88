//! The wire protocol: frames, the handshake, requests and replies.
//!
//! A frame is a 4-byte little-endian length followed by that many bytes.
//! Before authentication a frame may be at most [`MAX_HANDSHAKE_FRAME`]
//! bytes, after it at most [`MAX_FRAME`]; a longer length prefix closes the
//! connection before anything is allocated. Frame bodies after the
//! handshake are postcard-encoded [`Request`]s and [`Reply`]s; a body that
//! does not decode completely gets a [`RemoteError::BadRequest`] reply.

use std::io::{self, Read, Write};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::RemoteError;

/// The largest frame after authentication: 64 MiB.
pub(crate) const MAX_FRAME: usize = 64 << 20;
/// The largest frame during the handshake.
pub(crate) const MAX_HANDSHAKE_FRAME: usize = 128;
/// Bumped on any incompatible change of the protocol. 4: reference
/// counts (`Incref`, `Decref`, `Export`, `ObjectCount`; a serialized
/// proxy carries its transit token), `Array` and `BoundedSemaphore`,
/// typed method errors (`RemoteError::Method`), `ReleasedTooOften`.
pub(crate) const PROTOCOL_VERSION: u16 = 4;
/// The first bytes of the server's challenge.
pub(crate) const MAGIC: &[u8; 8] = b"MPMGR\0\0\x01";
/// The frame a refused local peer gets instead of the challenge.
pub(crate) const REFUSED_USER: &[u8] = b"\x02";
/// Bytes of a nonce.
pub(crate) const NONCE: usize = 32;
/// Bytes of an HMAC-SHA256 tag.
pub(crate) const TAG: usize = 32;
/// How long a client polls for its reply before sleeping.
pub(crate) const CLIENT_SPIN: std::time::Duration = std::time::Duration::from_micros(50);
/// How long a server thread polls for the next request before sleeping.
pub(crate) const SERVER_SPIN: std::time::Duration = std::time::Duration::from_micros(100);

/// Writes one frame in a single `write` where the stream allows it.
pub(crate) fn write_frame(w: &mut impl Write, buf: &mut Vec<u8>, body: &[u8]) -> io::Result<()> {
    buf.clear();
    buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
    buf.extend_from_slice(body);
    w.write_all(buf)?;
    w.flush()
}

/// Reads one frame of at most `max` bytes into `out`. Returns `false` on a
/// clean end of stream before the frame starts.
///
/// Memory grows with the bytes that actually arrive, not with the length
/// the peer claims.
pub(crate) fn read_frame(r: &mut impl Read, max: usize, out: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes exceeds the limit of {max}"),
        ));
    }
    out.clear();
    if out.capacity() < n.min(1 << 16) {
        out.reserve(n.min(1 << 16));
    }
    let read = r.take(n as u64).read_to_end(out)?;
    if read < n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(true)
}

// ---- the handshake --------------------------------------------------------

/// HMAC-SHA256 of `role || nonce` under `key`.
pub(crate) fn tag(key: &[u8], role: &[u8], nonce: &[u8]) -> [u8; TAG] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(role);
    mac.update(nonce);
    mac.finalize().into_bytes().into()
}

/// Whether `got` is the tag of `role || nonce` under `key`, compared in
/// constant time.
pub(crate) fn verify(key: &[u8], role: &[u8], nonce: &[u8], got: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(role);
    mac.update(nonce);
    mac.verify_slice(got).is_ok()
}

/// The domain-separation prefix of the client's answer.
pub(crate) const CLIENT_ROLE: &[u8] = b"mp-manager client v1";
/// The domain-separation prefix of the server's answer.
pub(crate) const SERVER_ROLE: &[u8] = b"mp-manager server v1";

/// A fresh random nonce.
pub(crate) fn nonce() -> io::Result<[u8; NONCE]> {
    let mut n = [0u8; NONCE];
    random(&mut n)?;
    Ok(n)
}

/// Fills `buf` from the OS's random source.
pub(crate) fn random(buf: &mut [u8]) -> io::Result<()> {
    getrandom::fill(buf).map_err(|e| io::Error::other(e.to_string()))
}

// ---- requests ---------------------------------------------------------------

/// Postcard bytes of one user value.
pub(crate) type Bytes = Vec<u8>;

/// A timeout on the wire: nanoseconds, `None` for "wait forever".
pub(crate) type WireTimeout = Option<u64>;

/// Who asks, for the objects whose owner is a thread (`RLock`,
/// `Condition`): a random per-process session id and the thread id.
pub(crate) type Who = (u64, u64);

/// The kinds of object a server holds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Kind {
    Dict,
    List,
    Namespace,
    Value,
    Queue,
    Lock,
    RLock,
    Semaphore,
    Event,
    Condition,
    Barrier,
    Custom,
    Array,
    BoundedSemaphore,
}

/// What a new object starts with.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) enum Init {
    Dict(Vec<(Bytes, Bytes)>),
    List(Vec<Bytes>),
    Namespace,
    Value(Bytes),
    /// Maximum size (0: unbounded) and whether `task_done`/`join` apply.
    Queue {
        maxsize: u64,
        joinable: bool,
    },
    Lock,
    RLock,
    Semaphore(u64),
    Event,
    Condition,
    Barrier(u64),
    Custom {
        type_name: String,
        init: Bytes,
    },
    /// A fixed-length array of these items: `Len`, `ListGet`, `ListSet`,
    /// `ListSlice` and `ListSnapshot` apply.
    Array(Vec<Bytes>),
    /// A semaphore that may not be released above its initial value.
    BoundedSemaphore(u64),
}

/// One request.
///
/// The reference-counting requests (protocol 4) keep an object alive while
/// a proxy of it lives anywhere: the server counts, per session (client
/// process), the objects it holds proxies of (`Create` and `Lookup` count
/// the object for the asking session; `Incref` and `Decref` when the
/// process's first proxy of it appears, by decoding, and its last one
/// goes). A proxy serialized for another process first takes a transit
/// reference (`Export`, answered with `Id(token)`), which the receiver's
/// `Incref` with that token gives back, so the sender's `Decref` cannot
/// free the object while the proxy travels; one serialized into a value
/// stored in another object (`stored`) pins the object until the server
/// exits. An object no session, name, transit or pin refers to is freed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) enum Request {
    Ping,
    Create(Init),
    Call {
        id: u64,
        op: Op,
    },
    Publish {
        name: String,
        id: u64,
    },
    Lookup(String),
    Shutdown,
    /// This session holds a proxy of `id`; `token` (0: none) is the
    /// transit reference its proxy came with.
    Incref {
        id: u64,
        token: u64,
    },
    /// This session holds no proxy of `id` any more.
    Decref(u64),
    /// A proxy of `id` is being serialized: a transit reference (reply
    /// `Id(token)`), or with `stored` a pin (reply `Id(0)`).
    Export {
        id: u64,
        stored: bool,
    },
    /// How many objects the server holds (`Count`).
    ObjectCount,
}

/// An operation on one object.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) enum Op {
    // any container
    Len,
    Clear,
    /// Take the object's exclusive lock for this connection.
    ObjLock(WireTimeout),
    ObjUnlock,
    // dict
    DictGet(Bytes),
    DictSet(Bytes, Bytes),
    DictSetDefault(Bytes, Bytes),
    DictRemove(Bytes),
    DictContains(Bytes),
    DictItems,
    DictKeys,
    DictValues,
    DictUpdate(Vec<(Bytes, Bytes)>),
    DictPopItem,
    // list
    ListGet(i64),
    ListSet(i64, Bytes),
    ListAppend(Bytes),
    ListExtend(Vec<Bytes>),
    ListInsert(i64, Bytes),
    ListPop(Option<i64>),
    ListDelete(i64),
    ListRemove(Bytes),
    ListIndex(Bytes),
    ListCount(Bytes),
    ListContains(Bytes),
    ListSnapshot,
    ListSlice(i64, i64),
    ListReplace(Vec<Bytes>),
    ListReverse,
    // namespace
    NsGet(String),
    NsSet(String, Bytes),
    NsDel(String),
    NsItems,
    // value
    ValueGet,
    ValueSet(Bytes),
    // queue
    QueuePut(Bytes, WireTimeout),
    QueueGet(WireTimeout),
    QueueTaskDone,
    QueueJoin(WireTimeout),
    // locks, semaphores, conditions
    Acquire(Who, WireTimeout),
    Release(Who),
    CondWait(Who, WireTimeout),
    CondNotify(u64),
    // event
    EventSet,
    EventClear,
    EventIsSet,
    EventWait(WireTimeout),
    // barrier
    BarrierWait(WireTimeout),
    BarrierReset,
    BarrierAbort,
    BarrierInfo,
    // registered types
    Custom(String, Bytes),
}

/// One reply.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Ok,
    Id(u64),
    Object(u64, Kind),
    Bool(bool),
    Count(u64),
    Bytes(Bytes),
    MaybeBytes(Option<Bytes>),
    Pair(Bytes, Bytes),
    Seq(Vec<Bytes>),
    Pairs(Vec<(Bytes, Bytes)>),
    Named(Vec<(String, Bytes)>),
    /// Barrier state: parties, waiting, broken.
    Barrier(u64, u64, bool),
    Err(RemoteError),
}

/// Decodes a request, refusing trailing bytes.
pub(crate) fn decode_request(body: &[u8]) -> Result<Request, RemoteError> {
    match postcard::take_from_bytes::<Request>(body) {
        Ok((r, [])) => Ok(r),
        Ok((_, rest)) => Err(RemoteError::BadRequest(format!(
            "{} trailing bytes",
            rest.len()
        ))),
        Err(e) => Err(RemoteError::BadRequest(e.to_string())),
    }
}

#[cfg(test)]
mod tests;
