//! The client side: authenticated connections, a per-process pool of them
//! for each server, and the handle every proxy holds.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addr::{Address, Stream};
use crate::error::Error;
use crate::transport::Transport;
use crate::wire::{self, Bytes, Op, Reply, Request, Who};

/// How long the server has to answer the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per server and process.
const MAX_IDLE: usize = 64;
/// What a request that could not be encoded (and so was never sent) was.
const UNSENT: &str = "encode a request";

/// One authenticated connection.
pub(crate) struct Conn {
    transport: Transport,
    buf: Vec<u8>,
}

impl Conn {
    /// Connects and runs the client side of the handshake.
    pub(crate) fn open(addr: &Address, key: &[u8]) -> Result<Conn, Error> {
        if key.is_empty() && matches!(addr, Address::Tcp(_)) {
            return Err(Error::EmptyAuthkey);
        }
        let stream = Stream::connect(addr).map_err(|e| Error::io("connect", e))?;
        Conn::handshake(&stream, key)?;
        // A local connection continues over a shared-memory pipe.
        let transport = crate::transport::upgrade(stream, wire::CLIENT_SPIN)
            .map_err(|e| Error::io("manager handshake", e))?;
        transport
            .socket()
            .set_read_timeout(None)
            .map_err(|e| Error::io("manager handshake", e))?;
        Ok(Conn {
            transport,
            buf: Vec::new(),
        })
    }

    fn handshake(s: &Stream, key: &[u8]) -> Result<(), Error> {
        let io = |e: io::Error| Error::io("manager handshake", e);
        s.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
        let mut hello = Vec::new();
        match wire::read_frame(&mut &*s, wire::MAX_HANDSHAKE_FRAME, &mut hello) {
            Ok(true) => {}
            Ok(false) => return Err(Error::ServerGone),
            Err(e) => return Err(io(e)),
        }
        if hello == wire::REFUSED_USER {
            return Err(Error::Auth(
                "the server takes local connections only from its own user and root",
            ));
        }
        let m = wire::MAGIC.len();
        if hello.len() != m + 2 + wire::NONCE || &hello[..m] != wire::MAGIC {
            return Err(Error::Auth("the peer is not a manager server"));
        }
        if hello[m..m + 2] != wire::PROTOCOL_VERSION.to_le_bytes() {
            return Err(Error::Auth("the server speaks another protocol version"));
        }
        let ns = &hello[m + 2..];
        let nc = wire::nonce().map_err(io)?;
        let mut answer = wire::tag(key, wire::CLIENT_ROLE, ns).to_vec();
        answer.extend_from_slice(&nc);
        // Names this process, so that the server can tell when all its
        // connections are gone.
        answer.extend_from_slice(&session().to_le_bytes());
        wire::write_frame(&mut &*s, &mut Vec::new(), &answer).map_err(io)?;
        let mut welcome = Vec::new();
        match wire::read_frame(&mut &*s, wire::MAX_HANDSHAKE_FRAME, &mut welcome) {
            Ok(true) => {}
            // The server closes without a word only if it is going away.
            Ok(false) => return Err(Error::ServerGone),
            Err(e) => return Err(io(e)),
        }
        if welcome.first() != Some(&0) {
            return Err(Error::Auth("the server rejected the key"));
        }
        if welcome.len() != 1 + wire::TAG
            || !wire::verify(key, wire::SERVER_ROLE, &nc, &welcome[1..])
        {
            return Err(Error::Auth("the server does not know the key"));
        }
        Ok(())
    }

    /// The connection's transport.
    #[cfg(test)]
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// One request and its reply.
    pub(crate) fn call(&mut self, req: &Request) -> Result<Reply, Error> {
        self.buf.clear();
        postcard::to_io(req, &mut self.buf).map_err(|e| Error::Codec {
            what: UNSENT,
            message: e.to_string(),
        })?;
        if self.buf.len() > wire::MAX_FRAME {
            return Err(Error::Codec {
                what: UNSENT,
                message: format!(
                    "{} bytes exceed the frame limit of {}",
                    self.buf.len(),
                    wire::MAX_FRAME
                ),
            });
        }
        self.transport.send_frame(&self.buf).map_err(gone)?;
        if self.buf.capacity() > 4 << 20 {
            self.buf = Vec::new();
        }
        let body = match self.transport.recv_frame(wire::MAX_FRAME) {
            Ok(Some(body)) => body,
            Ok(None) => return Err(Error::ServerGone),
            Err(e) => return Err(gone(e)),
        };
        postcard::from_bytes::<Reply>(body)
            .map_err(|e| Error::Protocol(format!("undecodable reply: {e}")))
    }
}

