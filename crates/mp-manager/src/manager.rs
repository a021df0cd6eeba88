//! `Manager`: starting, connecting to and stopping a server.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mp_proc::{Process, StartMethod};
use serde::Serialize;

use crate::addr::{Address, Listener};
use crate::client::{Handle, Pool, enc, enc_stored, unexpected};
use crate::error::Error;
use crate::proxy::Proxy;
use crate::proxy::collections::{
    ArrayProxy, DictProxy, ListProxy, NamespaceProxy, Storable, ValueProxy,
};
use crate::proxy::custom::CustomProxy;
use crate::proxy::queue::{JoinableQueueProxy, QueueProxy};
use crate::proxy::sync::{
    BarrierProxy, BoundedSemaphoreProxy, ConditionProxy, EventProxy, LockProxy, RLockProxy,
    SemaphoreProxy,
};
use crate::registry::Registry;
use crate::server::{self, ServerConfig};
use crate::wire::{Init, Kind, Reply, Request};

/// How long `shutdown` waits for the server to exit before killing it.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// A manager: a server process holding shared objects, and the handle that
/// creates them. Python's `multiprocessing.Manager()`.
///
/// ```
/// use mp_proc::Process;
/// use mp_manager::{DictProxy, Manager};
///
/// fn worker((d, key, value): (DictProxy<i32, i32>, i32, i32)) {
///     d.insert(key, value).unwrap();
/// }
///
/// let m = Manager::new()?;
/// let d = m.dict::<i32, i32>()?;
/// let jobs: Vec<_> = (0..3).map(|i| Process::new(worker, (d.clone(), i, i * 2))).collect();
/// for j in &jobs { j.start()?; }
/// for j in &jobs { j.join()?; }
/// assert_eq!(format!("{:?}", d.copy()?), "{0: 0, 1: 2, 2: 4}");
/// m.shutdown()?;
/// # Ok::<(), mp_manager::Error>(())
/// ```
///
/// # The server's lifetime
///
/// The server is a daemonic child (`mp_proc`): it exits on
/// [`shutdown`](Manager::shutdown) or when the `Manager` is dropped, is
/// terminated when the owning process exits, and is killed when the owner
/// dies however it dies. A `Manager` from [`connect`](Manager::connect)
/// owns nothing: dropping it only closes its connections.
///
/// # Objects' lifetime
///
/// An object lives while a proxy of it lives in some process (Python's
/// reference counting): the server counts the client processes holding
/// proxies of it, and frees it when the last lets go, or exits or dies
/// (its connections close). A proxy sent to another process keeps the
/// object alive until the receiver has decoded it, even if the sender
/// drops its own first. An object published with [`publish`](Manager::publish)
/// lives while the name names it. A proxy stored inside another object's
/// value (a `ListProxy` in a dict) pins its object until the server exits:
/// the server keeps values as bytes and cannot see the proxies inside
/// them. [`object_count`](Manager::object_count) tells how many objects
/// the server holds.
pub struct Manager {
    pool: Arc<Pool>,
    process: Option<Process<()>>,
    shut: AtomicBool,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("address", &self.pool.addr)
            .field("pid", &self.pid())
            .field("shut", &self.shut.load(Ordering::Relaxed))
            .finish()
    }
}

/// Options for starting a manager's server: see [`Manager::builder`].
pub struct ManagerBuilder {
    target: fn(ServerConfig),
    serve: fn(Listener, Vec<u8>, Duration) -> io::Result<()>,
    tcp: Option<Vec<SocketAddr>>,
    authkey: Option<Vec<u8>>,
    method: Option<StartMethod>,
    peer_timeout: Duration,
}

impl fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("tcp", &self.tcp)
            .field("method", &self.method)
            .field("peer_timeout", &self.peer_timeout)
            .finish_non_exhaustive()
    }
}

impl ManagerBuilder {
    /// Serves the types of registry `R` (see [`Registry`]).
    pub fn registry<R: Registry>(mut self) -> Self {
        self.target = server::server_main::<R>;
        self.serve = server::serve_with::<R>;
        self
    }

