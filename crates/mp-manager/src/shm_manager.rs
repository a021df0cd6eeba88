//! `SharedMemoryManager`: Python's
//! `multiprocessing.managers.SharedMemoryManager`, a server process that
//! creates shared-memory blocks and `ShareableList`s and unlinks every one
//! of them at shutdown, or when the process that started it dies.
//!
//! The owner talks to the server over a socket pair: requests and replies
//! are postcard frames of `mp_channel::connection`. End of file on it (the
//! owner closed it, or died: the kernel closes it then) makes the server
//! unlink everything it created and exit. The server ignores `SIGINT` (as
//! Python's manager server does), so a Ctrl-C in a terminal, which reaches
//! the whole process group, does not kill it before it has cleaned up.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, Once};

use mp_channel::connection::Connection;
use mp_proc::Process;
use mp_shm::{Item, ShareableList, SharedMemory};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, ExceptionKind, MethodError, RemoteError};

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Block(usize),
    List(Vec<Item>),
    Names,
    Shutdown,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Name(String),
    Names(Vec<String>),
    Done,
    Failed(String),
}

/// The server's end of the socket pair, passed to the server process.
#[derive(Debug)]
struct Config {
    control: OwnedFd,
}

impl Serialize for Config {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        mp_os::handle::serialize_fd(self.control.as_fd(), s)
    }
}

impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Config {
            control: mp_os::handle::deserialize_fd(d)?,
        })
    }
}

enum Held {
    Block(SharedMemory),
    List(ShareableList),
}

impl Held {
    fn name(&self) -> &str {
        match self {
            Held::Block(b) => b.name(),
            Held::List(l) => l.name(),
        }
    }
}

fn unlink_all(held: &mut Vec<Held>) {
    for h in held.drain(..) {
        // Explicitly, then the owning handle goes.
        let _ = match &h {
            Held::Block(b) => b.unlink(),
            Held::List(l) => l.unlink(),
        };
    }
}

/// The server process's target.
fn server_main(cfg: Config) {
    // SAFETY: setting a signal's disposition to SIG_IGN has no
    // preconditions; no handler runs.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let conn = Connection::from(UnixStream::from(cfg.control));
    let mut held: Vec<Held> = Vec::new();
    // End of file (the owner closed or died) or garbage ends the loop:
    // clean up.
    while let Ok(req) = conn.recv::<Request>() {
        let reply = match req {
            Request::Block(size) => match SharedMemory::create_unique(size) {
                Ok(b) => {
                    let name = b.name().to_string();
                    held.push(Held::Block(b));
                    Reply::Name(name)
                }
                Err(e) => Reply::Failed(e.to_string()),
            },
            Request::List(items) => match ShareableList::new(&items) {
                Ok(l) => {
                    let name = l.name().to_string();
                    held.push(Held::List(l));
                    Reply::Name(name)
                }
                Err(e) => Reply::Failed(e.to_string()),
            },
            Request::Names => Reply::Names(held.iter().map(|h| h.name().to_string()).collect()),
            Request::Shutdown => {
                unlink_all(&mut held);
                let _ = conn.send(&Reply::Done);
                return;
            }
        };
        if conn.send(&reply).is_err() {
            break;
        }
    }
    unlink_all(&mut held);
}

/// The control sockets of the managers of this process that are still
/// running, each with the pid of the process that started the manager;
/// shut down at exit so that the server, which the process's exit waits
/// for, does not wait for an owner that is itself exiting.
///
/// A child forked while a manager runs inherits this list and the atexit
/// handler, and its copy of each socket is the very socket the owner
/// uses: shutdown(2) would end the owner's stream too (the server would
/// then unlink the owner's blocks). So the handler shuts down only the
/// entries of the process it runs in.
static LIVE: Mutex<Vec<(libc::pid_t, RawFd)>> = Mutex::new(Vec::new());

