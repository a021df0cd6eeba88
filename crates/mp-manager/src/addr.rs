//! Addresses, listeners and streams over Unix (abstract) or TCP sockets.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where a manager server listens.
///
/// A local manager listens on a Unix socket in the Linux abstract namespace
/// (nothing on the file system, so nothing is left behind by a crash); a
/// remote one on TCP.
///
/// ```
/// use mp_manager::Address;
/// let a: Address = "127.0.0.1:5000".parse::<std::net::SocketAddr>().unwrap().into();
/// assert_eq!(a.to_string(), "tcp:127.0.0.1:5000");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Address {
    /// A Unix socket in the abstract namespace, by name (without the
    /// leading NUL byte).
    Unix(String),
    /// A TCP socket.
    Tcp(SocketAddr),
}

impl From<SocketAddr> for Address {
    fn from(a: SocketAddr) -> Address {
        Address::Tcp(a)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(name) => write!(f, "unix:@{name}"),
            Address::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// How long a TCP peer that stopped answering is given before its
/// connection fails (see [`Stream::set_peer_timeout`]), unless the server is
/// told otherwise (`ManagerBuilder::peer_timeout`). Clients always use it.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Keepalive probes sent before a silent TCP peer is given up.
const KEEPALIVE_PROBES: u32 = 5;

/// The uid of the process at the other end of a Unix socket (as it was
/// when it connected).
pub(crate) fn peer_uid(s: &UnixStream) -> io::Result<u32> {
    Ok(rustix::net::sockopt::socket_peercred(s)?.uid.as_raw())
}

/// Whether a local peer running as `peer` may talk to a server running as
/// `me`: the same user, or root. The abstract namespace has no file
/// permissions, so without this check any user of the machine could try
/// the key.
pub(crate) fn uid_allowed(peer: u32, me: u32) -> bool {
    peer == me || peer == 0
}

/// A listening socket.
#[derive(Debug)]
pub(crate) enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    /// A Unix listener on a fresh random abstract name.
    pub(crate) fn local() -> io::Result<(Listener, Address)> {
        let mut r = [0u8; 12];
        crate::wire::random(&mut r)?;
        let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
        let name = format!("mp-manager/{}/{hex}", std::process::id());
        let sa = UnixAddr::from_abstract_name(name.as_bytes())?;
        let l = UnixListener::bind_addr(&sa)?;
        Ok((Listener::Unix(l), Address::Unix(name)))
    }

    pub(crate) fn tcp(addr: SocketAddr) -> io::Result<(Listener, Address)> {
        let l = TcpListener::bind(addr)?;
        let a = l.local_addr()?;
        Ok((Listener::Tcp(l), Address::Tcp(a)))
    }

    pub(crate) fn from_fd(fd: OwnedFd, tcp: bool) -> Listener {
        if tcp {
            Listener::Tcp(TcpListener::from(fd))
        } else {
            Listener::Unix(UnixListener::from(fd))
        }
    }

    pub(crate) fn is_tcp(&self) -> bool {
        matches!(self, Listener::Tcp(_))
    }

    /// Where it listens, if that can be told.
    pub(crate) fn address(&self) -> Option<Address> {
        match self {
            Listener::Unix(l) => {
                let a = l.local_addr().ok()?;
                let name = a.as_abstract_name()?;
                Some(Address::Unix(String::from_utf8_lossy(name).into_owned()))
            }
            Listener::Tcp(l) => l.local_addr().ok().map(Address::Tcp),
        }
    }

    /// The next connection, and the peer's address for a TCP one.
    pub(crate) fn accept(&self) -> io::Result<(Stream, Option<IpAddr>)> {
        match self {
            Listener::Unix(l) => l.accept().map(|(s, _)| (Stream::Unix(s), None)),
            Listener::Tcp(l) => l.accept().map(|(s, a)| {
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), Some(a.ip()))
            }),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Unix(l) => l.as_fd(),
            Listener::Tcp(l) => l.as_fd(),
        }
    }
}

