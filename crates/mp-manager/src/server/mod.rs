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
mod array;
mod barrier;
mod book;
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
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use self::admit::{Gate, Sessions};
use self::barrier::Barrier;
use self::book::Book;
use self::custom::Custom;
use self::locks::Lock;
use self::object::{Data, Object};
use self::queue::Queue;
use self::wait::{Conn, Stop};
use crate::addr::{Listener, Stream};
use crate::error::{ExceptionKind, MethodError, RemoteError};
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
        book: Mutex::new(Book::default()),
        next_id: AtomicU64::new(1),
        next_conn: AtomicU64::new(1),
        conns: AtomicUsize::new(0),
        shutdown: AtomicBool::new(false),
        listener_fd: listener.as_fd().as_raw_fd(),
    });
    if let Some(a) = listener.address() {
        log::info!(target: "mp_manager", "manager serving at {a}");
    }
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
                let peer = stream.peer_name();
                if let Some((transport, session)) = s.gate.open(stream, token, id, &*s) {
                    log::debug!(
                        target: "mp_manager",
                        "manager client connected from {peer} (connection {id})"
                    );
                    let mut conn = Conn {
                        id,
                        session,
                        transport,
                        held: HashSet::new(),
                        queues: HashSet::new(),
                    };
                    s.serve_conn(&mut conn);
                    s.cleanup(&mut conn);
                    log::debug!(
                        target: "mp_manager",
                        "manager client {peer} disconnected (connection {id})"
                    );
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
    /// Sessions, and who refers to which object.
    book: Mutex<Book>,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    conns: AtomicUsize,
    shutdown: AtomicBool,
    listener_fd: i32,
}

impl Sessions for Server {
    fn join(&self, session: u64) {
        self.book().join(session);
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

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets objects nobody refers to any more.
    fn free(&self, ids: impl IntoIterator<Item = u64>) {
        let mut ids = ids.into_iter().peekable();
        if ids.peek().is_some() {
            let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
            for id in ids {
                objects.remove(&id);
            }
        }
    }

    fn handle(&self, conn: &mut Conn, req: Request) -> Result<Reply, Stop> {
        let session = conn.session;
        Ok(match req {
            Request::Ping => Reply::Ok,
            Request::Shutdown => Reply::Ok,
            Request::Create(init) => match self.create(session, init) {
                Ok(id) => Reply::Id(id),
                Err(e) => Reply::Err(e),
            },
            Request::Publish { name, id } => {
                let r = self.book().publish(name, id);
                match r {
                    Ok(freed) => {
                        self.free(freed);
                        Reply::Ok
                    }
                    Err(()) => Reply::Err(RemoteError::NoSuchObject(id)),
                }
            }
            Request::Lookup(name) => {
                // The asking session holds it from now on.
                let id = {
                    let mut book = self.book();
                    book.lookup(&name).filter(|id| book.hold(session, *id))
                };
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
            Request::Incref { id, token } => {
                let (held, freed) = {
                    let mut book = self.book();
                    let held = book.hold(session, id);
                    (held, (token != 0).then(|| book.claim(token)).flatten())
                };
                self.free(freed);
                if held {
                    Reply::Ok
                } else {
                    Reply::Err(RemoteError::NoSuchObject(id))
                }
            }
            Request::Decref(id) => {
                let freed = self.book().unhold(session, id);
                self.free(freed);
                Reply::Ok
            }
            Request::Export { id, stored } => {
                let mut book = self.book();
                let token = if stored {
                    book.pin(id).then_some(0)
                } else {
                    book.export(session, id)
                };
                match token {
                    Some(t) => Reply::Id(t),
                    None => Reply::Err(RemoteError::NoSuchObject(id)),
                }
            }
            Request::ObjectCount => Reply::Count(self.book().objects() as u64),
        })
    }

    /// Creates an object for `session`, which holds it.
    fn create(&self, session: u64, init: Init) -> Result<u64, RemoteError> {
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
            Init::Semaphore(n) => (Kind::Semaphore, Data::Lock(Lock::semaphore(n))),
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
                    Ok(Some((Ok(object), exposed))) => (
                        Kind::Custom,
                        Data::Custom(Custom {
                            object,
                            type_name,
                            exposed,
                        }),
                    ),
                    Ok(Some((Err(e), _))) => return Err(RemoteError::Method(e)),
                    Ok(None) => return Err(RemoteError::UnknownType(type_name)),
                    Err(_) => {
                        return Err(RemoteError::Method(MethodError::new(
                            ExceptionKind::Other,
                            format!("creating a '{type_name}' panicked"),
                        )));
                    }
                }
            }
            Init::Array(items) => (Kind::Array, Data::Array(items)),
            Init::BoundedSemaphore(n) => (
                Kind::BoundedSemaphore,
                Data::Lock(Lock::bounded_semaphore(n)),
            ),
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let obj = Arc::new(Object::new(kind, data));
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, obj);
        self.book().created(session, id);
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
    /// the client process is gone: the objects only it referred to are
    /// freed, and the tasks it took from joinable queues and never marked
    /// done are handed to `join` to write off (every `join` waiting then,
    /// or the next one, returns `TasksLost`).
    fn end_session(&self, session: u64, queues: &mut HashSet<u64>) {
        let Some(ended) = self.book().leave(session, queues) else {
            return;
        };
        if !ended.free.is_empty() {
            log::debug!(
                target: "mp_manager",
                "manager client process gone: {} object(s) nobody refers to freed",
                ended.free.len()
            );
        }
        for id in ended.queues {
            if let Ok(obj) = self.object(id) {
                obj.session_ended(session);
            }
        }
        self.free(ended.free);
    }
}

#[cfg(test)]
mod tests;
