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