extern "C" fn shutdown_live_managers() {
    // A forked child may have inherited the lock held by a thread that
    // does not exist there: try for a while, never block (the entries
    // such a child would find are not its own anyway).
    let mut live = None;
    for _ in 0..100 {
        match LIVE.try_lock() {
            Ok(l) => live = Some(l.clone()),
            Err(std::sync::TryLockError::Poisoned(p)) => live = Some(p.into_inner().clone()),
            Err(std::sync::TryLockError::WouldBlock) => {
                std::thread::yield_now();
                continue;
            }
        }
        break;
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for (pid, fd) in live.unwrap_or_default() {
        if pid != me {
            continue;
        }
        // SAFETY: `fd` is a socket this process holds open (removed from
        // LIVE before it is closed); shutting it down only ends the stream.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
}

/// Python's `multiprocessing.managers.SharedMemoryManager`: a server
/// process that creates named shared-memory blocks and
/// [`ShareableList`]s and unlinks all of them when the manager shuts down
/// ([`shutdown`](SharedMemoryManager::shutdown) or drop), or when the
/// process that started it dies, however it dies.
///
/// ```
/// use mp_manager::SharedMemoryManager;
/// use mp_shm::Item;
///
/// let smm = SharedMemoryManager::start()?;
/// let block = smm.shared_memory(4096)?;           // attached: hand it to other processes
/// block.write_at(0, b"hello")?;
/// let list = smm.shareable_list(&[1.into(), "two".into(), Item::None])?;
/// assert_eq!(list.get(1)?, Item::Str("two".into()));
/// let names = smm.names()?;
/// assert_eq!(names, [block.name(), list.name()]);
/// smm.shutdown()?;                                // every block is unlinked
/// assert!(mp_shm::SharedMemory::attach(&names[0]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Differences from Python: only the owner asks the server for blocks
/// (other processes get the blocks and lists themselves, which travel in a
/// process's arguments as any handle); the blocks have fresh names
/// (`mp-PID-N-RANDOM`). The returned handles are attached ones: they never
/// unlink, and their mappings stay valid after the names are unlinked.
///
/// Drop the manager (or call `shutdown`) before the process ends: a
/// normal exit of the main process shuts leaked managers down, but a
/// manager leaked inside a process started by `mp_proc` keeps that
/// process's exit waiting for the server. A child forked while the manager
/// runs holds its socket, so the owner's death is noticed when that child
/// has exited too; such a child leaving through `exit` (which runs the
/// atexit handler that shuts leaked managers down) leaves the owner's
/// managers alone.
#[derive(Debug)]
pub struct SharedMemoryManager {
    conn: Mutex<Option<Connection>>,
    process: Process<()>,
}

impl SharedMemoryManager {
    /// Starts the server process (Python's `SharedMemoryManager()` and
    /// `start()`).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the socket pair cannot be made,
    /// [`Error::Process`] when the process cannot start,
    /// [`Error::ServerGone`] when it does not answer.
    pub fn start() -> Result<SharedMemoryManager, Error> {
        let (mine, theirs) = UnixStream::pair().map_err(|e| Error::io("socketpair", e))?;
        let process = Process::new(
            server_main,
            Config {
                control: theirs.into(),
            },
        )
        .name("mp-shared-memory-manager");
        // Our copy of the server's end was closed when `Process::new`
        // serialized (duplicated) and dropped it.
        process.start()?;
        static AT_EXIT: Once = Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: registers a plain `extern "C" fn()` that touches only
            // a static; atexit has no other preconditions.
            unsafe { libc::atexit(shutdown_live_managers) };
        });
        let fd = mine.as_raw_fd();
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((me, fd));
        let smm = SharedMemoryManager {
            conn: Mutex::new(Some(Connection::from(mine))),
            process,
        };
        smm.names()?;
        Ok(smm)
    }

    fn call(&self, req: &Request) -> Result<Reply, Error> {
        let guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let conn = guard.as_ref().ok_or(Error::Shutdown)?;
        conn.send(req).map_err(|_| Error::ServerGone)?;
        match conn.recv::<Reply>() {
            Ok(Reply::Failed(m)) => Err(Error::Remote(RemoteError::Method(MethodError::new(
                ExceptionKind::Os,
                m,
            )))),
            Ok(r) => Ok(r),
            Err(_) => Err(Error::ServerGone),
        }
    }

    fn name_of(&self, req: &Request) -> Result<String, Error> {
        match self.call(req)? {
            Reply::Name(n) => Ok(n),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// A new block of `size` zeroed bytes, created (and owned) by the
    /// server (Python's `smm.SharedMemory(size)`).
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] when the server cannot create it (size 0, out of
    /// memory), [`Error::Shm`] when it cannot be attached here,
    /// [`Error::ServerGone`], [`Error::Shutdown`].
    pub fn shared_memory(&self, size: usize) -> Result<SharedMemory, Error> {
        let name = self.name_of(&Request::Block(size))?;
        Ok(SharedMemory::attach(&name)?)
    }

    /// A new [`ShareableList`] of `items`, created (and owned) by the server
    /// (Python's `smm.ShareableList(sequence)`).
    ///
    /// # Errors
    ///
    /// As [`shared_memory`](SharedMemoryManager::shared_memory); an item
    /// too large for a list is a [`Error::Remote`].
    pub fn shareable_list(&self, items: &[Item]) -> Result<ShareableList, Error> {
        let name = self.name_of(&Request::List(items.to_vec()))?;
        Ok(ShareableList::attach(&name)?)
    }

    /// The names of the blocks (and lists) the server holds, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::ServerGone`], [`Error::Shutdown`].
    pub fn names(&self) -> Result<Vec<String>, Error> {
        match self.call(&Request::Names)? {
            Reply::Names(n) => Ok(n),
            r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
        }
    }

    /// The server process's pid.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Unlinks every block and list the server made, stops it and waits
    /// for it (Python's `shutdown()`). Later calls do nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Process`] when the server cannot be joined; a server that
    /// was gone already has cleaned up as it went.
    pub fn shutdown(&self) -> Result<(), Error> {
        let Some(conn) = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take() else {
            return Ok(());
        };
        let _ = conn.send(&Request::Shutdown);
        let _ = conn.recv::<Reply>();
        let fd = conn.as_raw_fd();
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|&(_, f)| f != fd);
        drop(conn); // end of file for a server still reading
        self.process.join()?;
        Ok(())
    }
}

impl Drop for SharedMemoryManager {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
