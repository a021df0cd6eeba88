//! Who is let in: local peers of other users, connections that do not
//! authenticate in time, crowds of idle connections; TCP keepalive; the
//! tasks of clients that went away.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{BorrowedFd, RawFd};
use std::os::linux::net::SocketAddrExt;
use std::time::{Duration, Instant};

use super::admit::*;
use super::*;
use crate::addr::{Address, Listener};
use crate::client::Conn;
use crate::wire::{Init, Op, Reply, Request};

const KEY: &[u8] = b"server tests";

/// A server on `l` in a thread; `stop` shuts it down and joins it.
struct TestServer {
    addr: Address,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl TestServer {
    fn start(l: Listener, addr: Address, peer_timeout: Duration) -> TestServer {
        let t = std::thread::spawn(move || serve_with::<()>(l, KEY.to_vec(), peer_timeout));
        TestServer {
            addr,
            thread: Some(t),
        }
    }

    fn tcp(peer_timeout: Duration) -> TestServer {
        let (l, addr) = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
        TestServer::start(l, addr, peer_timeout)
    }

    fn sock(&self) -> SocketAddr {
        match self.addr {
            Address::Tcp(a) => a,
            _ => panic!("not TCP"),
        }
    }

    fn stop(mut self) {
        let mut c = Conn::open(&self.addr, KEY).unwrap();
        assert_eq!(c.call(&Request::Shutdown).unwrap(), Reply::Ok);
        self.thread.take().unwrap().join().unwrap().unwrap();
    }
}

fn frame(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    match wire::read_frame(s, wire::MAX_FRAME, &mut v) {
        Ok(true) => Some(v),
        Ok(false) => None,
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("{e}"),
    }
}

/// A raw TCP client that authenticates, naming `session` (or none, as a
/// client of protocol 2 did).
fn raw_client(addr: SocketAddr, session: Option<u64>) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = frame(&mut s).unwrap();
    let ns = &hello[10..];
    let nc = [9u8; 32];
    let mut answer = wire::tag(KEY, wire::CLIENT_ROLE, ns).to_vec();
    answer.extend_from_slice(&nc);
    if let Some(id) = session {
        answer.extend_from_slice(&id.to_le_bytes());
    }
    wire::write_frame(&mut s, &mut Vec::new(), &answer).unwrap();
    let welcome = frame(&mut s).unwrap();
    assert_eq!(welcome[0], 0, "refused");
    s
}

fn call(s: &mut TcpStream, req: &Request) -> Reply {
    let body = postcard::to_allocvec(req).unwrap();
    wire::write_frame(s, &mut Vec::new(), &body).unwrap();
    postcard::from_bytes(&frame(s).expect("a reply")).unwrap()
}

fn op(s: &mut TcpStream, id: u64, op: Op) -> Reply {
    call(s, &Request::Call { id, op })
}

fn create(s: &mut TcpStream, init: Init) -> u64 {
    match call(s, &Request::Create(init)) {
        Reply::Id(id) => id,
        r => panic!("{r:?}"),
    }
}

fn joinable(s: &mut TcpStream) -> u64 {
    create(
        s,
        Init::Queue {
            maxsize: 0,
            joinable: true,
        },
    )
}

const SECS: fn(u64) -> Option<u64> = |n| Some(n * 1_000_000_000);

// ---- local peers of other users --------------------------------------------

#[test]
fn the_uid_check_lets_in_the_same_user_and_root_only() {
    use crate::addr::uid_allowed;
    assert!(uid_allowed(1000, 1000));
    assert!(uid_allowed(0, 1000), "root may connect to anyone's manager");
    assert!(!uid_allowed(1001, 1000));
    assert!(!uid_allowed(65534, 1000));
    assert!(!uid_allowed(1000, 0), "a root server refuses other users");
    assert!(uid_allowed(0, 0));
}

