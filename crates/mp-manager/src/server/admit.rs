//! Letting a connection in: the key proven within a deadline, few
//! connections proving it at once per peer address, and the shared-memory
//! pipe of a local client.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::addr::Stream;
use crate::transport::Transport;
use crate::wire;

/// How long a new connection has to prove the key, from its accept to the
/// server's welcome, however slowly its bytes arrive.
pub(super) const AUTH_TIMEOUT: Duration = Duration::from_secs(1);
/// How long an authenticated local client has to send its shared-memory
/// pipe.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections from one peer address (an IPv6 /64) that may be proving
/// the key at once before the oldest is dropped (see [`Pending`]).
pub(super) const PENDING_PER_PEER: usize = 32;
/// Connections that may be proving the key at once, from every peer
/// together, before the oldest remote one is dropped.
pub(super) const MAX_PENDING: usize = 256;
/// A pending connection younger than this is never dropped for the per-peer
/// limit (a burst of genuine clients from one machine), only by the global
/// one.
pub(super) const PENDING_MIN_AGE: Duration = Duration::from_millis(100);
/// Marks the session of a connection whose client did not name one: each
/// such connection is a session of its own.
const OWN_SESSION: u64 = 1 << 63;
/// How long a reply may take to be written before the client is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// The connections that have not proved the key yet, oldest first: at most
/// [`PENDING_PER_PEER`] per peer address (an IPv6 /64) once they are older
/// than [`PENDING_MIN_AGE`], at most [`MAX_PENDING`] remote ones in all.
/// Past a limit the oldest is dropped, never the newcomer: whoever holds
/// idle connections open makes room for the next client with each one it
/// opens, so a good client is never locked out, and the idle ones cost a
/// thread each for at most [`AUTH_TIMEOUT`].
#[derive(Default)]
pub(super) struct Pending {
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
    pub(super) fn admit(
        &mut self,
        peer: Option<IpAddr>,
        fd: RawFd,
        now: Instant,
    ) -> (u64, Vec<RawFd>) {
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
    pub(super) fn remove(&mut self, token: u64) -> Option<RawFd> {
        let i = self.list.iter().position(|p| p.token == token)?;
        self.list.remove(i).map(|p| p.fd)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.list.len()
    }
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

/// What a connection passes through before it is served: the key, and
/// the table of connections still proving it.
pub(super) struct Gate {
    key: Vec<u8>,
    pending: Mutex<Pending>,
}

/// The server's sessions, as the gate sees them: an authenticated
/// connection joins its client's session before the welcome goes out, and
/// leaves it again when the rest of its admission fails.
pub(super) trait Sessions {
    /// A connection of `session` is open.
    fn join(&self, session: u64);
    /// A connection of `session` closed.
    fn leave(&self, session: u64);
}

impl Gate {
    pub(super) fn new(key: Vec<u8>) -> Gate {
        Gate {
            key,
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Runs the handshake, within [`AUTH_TIMEOUT`]; `Ok(Some(session))`
    /// for an authenticated client (the connection's own session,
    /// `OWN_SESSION | id`, when it named none).
    ///
    /// The session is joined (see [`Sessions::join`]) before the welcome
    /// goes out: once the client holds an open connection, a sibling
    /// connection of its closing cannot end the session.
    fn handshake(&self, s: &Stream, id: u64, sessions: &impl Sessions) -> io::Result<Option<u64>> {
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
        sessions.join(session);
        if let Err(e) = wire::write_frame(&mut &*s, &mut buf, &welcome) {
            sessions.leave(session);
            return Err(e);
        }
        Ok(Some(session))
    }

    /// Records a connection that has yet to prove the key (see
    /// [`Pending`]), dropping the ones it displaces.
    pub(super) fn admit(&self, peer: Option<IpAddr>, fd: RawFd) -> u64 {
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
    pub(super) fn settled(&self, token: u64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.remove(token);
    }

    /// Authenticates a new connection and, on a Unix socket, takes the
    /// shared-memory pipe the client sends. `None`: the connection is to
    /// be closed.
    ///
    /// An authenticated connection has joined its session; when the rest
    /// fails, it leaves it again.
    pub(super) fn open(
        &self,
        stream: Stream,
        token: u64,
        id: u64,
        sessions: &impl Sessions,
    ) -> Option<(Transport, u64)> {
        let r = self.handshake(&stream, id, sessions);
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
            sessions.leave(session);
        }
        Some((upgraded?, session))
    }
}
