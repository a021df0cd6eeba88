//! Reading a child's result frame in pieces, never blocking.
//!
//! The frame is the one [`mp_os::fdpass`] writes (an 8-byte little-endian
//! length, the bytes, descriptors attached with `SCM_RIGHTS`). A child may
//! write part of a large frame and then stall (stopped, or slow to produce
//! the rest); `join_timeout` must still return at its deadline. So the
//! parent reads whatever the socket holds, keeps the partial frame here,
//! and goes back to `poll` with the caller's deadline.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use mp_os::fdpass::MAX_FDS;
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

/// What a call to [`FrameReader::read_available`] came to.
pub(crate) enum Progress {
    /// The socket is drained and the frame is not complete yet.
    Pending,
    /// A whole frame: its bytes and descriptors.
    Frame(Vec<u8>, Vec<OwnedFd>),
    /// The stream ended (cleanly or cut short), or broke: no more frames.
    Ended,
}

/// A frame being received.
#[derive(Default)]
pub(crate) struct FrameReader {
    header: [u8; 8],
    header_got: usize,
    body: Option<Vec<u8>>,
    body_got: usize,
    fds: Vec<OwnedFd>,
    /// Frames still to be passed over before the one wanted.
    skip: usize,
}

impl FrameReader {
    /// A reader that passes over the first `skip` frames (a fork-server
    /// child's hello precedes its result).
    pub(crate) fn skipping(skip: usize) -> FrameReader {
        FrameReader {
            skip,
            ..FrameReader::default()
        }
    }

    /// Reads what `sock` holds now, without blocking, up to the end of one
    /// frame of at most `max_len` bytes.
    pub(crate) fn read_available(&mut self, sock: &UnixStream, max_len: usize) -> Progress {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
        loop {
            let buf: &mut [u8] = match &mut self.body {
                None => &mut self.header[self.header_got..],
                Some(body) => &mut body[self.body_got..],
            };
            if buf.is_empty() {
                // An empty frame (no body bytes to read).
                match self.finish() {
                    Some(frame) => return frame,
                    None => continue,
                }
            }
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let r = recvmsg(
                sock,
                &mut [IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
            );
            let n = match r {
                Ok(m) => m.bytes,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Progress::Pending,
                Err(_) => return Progress::Ended,
            };
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(rights) = msg {
                    self.fds.extend(rights);
                }
            }
            if n == 0 {
                return Progress::Ended;
            }
            match &self.body {
                None => {
                    self.header_got += n;
                    if self.header_got == self.header.len() {
                        let len = u64::from_le_bytes(self.header);
                        if len > max_len as u64 {
                            return Progress::Ended; // corrupt
                        }
                        self.body = Some(vec![0; len as usize]);
                    }
                }
                Some(body) => {
                    self.body_got += n;
                    if self.body_got == body.len()
                        && let Some(frame) = self.finish()
                    {
                        return frame;
                    }
                }
            }
        }
    }

    /// A frame is complete: hands it out, or passes over it.
    fn finish(&mut self) -> Option<Progress> {
        let skip = self.skip;
        let done = std::mem::replace(self, FrameReader::skipping(skip.saturating_sub(1)));
        (skip == 0).then(|| Progress::Frame(done.body.unwrap_or_default(), done.fds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn a_frame_in_pieces() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::default();
        assert!(matches!(r.read_available(&b, 1 << 20), Progress::Pending));
        let null = std::fs::File::open("/dev/null").unwrap();
        let mut frame = Vec::new();
        frame.extend_from_slice(&5u64.to_le_bytes());
        frame.extend_from_slice(b"hello");
        // An empty frame with a descriptor, then a frame in 3-byte pieces.
        mp_os::fdpass::send(&a, b"", &[null.as_fd()]).unwrap();
        let Progress::Frame(bytes, fds) = r.read_available(&b, 1 << 20) else {
            panic!("an empty frame")
        };
        assert!(bytes.is_empty());
        assert_eq!(fds.len(), 1);
        for piece in frame.chunks(3) {
            assert!(matches!(r.read_available(&b, 1 << 20), Progress::Pending));
            (&a).write_all(piece).unwrap();
        }
        let Progress::Frame(bytes, fds) = r.read_available(&b, 1 << 20) else {
            panic!("a whole frame")
        };
        assert_eq!(bytes, b"hello");
        assert!(fds.is_empty());
        (&a).write_all(&frame[..4]).unwrap();
        drop(a);
        assert!(matches!(r.read_available(&b, 1 << 20), Progress::Ended));
    }

    #[test]
    fn skipped_frames_are_passed_over() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut r = FrameReader::skipping(2);
        mp_os::fdpass::send(&a, b"", &[]).unwrap();
        mp_os::fdpass::send(&a, b"hello", &[]).unwrap();
        assert!(matches!(r.read_available(&b, 1 << 20), Progress::Pending));
        mp_os::fdpass::send(&a, b"world", &[]).unwrap();
        let Progress::Frame(bytes, _) = r.read_available(&b, 1 << 20) else {
            panic!("the third frame")
        };
        assert_eq!(bytes, b"world");
    }

    #[test]
    fn an_oversized_length_ends_the_stream() {
        let (a, b) = UnixStream::pair().unwrap();
        (&a).write_all(&u64::MAX.to_le_bytes()).unwrap();
        let mut r = FrameReader::default();
        assert!(matches!(r.read_available(&b, 1 << 20), Progress::Ended));
    }
}