#[test]
fn a_local_peer_of_another_user_is_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    let (l, addr) = Listener::local().unwrap();
    let server = TestServer::start(l, addr.clone(), crate::addr::PEER_TIMEOUT);
    let a2 = addr.clone();
    // A thread that connects as user 65534: the raw syscall changes the
    // credentials of this thread only (the C library's wrapper would
    // change every thread's), and SO_PEERCRED records them at connect.
    let (raw, refused) = std::thread::spawn(move || {
        // SAFETY: setresuid(2) on this thread: real and saved ids stay root.
        let r = unsafe { libc::syscall(libc::SYS_setresuid, -1i64, 65534i64, -1i64) };
        assert_eq!(r, 0, "{}", io::Error::last_os_error());
        // By hand: the refusal frame, then the end.
        let Address::Unix(name) = &a2 else {
            unreachable!()
        };
        let sa = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let s = std::os::unix::net::UnixStream::connect_addr(&sa).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        (got, Conn::open(&a2, KEY).map(|_| ()))
    })
    .join()
    .unwrap();
    assert_eq!(raw, [1, 0, 0, 0, 2], "the refusal, then the end");
    match refused {
        Err(crate::Error::Auth(msg)) => assert!(msg.contains("own user"), "{msg}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // This user (root) is let in.
    let mut c = Conn::open(&addr, KEY).unwrap();
    assert_eq!(c.call(&Request::Ping).unwrap(), Reply::Ok);
    server.stop();
}

// ---- connections that do not authenticate ----------------------------------

#[test]
fn an_unauthenticated_connection_is_dropped_after_a_second() {
    let server = TestServer::tcp(crate::addr::PEER_TIMEOUT);
    // Silent after the challenge.
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(server.sock()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(frame(&mut silent).is_some(), "the challenge");
    assert_eq!(frame(&mut silent), None);
    let waited = t0.elapsed();
    assert!(waited >= AUTH_TIMEOUT / 2, "dropped too soon: {waited:?}");
    assert!(waited < Duration::from_secs(5), "kept {waited:?}");

    // Dribbling the answer a byte at a time does not extend the deadline.
    let t0 = Instant::now();
    let mut slow = TcpStream::connect(server.sock()).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert!(frame(&mut slow).is_some(), "the challenge");
    slow.write_all(&64u32.to_le_bytes()).unwrap();
    let closed = loop {
        if slow.write_all(&[0]).is_err() || t0.elapsed() > Duration::from_secs(20) {
            break t0.elapsed();
        }
        // Closed by the server: the read sees the end at once.
        slow.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match slow.read(&mut [0u8; 1]) {
            Ok(0) => break t0.elapsed(),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break t0.elapsed(),
            _ => {}
        }
    };
    assert!(closed < Duration::from_secs(5), "kept {closed:?}");
    server.stop();
}

#[test]
fn pending_connections_drop_the_oldest_of_a_peer_never_a_burst() {
    let t0 = Instant::now();
    let old = t0 + PENDING_MIN_AGE;
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    let b: IpAddr = "10.0.0.2".parse().unwrap();
    let mut p = Pending::default();
    // A burst from one peer is let in whole, however large.
    let burst: Vec<u64> = (0..PENDING_PER_PEER + 8)
        .map(|i| {
            let (t, evict) = p.admit(Some(a), 1000 + i as RawFd, t0);
            assert!(evict.is_empty());
            t
        })
        .collect();
    // Once they are old, each newcomer from that peer drops the oldest.
    let (_, evict) = p.admit(Some(a), 2000, old);
    assert_eq!(evict, [1000]);
    let (_, evict) = p.admit(Some(a), 2001, old);
    assert_eq!(evict, [1001]);
    // Another peer, and local connections, drop nothing.
    assert!(p.admit(Some(b), 3000, old).1.is_empty());
    assert!(p.admit(None, 4000, old).1.is_empty());
    // The same peer over IPv6-mapped IPv4 counts as the same peer; IPv6
    // addresses of one /64 likewise.
    let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
    assert_eq!(p.admit(Some(mapped), 2002, old).1, [1002]);
    let mut q = Pending::default();
    for i in 0..PENDING_PER_PEER {
        let ip: IpAddr = format!("2001:db8::{i:x}").parse().unwrap();
        q.admit(Some(ip), i as RawFd, t0);
    }
    let other: IpAddr = "2001:db8::ffff:1".parse().unwrap();
    assert_eq!(q.admit(Some(other), 99, old).1, [0]);
    // Those that authenticated are forgotten.
    let before = p.len();
    for t in &burst[10..] {
        p.remove(*t);
    }
    assert_eq!(p.len(), before - (burst.len() - 10));
    assert_eq!(p.remove(burst[0]), None, "dropped earlier");
    // At the global limit the oldest remote one goes, whatever its age;
    // local ones are never dropped.
    let mut g = Pending::default();
    g.admit(None, 1, t0);
    for i in 0..MAX_PENDING {
        let ip: IpAddr = format!("10.1.{}.{}", i / 256, i % 256).parse().unwrap();
        assert!(g.admit(Some(ip), 100 + i as RawFd, t0).1.is_empty());
    }
    assert_eq!(g.admit(Some(a), 7, t0).1, [100]);
    assert_eq!(g.admit(None, 8, t0).1, Vec::<RawFd>::new());
}

// ---- keepalive ---------------------------------------------------------------

/// The keepalive settings of a TCP socket.
fn keepalive(fd: BorrowedFd<'_>) -> (bool, u64, u64, u32, u32) {
    use rustix::net::sockopt;
    (
        sockopt::socket_keepalive(fd).unwrap(),
        sockopt::tcp_keepidle(fd).unwrap().as_secs(),
        sockopt::tcp_keepintvl(fd).unwrap().as_secs(),
        sockopt::tcp_keepcnt(fd).unwrap(),
        sockopt::tcp_user_timeout(fd).unwrap(),
    )
}

/// The socket of this process whose local address is `local` and whose
/// peer is `peer` (the server thread's end of a connection).
fn find_socket(local: SocketAddr, peer: SocketAddr) -> OwnedFd {
    for e in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(fd) = e.unwrap().file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        // SAFETY: only inspected for as long as the duplicate lives; a
        // descriptor closed meanwhile makes these calls fail.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(dup) = b.try_clone_to_owned() else {
            continue;
        };
        let here = rustix::net::getsockname(&dup).ok();
        let there = rustix::net::getpeername(&dup).ok().flatten();
        let as_std = |a: rustix::net::SocketAddrAny| SocketAddr::try_from(a).ok();
        if here.and_then(as_std) == Some(local) && there.and_then(as_std) == Some(peer) {
            return dup;
        }
    }
    panic!("no socket {local} -> {peer}");
}

