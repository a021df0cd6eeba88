//! The server: accepts connections, authenticates them, and runs requests
//! against the objects it holds.
//!
//! One thread per connection. Every object has its own mutex and condition
//! variable; blocking operations wait on the object's condition variable in
//! slices of [`SLICE`](wait::SLICE), and between slices check whether the client hung up,
//! so a dead client's blocked request ends within a slice.
//!
//! Before a connection is served it must be let in: a local peer must run
//! as the server's user or as root (`SO_PEERCRED`; the abstract namespace
//! has no file permissions), and every peer must prove the key within
//! [`AUTH_TIMEOUT`](admit::AUTH_TIMEOUT). Connections still proving it are
//! few per peer address (see [`Pending`]), so idle connections cannot crowd
//! out a good client. A TCP peer that vanishes without a FIN or RST is
//! noticed by keepalive probes within the server's peer timeout.
//!
//! The files, top down: this one (the accept loop, a connection's request
//! loop, creating objects and handing each operation to the handler of its
//! object's kind); `admit` (the handshake, limits on connections proving
//! the key, sessions); one handler per kind of object (`dict`, `list`,
//! `namespace`, `value`, `queue`, `locks` for locks, recursive locks,
//! semaphores and conditions, `event`, `barrier`, `custom`); `object` (an
//! object's state and how an operation waits on it), which they all use.

mod admit;
mod barrier;
mod custom;
mod dict;
mod event;
mod list;
mod locks;
mod namespace;
mod object;
mod queue;
mod value;
mod wait;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::admit::{Gate, Sessions};
use self::barrier::Barrier;
use self::locks::Lock;
use self::object::{Data, Object};
use self::queue::Queue;
use self::wait::{Conn, Stop};
use crate::addr::{Listener, Stream};
use crate::error::RemoteError;
use crate::registry::{Registry, Types};
use crate::wire::{self, Init, Kind, Reply, Request};

/// Most connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 1024;

/// What the owner hands the server process: the listening socket (bound by
/// the owner, so its address is known before the server runs) and the key.
#[derive(Debug)]
pub(crate) struct ServerConfig {
    pub(crate) listener: OwnedFd,
    pub(crate) tcp: bool,
    pub(crate) authkey: Vec<u8>,
    pub(crate) peer_timeout: Duration,
}

impl Serialize for ServerConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct W<'a> {
            #[serde(serialize_with = "ser_fd")]
            listener: &'a OwnedFd,
            tcp: bool,
            authkey: &'a [u8],
            peer_timeout: Duration,
        }
        fn ser_fd<S: Serializer>(fd: &&OwnedFd, s: S) -> Result<S::Ok, S::Error> {
            mp_os::handle::serialize_fd(fd.as_fd(), s)
        }
        W {
            listener: &self.listener,
            tcp: self.tcp,
            authkey: &self.authkey,
            peer_timeout: self.peer_timeout,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for ServerConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct W {
            #[serde(deserialize_with = "mp_os::handle::deserialize_fd")]
            listener: OwnedFd,
            tcp: bool,
            authkey: Vec<u8>,
            peer_timeout: Duration,
        }
        let w = W::deserialize(d)?;
        Ok(ServerConfig {
            listener: w.listener,
            tcp: w.tcp,
            authkey: w.authkey,
            peer_timeout: w.peer_timeout,
        })
    }
}

/// The server process's target: serves until a shutdown request.
pub(crate) fn server_main<R: Registry>(cfg: ServerConfig) {
    let listener = Listener::from_fd(cfg.listener, cfg.tcp);
    let _ = serve_with::<R>(listener, cfg.authkey, cfg.peer_timeout);
}

/// Serves `listener` until a shutdown request, with the default peer
/// timeout.
#[cfg(test)]
pub(crate) fn serve<R: Registry>(listener: Listener, authkey: Vec<u8>) -> io::Result<()> {
    serve_with::<R>(listener, authkey, crate::addr::PEER_TIMEOUT)
}