/// A connected socket.
#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub(crate) fn connect(addr: &Address) -> io::Result<Stream> {
        match addr {
            Address::Unix(name) => {
                let sa = UnixAddr::from_abstract_name(name.as_bytes())?;
                UnixStream::connect_addr(&sa).map(Stream::Unix)
            }
            Address::Tcp(a) => {
                let s = TcpStream::connect_timeout(a, Duration::from_secs(30))?;
                let _ = s.set_nodelay(true);
                let s = Stream::Tcp(s);
                s.set_peer_timeout(PEER_TIMEOUT)?;
                Ok(s)
            }
        }
    }

    /// On TCP, makes a peer that stops answering (its host crashed or the
    /// network between went away, so that no FIN or RST ever arrives) an
    /// error within about `t`: keepalive probes after `t / 2` of silence,
    /// 5 of them spread over the rest, and `TCP_USER_TIMEOUT` of `t` for
    /// data that stays unacknowledged (which also ends the probing at `t`).
    /// A blocked read or write then fails with `ETIMEDOUT`, and `poll`
    /// reports an error. `t` is taken between 1 s and 32767 s. A Unix
    /// socket is left as it is (its peer cannot vanish without the kernel
    /// knowing).
    pub(crate) fn set_peer_timeout(&self, t: Duration) -> io::Result<()> {
        use rustix::net::sockopt;
        let Stream::Tcp(s) = self else {
            return Ok(());
        };
        let t = t.clamp(Duration::from_secs(1), Duration::from_secs(32767));
        let idle = (t / 2).max(Duration::from_secs(1));
        let intvl = ((t - idle.min(t)) / KEEPALIVE_PROBES).max(Duration::from_secs(1));
        sockopt::set_socket_keepalive(s, true)?;
        sockopt::set_tcp_keepidle(s, Duration::from_secs(idle.as_secs()))?;
        sockopt::set_tcp_keepintvl(s, Duration::from_secs(intvl.as_secs()))?;
        sockopt::set_tcp_keepcnt(s, KEEPALIVE_PROBES)?;
        sockopt::set_tcp_user_timeout(s, t.as_millis() as u32)?;
        Ok(())
    }

    pub(crate) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub(crate) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }

    /// Who is at the other end, for log records: a TCP peer's address, a
    /// local peer's pid.
    pub(crate) fn peer_name(&self) -> String {
        match self {
            Stream::Tcp(s) => s
                .peer_addr()
                .map_or_else(|_| "an unknown TCP peer".into(), |a| a.to_string()),
            Stream::Unix(s) => rustix::net::sockopt::socket_peercred(s).map_or_else(
                |_| "a local process".into(),
                |c| format!("pid {}", c.pid.as_raw_nonzero()),
            ),
        }
    }

    /// Reads what is there without blocking: `Ok(None)` when nothing is.
    pub(crate) fn read_nonblocking(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match rustix::net::recv(self.as_fd(), &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) => return Ok(Some(n)),
                Err(rustix::io::Errno::AGAIN) => return Ok(None),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Whether the peer has hung up (or the socket failed), without
    /// blocking. A peer that is waiting for a reply sends nothing, so this
    /// is how a server thread blocked on behalf of a client notices the
    /// client died.
    pub(crate) fn peer_gone(&self) -> bool {
        let mut p = libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&self.as_fd()),
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = unsafe { libc::poll(&mut p, 1, 0) };
        n > 0 && p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

impl Read for &Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => (&*s).read(buf),
            Stream::Tcp(s) => (&*s).read(buf),
        }
    }
}

impl Write for &Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // MSG_NOSIGNAL: a peer that has gone is an EPIPE error, never a
        // SIGPIPE that kills the server.
        loop {
            match rustix::net::send(self.as_fd(), buf, rustix::net::SendFlags::NOSIGNAL) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