fn gone(e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::UnexpectedEof => Error::ServerGone,
        _ => Error::io("manager request", e),
    }
}

/// The connections of this process to one server, and the proxies this
/// process holds of its objects.
pub(crate) struct Pool {
    pub(crate) addr: Address,
    pub(crate) key: Vec<u8>,
    pid: u32,
    idle: Mutex<Vec<Conn>>,
    /// How many handles of each object live in this process. The server
    /// counts this process (its session) as a holder of an object from
    /// the first to the last: see [`Handle`].
    refs: Mutex<HashMap<u64, usize>>,
    /// Shut down by its `Manager`: the handles dropped afterwards tell the
    /// server nothing.
    closed: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

static POOLS: Mutex<Vec<Arc<Pool>>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// The pool of this process for `addr` (made on first use; a pool made
    /// by a parent before a fork is never reused in the child).
    pub(crate) fn get(addr: &Address, key: &[u8]) -> Arc<Pool> {
        let pid = mp_os::liveness::current_pid();
        let mut pools = lock(&POOLS);
        pools.retain(|p| p.pid == pid);
        if let Some(p) = pools.iter().find(|p| p.addr == *addr && p.key == key) {
            return p.clone();
        }
        let p = Arc::new(Pool {
            addr: addr.clone(),
            key: key.to_vec(),
            pid,
            idle: Mutex::new(Vec::new()),
            refs: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        });
        pools.push(p.clone());
        p
    }

    /// Forgets the idle connections (after shutdown).
    pub(crate) fn clear(&self) {
        if self.pid == mp_os::liveness::current_pid() {
            self.closed.store(true, Ordering::SeqCst);
            lock(&self.idle).clear();
        }
    }

    /// Whether this pool belongs to this process (not inherited across a
    /// `fork`).
    fn ours(&self) -> bool {
        self.pid == mp_os::liveness::current_pid()
    }

    pub(crate) fn take(&self) -> Result<Conn, Error> {
        if self.pid == mp_os::liveness::current_pid()
            && let Some(c) = lock(&self.idle).pop()
        {
            return Ok(c);
        }
        Conn::open(&self.addr, &self.key)
    }

    pub(crate) fn give(&self, c: Conn) {
        if self.pid == mp_os::liveness::current_pid() {
            self.closed.store(false, Ordering::SeqCst);
            let mut idle = lock(&self.idle);
            if idle.len() < MAX_IDLE {
                idle.push(c);
            }
        }
    }

    /// A connection for a guard to keep: never the last idle one, which
    /// stays in the pool. The server counts this process as alive (holding
    /// its objects and its tasks) while one of its connections is open, so
    /// a guard's connection, closed when its release fails, must not be
    /// the only one.
    pub(crate) fn take_for_guard(&self) -> Result<Conn, Error> {
        if self.pid == mp_os::liveness::current_pid() {
            let mut idle = lock(&self.idle);
            if idle.len() > 1 {
                return Ok(idle.pop().expect("more than one"));
            }
        }
        Conn::open(&self.addr, &self.key)
    }

    /// One request on a pooled connection. A connection that failed is
    /// dropped, never reused (one whose request was refused before it was
    /// sent is fine).
    pub(crate) fn call(&self, req: &Request) -> Result<Reply, Error> {
        let mut c = self.take()?;
        let r = c.call(req);
        if r.is_ok() || matches!(r, Err(Error::Codec { what: UNSENT, .. })) {
            self.give(c);
        }
        r
    }
}

/// A random id for this process, sent with lock requests so the server can
/// tell threads of different processes (and machines) apart.
fn session() -> u64 {
    static SESSION: Mutex<(u32, u64)> = Mutex::new((0, 0));
    let pid = mp_os::liveness::current_pid();
    let mut s = lock(&SESSION);
    if s.0 != pid {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            b = (u64::from(pid) ^ mp_os::time::monotonic_ns()).to_le_bytes();
        }
        *s = (pid, u64::from_le_bytes(b));
    }
    s.1
}

