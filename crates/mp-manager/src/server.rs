//! The server: accepts connections, authenticates them, and runs requests
//! against the objects it holds.
//!
//! One thread per connection. Every object has its own mutex and condition
//! variable; blocking operations wait on the object's condition variable in
//! slices of [`SLICE`], and between slices check whether the client hung up,
//! so a dead client's blocked request ends within a slice.
//!
//! Before a connection is served it must be let in: a local peer must run
//! as the server's user or as root (`SO_PEERCRED`; the abstract namespace
//! has no file permissions), and every peer must prove the key within
//! [`AUTH_TIMEOUT`]. Connections still proving it are few per peer address
//! (see [`Pending`]), so idle connections cannot crowd out a good client. A
//! TCP peer that vanishes without a FIN or RST is noticed by keepalive
//! probes within the server's peer timeout.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use mp_os::time::Deadline;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::addr::{Listener, Stream};
use crate::error::RemoteError;
use crate::registry::{ErasedObject, Registry, Types};
use crate::transport::Transport;
use crate::wire::{self, Bytes, Init, Kind, Op, Reply, Request, Who, WireTimeout};

// How long a blocked request sleeps before checking its client is alive.
use mp_os::futex::SLICE;
/// How long a new connection has to prove the key, from its accept to the
/// server's welcome, however slowly its bytes arrive.
pub(crate) const AUTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an authenticated local client has to send its shared-memory
/// pipe.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections from one peer address (an IPv6 /64) that may be proving
/// the key at once before the oldest is dropped (see [`Pending`]).
const PENDING_PER_PEER: usize = 32;
/// Connections that may be proving the key at once, from every peer
/// together, before the oldest remote one is dropped.
const MAX_PENDING: usize = 256;
/// A pending connection younger than this is never dropped for the per-peer
/// limit (a burst of genuine clients from one machine), only by the global
/// one.
const PENDING_MIN_AGE: Duration = Duration::from_millis(100);
/// The frame a refused local peer gets instead of the challenge.
pub(crate) const REFUSED_USER: &[u8] = b"\x02";
/// Marks the session of a connection whose client did not name one: each
/// such connection is a session of its own.
const OWN_SESSION: u64 = 1 << 63;
/// How long a reply may take to be written before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
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
        key: authkey,
        types,
        objects: RwLock::new(HashMap::new()),
        names: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        next_conn: AtomicU64::new(1),
        conns: AtomicUsize::new(0),
        shutdown: AtomicBool::new(false),
        listener_fd: listener.as_fd().as_raw_fd(),
        pending: Mutex::new(Pending::default()),
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
                    let _ = wire::write_frame(&mut &stream, &mut Vec::new(), REFUSED_USER);
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
        let token = server.admit(peer, stream.as_fd().as_raw_fd());
        let s = server.clone();
        let spawned = std::thread::Builder::new()
            .name("mp-manager-conn".into())
            .stack_size(1 << 20)
            .spawn(move || {
                let id = s.next_conn.fetch_add(1, Ordering::Relaxed);
                if let Some((transport, session)) = s.open(stream, token, id) {
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
            server.settled(token);
            server.conns.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The connections that have not proved the key yet, oldest first: at most
/// [`PENDING_PER_PEER`] per peer address (an IPv6 /64) once they are older
/// than [`PENDING_MIN_AGE`], at most [`MAX_PENDING`] remote ones in all.
/// Past a limit the oldest is dropped, never the newcomer: whoever holds
/// idle connections open makes room for the next client with each one it
/// opens, so a good client is never locked out, and the idle ones cost a
/// thread each for at most [`AUTH_TIMEOUT`].
#[derive(Default)]
struct Pending {
    next: u64,
    list: VecDeque<PendingConn>,
}

struct PendingConn {
    token: u64,
    /// `None` for a local connection (its peer's user was checked).
    peer: Option<IpAddr>,
    fd: RawFd,
    since: Instant,
}

/// The address a per-peer limit counts: IPv4 addresses (also mapped into
/// IPv6) as they are, IPv6 ones by their /64, which one host usually
/// owns whole.
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

impl Pending {
    /// Records a new connection; returns its token and the descriptors of
    /// the connections to drop for it.
    fn admit(&mut self, peer: Option<IpAddr>, fd: RawFd, now: Instant) -> (u64, Vec<RawFd>) {
        let peer = peer.map(peer_key);
        let mut evict = Vec::new();
        if let Some(ip) = peer {
            let mut same = self.list.iter().filter(|p| p.peer == Some(ip));
            if same.clone().count() >= PENDING_PER_PEER
                && let Some(oldest) = same.next()
                && now.saturating_duration_since(oldest.since) >= PENDING_MIN_AGE
            {
                let t = oldest.token;
                evict.extend(self.remove(t));
            }
            if self.list.iter().filter(|p| p.peer.is_some()).count() >= MAX_PENDING
                && let Some(t) = self.list.iter().find(|p| p.peer.is_some()).map(|p| p.token)
            {
                evict.extend(self.remove(t));
            }
        }
        self.next += 1;
        self.list.push_back(PendingConn {
            token: self.next,
            peer,
            fd,
            since: now,
        });
        (self.next, evict)
    }

    /// Forgets a connection (it proved the key, failed, or was dropped);
    /// its descriptor if it was still there.
    fn remove(&mut self, token: u64) -> Option<RawFd> {
        let i = self.list.iter().position(|p| p.token == token)?;
        self.list.remove(i).map(|p| p.fd)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.list.len()
    }
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

struct Server {
    key: Vec<u8>,
    types: Types,
    objects: RwLock<HashMap<u64, Arc<Object>>>,
    names: Mutex<HashMap<String, u64>>,
    next_id: AtomicU64,
    next_conn: AtomicU64,
    conns: AtomicUsize,
    shutdown: AtomicBool,
    listener_fd: i32,
    pending: Mutex<Pending>,
    sessions: Mutex<HashMap<u64, Session>>,
}

/// One client connection.
struct Conn {
    id: u64,
    /// The client process's session (see [`Session`]).
    session: u64,
    transport: Transport,
    /// Objects on which this connection may hold something (an exclusive
    /// lock, a lock, semaphore units) to give back when it closes.
    held: HashSet<u64>,
    /// Joinable queues this connection got items from.
    queues: HashSet<u64>,
}

struct Object {
    kind: Kind,
    state: Mutex<State>,
    cv: Condvar,
}

struct State {
    /// The connection holding the object's exclusive lock (`lock()` on a
    /// proxy), if any. Other connections' requests wait.
    excl: Option<u64>,
    data: Data,
}

enum Data {
    Dict(Dict),
    List(Vec<Bytes>),
    Namespace(BTreeMap<String, Bytes>),
    Value(Bytes),
    Queue(Queue),
    Lock(Option<u64>),
    RLock(Owned),
    Semaphore { value: u64, held: HashMap<u64, u64> },
    Event(bool),
    Condition(Condition),
    Barrier(Barrier),
    Custom(Box<dyn ErasedObject>),
}

/// A dict that remembers insertion order, as Python's does.
#[derive(Default)]
struct Dict {
    map: HashMap<Bytes, (u64, Bytes)>,
    next: u64,
}

impl Dict {
    fn insert(&mut self, k: Bytes, v: Bytes) -> Option<Bytes> {
        match self.map.get_mut(&k) {
            Some(slot) => Some(std::mem::replace(&mut slot.1, v)),
            None => {
                self.next += 1;
                self.map.insert(k, (self.next, v));
                None
            }
        }
    }

    fn ordered(&self) -> Vec<(&Bytes, &Bytes)> {
        let mut v: Vec<_> = self.map.iter().map(|(k, (seq, v))| (*seq, k, v)).collect();
        v.sort_unstable_by_key(|e| e.0);
        v.into_iter().map(|(_, k, v)| (k, v)).collect()
    }
}

struct Queue {
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
    /// Writes off the tasks of ended sessions (as many as are unfinished:
    /// a task may have been marked done by another client).
    fn write_off(&mut self) {
        let n = std::mem::take(&mut self.dead).min(self.unfinished);
        self.unfinished -= n;
        self.lost += n;
    }
}

/// A recursive lock's owner: the thread, and the connection of each of
/// its nested acquisitions (depth = their number).
#[derive(Default)]
struct Owned {
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
struct Condition {
    lock: Owned,
    waiting: VecDeque<u64>,
    notified: HashSet<u64>,
    next_ticket: u64,
}

struct Barrier {
    parties: u64,
    count: u64,
    generation: u64,
    /// The last generation that completed (its waiters succeed).
    completed: Option<u64>,
    broken: bool,
}

/// Why a wait ended without its condition.
enum Stop {
    Timeout,
    PeerGone,
}

fn deadline(t: WireTimeout) -> Deadline {
    Deadline::after(t.map(Duration::from_nanos))
}

/// Python-style index: negative counts from the end.
fn index(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let j = if i < 0 { i + len } else { i };
    (0..len).contains(&j).then_some(j as usize)
}

/// Python's insert position: clamped into `0..=len`.
fn insert_pos(i: i64, len: usize) -> usize {
    let l = len as i64;
    let j = if i < 0 { (i + l).max(0) } else { i.min(l) };
    j as usize
}

/// Reads a stream until a deadline, however slowly the bytes come: each
/// read waits at most for what is left.
struct Until<'a> {
    s: &'a Stream,
    deadline: Instant,
}

impl Read for Until<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        self.s.set_read_timeout(Some(left))?;
        (&*self.s).read(buf)
    }
}

impl Server {
    /// Runs the handshake, within [`AUTH_TIMEOUT`]; `Ok(Some(session))`
    /// for an authenticated client (the connection's own session,
    /// `OWN_SESSION | id`, when it named none).
    ///
    /// The session is joined (see [`Server::join_session`]) before the
    /// welcome goes out: once the client holds an open connection, a
    /// sibling connection of its closing cannot end the session.
    fn handshake(&self, s: &Stream, id: u64) -> io::Result<Option<u64>> {
        let deadline = Instant::now() + AUTH_TIMEOUT;
        s.set_write_timeout(Some(AUTH_TIMEOUT))?;
        let mut buf = Vec::new();
        let ns = wire::nonce()?;
        let mut hello = Vec::with_capacity(42);
        hello.extend_from_slice(wire::MAGIC);
        hello.extend_from_slice(&wire::PROTOCOL_VERSION.to_le_bytes());
        hello.extend_from_slice(&ns);
        wire::write_frame(&mut &*s, &mut buf, &hello)?;
        let mut answer = Vec::new();
        let mut r = Until { s, deadline };
        if !wire::read_frame(&mut r, wire::MAX_HANDSHAKE_FRAME, &mut answer)? {
            return Ok(None);
        }
        let base = wire::TAG + wire::NONCE;
        if (answer.len() != base && answer.len() != base + 8)
            || !wire::verify(&self.key, wire::CLIENT_ROLE, &ns, &answer[..wire::TAG])
        {
            let _ = wire::write_frame(&mut &*s, &mut buf, b"\x01");
            return Ok(None);
        }
        let nc = &answer[wire::TAG..base];
        let session = answer
            .get(base..)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(|b| u64::from_le_bytes(b) & !OWN_SESSION)
            .unwrap_or(OWN_SESSION | id);
        let mut welcome = vec![0u8];
        welcome.extend_from_slice(&wire::tag(&self.key, wire::SERVER_ROLE, nc));
        self.join_session(session);
        if let Err(e) = wire::write_frame(&mut &*s, &mut buf, &welcome) {
            self.end_session(session, &mut HashSet::new());
            return Err(e);
        }
        Ok(Some(session))
    }

    /// Records a connection that has yet to prove the key (see
    /// [`Pending`]), dropping the ones it displaces.
    fn admit(&self, peer: Option<IpAddr>, fd: RawFd) -> u64 {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let (token, evict) = p.admit(peer, fd, Instant::now());
        for fd in evict {
            // SAFETY: shutdown(2) of a descriptor still in the table: its
            // thread removes it (under this lock) before the stream can be
            // closed, so it is still that connection's socket. The thread's
            // handshake read then ends.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        token
    }

    /// The connection of `token` is no longer waiting to authenticate.
    fn settled(&self, token: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.remove(token);
    }

    /// Authenticates a new connection and, on a Unix socket, takes the
    /// shared-memory pipe the client sends. `None`: the connection is to
    /// be closed.
    ///
    /// An authenticated connection has joined its session; when the rest
    /// fails, it leaves it again.
    fn open(&self, stream: Stream, token: u64, id: u64) -> Option<(Transport, u64)> {
        let r = self.handshake(&stream, id);
        // Before `stream` can be dropped (see `admit`).
        self.settled(token);
        let session = r.ok()??;
        let upgraded = (|| {
            stream.set_read_timeout(Some(UPGRADE_TIMEOUT)).ok()?;
            stream.set_write_timeout(Some(UPGRADE_TIMEOUT)).ok()?;
            let t = crate::transport::accept_upgrade(stream, wire::SERVER_SPIN).ok()??;
            let s = t.socket();
            s.set_read_timeout(None).ok()?;
            s.set_write_timeout(Some(WRITE_TIMEOUT)).ok()?;
            Some(t)
        })();
        if upgraded.is_none() {
            self.end_session(session, &mut HashSet::new());
        }
        Some((upgraded?, session))
    }

    /// A connection of `session` is open.
    fn join_session(&self, session: u64) {
        let mut s = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        s.entry(session).or_default().conns += 1;
    }

    /// A connection of its session closed: when it was the last, the
    /// client process is gone, and the tasks it took from joinable queues
    /// and never marked done are handed to `join` to write off (every
    /// `join` waiting then, or the next one, returns `TasksLost`).
    fn leave_session(&self, conn: &mut Conn) {
        self.end_session(conn.session, &mut conn.queues);
    }

    /// One connection of `session` closed, having used the joinable
    /// `queues` (drained into the session's set).
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
            let Ok(obj) = self.object(id) else { continue };
            let mut st = obj.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Data::Queue(q) = &mut st.data
                && let Some(n) = q.taken.remove(&session)
            {
                q.dead += n;
                obj.cv.notify_all();
            }
        }
    }

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
                Ok(obj) => match self.call(conn, id, &obj, op)? {
                    Ok(r) => r,
                    Err(e) => Reply::Err(e),
                },
                Err(e) => Reply::Err(e),
            },
        })
    }

    fn create(&self, init: Init) -> Result<u64, RemoteError> {
        let (kind, data) = match init {
            Init::Dict(items) => {
                let mut d = Dict::default();
                for (k, v) in items {
                    d.insert(k, v);
                }
                (Kind::Dict, Data::Dict(d))
            }
            Init::List(items) => (Kind::List, Data::List(items)),
            Init::Namespace => (Kind::Namespace, Data::Namespace(BTreeMap::new())),
            Init::Value(v) => (Kind::Value, Data::Value(v)),
            Init::Queue { maxsize, joinable } => (
                Kind::Queue,
                Data::Queue(Queue {
                    items: VecDeque::new(),
                    maxsize,
                    joinable,
                    unfinished: 0,
                    taken: HashMap::new(),
                    dead: 0,
                    lost: 0,
                }),
            ),
            Init::Lock => (Kind::Lock, Data::Lock(None)),
            Init::RLock => (Kind::RLock, Data::RLock(Owned::default())),
            Init::Semaphore(n) => (
                Kind::Semaphore,
                Data::Semaphore {
                    value: n,
                    held: HashMap::new(),
                },
            ),
            Init::Event => (Kind::Event, Data::Event(false)),
            Init::Condition => (Kind::Condition, Data::Condition(Condition::default())),
            Init::Barrier(parties) => {
                if parties == 0 {
                    return Err(RemoteError::BadRequest(
                        "a barrier needs at least one party".into(),
                    ));
                }
                (
                    Kind::Barrier,
                    Data::Barrier(Barrier {
                        parties,
                        count: 0,
                        generation: 0,
                        completed: None,
                        broken: false,
                    }),
                )
            }
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
        let obj = Arc::new(Object {
            kind,
            state: Mutex::new(State { excl: None, data }),
            cv: Condvar::new(),
        });
        self.objects
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, obj);
        Ok(id)
    }

    /// Waits (holding nothing between slices) until the object is not
    /// exclusively held by another connection and `f` returns `Some`.
    fn wait_for<'a, T>(
        obj: &'a Object,
        conn: &Conn,
        mut st: MutexGuard<'a, State>,
        deadline: Deadline,
        mut f: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<(MutexGuard<'a, State>, T), (MutexGuard<'a, State>, Stop)> {
        loop {
            if st.excl.is_none_or(|c| c == conn.id)
                && let Some(v) = f(&mut st)
            {
                return Ok((st, v));
            }
            if deadline.expired() {
                return Err((st, Stop::Timeout));
            }
            let slice = deadline.remaining().map_or(SLICE, |r| r.min(SLICE));
            st = obj
                .cv
                .wait_timeout(st, slice)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if conn.transport.socket().peer_gone() {
                return Err((st, Stop::PeerGone));
            }
        }
    }

    /// Runs one operation on one object. The outer error ends the request
    /// (the client is gone, or a timeout that the caller turns into a
    /// reply); the inner one is the reply's error.
    fn call(
        &self,
        conn: &mut Conn,
        id: u64,
        obj: &Object,
        op: Op,
    ) -> Result<Result<Reply, RemoteError>, Stop> {
        let st = obj.state.lock().unwrap_or_else(|e| e.into_inner());
        // Wait for another connection's exclusive lock to go away (blocking
        // operations below wait for it too, in their own loops).
        let blocking = matches!(
            op,
            Op::ObjLock(_)
                | Op::QueuePut(..)
                | Op::QueueGet(_)
                | Op::QueueJoin(_)
                | Op::Acquire(..)
                | Op::CondWait(..)
                | Op::EventWait(_)
                | Op::BarrierWait(_)
        );
        let mut st = if blocking {
            st
        } else {
            match Self::wait_for(obj, conn, st, Deadline::never(), |_| Some(())) {
                Ok((st, ())) => st,
                Err((_, stop)) => return Err(stop),
            }
        };
        let kind = obj.kind;
        let wrong = || Err(RemoteError::WrongKind(format!("{kind:?}")));
        macro_rules! wait {
            ($st:ident, $t:expr, $f:expr) => {
                match Self::wait_for(obj, conn, $st, deadline($t), $f) {
                    Ok((s, v)) => (s, Some(v)),
                    Err((s, Stop::Timeout)) => (s, None),
                    Err((s, Stop::PeerGone)) => {
                        drop(s);
                        return Err(Stop::PeerGone);
                    }
                }
            };
        }
        let r: Result<Reply, RemoteError> = match op {
            Op::Len => match &st.data {
                Data::Dict(d) => Ok(Reply::Count(d.map.len() as u64)),
                Data::List(l) => Ok(Reply::Count(l.len() as u64)),
                Data::Namespace(n) => Ok(Reply::Count(n.len() as u64)),
                Data::Queue(q) => Ok(Reply::Count(q.items.len() as u64)),
                _ => wrong(),
            },
            Op::Clear => match &mut st.data {
                Data::Dict(d) => {
                    d.map.clear();
                    Ok(Reply::Ok)
                }
                Data::List(l) => {
                    l.clear();
                    Ok(Reply::Ok)
                }
                Data::Namespace(n) => {
                    n.clear();
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::ObjLock(t) => {
                let me = conn.id;
                let (s, got) = wait!(st, t, |s: &mut State| {
                    if s.excl.is_none() {
                        s.excl = Some(me);
                        Some(())
                    } else {
                        None // held by this connection already: wait (no recursion)
                    }
                });
                st = s;
                if got.is_some() {
                    conn.held.insert(id);
                    Ok(Reply::Ok)
                } else {
                    Err(RemoteError::Timeout)
                }
            }
            Op::ObjUnlock => {
                if st.excl == Some(conn.id) {
                    st.excl = None;
                    obj.cv.notify_all();
                    Ok(Reply::Ok)
                } else {
                    Err(RemoteError::NotOwner)
                }
            }
            // ---- dict
            Op::DictGet(k) => match &st.data {
                Data::Dict(d) => Ok(Reply::MaybeBytes(d.map.get(&k).map(|e| e.1.clone()))),
                _ => wrong(),
            },
            Op::DictSet(k, v) => match &mut st.data {
                Data::Dict(d) => Ok(Reply::MaybeBytes(d.insert(k, v))),
                _ => wrong(),
            },
            Op::DictSetDefault(k, v) => match &mut st.data {
                Data::Dict(d) => match d.map.get(&k) {
                    Some(e) => Ok(Reply::Bytes(e.1.clone())),
                    None => {
                        d.insert(k, v.clone());
                        Ok(Reply::Bytes(v))
                    }
                },
                _ => wrong(),
            },
            Op::DictRemove(k) => match &mut st.data {
                Data::Dict(d) => Ok(Reply::MaybeBytes(d.map.remove(&k).map(|e| e.1))),
                _ => wrong(),
            },
            Op::DictContains(k) => match &st.data {
                Data::Dict(d) => Ok(Reply::Bool(d.map.contains_key(&k))),
                _ => wrong(),
            },
            Op::DictItems => match &st.data {
                Data::Dict(d) => Ok(Reply::Pairs(
                    d.ordered()
                        .into_iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                )),
                _ => wrong(),
            },
            Op::DictKeys => match &st.data {
                Data::Dict(d) => Ok(Reply::Seq(
                    d.ordered().into_iter().map(|(k, _)| k.clone()).collect(),
                )),
                _ => wrong(),
            },
            Op::DictValues => match &st.data {
                Data::Dict(d) => Ok(Reply::Seq(
                    d.ordered().into_iter().map(|(_, v)| v.clone()).collect(),
                )),
                _ => wrong(),
            },
            Op::DictUpdate(items) => match &mut st.data {
                Data::Dict(d) => {
                    for (k, v) in items {
                        d.insert(k, v);
                    }
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::DictPopItem => match &mut st.data {
                Data::Dict(d) => {
                    // Python pops the most recently inserted item.
                    let last = d
                        .map
                        .iter()
                        .max_by_key(|(_, (seq, _))| *seq)
                        .map(|(k, _)| k.clone());
                    match last {
                        Some(k) => {
                            let (_, v) = d.map.remove(&k).expect("present");
                            Ok(Reply::Pair(k, v))
                        }
                        None => Err(RemoteError::MissingKey),
                    }
                }
                _ => wrong(),
            },
            // ---- list
            Op::ListGet(i) => match &st.data {
                Data::List(l) => index(i, l.len())
                    .map(|j| Reply::Bytes(l[j].clone()))
                    .ok_or(RemoteError::IndexOutOfRange),
                _ => wrong(),
            },
            Op::ListSet(i, v) => match &mut st.data {
                Data::List(l) => match index(i, l.len()) {
                    Some(j) => {
                        l[j] = v;
                        Ok(Reply::Ok)
                    }
                    None => Err(RemoteError::IndexOutOfRange),
                },
                _ => wrong(),
            },
            Op::ListAppend(v) => match &mut st.data {
                Data::List(l) => {
                    l.push(v);
                    Ok(Reply::Count(l.len() as u64))
                }
                _ => wrong(),
            },
            Op::ListExtend(vs) => match &mut st.data {
                Data::List(l) => {
                    l.extend(vs);
                    Ok(Reply::Count(l.len() as u64))
                }
                _ => wrong(),
            },
            Op::ListInsert(i, v) => match &mut st.data {
                Data::List(l) => {
                    let j = insert_pos(i, l.len());
                    l.insert(j, v);
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::ListPop(i) => match &mut st.data {
                Data::List(l) => match index(i.unwrap_or(-1), l.len()) {
                    Some(j) => Ok(Reply::Bytes(l.remove(j))),
                    None => Err(RemoteError::IndexOutOfRange),
                },
                _ => wrong(),
            },
            Op::ListDelete(i) => match &mut st.data {
                Data::List(l) => match index(i, l.len()) {
                    Some(j) => {
                        l.remove(j);
                        Ok(Reply::Ok)
                    }
                    None => Err(RemoteError::IndexOutOfRange),
                },
                _ => wrong(),
            },
            Op::ListRemove(v) => match &mut st.data {
                Data::List(l) => match l.iter().position(|x| *x == v) {
                    Some(j) => {
                        l.remove(j);
                        Ok(Reply::Ok)
                    }
                    None => Err(RemoteError::NotInList),
                },
                _ => wrong(),
            },
            Op::ListIndex(v) => match &st.data {
                Data::List(l) => l
                    .iter()
                    .position(|x| *x == v)
                    .map(|j| Reply::Count(j as u64))
                    .ok_or(RemoteError::NotInList),
                _ => wrong(),
            },
            Op::ListCount(v) => match &st.data {
                Data::List(l) => Ok(Reply::Count(l.iter().filter(|x| **x == v).count() as u64)),
                _ => wrong(),
            },
            Op::ListContains(v) => match &st.data {
                Data::List(l) => Ok(Reply::Bool(l.contains(&v))),
                _ => wrong(),
            },
            Op::ListSnapshot => match &st.data {
                Data::List(l) => Ok(Reply::Seq(l.clone())),
                _ => wrong(),
            },
            Op::ListSlice(a, b) => match &st.data {
                Data::List(l) => {
                    let a = insert_pos(a, l.len());
                    let b = insert_pos(b, l.len()).max(a);
                    Ok(Reply::Seq(l[a..b].to_vec()))
                }
                _ => wrong(),
            },
            Op::ListReplace(vs) => match &mut st.data {
                Data::List(l) => {
                    *l = vs;
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::ListReverse => match &mut st.data {
                Data::List(l) => {
                    l.reverse();
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            // ---- namespace
            Op::NsGet(name) => match &st.data {
                Data::Namespace(n) => n
                    .get(&name)
                    .map(|v| Reply::Bytes(v.clone()))
                    .ok_or(RemoteError::NoSuchAttribute(name)),
                _ => wrong(),
            },
            Op::NsSet(name, v) => match &mut st.data {
                Data::Namespace(n) => {
                    n.insert(name, v);
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::NsDel(name) => match &mut st.data {
                Data::Namespace(n) => match n.remove(&name) {
                    Some(_) => Ok(Reply::Ok),
                    None => Err(RemoteError::NoSuchAttribute(name)),
                },
                _ => wrong(),
            },
            Op::NsItems => match &st.data {
                Data::Namespace(n) => Ok(Reply::Named(
                    n.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                )),
                _ => wrong(),
            },
            // ---- value
            Op::ValueGet => match &st.data {
                Data::Value(v) => Ok(Reply::Bytes(v.clone())),
                _ => wrong(),
            },
            Op::ValueSet(new) => match &mut st.data {
                Data::Value(v) => Ok(Reply::Bytes(std::mem::replace(v, new))),
                _ => wrong(),
            },
            // ---- queue
            Op::QueuePut(item, t) => {
                if !matches!(st.data, Data::Queue(_)) {
                    wrong()
                } else {
                    let mut item = Some(item);
                    let (s, done) = wait!(st, t, |s: &mut State| match &mut s.data {
                        Data::Queue(q) if q.maxsize == 0 || (q.items.len() as u64) < q.maxsize => {
                            q.items.push_back(item.take().expect("once"));
                            if q.joinable {
                                q.unfinished += 1;
                            }
                            Some(())
                        }
                        _ => None,
                    });
                    st = s;
                    if done.is_some() {
                        obj.cv.notify_all();
                        Ok(Reply::Ok)
                    } else {
                        Err(RemoteError::Full)
                    }
                }
            }
            Op::QueueGet(t) => {
                if !matches!(st.data, Data::Queue(_)) {
                    wrong()
                } else {
                    let (s, got) = wait!(st, t, |s: &mut State| match &mut s.data {
                        Data::Queue(q) => q.items.pop_front(),
                        _ => None,
                    });
                    st = s;
                    match got {
                        Some(b) => {
                            if let Data::Queue(q) = &mut st.data
                                && q.joinable
                            {
                                // Whose task it is, until it is marked done.
                                *q.taken.entry(conn.session).or_insert(0) += 1;
                                conn.queues.insert(id);
                            }
                            obj.cv.notify_all();
                            Ok(Reply::Bytes(b))
                        }
                        None => Err(RemoteError::Empty),
                    }
                }
            }
            Op::QueueTaskDone => match &mut st.data {
                Data::Queue(q) if q.joinable => {
                    if q.unfinished == 0 {
                        Err(RemoteError::TaskDoneTooOften)
                    } else {
                        q.unfinished -= 1;
                        if let Some(n) = q.taken.get_mut(&conn.session) {
                            *n -= 1;
                            if *n == 0 {
                                q.taken.remove(&conn.session);
                            }
                        }
                        obj.cv.notify_all();
                        Ok(Reply::Ok)
                    }
                }
                _ => wrong(),
            },
            Op::QueueJoin(t) => {
                let lost_before = match &st.data {
                    Data::Queue(q) if q.joinable => Some(q.lost),
                    _ => None,
                };
                if let Some(lost_before) = lost_before {
                    let (s, done) = wait!(st, t, |s: &mut State| match &mut s.data {
                        Data::Queue(q) => {
                            q.write_off();
                            (q.unfinished == 0).then_some(())
                        }
                        _ => None,
                    });
                    st = s;
                    let lost = match &st.data {
                        Data::Queue(q) => q.lost - lost_before,
                        _ => 0,
                    };
                    if lost > 0 {
                        // Tasks of clients that went away were written off
                        // while this join waited (by it or by another).
                        Err(RemoteError::TasksLost { count: lost })
                    } else {
                        done.map(|_| Reply::Ok).ok_or(RemoteError::Timeout)
                    }
                } else {
                    wrong()
                }
            }
            // ---- locks and semaphores
            Op::Acquire(who, t) => {
                let me = conn.id;
                let ok = matches!(
                    st.data,
                    Data::Lock(_) | Data::RLock(_) | Data::Semaphore { .. } | Data::Condition(_)
                );
                if !ok {
                    wrong()
                } else {
                    let (s, got) = wait!(st, t, |s: &mut State| match &mut s.data {
                        Data::Lock(owner) => owner.is_none().then(|| *owner = Some(me)),
                        Data::RLock(o) => o.try_acquire(who, me).then_some(()),
                        Data::Condition(c) => c.lock.try_acquire(who, me).then_some(()),
                        Data::Semaphore { value, held } => (*value > 0).then(|| {
                            *value -= 1;
                            *held.entry(me).or_insert(0) += 1;
                        }),
                        _ => None,
                    });
                    st = s;
                    if got.is_some() {
                        conn.held.insert(id);
                    }
                    Ok(Reply::Bool(got.is_some()))
                }
            }
            Op::Release(who) => {
                let me = conn.id;
                let r = match &mut st.data {
                    Data::Lock(owner) => match owner.take() {
                        Some(_) => Ok(Reply::Ok),
                        None => Err(RemoteError::NotOwner),
                    },
                    Data::RLock(o) => o.release(who, me).map(|_| Reply::Ok),
                    Data::Condition(c) => c.lock.release(who, me).map(|_| Reply::Ok),
                    Data::Semaphore { value, held } => {
                        *value += 1;
                        if let Some(n) = held.get_mut(&me) {
                            *n -= 1;
                            if *n == 0 {
                                held.remove(&me);
                            }
                        }
                        Ok(Reply::Ok)
                    }
                    _ => wrong(),
                };
                if r.is_ok() {
                    obj.cv.notify_all();
                }
                r
            }
            Op::CondWait(who, t) => match &mut st.data {
                Data::Condition(c) => match c.lock.owner.take() {
                    Some((w, levels)) if w == who => {
                        // Release the lock fully, wait for a notification,
                        // then take the lock back at the same depth.
                        c.next_ticket += 1;
                        let ticket = c.next_ticket;
                        c.waiting.push_back(ticket);
                        obj.cv.notify_all();
                        let (s, woken) = match Self::wait_for(obj, conn, st, deadline(t), |s| {
                            match &mut s.data {
                                Data::Condition(c) => c.notified.remove(&ticket).then_some(()),
                                _ => None,
                            }
                        }) {
                            Ok((s, ())) => (s, true),
                            Err((s, Stop::Timeout)) => (s, false),
                            Err((mut s, Stop::PeerGone)) => {
                                if let Data::Condition(c) = &mut s.data {
                                    c.waiting.retain(|x| *x != ticket);
                                    c.notified.remove(&ticket);
                                }
                                return Err(Stop::PeerGone);
                            }
                        };
                        st = s;
                        if !woken && let Data::Condition(c) = &mut st.data {
                            c.waiting.retain(|x| *x != ticket);
                        }
                        let (s, _) = wait!(st, None, |s: &mut State| match &mut s.data {
                            Data::Condition(c) if c.lock.owner.is_none() => {
                                c.lock.owner = Some((who, levels.clone()));
                                Some(())
                            }
                            _ => None,
                        });
                        st = s;
                        Ok(Reply::Bool(woken))
                    }
                    other => {
                        c.lock.owner = other;
                        Err(RemoteError::NotOwner)
                    }
                },
                _ => wrong(),
            },
            Op::CondNotify(n) => match &mut st.data {
                Data::Condition(c) => {
                    for _ in 0..n {
                        match c.waiting.pop_front() {
                            Some(t) => {
                                c.notified.insert(t);
                            }
                            None => break,
                        }
                    }
                    obj.cv.notify_all();
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            // ---- event
            Op::EventSet => match &mut st.data {
                Data::Event(f) => {
                    *f = true;
                    obj.cv.notify_all();
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::EventClear => match &mut st.data {
                Data::Event(f) => {
                    *f = false;
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::EventIsSet => match &st.data {
                Data::Event(f) => Ok(Reply::Bool(*f)),
                _ => wrong(),
            },
            Op::EventWait(t) => {
                if !matches!(st.data, Data::Event(_)) {
                    wrong()
                } else {
                    let (s, set) = wait!(st, t, |s: &mut State| match s.data {
                        Data::Event(true) => Some(()),
                        _ => None,
                    });
                    st = s;
                    Ok(Reply::Bool(set.is_some()))
                }
            }
            // ---- barrier
            Op::BarrierWait(t) => match &mut st.data {
                Data::Barrier(b) if b.broken => Err(RemoteError::BrokenBarrier),
                Data::Barrier(b) => {
                    let idx = b.count;
                    b.count += 1;
                    if b.count == b.parties {
                        b.completed = Some(b.generation);
                        b.generation += 1;
                        b.count = 0;
                        obj.cv.notify_all();
                        Ok(Reply::Count(idx))
                    } else {
                        let gen_ = b.generation;
                        let r = Self::wait_for(obj, conn, st, deadline(t), |s| match &s.data {
                            Data::Barrier(b) if b.generation != gen_ || b.broken => Some(()),
                            _ => None,
                        });
                        let (s, outcome) = match r {
                            Ok((s, ())) => (s, None),
                            Err((s, stop)) => (s, Some(stop)),
                        };
                        st = s;
                        let Data::Barrier(b) = &mut st.data else {
                            unreachable!("kind never changes")
                        };
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
                                obj.cv.notify_all();
                                Err(RemoteError::BrokenBarrier)
                            }
                        }
                    }
                }
                _ => wrong(),
            },
            Op::BarrierReset => match &mut st.data {
                Data::Barrier(b) => {
                    b.generation += 1;
                    b.count = 0;
                    b.broken = false;
                    obj.cv.notify_all();
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::BarrierAbort => match &mut st.data {
                Data::Barrier(b) => {
                    b.broken = true;
                    obj.cv.notify_all();
                    Ok(Reply::Ok)
                }
                _ => wrong(),
            },
            Op::BarrierInfo => match &st.data {
                Data::Barrier(b) => Ok(Reply::Barrier(b.parties, b.count, b.broken)),
                _ => wrong(),
            },
            // ---- registered types
            Op::Custom(method, args) => match &mut st.data {
                Data::Custom(o) => {
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        o.call(&method, &args)
                    }));
                    match r {
                        Ok(Ok(b)) => Ok(Reply::Bytes(b)),
                        Ok(Err(msg)) => Err(RemoteError::Custom(msg)),
                        Err(_) => Err(RemoteError::Custom(format!("method '{method}' panicked"))),
                    }
                }
                _ => wrong(),
            },
        };
        drop(st);
        Ok(r)
    }

    /// Gives back what a closed connection held: exclusive object locks,
    /// locks, semaphore units, a condition's lock; and, when it was its
    /// client's last, the tasks its client never marked done.
    fn cleanup(&self, conn: &mut Conn) {
        for id in &conn.held {
            let Ok(obj) = self.object(*id) else { continue };
            let mut st = obj.state.lock().unwrap_or_else(|e| e.into_inner());
            if st.excl == Some(conn.id) {
                st.excl = None;
            }
            match &mut st.data {
                Data::Lock(owner) if *owner == Some(conn.id) => *owner = None,
                Data::RLock(o) if o.held_through(conn.id) => o.owner = None,
                Data::Condition(c) if c.lock.held_through(conn.id) => c.lock.owner = None,
                Data::Semaphore { value, held } => {
                    if let Some(n) = held.remove(&conn.id) {
                        *value += n;
                    }
                }
                _ => {}
            }
            obj.cv.notify_all();
        }
        self.leave_session(conn);
    }
}

#[cfg(test)]
mod tests;
