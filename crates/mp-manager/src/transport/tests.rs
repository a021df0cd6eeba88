//! The two transports: local connections go over a pipe, remote ones stay
//! on the socket; limits and liveness on the pipe.

use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use super::*;
use crate::addr::{Address, Listener};
use crate::client::Conn;
use crate::wire::{Init, Op, Reply, Request};

const KEY: &[u8] = b"transport tests";

/// Runs a server on `l` in a thread, then `f` against it, then shuts the
/// server down.
fn with_server(l: Listener, addr: Address, f: impl FnOnce(&Address)) {
    let t = std::thread::spawn(move || crate::server::serve::<()>(l, KEY.to_vec()));
    f(&addr);
    let mut c = Conn::open(&addr, KEY).unwrap();
    assert_eq!(c.call(&Request::Shutdown).unwrap(), Reply::Ok);
    t.join().unwrap().unwrap();
}

#[test]
fn local_connections_use_a_pipe_and_carry_large_frames() {
    let (l, addr) = Listener::local().unwrap();
    with_server(l, addr, |addr| {
        let mut c = Conn::open(addr, KEY).unwrap();
        assert!(c.transport().is_pipe());
        assert_eq!(c.call(&Request::Ping).unwrap(), Reply::Ok);
        // Frames several times the ring's size, both ways.
        let items: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10_000]).collect();
        let id = match c.call(&Request::Create(Init::List(items.clone()))).unwrap() {
            Reply::Id(id) => id,
            r => panic!("{r:?}"),
        };
        let op = Op::ListSnapshot;
        assert_eq!(
            c.call(&Request::Call { id, op }).unwrap(),
            Reply::Seq(items)
        );
        // And small ones again after them.
        assert_eq!(c.call(&Request::Ping).unwrap(), Reply::Ok);
    });
}

#[test]
fn remote_connections_stay_on_the_socket() {
    let (l, addr) = Listener::tcp("127.0.0.1:0".parse().unwrap()).unwrap();
    with_server(l, addr, |addr| {
        let mut c = Conn::open(addr, KEY).unwrap();
        assert!(!c.transport().is_pipe());
        assert_eq!(c.call(&Request::Ping).unwrap(), Reply::Ok);
    });
}

fn pipe_pair() -> (Transport, PipeEnd, UnixStream) {
    let (a, b) = mp_channel::Pipe::builder().capacity(4096).build().unwrap();
    let (s, peer) = UnixStream::pair().unwrap();
    let t = Transport::pipe(Stream::Unix(s), a, Duration::from_micros(50));
    (t, b, peer)
}

#[test]
fn pipe_frames_over_the_limit_are_refused() {
    let (mut t, peer, _sock) = pipe_pair();
    peer.send_bytes(&[7; 100]).unwrap();
    assert_eq!(t.recv_frame(100).unwrap(), Some(&[7u8; 100][..]));
    peer.send_bytes(&[7; 101]).unwrap();
    let e = t.recv_frame(100).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    // (The refused message stays in the pipe; the connection is closed.)
    // Streamed (larger than the ring) and over the limit.
    let (mut t, peer, _sock) = pipe_pair();
    let big = std::thread::spawn(move || {
        let _ = peer.send_bytes(&vec![1; 20_000]);
    });
    let e = t.recv_frame(10_000).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    drop(t); // the sender sees the reader gone
    big.join().unwrap();
}

#[test]
fn a_hung_up_socket_ends_a_pipe_wait() {
    // The peer's pipe end is still held (as by a process that inherited it
    // across a fork), but its socket is closed: the wait ends promptly.
    let (mut t, _peer, sock) = pipe_pair();
    let t0 = Instant::now();
    drop(sock);
    assert_eq!(t.recv_frame(100).unwrap(), None);
    assert!(t0.elapsed() < Duration::from_secs(5));
}