pub(crate) fn who() -> Who {
    (session(), u64::from(mp_os::liveness::current_tid()))
}

/// What every proxy holds: the server's pool, the object's id, and, inside
/// a guard, the connection the guard pinned.
///
/// Handles are counted per process ([`Pool`]'s `refs`): the server counts
/// this process as a holder of the object while one lives here. A handle
/// made by `create` or `lookup` is counted by the server already; one
/// decoded tells the server (`Incref`, with the transit token it came
/// with) when it is this process's first, and the last one dropped tells
/// it `Decref`. A handle serialized takes a transit reference first
/// (`Export`), so the object outlives the sender's handles until the
/// receiver has decoded it; serialized into a value stored in another
/// object ([`enc_stored`]), it pins the object instead. A handle
/// inherited across a `fork` (not decoded) is not counted in the child.
#[doc(hidden)]
pub struct Handle {
    pub(crate) pool: Arc<Pool>,
    pub(crate) id: u64,
    pinned: Option<Arc<Mutex<Conn>>>,
    /// Counted in `pool.refs` (made in the pool's process).
    counted: bool,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never prints the key.
        write!(f, "{}#{}", self.pool.addr, self.id)
    }
}

impl PartialEq for Handle {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.pool.addr == other.pool.addr
    }
}

impl Clone for Handle {
    fn clone(&self) -> Handle {
        let counted = self.counted && self.pool.ours();
        if counted {
            *lock(&self.pool.refs).entry(self.id).or_insert(0) += 1;
        }
        Handle {
            pool: self.pool.clone(),
            id: self.id,
            pinned: self.pinned.clone(),
            counted,
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.counted || !self.pool.ours() {
            return;
        }
        let mut refs = lock(&self.pool.refs);
        let Some(n) = refs.get_mut(&self.id) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            refs.remove(&self.id);
            // Under the lock: a handle of the same object decoded by
            // another thread meanwhile sends its `Incref` after this.
            if !self.pool.closed.load(Ordering::SeqCst) {
                let _ = self.pool.call(&Request::Decref(self.id));
            }
        }
    }
}

impl Handle {
    /// A handle of an object the server counts this process as holding
    /// already (it was just created or looked up for it).
    pub(crate) fn held(pool: Arc<Pool>, id: u64) -> Handle {
        let counted = pool.ours();
        if counted {
            *lock(&pool.refs).entry(id).or_insert(0) += 1;
        }
        Handle {
            pool,
            id,
            pinned: None,
            counted,
        }
    }

    /// A handle decoded in this process, which came with transit `token`
    /// (0: none): the server hears of it if it is this process's first
    /// handle of the object, or to give the token back.
    fn decoded(pool: Arc<Pool>, id: u64, token: u64) -> Handle {
        let counted = pool.ours();
        if counted {
            let mut refs = lock(&pool.refs);
            let n = refs.entry(id).or_insert(0);
            *n += 1;
            if *n == 1 || token != 0 {
                // Errors: the object or its server is gone, which the
                // proxy's calls report.
                let _ = pool.call(&Request::Incref { id, token });
            }
        }
        Handle {
            pool,
            id,
            pinned: None,
            counted,
        }
    }

    /// Runs `op` on the object.
    pub(crate) fn op(&self, op: Op) -> Result<Reply, Error> {
        let req = Request::Call { id: self.id, op };
        let reply = match &self.pinned {
            Some(c) => lock(c).call(&req),
            None => self.pool.call(&req),
        }?;
        match reply {
            Reply::Err(e) => Err(Error::Remote(e)),
            r => Ok(r),
        }
    }

    /// A copy of this handle whose requests go over one connection of its
    /// own (taken from the pool) until [`unpin`](Handle::unpin).
    pub(crate) fn pin(&self) -> Result<Handle, Error> {
        let c = self.pool.take_for_guard()?;
        let mut h = self.clone();
        h.pinned = Some(Arc::new(Mutex::new(c)));
        Ok(h)
    }

    /// Gives a pinned connection back to the pool, if nothing else uses it.
    pub(crate) fn unpin(mut self) {
        if let Some(c) = self.pinned.take()
            && let Ok(c) = Arc::try_unwrap(c)
        {
            self.pool
                .give(c.into_inner().unwrap_or_else(|e| e.into_inner()));
        }
    }