#[test]
fn tcp_connections_have_keepalive_on_both_sides() {
    let server = TestServer::tcp(Duration::from_secs(10));
    let mut c = Conn::open(&server.addr, KEY).unwrap();
    assert_eq!(c.call(&Request::Ping).unwrap(), Reply::Ok);
    let Stream::Tcp(client) = c.transport().socket() else {
        panic!("not TCP")
    };
    // The client: the default 30 s.
    assert_eq!(keepalive(client.as_fd()), (true, 15, 3, 5, 30_000));
    // The server's end, as its accept loop set it: the configured 10 s.
    let theirs = find_socket(server.sock(), client.local_addr().unwrap());
    assert_eq!(keepalive(theirs.as_fd()), (true, 5, 1, 5, 10_000));
    drop(theirs);
    server.stop();
}

#[test]
fn peer_timeouts_are_spread_over_probes_and_clamped() {
    let (l, _) = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let Listener::Tcp(l) = l else { unreachable!() };
    let s = Stream::Tcp(TcpStream::connect(l.local_addr().unwrap()).unwrap());
    let Stream::Tcp(t) = &s else { unreachable!() };
    for (timeout, want) in [
        (Duration::from_secs(30), (true, 15, 3, 5, 30_000)),
        (Duration::from_secs(2), (true, 1, 1, 5, 2_000)),
        (Duration::ZERO, (true, 1, 1, 5, 1_000)),
        (
            Duration::from_secs(100_000),
            (true, 16383, 3276, 5, 32_767_000),
        ),
    ] {
        s.set_peer_timeout(timeout).unwrap();
        assert_eq!(keepalive(t.as_fd()), want, "{timeout:?}");
    }
}

/// Sets `lo` of this thread's network namespace up or down.
fn loopback(up: bool) {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .unwrap();
    // SAFETY: an all-zero ifreq is valid; the name fits with its NUL.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS with a valid ifreq on a socket we own.
    unsafe {
        assert_eq!(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req),
            0
        );
        let flags = &mut req.ifr_ifru.ifru_flags;
        if up {
            *flags |= libc::IFF_UP as libc::c_short;
        } else {
            *flags &= !(libc::IFF_UP as libc::c_short);
        }
        assert_eq!(
            libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &mut req),
            0,
            "{}",
            io::Error::last_os_error()
        );
    }
}

