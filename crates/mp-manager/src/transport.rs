//! How an authenticated connection carries its frames: the socket itself
//! (TCP, and the handshake), or a shared-memory pipe set up over a local
//! socket right after the handshake (see [`upgrade`] and [`accept_upgrade`]).
//!
//! A frame's contents are the same on both: one postcard-encoded request or
//! reply. On the socket a frame is a `u32` length and the body; on the pipe
//! it is one pipe message. Both are limited to the same maximum size.
//!
//! On a pipe connection the socket stays open as the liveness channel: a
//! receiver waiting for a frame checks it for a hang-up between slices of
//! [`SLICE`], so a peer that dies (or a process that inherited the pipe end
//! across a `fork` and lives on) cannot make the other side wait forever,
//! and the server's blocking operations keep watching the socket as before.

use std::io::{self, Read};
use std::os::fd::AsFd;
use std::time::Duration;

use mp_channel::{PipeEnd, RecvTimeoutError, SendError, WaitMode};

use crate::addr::Stream;
use crate::wire;

// SLICE: how long a pipe receiver waits before checking the socket for a
// hang-up; SpinFor: the workspace's spin of a request/reply loop.
use mp_os::futex::{SLICE, SpinFor};
/// Ring bytes per direction of a connection's pipe. Larger frames are
/// streamed through it.
const PIPE_RING: usize = 64 << 10;
/// The receive buffer a pipe connection keeps between frames; a larger one
/// (grown for a big frame) is given back.
const KEEP_BUF: usize = 1 << 20;
/// The largest upgrade message (a serialized pipe end).
const MAX_UPGRADE: usize = 4096;

/// A buffered frame reader for the request/reply loop: one `recv` usually
/// brings a whole frame (length and body), and before blocking it polls the
/// socket for a short while ([`SpinFor`]). On machines
/// where waking a sleeping thread on another CPU costs several
/// microseconds each way (this project's 2-vCPU VM), a peer that answers
/// within the spin is read without either side sleeping.
#[derive(Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    /// Reads the next frame of at most `max` bytes and returns its body's
    /// range in [`buf`](FrameReader::buf). `Ok(None)` on a clean end of
    /// stream before a frame starts.
    pub(crate) fn next(
        &mut self,
        s: &Stream,
        max: usize,
        spin: Duration,
    ) -> io::Result<Option<std::ops::Range<usize>>> {
        let mut spinning = SpinFor::new(spin);
        loop {
            let have = self.end - self.start;
            let mut need = 4;
            if have >= 4 {
                let n = u32::from_le_bytes(
                    self.buf[self.start..self.start + 4]
                        .try_into()
                        .expect("4 bytes"),
                ) as usize;
                if n > max {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("frame of {n} bytes exceeds the limit of {max}"),
                    ));
                }
                if have >= 4 + n {
                    let body = self.start + 4..self.start + 4 + n;
                    self.start += 4 + n;
                    return Ok(Some(body));
                }
                need = 4 + n;
            }
            // Make room: move the partial frame to the front, then grow by
            // at most 1 MiB beyond what has arrived. A buffer that grew for
            // a big frame is given back once it is empty.
            if self.start == self.end && self.buf.len() > 4 << 20 {
                self.buf = Vec::new();
                self.start = 0;
                self.end = 0;
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let want = need.clamp(64 << 10, self.end + (1 << 20));
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let room = &mut self.buf[self.end..];
            let got = match s.read_nonblocking(room)? {
                Some(n) => n,
                None => {
                    if spinning.again() {
                        continue;
                    }
                    let mut r = s;
                    loop {
                        match r.read(&mut self.buf[self.end..]) {
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            other => break other?,
                        }
                    }
                }
            };
            if got == 0 {
                if self.end == 0 {
                    return Ok(None);
                }
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end += got;
        }
    }

    /// The buffer the ranges from [`next`](FrameReader::next) index.
    pub(crate) fn buf(&self) -> &[u8] {
        &self.buf
    }
}

