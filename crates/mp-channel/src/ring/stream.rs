//! Messages larger than a quarter of the ring, streamed in fragments
//! (FIRST, ..., LAST; the first starts with the total length): one writer
//! to one reader, under both locks from the first fragment to the last.

use mp_os::time::Deadline;

use super::Ring;
use super::layout::{FIRST, LAST, rec_size};
use super::lock::LOCK_WAITERS;
use super::read::Head;
use super::sink::{RingReadError, Sink};
use super::wait::Waiter;
use super::write::RingWriteError;
use crate::sync::{Ordering::*, alive};

impl Ring {
    /// Whether a streamed message of `len` bytes fits in the room the ring
    /// has now, so that writing it would not wait for a consumer (unless
    /// other writers fill the room first). A hint, as [`has_room`]: every
    /// fragment is counted as a full one, plus one record of padding where
    /// the ring wraps.
    ///
    /// [`has_room`]: Ring::has_room
    pub(crate) fn stream_fits(&self, len: u64) -> bool {
        let c = self.ctl();
        let frags = (len + 8).div_ceil(self.max_frag);
        let need = (frags + 1).saturating_mul(rec_size(self.max_frag));
        if need > self.cap {
            return false;
        }
        let t = c.tail.pos.load(Acquire);
        // Saturating: a peer may have written anything into `tail`.
        c.released.v.load(Acquire) >= t.saturating_add(need).saturating_sub(self.cap)
    }

    /// Streams a large message (under `wlock` from the first fragment to
    /// the last). The first fragment waits for room until `w.deadline`, the
    /// others until `rest`; a writer that gives up after its first
    /// fragment releases `wlock` with the message unfinished, which tells
    /// its reader that the message was abandoned (see `read_stream`).
    pub(super) fn write_stream(
        &self,
        msg: &[u8],
        w: &Waiter<'_>,
        maxsize: u64,
        rest: Deadline,
    ) -> Result<(), RingWriteError> {
        let c = self.ctl();
        let total = msg.len() as u64;
        if !self.lock(&c.tail.lock, w.me, w.deadline) {
            return Err(RingWriteError::Timeout);
        }
        let prefix = total.to_le_bytes();
        let mut off = 0u64;
        let mut first = true;
        while first || off < total {
            let room = if first {
                self.max_frag - 8
            } else {
                self.max_frag
            };
            let n = room.min(total - off);
            let len = n + if first { 8 } else { 0 };
            let mut flags = if first { FIRST } else { 0 };
            if off + n == total {
                flags |= LAST;
            }
            let pos = loop {
                match self.reserve(len, flags, w.me, maxsize) {
                    Ok(p) => break p,
                    Err(full) => {
                        let dl = if first { w.deadline } else { rest };
                        if let Err(e) = self.wait_room(w, dl, full, maxsize) {
                            self.unlock(&c.tail.lock);
                            if !first {
                                // A reader waiting for the next fragment
                                // looks at `wlock` again at once.
                                self.notify_data();
                            }
                            return Err(e);
                        }
                    }
                }
            };
            let chunk = &msg[off as usize..(off + n) as usize];
            // SAFETY: we reserved `len` payload bytes at `pos`.
            unsafe {
                if first {
                    self.put(pos, 0, &prefix);
                    self.put(pos, 8, chunk);
                } else {
                    self.put(pos, 0, chunk);
                }
            }
            self.commit(pos);
            off += n;
            first = false;
        }
        self.unlock(&c.tail.lock);
        Ok(())
    }

    /// Whether the writer `wtid` of the streamed message being read gave
    /// up on it (its deadline passed): it no longer holds `wlock`, which it
    /// holds from the first fragment to the last, and the next fragment is
    /// not there. The lock word is read first, so that a fragment committed
    /// before the writer let go of the lock is seen.
    pub(super) fn abandoned(&self, wtid: u32) -> bool {
        self.ctl().tail.lock.load(Acquire) & !LOCK_WAITERS != wtid && !self.peek_ready()
    }

    /// Reads the fragments of a streamed message (holding `rlock`, which
    /// this releases). `Ok(None)`: the writer died or gave up mid-message
    /// (the message is dropped: a reader gets a streamed message whole or
    /// not at all). The wait for each fragment has no deadline of its own:
    /// it ends when the fragment comes or the writer dies or gives up.
    pub(super) fn read_stream<S: Sink>(
        &self,
        h0: u64,
        len0: u64,
        wtid: u32,
        total: u64,
        sink: &mut S,
        w: &Waiter<'_>,
    ) -> Result<Option<S::Out>, RingReadError> {
        let c = self.ctl();
        let unlock = || self.unlock(&c.head.lock);
        let mut buf = match sink.start(total) {
            Ok(b) => b,
            Err(e) => {
                self.consume(h0, rec_size(len0));
                unlock();
                return Err(e);
            }
        };
        let mut off = len0 - 8;
        // A message much larger than the caches goes to memory anyway:
        // storing it around them spares reading each line in first.
        let nt = total >= STREAM_AROUND_CACHE;
        // SAFETY: we claimed the record at h0.
        unsafe { self.with_payload(h0, 8, off, |b| buf.copy_in(0, b, nt)) };
        self.consume(h0, rec_size(len0));
        while off < total {
            let alive_writer = self.block(&c.data, w, Deadline::never(), |slow| {
                if self.peek_ready() {
                    Some(true)
                } else if (slow && !alive(wtid)) || !c.writers.any() || self.abandoned(wtid) {
                    Some(false)
                } else {
                    None
                }
            });
            if alive_writer != Some(true) {
                crate::log_stream_abandoned(wtid);
                self.count_dropped();
                sink.dropped();
                unlock();
                return Ok(None);
            }
            let h = c.head.pos.load(Relaxed);
            match self.look(h) {
                Head::Empty | Head::Writing { .. } => {}
                Head::Skip { size, pad } => self.skip(h, size, pad),
                Head::Corrupt => {
                    unlock();
                    return Err(RingReadError::Corrupt("invalid record header in the ring"));
                }
                Head::Ready { len, flags, tid } => {
                    if tid != wtid || flags & FIRST != 0 {
                        // The writer gave up; this is the next message.
                        self.count_dropped();
                        sink.dropped();
                        unlock();
                        return Ok(None);
                    }
                    self.claim_at(h, len, w.me);
                    if off + len > total {
                        self.consume(h, rec_size(len));
                        unlock();
                        return Err(RingReadError::Corrupt(
                            "streamed message longer than announced",
                        ));
                    }
                    // SAFETY: we claimed the record at h.
                    unsafe { self.with_payload(h, 0, len, |b| buf.copy_in(off as usize, b, nt)) };
                    self.consume(h, rec_size(len));
                    off += len;
                    if flags & LAST != 0 && off != total {
                        unlock();
                        return Err(RingReadError::Corrupt(
                            "streamed message shorter than announced",
                        ));
                    }
                }
            }
        }
        unlock();
        // SAFETY: the fragments, checked to add up to no more than
        // `total`, were copied into `buf` until `off == total`.
        unsafe { sink.finish(total) }.map(Some)
    }
}

/// Streamed messages at least this large are copied out of the ring with
/// non-temporal stores (see `copy_out`).
pub(super) const STREAM_AROUND_CACHE: u64 = 16 << 20;