/// Serves `listener` until a shutdown request; a TCP peer that stops
/// answering is dropped after about `peer_timeout`.
///
/// # Errors
///
/// `InvalidInput` for an empty key on TCP (anyone could connect), and
/// accept errors other than the transient ones.
pub(crate) fn serve_with<R: Registry>(
    listener: Listener,
    authkey: Vec<u8>,
    peer_timeout: Duration,
) -> io::Result<()> {
    if listener.is_tcp() && authkey.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an empty authentication key is refused on TCP",
        ));
    }
    let mut types = Types::default();
    R::register(&mut types);
    let server = Arc::new(Server {
        gate: Gate::new(authkey),
        types,
        objects: RwLock::new(HashMap::new()),
        names: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        next_conn: AtomicU64::new(1),
        conns: AtomicUsize::new(0),
        shutdown: AtomicBool::new(false),
        listener_fd: listener.as_fd().as_raw_fd(),
        sessions: Mutex::new(HashMap::new()),
    });
    let uid = rustix::process::geteuid().as_raw();
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) => {
                if server.shutdown.load(Ordering::SeqCst) {
                    return Ok(());
                }
                match e.raw_os_error() {
                    // Transient: the peer gave up, or out of descriptors or
                    // memory for a moment.
                    Some(
                        libc::ECONNABORTED
                        | libc::EINTR
                        | libc::EMFILE
                        | libc::ENFILE
                        | libc::ENOBUFS
                        | libc::ENOMEM
                        | libc::EPROTO
                        | libc::EPERM,
                    ) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    _ => return Err(e),
                }
            }
        };
        if server.shutdown.load(Ordering::SeqCst) {
            return Ok(());
        }
        match &stream {
            Stream::Unix(u) => {
                // Another user's process: told so, and closed.
                if !crate::addr::peer_uid(u).is_ok_and(|p| crate::addr::uid_allowed(p, uid)) {
                    let _ = u.set_write_timeout(Some(Duration::from_millis(100)));
                    let _ = wire::write_frame(&mut &stream, &mut Vec::new(), wire::REFUSED_USER);
                    continue;
                }
            }
            Stream::Tcp(_) => {
                if stream.set_peer_timeout(peer_timeout).is_err() {
                    continue;
                }
            }
        }
        if server.conns.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            server.conns.fetch_sub(1, Ordering::SeqCst);
            continue; // dropped: closed
        }
        let token = server.gate.admit(peer, stream.as_fd().as_raw_fd());
        let s = server.clone();
        let spawned = std::thread::Builder::new()
            .name("mp-manager-conn".into())
            .stack_size(1 << 20)
            .spawn(move || {
                let id = s.next_conn.fetch_add(1, Ordering::Relaxed);
                if let Some((transport, session)) = s.gate.open(stream, token, id, &*s) {
                    let mut conn = Conn {
                        id,
                        session,
                        transport,
                        held: HashSet::new(),
                        queues: HashSet::new(),
                    };
                    s.serve_conn(&mut conn);
                    s.cleanup(&mut conn);
                }
                s.conns.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            // The closure (and the stream in it) is gone: forget its entry
            // (the descriptor may be reused).
            server.gate.settled(token);
            server.conns.fetch_sub(1, Ordering::SeqCst);
        }
    }
}
struct Server {
    gate: Gate,
    types: Types,
    objects: RwLock<HashMap<u64, Arc<Object>>>,
    names: Mutex<HashMap<String, u64>>,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    conns: AtomicUsize,
    shutdown: AtomicBool,
    listener_fd: i32,
    sessions: Mutex<HashMap<u64, Session>>,
}

/// A client process's connections: a random id the client names in the
/// handshake, or each connection its own when it names none. A session
/// ends when its last connection closes; the tasks it took from joinable
/// queues and never marked done are then handed to `join` to write off.
#[derive(Default)]
struct Session {
    conns: usize,
    /// Joinable queues its closed connections got items from.
    queues: HashSet<u64>,
}

impl Sessions for Server {
    fn join(&self, session: u64) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.entry(session).or_default().conns += 1;
    }

    fn leave(&self, session: u64) {
        self.end_session(session, &mut HashSet::new());
    }
}

impl Server {
    fn serve_conn(&self, conn: &mut Conn) {
        let mut outbuf = Vec::new();
        loop {
            let req = match conn.transport.recv_frame(wire::MAX_FRAME) {
                Ok(Some(body)) => wire::decode_request(body),
                _ => return, // end of stream, error, oversized or truncated
            };
            let reply = match req {
                Ok(Request::Shutdown) => {
                    self.shutdown.store(true, Ordering::SeqCst);
                    let _ = self.reply(conn, &Reply::Ok, &mut outbuf);
                    // Wakes the accept loop, which returns.
                    // SAFETY: shutdown(2) on the listener's descriptor,
                    // which lives as long as the accept loop.
                    unsafe { libc::shutdown(self.listener_fd, libc::SHUT_RDWR) };
                    return;
                }
                Ok(req) => match self.handle(conn, req) {
                    Ok(r) => r,
                    Err(Stop::PeerGone) => return,
                    Err(Stop::Timeout) => Reply::Err(RemoteError::Timeout),
                },
                Err(e) => Reply::Err(e),
            };
            if self.reply(conn, &reply, &mut outbuf).is_err() {
                return;
            }
            if outbuf.capacity() > 4 << 20 {
                outbuf = Vec::new();
            }
        }
    }