/// One connection's transport.
pub(crate) enum Transport {
    /// Frames on the socket, read with a buffered reader that polls for
    /// `spin` before sleeping.
    Stream {
        stream: Stream,
        reader: FrameReader,
        frame: Vec<u8>,
        spin: Duration,
    },
    /// Frames as messages of a shared-memory pipe; the socket only tells
    /// whether the peer is still there. A receiver polls the pipe for
    /// `spin` before sleeping (see [`Transport::recv_frame`]).
    Pipe {
        stream: Stream,
        pipe: PipeEnd,
        buf: Vec<u8>,
        spin: Duration,
    },
}

impl Transport {
    /// A socket transport.
    pub(crate) fn stream(stream: Stream, spin: Duration) -> Transport {
        Transport::Stream {
            stream,
            reader: FrameReader::default(),
            frame: Vec::new(),
            spin,
        }
    }

    /// A pipe transport. The pipe's own wait does not spin: the transport
    /// polls before it (spinning there without yielding would starve a
    /// peer that shares the CPU for the whole spin budget).
    pub(crate) fn pipe(stream: Stream, pipe: PipeEnd, spin: Duration) -> Transport {
        pipe.set_wait_mode(WaitMode::NoSpin);
        Transport::Pipe {
            stream,
            pipe,
            buf: vec![0; 4096],
            spin,
        }
    }

    /// The connection's socket (the liveness channel of a pipe transport).
    pub(crate) fn socket(&self) -> &Stream {
        match self {
            Transport::Stream { stream, .. } | Transport::Pipe { stream, .. } => stream,
        }
    }

    /// Whether the frames travel through shared memory.
    #[cfg(test)]
    pub(crate) fn is_pipe(&self) -> bool {
        matches!(self, Transport::Pipe { .. })
    }

    /// Sends one frame (`body` at most [`wire::MAX_FRAME`] bytes: callers
    /// check). A peer that has gone is `BrokenPipe`.
    pub(crate) fn send_frame(&mut self, body: &[u8]) -> io::Result<()> {
        match self {
            Transport::Stream { stream, frame, .. } => {
                let r = wire::write_frame(&mut &*stream, frame, body);
                if frame.capacity() > 4 << 20 {
                    *frame = Vec::new();
                }
                r
            }
            Transport::Pipe { pipe, .. } => pipe.send_bytes(body).map_err(|e| match e {
                SendError::Disconnected(()) | SendError::Closed(()) => {
                    io::ErrorKind::BrokenPipe.into()
                }
                e => io::Error::other(e.to_string()),
            }),
        }
    }

    /// Receives one frame of at most `max` bytes. `Ok(None)` when the peer
    /// has gone (a clean end of stream, a closed pipe, or a hung-up
    /// socket) before a frame starts.
    ///
    /// # Errors
    ///
    /// `InvalidData` for a frame over `max` or a damaged pipe message,
    /// `UnexpectedEof` for a frame cut short, the socket's error.
    pub(crate) fn recv_frame(&mut self, max: usize) -> io::Result<Option<&[u8]>> {
        match self {
            Transport::Stream {
                stream,
                reader,
                spin,
                ..
            } => match reader.next(stream, max, *spin)? {
                Some(range) => Ok(Some(&reader.buf()[range])),
                None => Ok(None),
            },
            Transport::Pipe {
                stream,
                pipe,
                buf,
                spin,
            } => {
                if buf.len() > KEEP_BUF {
                    *buf = vec![0; KEEP_BUF];
                }
                // Poll first ([`SpinFor`]: a few polls of pure spinning for
                // the reply of a peer running on another CPU, then yielding
                // the CPU between polls, so that a peer that shares this
                // CPU runs at once); then sleep (the pipe's own wait,
                // without spinning) in slices.
                let mut spinning = SpinFor::new(*spin);
                let mut polling = true;
                loop {
                    let wait = if polling { Duration::ZERO } else { SLICE };
                    // Never more than `max` at once: a longer message is
                    // `TooShort` and refused below.
                    let lim = buf.len().min(max);
                    match pipe.recv_bytes_into_timeout(&mut buf[..lim], wait) {
                        Ok(n) => return Ok(Some(&buf[..n])),
                        Err(RecvTimeoutError::TooShort { needed }) => {
                            if needed > max {
                                return Err(too_big(needed, max));
                            }
                            buf.resize(needed, 0);
                        }
                        Err(RecvTimeoutError::Timeout) if polling => {
                            polling = spinning.again();
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            if stream.peer_gone() {
                                return Ok(None);
                            }
                        }
                        Err(RecvTimeoutError::Disconnected | RecvTimeoutError::Closed) => {
                            return Ok(None);
                        }
                        Err(e) => {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string()));
                        }
                    }
                }
            }
        }
    }
}

