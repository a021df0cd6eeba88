//! Readers: what the record at `head` is, taking a message (decoded
//! straight from the ring under `rlock` when small, else claimed first),
//! and releasing its space to the writers.

use super::Ring;
use super::layout::{
    CLAIMED, COMMITTED, CONSUMED, DROP, FIRST, INLINE_MAX, LAST, LEN_MASK, PAD, ST_MASK, WRITING,
    pos_ok, rec_size,
};
use super::sink::{RingReadError, Sink};
use super::wait::Waiter;
use crate::sync::{Ordering::*, alive, fence, fence_after_rmw};

/// How often a reader that caught up with a stream polls for the next
/// message (see `read`).
pub(super) const STREAM_PACE_NS: u32 = if cfg!(loom) { 0 } else { 300 };

pub(super) enum Head {
    Empty,
    Writing { tid: u32, size: u64, first: bool },
    Ready { len: u64, flags: u32, tid: u32 },
    Skip { size: u64, pad: bool },
    Corrupt,
}

impl Ring {
    /// What the record at `h` is. A position that is not one, or a
    /// record that would end beyond the buffer, is `Head::Corrupt`.
    pub(super) fn look(&self, h: u64) -> Head {
        if !pos_ok(h) {
            return Head::Corrupt;
        }
        let hd = self.hdr(h);
        let s = hd.stamp.load(Acquire);
        if s & !ST_MASK != h {
            return Head::Empty;
        }
        let lf = hd.len.load(Relaxed);
        let len = u64::from(lf & LEN_MASK);
        let size = rec_size(len);
        if (h & self.mask) + size > self.cap {
            return Head::Corrupt;
        }
        match s & ST_MASK {
            WRITING => Head::Writing {
                tid: hd.tid.load(Relaxed),
                size,
                first: lf & FIRST != 0,
            },
            COMMITTED | CLAIMED => Head::Ready {
                len,
                flags: lf & !LEN_MASK,
                tid: hd.tid.load(Relaxed),
            },
            PAD => Head::Skip { size, pad: true },
            CONSUMED => Head::Skip { size, pad: false },
            _ => Head::Empty,
        }
    }

    /// Whether a record waits at `head` (cheap, no lock).
    #[inline]
    pub(crate) fn peek_ready(&self) -> bool {
        let h = self.ctl().head.pos.load(Acquire);
        matches!(
            self.look(h),
            Head::Ready { .. } | Head::Skip { .. } | Head::Corrupt
        )
    }

    /// Whether a receive would not block: a record waits, or no writer is
    /// left. `slow` also looks for dead writers and torn records.
    pub(crate) fn readable(&self, slow: bool, me: u32) -> bool {
        self.read_check(slow, me).is_some()
    }

    /// Waits until [`readable`](Ring::readable) or the deadline; whether
    /// it became readable.
    pub(crate) fn wait_readable(&self, w: &Waiter<'_>) -> bool {
        self.block(&self.ctl().data, w, w.deadline, |slow| {
            self.read_check(slow, w.me)
        })
        .is_some()
    }

    /// Messages put in a counted ring.
    pub(crate) fn puts(&self) -> u64 {
        self.ctl().tail.msgs.load(SeqCst)
    }

    /// Messages taken from a counted ring (delivered, or dropped).
    pub(crate) fn gets(&self) -> u64 {
        self.ctl().head.msgs.load(SeqCst)
    }

    /// Messages counted in `puts` that will never be delivered (a writer
    /// died before committing, or in the middle of a streamed message).
    pub(crate) fn dropped(&self) -> u64 {
        self.ctl().head.dropped.load(SeqCst)
    }

    /// Messages in a counted ring (`puts - gets`; `gets` read first, so
    /// never more than were put).
    pub(crate) fn count(&self) -> u64 {
        let c = self.ctl();
        let gets = c.head.msgs.load(SeqCst);
        c.tail.msgs.load(SeqCst).saturating_sub(gets)
    }

