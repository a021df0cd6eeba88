//! The byte stream under a [`Connection`](super::Connection): a Unix or TCP
//! socket, the frame header, and waiting for readability.

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};

use super::error::ConnectionError;

#[derive(Debug)]
pub(super) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    pub(super) fn read_exact(&self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Stream::Unix(s) => (&*s).read_exact(buf),
            Stream::Tcp(s) => (&*s).read_exact(buf),
        }
    }

    pub(super) fn read_to_end_limited(&self, n: u64, out: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.take(n).read_to_end(out),
            Stream::Tcp(s) => s.take(n).read_to_end(out),
        }
    }

    pub(super) fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tcp(s) => s.set_read_timeout(t),
        }
    }

    pub(super) fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.set_write_timeout(t),
            Stream::Tcp(s) => s.set_write_timeout(t),
        }
    }

    pub(super) fn shutdown(&self) {
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }

    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

/// The length header of a message of `n` bytes: 4 bytes, or 12 for a
/// message over `i32::MAX` bytes. Returns the buffer and how much of it is
/// used.
pub(super) fn frame_header(n: usize) -> ([u8; 12], usize) {
    let mut h = [0u8; 12];
    match i32::try_from(n) {
        Ok(n) => {
            h[..4].copy_from_slice(&n.to_be_bytes());
            (h, 4)
        }
        Err(_) => {
            h[..4].copy_from_slice(&(-1i32).to_be_bytes());
            h[4..].copy_from_slice(&(n as u64).to_be_bytes());
            (h, 12)
        }
    }
}

pub(super) fn eof_or(e: io::Error) -> ConnectionError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ConnectionError::Eof
    } else {
        ConnectionError::Io(e)
    }
}

/// Whether `fd` is readable (or at end of file, or in error) within
/// `timeout` (`None`: wait as long as it takes).
pub(super) fn poll_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let deadline = mp_os::time::Deadline::after(timeout);
    loop {
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        let ts = deadline.remaining().map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        });
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
