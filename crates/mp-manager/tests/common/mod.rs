//! A raw client that speaks the documented wire protocol (README.md) with
//! its own code, for the tests that misbehave on purpose.

#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub(crate) use mp_testkit::gone_within;

pub(crate) const CLIENT_ROLE: &[u8] = b"mp-manager client v1";
pub(crate) const SERVER_ROLE: &[u8] = b"mp-manager server v1";

pub(crate) fn tag(key: &[u8], role: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(role);
    mac.update(nonce);
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn send_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let mut v = (body.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(body);
    s.write_all(&v)
}

/// Reads a frame; `None` when the peer closed (or reset) the connection.
pub(crate) fn read_frame(s: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let n = u32::from_le_bytes(len) as usize;
    assert!(n <= 64 << 20, "server sent a frame over the limit");
    let mut b = vec![0u8; n];
    s.read_exact(&mut b)?;
    Ok(Some(b))
}

/// Connects and authenticates with `key`; panics if the server refuses.
pub(crate) fn authed(addr: SocketAddr, key: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = read_frame(&mut s).unwrap().expect("a challenge");
    assert_eq!(hello.len(), 8 + 2 + 32);
    assert_eq!(&hello[..5], b"MPMGR");
    let ns = &hello[10..];
    let nc = [7u8; 32];
    let mut answer = tag(key, CLIENT_ROLE, ns);
    answer.extend_from_slice(&nc);
    send_frame(&mut s, &answer).unwrap();
    let welcome = read_frame(&mut s).unwrap().expect("a welcome");
    assert_eq!(welcome[0], 0, "the server refused the key");
    assert_eq!(&welcome[1..], &tag(key, SERVER_ROLE, &nc)[..]);
    s
}

pub(crate) fn tcp_addr(m: &mp_manager::Manager) -> SocketAddr {
    match m.address() {
        mp_manager::Address::Tcp(a) => *a,
        other => panic!("not a TCP manager: {other}"),
    }
}

pub(crate) fn wait_nonzero(v: &mp_shm::Value<u32>) {
    let t = Instant::now();
    while v.get() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "child never got ready"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
