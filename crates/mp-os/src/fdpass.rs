//! Framed messages with file descriptors over Unix stream sockets.
//!
//! A frame is an 8-byte little-endian length, the bytes, and up to
//! [`MAX_FDS`] descriptors attached with `SCM_RIGHTS` to the first chunk.
//! Receivers give a maximum length, so a corrupt or hostile length prefix is
//! an error rather than a huge allocation.
//!
//! ```
//! use std::os::unix::net::UnixStream;
//! use std::os::fd::AsFd;
//! use mp_os::fdpass;
//!
//! let (a, b) = UnixStream::pair()?;
//! let f = std::fs::File::open("/dev/null")?;
//! fdpass::send(&a, b"hello", &[f.as_fd()])?;
//! let (bytes, fds) = fdpass::recv(&b, 1024)?.expect("a frame");
//! assert_eq!(bytes, b"hello");
//! assert_eq!(fds.len(), 1);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::io::{self, IoSlice, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, recvmsg, sendmsg,
};

/// Most descriptors one frame may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// Sends one frame: `bytes` and `fds`.
///
/// # Errors
///
/// `InvalidInput` for more than [`MAX_FDS`] descriptors; the socket's error
/// (`BrokenPipe` when the peer has gone).
pub fn send(sock: &UnixStream, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "too many file descriptors for one message",
        ));
    }
    let len = (bytes.len() as u64).to_le_bytes();
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control buffer too small"));
    }
    let total = len.len() + bytes.len();
    let mut sent = 0usize;
    while sent < total {
        let iov: Vec<IoSlice<'_>> = if sent < len.len() {
            vec![IoSlice::new(&len[sent..]), IoSlice::new(bytes)]
        } else {
            vec![IoSlice::new(&bytes[sent - len.len()..])]
        };
        let n = if sent == 0 {
            sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL)
        } else {
            sendmsg(
                sock,
                &iov,
                &mut SendAncillaryBuffer::default(),
                SendFlags::NOSIGNAL,
            )
        };
        match n {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Receives one frame of at most `max_len` bytes. Returns `None` on a clean
/// end of stream before a frame starts.
///
/// # Errors
///
/// `InvalidData` for a frame longer than `max_len`; `UnexpectedEof` for a
/// frame cut short; the socket's error.
pub fn recv(sock: &UnixStream, max_len: usize) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut len = [0u8; 8];
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut got = 0usize;
    let mut fds = Vec::new();
    while got < len.len() {
        let r = recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut len[got..])],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        );
        match r {
            Ok(m) if m.bytes == 0 => {
                if got == 0 {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "frame header cut short",
                ));
            }
            Ok(m) => got += m.bytes,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(rights) = msg {
                fds.extend(rights);
            }
        }
    }
    let n = u64::from_le_bytes(len);
    if n > max_len as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes exceeds the limit of {max_len}"),
        ));
    }
    let mut buf = vec![0u8; n as usize];
    let mut reader = sock;
    reader.read_exact(&mut buf)?;
    Ok(Some((buf, fds)))
}