    pub(super) fn read_check(&self, slow: bool, me: u32) -> Option<Result<(), RingReadError>> {
        let c = self.ctl();
        if self.peek_ready() {
            return Some(Ok(()));
        }
        if slow {
            c.writers.prune();
            self.recover_wlock(me);
            self.recover_rlock(me);
            self.skip_torn(me);
            if self.peek_ready() {
                return Some(Ok(()));
            }
            // `head` never passes `tail` (read after it, so no less): a
            // reader waiting there would wait for ever.
            if c.head.pos.load(Acquire) > c.tail.pos.load(Acquire) {
                return Some(Err(RingReadError::Corrupt("ring head beyond its tail")));
            }
        }
        if !c.writers.any() {
            // Nobody will complete a record still being written.
            self.skip_torn(me);
            if self.peek_ready() {
                return Some(Ok(()));
            }
            return Some(Err(RingReadError::Disconnected));
        }
        None
    }

    /// Skips records at `head` whose writer died before committing
    /// (counted dropped). Anyone may call it: it does the reader's part
    /// under `rlock`, and does nothing when `rlock` is busy (its holder
    /// skips them).
    pub(crate) fn skip_torn(&self, me: u32) {
        let c = self.ctl();
        if !self.try_lock(&c.head.lock, me) {
            return;
        }
        loop {
            let h = c.head.pos.load(Relaxed);
            match self.look(h) {
                Head::Writing { tid, size, first } if !alive(tid) => {
                    if first {
                        self.arm(h, DROP);
                    }
                    self.mark_consumed(h);
                    if first {
                        crate::log_dead_writer_skipped(tid);
                        self.count_dropped();
                        self.count_get();
                    }
                    c.head.pos.store(h + size, Release);
                }
                Head::Skip { size, pad } => self.skip(h, size, pad),
                _ => break,
            }
        }
        self.unlock(&c.head.lock);
        self.advance_released();
    }

    /// Takes the small whole message at `h` (committed, payload `len`;
    /// the caller holds `rlock`, which this releases): decodes it straight
    /// from the ring under the lock, then releases it.
    pub(super) fn take_inline<S: Sink>(
        &self,
        h: u64,
        len: u64,
        sink: &mut S,
    ) -> Result<S::Out, RingReadError> {
        // SAFETY: the record at `h` is committed, and we hold `rlock`: no
        // reader takes it and no writer reuses its bytes until
        // `release_inline` advances `released` and `head` past it.
        unsafe { self.decode_then(h, len, sink, Ring::release_inline) }
    }

