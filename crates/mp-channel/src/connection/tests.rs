use std::os::unix::net::UnixStream;

use super::socket::frame_header;
use super::{Connection, ConnectionError};

#[test]
fn header_forms() {
    let (h, n) = frame_header(5);
    assert_eq!(&h[..n], &[0, 0, 0, 5]);
    let (h, n) = frame_header(0x7fff_ffff);
    assert_eq!(&h[..n], &[0x7f, 0xff, 0xff, 0xff]);
    let (h, n) = frame_header(0x8000_0000);
    assert_eq!(
        &h[..n],
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x80, 0, 0, 0]
    );
}

#[test]
fn reads_the_extended_header() {
    use std::io::Write;
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Connection::from(a);
    b.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 3])
        .unwrap();
    b.write_all(b"abc").unwrap();
    assert_eq!(a.recv_bytes().unwrap(), b"abc");
    b.write_all(&[0xff, 0xff, 0xff, 0xfe]).unwrap();
    assert!(matches!(a.recv_bytes(), Err(ConnectionError::Io(_))));
}