#[test]
fn a_vanished_tcp_client_loses_its_lock_within_the_peer_timeout() {
    // A host that vanishes: in a network namespace of its own (root only),
    // the loopback interface is taken down while a client holds a lock,
    // so nothing (no FIN, no RST) reaches either side.
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root for a private network namespace");
        return;
    }
    std::thread::spawn(|| {
        // Only this thread (and the threads it starts) move.
        // SAFETY: only the network namespace is unshared, not the
        // descriptor table.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }.unwrap();
        loopback(true);
        let server = TestServer::tcp(Duration::from_secs(2));
        let mut holder = raw_client(server.sock(), Some(1));
        let lock = create(&mut holder, Init::Lock);
        // Published, so that it outlives its creator's session.
        let publish = Request::Publish {
            name: "lock".into(),
            id: lock,
        };
        assert_eq!(call(&mut holder, &publish), Reply::Ok);
        assert_eq!(
            op(&mut holder, lock, Op::Acquire((1, 1), None)),
            Reply::Bool(true)
        );
        loopback(false);
        std::thread::sleep(Duration::from_secs(8));
        loopback(true);
        // The holder's host is back, but the server gave it up: the lock
        // is free.
        let mut other = raw_client(server.sock(), Some(2));
        assert_eq!(
            op(&mut other, lock, Op::Acquire((2, 2), Some(0))),
            Reply::Bool(true),
            "the vanished client's lock was never released"
        );
        drop(holder);
        server.stop();
    })
    .join()
    .unwrap();
}

// ---- the tasks of clients that went away -------------------------------------

#[test]
fn the_tasks_of_a_client_that_went_away_are_written_off() {
    let server = TestServer::tcp(crate::addr::PEER_TIMEOUT);
    let mut main = raw_client(server.sock(), Some(10));
    let q = joinable(&mut main);
    for i in 0..3u8 {
        assert_eq!(op(&mut main, q, Op::QueuePut(vec![i], None)), Reply::Ok);
    }
    // A client that takes a task and goes away without task_done; one
    // that names no session is a session of its own.
    for session in [Some(20), None] {
        let mut gone = raw_client(server.sock(), session);
        assert!(matches!(
            op(&mut gone, q, Op::QueueGet(None)),
            Reply::Bytes(_)
        ));
        drop(gone);
    }
    // The third task is done properly.
    assert!(matches!(
        op(&mut main, q, Op::QueueGet(None)),
        Reply::Bytes(_)
    ));
    assert_eq!(op(&mut main, q, Op::QueueTaskDone), Reply::Ok);
    let t0 = Instant::now();
    let mut lost = 0;
    while lost < 2 {
        match op(&mut main, q, Op::QueueJoin(SECS(20))) {
            Reply::Err(RemoteError::TasksLost { count }) => lost += count,
            r => panic!("expected TasksLost, got {r:?}"),
        }
    }
    assert_eq!(lost, 2);
    assert!(t0.elapsed() < Duration::from_secs(20));
    // Written off once: the next join has nothing to wait for, and a
    // task_done too many is refused as before.
    assert_eq!(op(&mut main, q, Op::QueueJoin(SECS(5))), Reply::Ok);
    assert_eq!(
        op(&mut main, q, Op::QueueTaskDone),
        Reply::Err(RemoteError::TaskDoneTooOften)
    );
    server.stop();
}

#[test]
fn a_client_with_a_connection_left_keeps_its_tasks() {
    let server = TestServer::tcp(crate::addr::PEER_TIMEOUT);
    let mut main = raw_client(server.sock(), Some(10));
    let q = joinable(&mut main);
    assert_eq!(op(&mut main, q, Op::QueuePut(vec![1], None)), Reply::Ok);
    // Client 30 gets on one connection and closes it, but still has
    // another: it is alive, and its task is still being worked on.
    let mut a = raw_client(server.sock(), Some(30));
    let mut b = raw_client(server.sock(), Some(30));
    assert!(matches!(op(&mut a, q, Op::QueueGet(None)), Reply::Bytes(_)));
    drop(a);
    assert_eq!(
        op(&mut main, q, Op::QueueJoin(Some(300_000_000))),
        Reply::Err(RemoteError::Timeout)
    );
    // Marked done on its other connection: nothing lost.
    assert_eq!(op(&mut b, q, Op::QueueTaskDone), Reply::Ok);
    assert_eq!(op(&mut main, q, Op::QueueJoin(SECS(5))), Reply::Ok);
    drop(b);
    // A later session end writes off nothing (it holds no task).
    assert_eq!(op(&mut main, q, Op::QueuePut(vec![2], None)), Reply::Ok);
    assert_eq!(
        op(&mut main, q, Op::QueueJoin(Some(300_000_000))),
        Reply::Err(RemoteError::Timeout)
    );
    assert!(matches!(
        op(&mut main, q, Op::QueueGet(None)),
        Reply::Bytes(_)
    ));
    assert_eq!(op(&mut main, q, Op::QueueTaskDone), Reply::Ok);
    assert_eq!(op(&mut main, q, Op::QueueJoin(SECS(5))), Reply::Ok);
    server.stop();
}