    /// Decodes the payload (`len` bytes) of the record at `h` into `sink`,
    /// then runs `done(self, h, size)` to let the record go, also when
    /// decoding panics (a user's `Deserialize`): a record kept by a live
    /// thread would stop the writers once they wrap.
    ///
    /// # Safety
    ///
    /// The caller owns the record until `done` runs (it claimed it, or
    /// holds `rlock` over a committed record), and `len` is its payload.
    pub(super) unsafe fn decode_then<S: Sink>(
        &self,
        h: u64,
        len: u64,
        sink: &mut S,
        done: fn(&Ring, u64, u64),
    ) -> Result<S::Out, RingReadError> {
        struct Guard<'a>(&'a Ring, u64, u64, fn(&Ring, u64, u64));
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                (self.3)(self.0, self.1, self.2);
            }
        }
        let _guard = Guard(self, h, rec_size(len), done);
        // SAFETY: the caller owns the record and its `len` payload bytes.
        unsafe { self.with_payload(h, 0, len, |b| sink.whole(b)) }
    }

    /// Releases the inline-read record at `h` of `size` bytes: `released`
    /// first (moved past it when it is the oldest record, else a CONSUMED
    /// mark), then `head` and `gets`, then `rlock`. The record itself is
    /// not written in the common case. A reader that dies between the
    /// store of `released` and that of `head` leaves `released > head`: see
    /// `repair_head`.
    pub(super) fn release_inline(&self, h: u64, size: u64) {
        let c = self.ctl();
        // A plain store suffices: only whoever consumes the record at
        // `released` moves it, and that is us (the record is neither marked
        // CONSUMED nor CLAIMED); other readers' CASes from older values
        // fail either way.
        let direct = c.released.v.load(Relaxed) == h;
        if direct {
            c.released.v.store(h + size, Release);
        } else {
            self.mark_consumed(h);
        }
        c.head.pos.store(h + size, Release);
        self.count_get();
        self.unlock(&c.head.lock);
        // As in `consume`: after our store, either markers of later records
        // see `released` moved, or we see their count (the swap that
        // released the lock is the fence).
        fence_after_rmw();
        if !direct || c.released.marks.load(SeqCst) != 0 {
            self.advance_released();
        }
        self.wake_writers();
    }

    /// Passes a pad or consumed record at `head` (the caller holds `rlock`).
    pub(super) fn skip(&self, h: u64, size: u64, pad: bool) {
        if pad {
            self.mark_consumed(h);
        }
        self.ctl().head.pos.store(h + size, Release);
        self.advance_released();
    }

    #[inline]
    pub(super) fn claim_at(&self, h: u64, len: u64, me: u32) {
        let hd = self.hdr(h);
        hd.tid.store(me, Relaxed);
        hd.stamp.store(h | CLAIMED, Release);
        self.ctl().head.pos.store(h + rec_size(len), Release);
    }

    /// Marks the record at `h` CONSUMED (counted in `released.marks`).
    #[inline]
    pub(super) fn mark_consumed(&self, h: u64) {
        self.ctl().released.marks.fetch_add(1, SeqCst);
        self.hdr(h).stamp.store(h | CONSUMED, SeqCst);
    }

    /// Done with the claimed record at `h` of `size` bytes: release its
    /// space directly when it is the oldest (the common case, which spares
    /// a store to the writer's cache line), else mark it for whoever
    /// releases the records before it.
    #[inline]
    pub(super) fn consume(&self, h: u64, size: u64) {
        let c = self.ctl();
        if c.released
            .v
            .compare_exchange(h, h + size, SeqCst, Relaxed)
            .is_ok()
        {
            // Records after it may have been marked consumed by readers
            // that saw `released` before our CAS: they count their mark
            // first, so after the fence either they see our CAS or we see
            // their count (a race the loom model found).
            fence(SeqCst);
            if c.released.marks.load(SeqCst) != 0 {
                self.advance_released();
            }
            self.notify_space();
            return;
        }
        self.mark_consumed(h);
        self.advance_released();
    }

    /// Advances `released` over consecutive consumed records.
    pub(super) fn advance_released(&self) {
        let c = self.ctl();
        // Pairs with the fence of another reader: either it sees our mark
        // (or CAS), or we see its.
        fence(SeqCst);
        let mut moved = false;
        loop {
            let r = c.released.v.load(SeqCst);
            if !pos_ok(r) {
                break;
            }
            let hd = self.hdr(r);
            if hd.stamp.load(SeqCst) != r | CONSUMED {
                break;
            }
            let size = rec_size(u64::from(hd.len.load(Relaxed) & LEN_MASK));
            if (r & self.mask) + size > self.cap {
                break;
            }
            if c.released
                .v
                .compare_exchange(r, r + size, SeqCst, Relaxed)
                .is_ok()
            {
                c.released.marks.fetch_sub(1, SeqCst);
                moved = true;
            }
        }
        if moved {
            self.notify_space();
        }
    }

    /// Reads one message into `sink`.
    #[inline]
    pub(crate) fn read<S: Sink>(
        &self,
        sink: &mut S,
        w: &Waiter<'_>,
    ) -> Result<S::Out, RingReadError> {
        if let Some(r) = self.try_take_inline(sink, w.me) {
            self.streaming.store(true, Relaxed);
            return r;
        }
        self.read_slow(sink, w)
    }

    /// The common case of [`read`](Ring::read) in few instructions: a
    /// small whole message waits at `head` and `rlock` is free. `None`:
    /// anything else (the general path sorts it out).
    #[inline]
    pub(super) fn try_take_inline<S: Sink>(
        &self,
        sink: &mut S,
        me: u32,
    ) -> Option<Result<S::Out, RingReadError>> {
        let c = self.ctl();
        let h = c.head.pos.load(Acquire);
        let hd = self.hdr(h);
        if hd.stamp.load(Acquire) != h | COMMITTED {
            return None;
        }
        let lf = hd.len.load(Relaxed);
        let len = u64::from(lf & LEN_MASK);
        // A position or a record end out of bounds (a corrupt ring) is
        // left to `look`, which reports it.
        if lf & !LEN_MASK != FIRST | LAST
            || len > INLINE_MAX
            || len > sink.limit()
            || !pos_ok(h)
            || (h & self.mask) + rec_size(len) > self.cap
            || !self.try_lock(&c.head.lock, me)
        {
            return None;
        }
        // Under the lock: nobody took it meanwhile, and no dead reader
        // left `released` beyond `head` (which `claim` repairs). Then the
        // committed record at `h` is ours and stays as it was.
        if c.head.pos.load(Relaxed) != h || c.released.v.load(Relaxed) > h {
            self.unlock(&c.head.lock);
            return None;
        }
        self.arm(h, 0);
        sink.claimed();
        Some(self.take_inline(h, len, sink))
    }

    pub(super) fn read_slow<S: Sink>(
        &self,
        sink: &mut S,
        w: &Waiter<'_>,
    ) -> Result<S::Out, RingReadError> {
        let c = self.ctl();
        loop {
            // A reader that found its last message waiting and now finds
            // the ring empty is keeping up with a stream: it polls at a
            // slower pace, so that the writer gets a few cache lines ahead
            // instead of handing each line over per message. A reader that
            // had to wait last time (a request/reply exchange) polls
            // tightly.
            let ready = match self.read_check(false, w.me) {
                Some(r) => {
                    self.streaming.store(true, Relaxed);
                    Some(r)
                }
                None if w.deadline.expired() => None,
                None => {
                    let pace = if self.streaming.swap(false, Relaxed) {
                        STREAM_PACE_NS
                    } else {
                        0
                    };
                    self.block_paced(&c.data, w, w.deadline, pace, |slow| {
                        self.read_check(slow, w.me)
                    })
                }
            };
            match ready {
                None => return Err(RingReadError::Timeout),
                Some(Err(e)) => return Err(e),
                Some(Ok(())) => {}
            }
            if let Some(r) = self.try_take_inline(sink, w.me) {
                return r;
            }
            if !self.lock(&c.head.lock, w.me, w.deadline) {
                return Err(RingReadError::Timeout);
            }
            if let Some(out) = self.claim(sink, w)? {
                return Ok(out);
            }
        }
    }

    /// Claims the message at `head` (the caller holds `rlock`, which this
    /// releases). `Ok(None)`: nothing to take after all; try again.
    pub(super) fn claim<S: Sink>(
        &self,
        sink: &mut S,
        w: &Waiter<'_>,
    ) -> Result<Option<S::Out>, RingReadError> {
        let c = self.ctl();
        let unlock = || self.unlock(&c.head.lock);
        loop {
            if self.repair_head() {
                continue;
            }
            let h = c.head.pos.load(Relaxed);
            match self.look(h) {
                Head::Empty | Head::Writing { .. } => {
                    unlock();
                    return Ok(None);
                }
                Head::Corrupt => {
                    unlock();
                    return Err(RingReadError::Corrupt("invalid record header in the ring"));
                }
                Head::Skip { size, pad } => self.skip(h, size, pad),
                Head::Ready { len, flags, tid } => {
                    if flags & FIRST == 0 {
                        // A fragment of a message whose reader died: drop it.
                        self.claim_at(h, len, w.me);
                        self.consume(h, rec_size(len));
                        continue;
                    }
                    if flags & LAST != 0 {
                        if len > sink.limit() {
                            unlock();
                            return Err(RingReadError::TooShort(len));
                        }
                        self.arm(h, 0);
                        sink.claimed();
                        if len <= INLINE_MAX {
                            return self.take_inline(h, len, sink).map(Some);
                        }
                        self.claim_at(h, len, w.me);
                        self.count_get();
                        unlock();
                        // SAFETY: we claimed the record; `len` is its payload.
                        let out = unsafe { self.decode_then(h, len, sink, Ring::consume) };
                        return out.map(Some);
                    }
                    if len < 8 {
                        self.claim_at(h, len, w.me);
                        self.consume(h, rec_size(len));
                        unlock();
                        return Err(RingReadError::Corrupt(
                            "streamed message without its length",
                        ));
                    }
                    let mut pre = [0u8; 8];
                    // SAFETY: committed record with at least 8 payload bytes;
                    // we hold rlock, so no reader claims it meanwhile and
                    // writers do not touch committed records.
                    unsafe { self.with_payload(h, 0, 8, |b| pre.copy_from_slice(b)) };
                    let total = u64::from_le_bytes(pre);
                    if total < len - 8 {
                        self.claim_at(h, len, w.me);
                        self.consume(h, rec_size(len));
                        unlock();
                        return Err(RingReadError::Corrupt(
                            "streamed message shorter than its first fragment",
                        ));
                    }
                    if total > sink.limit() {
                        unlock();
                        return Err(RingReadError::TooShort(total));
                    }
                    self.arm(h, 0);
                    sink.claimed();
                    self.claim_at(h, len, w.me);
                    self.count_get();
                    return self.read_stream(h, len, tid, total, sink, w);
                }
            }
        }
    }
}