fn too_big(n: usize, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {n} bytes exceeds the limit of {max}"),
    )
}

fn unix(stream: &Stream) -> Option<&std::os::unix::net::UnixStream> {
    match stream {
        Stream::Unix(s) => Some(s),
        Stream::Tcp(_) => None,
    }
}

/// The client side of the upgrade, right after a successful handshake on
/// a Unix socket (the socket's read timeout still bounds the wait): creates
/// a pipe, sends the server's end with its descriptors, and waits for the
/// server's acknowledgement. A TCP stream stays as it is.
pub(crate) fn upgrade(stream: Stream, spin: Duration) -> io::Result<Transport> {
    let Some(sock) = unix(&stream) else {
        return Ok(Transport::stream(stream, spin));
    };
    let (ours, theirs) = mp_channel::Pipe::builder()
        .capacity(PIPE_RING)
        .build()
        .map_err(|e| io::Error::other(e.to_string()))?;
    // `transits` keeps the pipe connected until the server has its end.
    let (bytes, fds, transits) = mp_os::handle::collect_handles(|| postcard::to_allocvec(&theirs));
    let bytes = bytes.map_err(io::Error::other)?;
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    mp_os::fdpass::send(sock, &bytes, &borrowed)?;
    drop(borrowed);
    drop(fds);
    let mut ack = Vec::new();
    if !wire::read_frame(&mut &stream, wire::MAX_HANDSHAKE_FRAME, &mut ack)? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if ack != [0] {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the server refused the shared-memory pipe",
        ));
    }
    // The server holds its end now: ours goes, so that the server sees the
    // pipe disconnected when this process's end is gone.
    drop((theirs, transits));
    Ok(Transport::pipe(stream, ours, spin))
}

/// The server side of the upgrade, right after a successful handshake
/// (under the handshake's timeouts): on a Unix socket, receives the pipe
/// end the client sent and acknowledges it; a TCP stream stays as it is.
/// `Ok(None)` when the client went away or sent something that is not a
/// pipe end (it is told so, and the connection is closed).
pub(crate) fn accept_upgrade(stream: Stream, spin: Duration) -> io::Result<Option<Transport>> {
    let Some(sock) = unix(&stream) else {
        return Ok(Some(Transport::stream(stream, spin)));
    };
    let Some((bytes, fds)) = mp_os::fdpass::recv(sock, MAX_UPGRADE)? else {
        return Ok(None);
    };
    // Strict: a client must pass its descriptors, not name some process's
    // by /proc path (which this server would open on its behalf); the pipe
    // end checks that they are a sealed memfd and eventfds.
    let end = mp_os::handle::provide_fds_strict(fds, || postcard::from_bytes::<PipeEnd>(&bytes));
    let mut buf = Vec::new();
    match end {
        Ok(pipe) if pipe.readable() && pipe.writable() => {
            wire::write_frame(&mut &stream, &mut buf, &[0])?;
            Ok(Some(Transport::pipe(stream, pipe, spin)))
        }
        _ => {
            let _ = wire::write_frame(&mut &stream, &mut buf, &[1]);
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests;