#[test]
fn a_sibling_connection_opened_before_the_other_closes_keeps_the_session() {
    // The second connection is open for the client as soon as its
    // handshake returns; the server must count it in the session by then,
    // or the first one's close ends the session and writes off a task that
    // is still being worked on.
    let server = TestServer::tcp(crate::addr::PEER_TIMEOUT);
    let mut main = raw_client(server.sock(), Some(10));
    let q = joinable(&mut main);
    for i in 0..100u64 {
        assert_eq!(op(&mut main, q, Op::QueuePut(vec![1], None)), Reply::Ok);
        let mut a = raw_client(server.sock(), Some(1000 + i));
        assert!(matches!(op(&mut a, q, Op::QueueGet(None)), Reply::Bytes(_)));
        let mut b = raw_client(server.sock(), Some(1000 + i));
        drop(a);
        assert_eq!(op(&mut b, q, Op::QueueTaskDone), Reply::Ok, "round {i}");
        assert_eq!(
            op(&mut main, q, Op::QueueJoin(SECS(5))),
            Reply::Ok,
            "round {i}"
        );
    }
    server.stop();
}

// ---- keys ----------------------------------------------------------------------

#[test]
fn an_empty_key_is_refused_on_tcp_by_both_sides() {
    let (l, _) = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    let e = serve_with::<()>(l, Vec::new(), crate::addr::PEER_TIMEOUT).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let server = TestServer::tcp(crate::addr::PEER_TIMEOUT);
    assert!(matches!(
        Conn::open(&server.addr, b""),
        Err(crate::Error::EmptyAuthkey)
    ));
    server.stop();
}

// ---- log records -------------------------------------------------------------

/// Collects the crate's log records (the first test that asks installs it;
/// the records of every test of this binary arrive).
fn records() -> &'static Mutex<Vec<String>> {
    struct Collect(Mutex<Vec<String>>);
    impl log::Log for Collect {
        fn enabled(&self, m: &log::Metadata<'_>) -> bool {
            m.target() == "mp_manager"
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
                v.push(format!("{} {}", r.level(), r.args()));
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: std::sync::OnceLock<&'static Collect> = std::sync::OnceLock::new();
    let l = LOGGER.get_or_init(|| {
        let l: &'static Collect = Box::leak(Box::new(Collect(Mutex::new(Vec::new()))));
        log::set_logger(l).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Debug);
        l
    });
    &l.0
}

/// Waits (generously) for a record containing every one of `parts`.
fn logged(parts: &[&str]) -> String {
    let t0 = Instant::now();
    loop {
        let found = records()
            .lock()
            .unwrap()
            .iter()
            .find(|r| parts.iter().all(|p| r.contains(p)))
            .cloned();
        if let Some(r) = found {
            return r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no record with {parts:?} in {:?}",
            records().lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn client_connects_and_disconnects_are_logged_with_the_peer() {
    records();
    let server = TestServer::tcp(crate::addr::PEER_TIMEOUT);
    logged(&["INFO", "manager serving at", &server.sock().to_string()]);
    let mut c = Conn::open(&server.addr, KEY).unwrap();
    assert_eq!(c.call(&Request::Ping).unwrap(), Reply::Ok);
    let Stream::Tcp(s) = c.transport().socket() else {
        panic!("not TCP")
    };
    let peer = s.local_addr().unwrap().to_string();
    logged(&["DEBUG", "client connected from", &peer]);
    drop(c);
    logged(&["DEBUG", &format!("client {peer} disconnected")]);
    // A local client is named by its pid.
    let (l, addr) = Listener::local().unwrap();
    let local = TestServer::start(l, addr.clone(), crate::addr::PEER_TIMEOUT);
    drop(Conn::open(&addr, KEY).unwrap());
    let me = format!("pid {}", std::process::id());
    logged(&["client connected from", &me]);
    logged(&[&format!("client {me} disconnected")]);
    local.stop();
    server.stop();
}