    fn reply(&self, conn: &mut Conn, reply: &Reply, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        *out = match postcard::to_extend(reply, std::mem::take(out)) {
            Ok(v) if v.len() <= wire::MAX_FRAME => v,
            _ => {
                let too_big = Reply::Err(RemoteError::BadRequest(
                    "the reply is larger than the frame limit".into(),
                ));
                postcard::to_allocvec(&too_big).map_err(io::Error::other)?
            }
        };
        conn.transport.send_frame(out)
    }

    fn object(&self, id: u64) -> Result<Arc<Object>, RemoteError> {
        self.objects
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
            .ok_or(RemoteError::NoSuchObject(id))
    }

    fn handle(&self, conn: &mut Conn, req: Request) -> Result<Reply, Stop> {
        Ok(match req {
            Request::Ping => Reply::Ok,
            Request::Shutdown => Reply::Ok,
            Request::Create(init) => match self.create(init) {
                Ok(id) => Reply::Id(id),
                Err(e) => Reply::Err(e),
            },
            Request::Publish { name, id } => match self.object(id) {
                Ok(_) => {
                    self.names
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(name, id);
                    Reply::Ok
                }
                Err(e) => Reply::Err(e),
            },
            Request::Lookup(name) => {
                let id = self
                    .names
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&name)
                    .copied();
                match id.map(|id| (id, self.object(id))) {
                    Some((id, Ok(o))) => Reply::Object(id, o.kind),
                    _ => Reply::Err(RemoteError::NotPublished(name)),
                }
            }
            Request::Call { id, op } => match self.object(id) {
                Ok(obj) => match obj.call(conn, id, op)? {
                    Ok(r) => r,
                    Err(e) => Reply::Err(e),
                },
                Err(e) => Reply::Err(e),
            },
        })
    }

    fn create(&self, init: Init) -> Result<u64, RemoteError> {
        let (kind, data) = match init {
            // Python's dict(items): a later value of a key wins, in the
            // key's first place.
            Init::Dict(items) => (Kind::Dict, Data::Dict(items.into_iter().collect())),
            Init::List(items) => (Kind::List, Data::List(items)),
            Init::Namespace => (Kind::Namespace, Data::Namespace(BTreeMap::new())),
            Init::Value(v) => (Kind::Value, Data::Value(v)),
            Init::Queue { maxsize, joinable } => {
                (Kind::Queue, Data::Queue(Queue::new(maxsize, joinable)))
            }
            Init::Lock => (Kind::Lock, Data::Lock(Lock::Plain(None))),
            Init::RLock => (Kind::RLock, Data::Lock(Lock::Recursive(Default::default()))),
            Init::Semaphore(n) => (
                Kind::Semaphore,
                Data::Lock(Lock::Semaphore {
                    value: n,
                    held: HashMap::new(),
                }),
            ),
            Init::Event => (Kind::Event, Data::Event(false)),
            Init::Condition => (
                Kind::Condition,
                Data::Lock(Lock::Condition(Default::default())),
            ),
            Init::Barrier(parties) => (Kind::Barrier, Data::Barrier(Barrier::new(parties)?)),
            Init::Custom { type_name, init } => {
                let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.types.create(&type_name, &init)
                }));
                match made {
                    Ok(Some(Ok(obj))) => (Kind::Custom, Data::Custom(obj)),
                    Ok(Some(Err(msg))) => return Err(RemoteError::Custom(msg)),
                    Ok(None) => return Err(RemoteError::UnknownType(type_name)),
                    Err(_) => {
                        return Err(RemoteError::Custom(format!(
                            "creating a '{type_name}' panicked"
                        )));
                    }
                }
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let obj = Arc::new(Object::new(kind, data));
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, obj);
        Ok(id)
    }

    /// Gives back what a closed connection held: exclusive object locks,
    /// locks, semaphore units, a condition's lock; and, when it was its
    /// client's last, the tasks its client never marked done.
    fn cleanup(&self, conn: &mut Conn) {
        for id in &conn.held {
            if let Ok(obj) = self.object(*id) {
                obj.give_back(conn.id);
            }
        }
        self.end_session(conn.session, &mut conn.queues);
    }

    /// One connection of `session` closed, having used the joinable
    /// `queues` (drained into the session's set). When it was the last,
    /// the client process is gone, and the tasks it took from joinable
    /// queues and never marked done are handed to `join` to write off
    /// (every `join` waiting then, or the next one, returns `TasksLost`).
    fn end_session(&self, session: u64, queues: &mut HashSet<u64>) {
        let ended = {
            let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
            let Some(e) = s.get_mut(&session) else {
                return;
            };
            e.queues.extend(queues.drain());
            e.conns -= 1;
            if e.conns > 0 {
                return;
            }
            s.remove(&session).map(|e| e.queues)
        };
        for id in ended.into_iter().flatten() {
            if let Ok(obj) = self.object(id) {
                obj.session_ended(session);
            }
        }
    }
}

#[cfg(test)]
mod tests;