#[test]
fn a_closed_pipe_is_the_end_and_sends_fail() {
    let (mut t, peer, _sock) = pipe_pair();
    drop(peer);
    assert_eq!(t.recv_frame(100).unwrap(), None);
    let e = t.send_frame(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
}

/// The wire form of a segment inside a channel handle (`mp_os::segment`),
/// to cut one out of a message.
#[derive(serde::Deserialize)]
#[allow(dead_code)]
enum WireFd {
    Passed(u32),
    Proc {
        token: u32,
        fd: i32,
        dev: u64,
        ino: u64,
    },
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SegWire {
    fd: WireFd,
    id: u64,
    ticket: u64,
}

fn seg_len(bytes: &[u8]) -> usize {
    bytes.len() - postcard::take_from_bytes::<SegWire>(bytes).unwrap().1.len()
}

/// Sends `bytes` and `fds` as a client's upgrade message; what the server
/// side makes of it.
fn upgrade_with(bytes: &[u8], fds: &[std::os::fd::OwnedFd]) -> Option<Transport> {
    let (client, server) = UnixStream::pair().unwrap();
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    mp_os::fdpass::send(&client, bytes, &borrowed).unwrap();
    accept_upgrade(Stream::Unix(server), Duration::from_micros(50)).unwrap()
}

#[test]
fn the_upgrade_refuses_descriptors_named_by_proc_path() {
    let (_ours, theirs) = mp_channel::Pipe::builder().capacity(4096).build().unwrap();
    let (good, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(&theirs));
    let good = good.unwrap();
    // The segment named as /proc/PID/fd/N (here this process's own, but it
    // could be any process's), the eventfds passed as they should be.
    let by_proc = postcard::to_allocvec(&theirs).unwrap();
    let forged = [&by_proc[..seg_len(&by_proc)], &good[seg_len(&good)..]].concat();
    let dup = |fds: &[std::os::fd::OwnedFd]| -> Vec<_> {
        fds.iter().map(|f| f.try_clone().unwrap()).collect()
    };
    assert!(
        upgrade_with(&forged, &dup(&fds)).is_none(),
        "a /proc path accepted"
    );
    // The honest message is accepted (the refusal is about the form).
    assert!(upgrade_with(&good, &dup(&fds)).is_some());
    // Descriptors of the wrong kind: an eventfd where the segment goes.
    let mut wrong = dup(&fds);
    wrong[0] = wrong[1].try_clone().unwrap();
    assert!(
        upgrade_with(&good, &wrong).is_none(),
        "an eventfd taken for a segment"
    );
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[test]
fn frame_reader_splits_coalesced_and_partial_frames() {
    use std::io::Write;

    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let (a, b) = (Stream::Unix(a), Stream::Unix(b));
    let mut r = FrameReader::default();
    // Two frames in one write, then one frame in pieces.
    let mut two = frame(b"one");
    two.extend(frame(b"two!"));
    (&a).write_all(&two).unwrap();
    let f = r.next(&b, 64, Duration::ZERO).unwrap().unwrap();
    assert_eq!(&r.buf()[f], b"one");
    let f = r.next(&b, 64, Duration::ZERO).unwrap().unwrap();
    assert_eq!(&r.buf()[f], b"two!");
    let third = frame(&[9u8; 100]);
    let writer = std::thread::spawn(move || {
        for chunk in third.chunks(7) {
            (&a).write_all(chunk).unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        a
    });
    let f = r.next(&b, 128, Duration::from_micros(50)).unwrap().unwrap();
    assert_eq!(&r.buf()[f], &[9u8; 100][..]);
    let a = writer.join().unwrap();
    // Over the limit: an error; end of stream: None.
    (&a).write_all(&frame(&[0u8; 65])).unwrap();
    assert!(r.next(&b, 64, Duration::ZERO).is_err());
    let mut r = FrameReader::default();
    drop(a);
    let _ = r.next(&b, 1 << 20, Duration::ZERO); // drains the rest
    assert!(matches!(
        r.next(&b, 1 << 20, Duration::ZERO),
        Ok(None) | Err(_)
    ));
}