    /// Listens on TCP at `addr` (port 0 picks a free port; see
    /// [`Manager::address`]) instead of a local Unix socket.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when `addr` does not resolve.
    pub fn tcp(mut self, addr: impl ToSocketAddrs) -> Result<Self, Error> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(|e| Error::io("resolve the address", e))?
            .collect();
        self.tcp = Some(addrs);
        Ok(self)
    }

    /// Uses `key` as the authentication key (default: 32 random bytes).
    /// A TCP manager refuses an empty one ([`Error::EmptyAuthkey`] from
    /// [`start`](ManagerBuilder::start)).
    pub fn authkey(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.authkey = Some(key.into());
        self
    }

    /// How long the server gives a TCP client that stopped answering (its
    /// host crashed or lost the network, so that no FIN or RST ever
    /// arrives) before it drops the connection and releases what the
    /// client held (locks, semaphore units, object locks; its tasks of a
    /// joinable queue are written off). Default 30 s; taken between 1 s and
    /// about 9 hours.
    ///
    /// The server sends TCP keepalive probes after half of it of silence
    /// and sets `TCP_USER_TIMEOUT` to it, so a connection whose data or
    /// probes go unacknowledged that long fails. A client that is alive
    /// answers the probes from its kernel, so an idle client, or one that
    /// holds a lock for hours, is never dropped. Clients use 30 s for a
    /// server that vanishes. Local (Unix socket) connections need none of
    /// this: the kernel knows when their peer dies.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = mp_manager::Manager::builder()
    ///     .tcp("127.0.0.1:0")?
    ///     .authkey(b"key".to_vec())
    ///     .peer_timeout(Duration::from_secs(10))
    ///     .start()?;
    /// let lock = m.lock()?;
    /// drop(lock.acquire()?);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    pub fn peer_timeout(mut self, timeout: Duration) -> Self {
        self.peer_timeout = timeout;
        self
    }

    /// Starts the server with this start method (default: `mp_proc`'s).
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.method = Some(method);
        self
    }

    fn bind(&self) -> Result<(Listener, Address, Vec<u8>), Error> {
        let key = match &self.authkey {
            Some(k) => k.clone(),
            None => {
                let mut k = vec![0u8; 32];
                crate::wire::random(&mut k).map_err(|e| Error::io("getrandom", e))?;
                k
            }
        };
        if self.tcp.is_some() && key.is_empty() {
            return Err(Error::EmptyAuthkey);
        }
        let (listener, addr) = match &self.tcp {
            None => Listener::local().map_err(|e| Error::io("bind", e))?,
            Some(addrs) => {
                let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
                let mut bound = None;
                for a in addrs {
                    match Listener::tcp(*a) {
                        Ok(l) => {
                            bound = Some(l);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                bound.ok_or_else(|| Error::io("bind", last))?
            }
        };
        Ok((listener, addr, key))
    }

    /// Starts the server process and returns its owner.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyAuthkey`] for TCP with an empty key,
    /// [`Error::Io`] when the socket cannot be bound, [`Error::Process`]
    /// when the process cannot be started, and connection errors if it does
    /// not answer.
    pub fn start(self) -> Result<Manager, Error> {
        let (listener, addr, key) = self.bind()?;
        let tcp = listener.is_tcp();
        let fd: OwnedFd = match listener {
            Listener::Unix(l) => l.into(),
            Listener::Tcp(l) => l.into(),
        };
        let cfg = ServerConfig {
            listener: fd,
            tcp,
            authkey: key.clone(),
            peer_timeout: self.peer_timeout,
        };
        // The arguments are serialized (and the listener duplicated) here;
        // this process's copy closes when `cfg` is dropped by `new`.
        let mut p = Process::new(self.target, cfg)
            .name("mp-manager-server")
            .daemon(true);
        if let Some(m) = self.method {
            p = p.start_method(m);
        }
        p.start()?;
        let m = Manager {
            pool: Pool::get(&addr, &key),
            process: Some(p),
            shut: AtomicBool::new(false),
        };
        m.pool.call(&Request::Ping)?.ok()?;
        Ok(m)
    }

    /// Runs the server in this thread until a client asks it to shut down
    /// (Python's `get_server().serve_forever()`). Use it for a server
    /// machine whose main program is the manager; it needs a
    /// [`tcp`](ManagerBuilder::tcp) address and an
    /// [`authkey`](ManagerBuilder::authkey) that clients know.
    ///
    /// # Errors
    ///
    /// [`Error::EmptyAuthkey`] for an empty key, [`Error::Io`] when the
    /// socket cannot be bound or accepting fails.
    pub fn serve_forever(self) -> Result<(), Error> {
        let (listener, _, key) = self.bind()?;
        (self.serve)(listener, key, self.peer_timeout).map_err(|e| Error::io("accept", e))
    }
}

impl Manager {
    /// Starts a local manager: a server process on a Unix socket in the
    /// abstract namespace, with a random key.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let l = m.list::<i32>()?;
    /// l.append(1)?;
    /// assert_eq!(l.to_vec()?, vec![1]);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ManagerBuilder::start`].
    pub fn new() -> Result<Manager, Error> {
        Manager::builder().start()
    }

    /// Options: registered types, TCP, the key, the start method.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder {
            target: server::server_main::<()>,
            serve: server::serve_with::<()>,
            tcp: None,
            authkey: None,
            method: None,
            peer_timeout: crate::addr::PEER_TIMEOUT,
        }
    }

    /// Starts a server process listening on TCP at `addr` with `authkey`,
    /// for clients on other machines ([`Manager::connect`]).
    ///
    /// ```
    /// use mp_manager::Manager;
    /// let server = Manager::serve("127.0.0.1:0", b"secret key".to_vec())?;
    /// let client = Manager::connect_to(server.address().clone(), b"secret key".to_vec())?;
    /// let d = server.dict::<String, u32>()?;
    /// server.publish("scores", &d)?;
    /// let remote = client.lookup::<mp_manager::DictProxy<String, u32>>("scores")?;
    /// remote.insert("ann".into(), 3)?;
    /// assert_eq!(d.get(&"ann".into())?, Some(3));
    /// assert!(Manager::connect_to(server.address().clone(), b"wrong".to_vec()).is_err());
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`ManagerBuilder::start`]; [`Error::EmptyAuthkey`] for an empty
    /// key.
    pub fn serve(addr: impl ToSocketAddrs, authkey: impl Into<Vec<u8>>) -> Result<Manager, Error> {
        Manager::builder().tcp(addr)?.authkey(authkey).start()
    }

    /// Connects to a server on TCP at `addr` with `authkey`. The
    /// handshake runs now, so a wrong key is an error here.
    ///
    /// # Errors
    ///
    /// [`Error::Auth`] for a wrong key, [`Error::EmptyAuthkey`] for an
    /// empty one, [`Error::Io`] when nothing listens there.
    pub fn connect(
        addr: impl ToSocketAddrs,
        authkey: impl Into<Vec<u8>>,
    ) -> Result<Manager, Error> {
        let a = addr
            .to_socket_addrs()
            .map_err(|e| Error::io("resolve the address", e))?
            .next()
            .ok_or_else(|| {
                Error::io(
                    "resolve the address",
                    io::Error::new(io::ErrorKind::NotFound, "no address"),
                )
            })?;
        Manager::connect_to(Address::Tcp(a), authkey)
    }

    /// Connects to a server at any [`Address`] (for instance a local
    /// manager's, passed to an unrelated process).
    ///
    /// # Errors
    ///
    /// As [`connect`](Manager::connect).
    pub fn connect_to(addr: Address, authkey: impl Into<Vec<u8>>) -> Result<Manager, Error> {
        let key = authkey.into();
        let pool = Pool::get(&addr, &key);
        // A fresh connection, so the key is checked now.
        let mut c = crate::client::Conn::open(&addr, &key)?;
        c.call(&Request::Ping)?.ok()?;
        pool.give(c);
        Ok(Manager {
            pool,
            process: None,
            shut: AtomicBool::new(false),
        })
    }

    /// Where the server listens.
    pub fn address(&self) -> &Address {
        &self.pool.addr
    }

    /// The authentication key. Anyone with the address and the key can use
    /// every object of the server.
    pub fn authkey(&self) -> &[u8] {
        &self.pool.key
    }

    /// The server process's pid, for a manager that owns its server.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(|p| p.pid())
    }

    /// Stops the server (if this manager owns it) and closes this process's
    /// connections to it; later calls on its proxies fail with
    /// [`Error::ServerGone`] or a connection error. A second call does
    /// nothing.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let pid = m.pid().unwrap();
    /// m.shutdown()?;
    /// assert!(!mp_os::liveness::thread_alive(pid));
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Process`] if the server could not be stopped or reaped.
    pub fn shutdown(&self) -> Result<(), Error> {
        if self.shut.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.pool.clear();
        let Some(p) = &self.process else {
            return Ok(());
        };
        if p.is_alive() {
            // A fresh connection: pooled ones may be in use by guards.
            if let Ok(mut c) = crate::client::Conn::open(&self.pool.addr, &self.pool.key) {
                let _ = c.call(&Request::Shutdown);
            }
        }
        match p.join_timeout(EXIT_GRACE) {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                p.kill()?;
                let _ = p.join();
                Ok(())
            }
            // Killed or failed: it is gone, which is what was asked for.
            Err(_) => Ok(()),
        }
    }

    /// Asks the server to exit, also from a manager that does not own it
    /// (for a server run with [`ManagerBuilder::serve_forever`]); for the
    /// owner this is [`shutdown`](Manager::shutdown).
    ///
    /// # Errors
    ///
    /// Connection errors ([`Error::Auth`], ...).
    pub fn shutdown_server(&self) -> Result<(), Error> {
        if self.process.is_some() {
            return self.shutdown();
        }
        let mut c = crate::client::Conn::open(&self.pool.addr, &self.pool.key)?;
        c.call(&Request::Shutdown)?.ok()?;
        self.shut.store(true, Ordering::SeqCst);
        self.pool.clear();
        Ok(())
    }

    fn check(&self) -> Result<(), Error> {
        if self.shut.load(Ordering::SeqCst) {
            Err(Error::Shutdown)
        } else {
            Ok(())
        }
    }

    fn make<P: Proxy>(&self, init: Init) -> Result<P, Error> {
        self.check()?;
        match self.pool.call(&Request::Create(init))? {
            Reply::Id(id) => Ok(P::from_handle(Handle::held(self.pool.clone(), id))),
            Reply::Err(e) => Err(Error::Remote(e)),
            r => Err(unexpected(r)),
        }
    }

    /// A new empty dict.
    ///
    /// # Errors
    ///
    /// [`Error::Shutdown`] after `shutdown`, connection errors; the same
    /// for every constructor below.
    pub fn dict<K: Storable, V: Storable>(&self) -> Result<DictProxy<K, V>, Error> {
        self.make(Init::Dict(Vec::new()))
    }

    /// A new dict with `items`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict), and encode errors.
    pub fn dict_from<K: Storable, V: Storable>(
        &self,
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Result<DictProxy<K, V>, Error> {
        let items = items
            .into_iter()
            .map(|(k, v)| Ok((enc_stored(&k)?, enc_stored(&v)?)))
            .collect::<Result<Vec<_>, Error>>()?;
        self.make(Init::Dict(items))
    }

    /// A new empty list.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn list<T: Storable>(&self) -> Result<ListProxy<T>, Error> {
        self.make(Init::List(Vec::new()))
    }

    /// A new list with `items` (Python's `manager.list([...])`).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict), and encode errors.
    pub fn list_from<T: Storable>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ListProxy<T>, Error> {
        let items = items
            .into_iter()
            .map(|x| enc_stored(&x))
            .collect::<Result<Vec<_>, _>>()?;
        self.make(Init::List(items))
    }

    /// A new empty Namespace.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn namespace(&self) -> Result<NamespaceProxy, Error> {
        self.make(Init::Namespace)
    }

    /// A new Value holding `value`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict), and encode errors.
    pub fn value<T: Storable>(&self, value: T) -> Result<ValueProxy<T>, Error> {
        self.make(Init::Value(enc_stored(&value)?))
    }

    /// A new unbounded queue.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn queue<T: Storable>(&self) -> Result<QueueProxy<T>, Error> {
        self.bounded_queue(0)
    }

    /// A new queue of at most `maxsize` items (0: unbounded).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn bounded_queue<T: Storable>(&self, maxsize: usize) -> Result<QueueProxy<T>, Error> {
        self.make(Init::Queue {
            maxsize: maxsize as u64,
            joinable: false,
        })
    }

    /// A new unbounded queue with `task_done` and `join`.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn joinable_queue<T: Storable>(&self) -> Result<JoinableQueueProxy<T>, Error> {
        self.make(Init::Queue {
            maxsize: 0,
            joinable: true,
        })
    }

    /// A new lock.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn lock(&self) -> Result<LockProxy, Error> {
        self.make(Init::Lock)
    }

    /// A new recursive lock.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn rlock(&self) -> Result<RLockProxy, Error> {
        self.make(Init::RLock)
    }

    /// A new semaphore with `value` units.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn semaphore(&self, value: usize) -> Result<SemaphoreProxy, Error> {
        self.make(Init::Semaphore(value as u64))
    }

    /// A new event, not set.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn event(&self) -> Result<EventProxy, Error> {
        self.make(Init::Event)
    }

    /// A new condition variable (with its own recursive lock).
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn condition(&self) -> Result<ConditionProxy, Error> {
        self.make(Init::Condition)
    }

    /// A new semaphore with `value` units that may not be released above
    /// `value` (Python's `Manager().BoundedSemaphore(n)`).
    ///
    /// ```
    /// use mp_manager::{Error, RemoteError};
    /// let m = mp_manager::Manager::new()?;
    /// let s = m.bounded_semaphore(1)?;
    /// let g = s.acquire()?;
    /// drop(g);
    /// assert!(matches!(s.release(), Err(Error::Remote(RemoteError::ReleasedTooOften))));
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict).
    pub fn bounded_semaphore(&self, value: usize) -> Result<BoundedSemaphoreProxy, Error> {
        self.make(Init::BoundedSemaphore(value as u64))
    }

    /// A new fixed-length array of `items` (Python's
    /// `Manager().Array(typecode, sequence)`; the item type is `T`'s).
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let a = m.array(vec![1.5f64, 2.5, 3.5])?;
    /// a.set(-1, 0.5)?;
    /// assert_eq!(a.get(0)?, 1.5);
    /// assert_eq!(a.len()?, 3);
    /// assert_eq!(a.to_vec()?, vec![1.5, 2.5, 0.5]);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict), and encode errors.
    pub fn array<T: Storable>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ArrayProxy<T>, Error> {
        let items = items
            .into_iter()
            .map(|x| enc_stored(&x))
            .collect::<Result<Vec<_>, _>>()?;
        self.make(Init::Array(items))
    }

    /// How many objects the server holds now (Python's
    /// `manager._number_of_objects()`): for tests and debugging, to see
    /// that objects are freed.
    ///
    /// ```
    /// let m = mp_manager::Manager::new()?;
    /// let before = m.object_count()?;
    /// let d = m.dict::<u32, u32>()?;
    /// assert_eq!(m.object_count()?, before + 1);
    /// drop(d); // the last proxy anywhere
    /// assert_eq!(m.object_count()?, before);
    /// # Ok::<(), mp_manager::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub fn object_count(&self) -> Result<usize, Error> {
        self.check()?;
        Ok(self.pool.call(&Request::ObjectCount)?.count()? as usize)
    }

    /// A new barrier for `parties` parties.
    ///
    /// # Errors
    ///
    /// As [`dict`](Manager::dict); `Remote(BadRequest)` for 0 parties.
    pub fn barrier(&self, parties: usize) -> Result<BarrierProxy, Error> {
        self.make(Init::Barrier(parties as u64))
    }

    /// A new instance of the registered type `type_name`, built from
    /// `init` (see [`Registry`]).
    ///
    /// # Errors
    ///
    /// `Remote(UnknownType)` when the server has no such type,
    /// `Remote(Custom)` when the initial value does not decode.
    pub fn create<I: Serialize + ?Sized>(
        &self,
        type_name: &str,
        init: &I,
    ) -> Result<CustomProxy, Error> {
        self.make(Init::Custom {
            type_name: type_name.to_string(),
            init: enc(init)?,
        })
    }

    /// Publishes `proxy`'s object under `name`, so that a client that only
    /// knows the address and key can [`lookup`](Manager::lookup) it
    /// (Python's `register('get_queue', callable=...)` pattern).
    ///
    /// # Errors
    ///
    /// Connection errors; `Remote(NoSuchObject)` for a proxy of another
    /// server.
    pub fn publish<P: Proxy>(&self, name: &str, proxy: &P) -> Result<(), Error> {
        self.check()?;
        self.pool
            .call(&Request::Publish {
                name: name.to_string(),
                id: proxy.handle().id,
            })
            .and_then(|r| match r {
                Reply::Err(e) => Err(Error::Remote(e)),
                r => r.ok(),
            })
    }

    /// A proxy for the object published under `name`.
    ///
    /// # Errors
    ///
    /// `Remote(NotPublished)` when nothing is, [`Error::WrongKind`] when
    /// it is another kind of object.
    pub fn lookup<P: Proxy>(&self, name: &str) -> Result<P, Error> {
        self.check()?;
        match self.pool.call(&Request::Lookup(name.to_string()))? {
            Reply::Object(id, kind) if kind == P::KIND => {
                Ok(P::from_handle(Handle::held(self.pool.clone(), id)))
            }
            Reply::Object(_, kind) => Err(Error::WrongKind {
                expected: kind_name(P::KIND),
                found: kind_name(kind).to_string(),
            }),
            Reply::Err(e) => Err(Error::Remote(e)),
            r => Err(unexpected(r)),
        }
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Dict => "dict",
        Kind::List => "list",
        Kind::Namespace => "Namespace",
        Kind::Value => "Value",
        Kind::Queue => "Queue",
        Kind::Lock => "Lock",
        Kind::RLock => "RLock",
        Kind::Semaphore => "Semaphore",
        Kind::Event => "Event",
        Kind::Condition => "Condition",
        Kind::Barrier => "Barrier",
        Kind::Custom => "registered type",
        Kind::Array => "Array",
        Kind::BoundedSemaphore => "BoundedSemaphore",
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