    /// The transit token for serializing this handle (0: none, or a
    /// stored value's pin), asked of the server.
    fn export(&self) -> u64 {
        let stored = STORING.with(|s| s.get());
        match self.pool.call(&Request::Export {
            id: self.id,
            stored,
        }) {
            Ok(Reply::Id(token)) => token,
            // The object or its server is gone: the receiver's calls will
            // say so.
            _ => 0,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct HandleWire<'a> {
    addr: std::borrow::Cow<'a, Address>,
    #[serde(borrow)]
    key: std::borrow::Cow<'a, [u8]>,
    id: u64,
    /// The transit reference the receiver gives back (0: none).
    token: u64,
}

impl Serialize for Handle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        HandleWire {
            addr: std::borrow::Cow::Borrowed(&self.pool.addr),
            key: std::borrow::Cow::Borrowed(&self.pool.key),
            id: self.id,
            token: self.export(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Handle {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = HandleWire::deserialize(d)?;
        Ok(Handle::decoded(Pool::get(&w.addr, &w.key), w.id, w.token))
    }
}

thread_local! {
    /// Set while [`enc_stored`] encodes: a handle serialized then pins its
    /// object instead of taking a transit reference.
    static STORING: Cell<bool> = const { Cell::new(false) };
}

// ---- encoding helpers -------------------------------------------------------

/// Encodes a value that travels (a queue item, a method's arguments): a
/// proxy inside takes a transit reference, which its receiver gives back.
pub(crate) fn enc<T: Serialize + ?Sized>(v: &T) -> Result<Bytes, Error> {
    postcard::to_allocvec(v).map_err(|e| Error::Codec {
        what: "encode a value",
        message: e.to_string(),
    })
}

/// Encodes a value to be kept in an object (a dict's key or value, a list
/// item, ...), which may be read any number of times: a proxy inside pins
/// its object until the server exits.
pub(crate) fn enc_stored<T: Serialize + ?Sized>(v: &T) -> Result<Bytes, Error> {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            STORING.with(|s| s.set(self.0));
        }
    }
    let _reset = Reset(STORING.with(|s| s.replace(true)));
    enc(v)
}

pub(crate) fn dec<T: DeserializeOwned>(b: &[u8]) -> Result<T, Error> {
    postcard::from_bytes(b).map_err(|e| Error::Codec {
        what: "decode a value",
        message: e.to_string(),
    })
}

pub(crate) fn unexpected(r: Reply) -> Error {
    Error::Protocol(format!("unexpected reply {r:?}"))
}

impl Reply {
    pub(crate) fn ok(self) -> Result<(), Error> {
        match self {
            Reply::Ok => Ok(()),
            r => Err(unexpected(r)),
        }
    }
    pub(crate) fn bool(self) -> Result<bool, Error> {
        match self {
            Reply::Bool(b) => Ok(b),
            r => Err(unexpected(r)),
        }
    }
    pub(crate) fn count(self) -> Result<u64, Error> {
        match self {
            Reply::Count(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }
    pub(crate) fn bytes(self) -> Result<Bytes, Error> {
        match self {
            Reply::Bytes(b) => Ok(b),
            r => Err(unexpected(r)),
        }
    }
    pub(crate) fn value<T: DeserializeOwned>(self) -> Result<T, Error> {
        dec(&self.bytes()?)
    }
    pub(crate) fn maybe<T: DeserializeOwned>(self) -> Result<Option<T>, Error> {
        match self {
            Reply::MaybeBytes(b) => b.map(|b| dec(&b)).transpose(),
            r => Err(unexpected(r)),
        }
    }
    pub(crate) fn seq<T: DeserializeOwned>(self) -> Result<Vec<T>, Error> {
        match self {
            Reply::Seq(v) => v.iter().map(|b| dec(b)).collect(),
            r => Err(unexpected(r)),
        }
    }
    pub(crate) fn pairs<K: DeserializeOwned, V: DeserializeOwned>(
        self,
    ) -> Result<Vec<(K, V)>, Error> {
        match self {
            Reply::Pairs(v) => v.iter().map(|(k, v)| Ok((dec(k)?, dec(v)?))).collect(),
            r => Err(unexpected(r)),
        }
    }
}
