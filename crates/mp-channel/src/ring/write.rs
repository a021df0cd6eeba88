//! Writers: reserving a record at the tail, copying and committing a
//! message, and waiting for room (space, or a message slot of a bounded
//! counted ring).

use mp_os::time::{Deadline, monotonic_ns};

use super::Ring;
use super::layout::{
    CLAIMED, COMMITTED, CONSUMED, FIRST, HDR, INLINE_MAX, LAST, PAD, WRITING, pos_ok, rec_size,
};
use super::wait::{WaitMode, Waiter};
use crate::sync::{Ordering::*, alive, fence_after_rmw, spin_hint};

/// Extra space a writer waiting for room waits for while the readers keep
/// releasing (see `wait_space`), and the CPU pauses between its polls.
pub(super) const SPACE_BATCH: u64 = 4096;
/// The longest a writer spins for such a batch.
pub(super) const SPACE_BATCH_SPIN_NS: u64 = 20_000;
pub(super) const SPACE_PACE_NS: u32 = if cfg!(loom) { 0 } else { 300 };

/// Why a write failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RingWriteError {
    /// The deadline passed (or the ring was full for a non-blocking call).
    Timeout,
    /// Every reader has gone.
    Disconnected,
    /// The control block holds positions no writer or reader of this
    /// protocol could have left (a buggy or hostile peer).
    Corrupt,
}

/// What a reservation found missing.
#[derive(Debug, Clone, Copy)]
pub(super) enum Full {
    /// Bytes: wait until `released` reaches this position.
    Space(u64),
    /// A message slot (counted ring at `maxsize`).
    Count,
    /// `tail` or `released` is not a position this protocol leaves.
    Corrupt,
}

impl Ring {
    /// Whether a whole record of `len` payload bytes fits in the ring now
    /// (no lock: a hint, which other writers may make stale at once).
    pub(crate) fn has_room(&self, len: u64) -> bool {
        let c = self.ctl();
        let t = c.tail.pos.load(Acquire);
        let size = rec_size(len);
        let room = self.cap - (t & self.mask);
        // Saturating: a peer may have written anything into `tail`.
        let end = if size > room {
            t.saturating_add(room)
        } else {
            t
        }
        .saturating_add(size);
        c.released.v.load(Acquire) >= end.saturating_sub(self.cap)
    }

    /// [`write_within`](Ring::write_within) with `w.deadline` bounding
    /// the whole call.
    #[cfg(test)]
    pub(crate) fn write(
        &self,
        msg: &[u8],
        w: &Waiter<'_>,
        maxsize: u64,
    ) -> Result<(), RingWriteError> {
        self.write_within(msg, w, maxsize, w.deadline)
    }

    /// Writes one message (streamed if larger than a quarter of the ring).
    /// `maxsize` bounds the message count of a counted ring (0: unbounded).
    /// `w.deadline` bounds the wait for the first record, `rest` that for
    /// each later fragment of a streamed message: a timed call passes its
    /// deadline again, so that it bounds the whole call (a streamed message
    /// still waiting for room at the deadline is abandoned: its reader
    /// drops the fragments it got, see `read_stream`). A non-blocking call
    /// passes `Deadline::never()`: the message is written if its first
    /// record fits now, and a streamed message, once started, is then
    /// completed however long the readers take (a message larger than the
    /// ring never fits at once).
    #[inline]
    pub(crate) fn write_within(
        &self,
        msg: &[u8],
        w: &Waiter<'_>,
        maxsize: u64,
        rest: Deadline,
    ) -> Result<(), RingWriteError> {
        if msg.len() as u64 <= INLINE_MAX && self.try_put_inline(msg, w.me, maxsize) {
            return Ok(());
        }
        self.write_slow(msg, w, maxsize, rest)
    }

    /// The common case of [`write_within`](Ring::write_within) in few
    /// instructions: a small message, `wlock` free, room in the ring.
    /// `false`: nothing was written (the general path sorts it out).
    #[inline]
    pub(super) fn try_put_inline(&self, msg: &[u8], me: u32, maxsize: u64) -> bool {
        let c = self.ctl();
        if !c.readers.any() || !self.try_lock(&c.tail.lock, me) {
            return false;
        }
        match self.reserve(msg.len() as u64, FIRST | LAST, me, maxsize) {
            Ok(pos) => {
                self.put_commit_unlock(pos, msg);
                true
            }
            Err(_) => {
                self.unlock(&c.tail.lock);
                false
            }
        }
    }

    /// Copies a small message into its reserved record at `pos`, commits it
    /// and releases `wlock` (whose swap is the fence before the check for
    /// sleeping readers).
    #[inline]
    pub(super) fn put_commit_unlock(&self, pos: u64, msg: &[u8]) {
        // SAFETY: the caller reserved `msg.len()` payload bytes at `pos`.
        unsafe { self.put(pos, 0, msg) };
        self.hdr(pos).stamp.store(pos | COMMITTED, Release);
        self.unlock(&self.ctl().tail.lock);
        fence_after_rmw();
        self.wake_readers();
    }

    /// `rest`: the deadline for the fragments after the first of a
    /// streamed message.
    pub(super) fn write_slow(
        &self,
        msg: &[u8],
        w: &Waiter<'_>,
        maxsize: u64,
        rest: Deadline,
    ) -> Result<(), RingWriteError> {
        if !self.ctl().readers.any() {
            return Err(RingWriteError::Disconnected);
        }
        if msg.len() as u64 <= self.max_frag {
            self.write_whole(msg, w, maxsize)
        } else {
            self.write_stream(msg, w, maxsize, rest)
        }
    }

    pub(super) fn write_whole(
        &self,
        msg: &[u8],
        w: &Waiter<'_>,
        maxsize: u64,
    ) -> Result<(), RingWriteError> {
        let c = self.ctl();
        let len = msg.len() as u64;
        loop {
            if !self.lock(&c.tail.lock, w.me, w.deadline) {
                return Err(RingWriteError::Timeout);
            }
            match self.reserve(len, FIRST | LAST, w.me, maxsize) {
                Ok(pos) if len <= INLINE_MAX => {
                    self.put_commit_unlock(pos, msg);
                    return Ok(());
                }
                Ok(pos) => {
                    self.unlock(&c.tail.lock);
                    // SAFETY: we reserved `len` payload bytes at `pos`.
                    unsafe { self.put(pos, 0, msg) };
                    self.commit(pos);
                    return Ok(());
                }
                Err(full) => {
                    self.unlock(&c.tail.lock);
                    self.wait_room(w, w.deadline, full, maxsize)?;
                }
            }
        }
    }

    /// Reserves a record of `len` payload bytes at the tail (the caller
    /// holds `wlock`); a FIRST record of a counted ring also counts one
    /// message in `puts`, within `maxsize` (0: unbounded).
    /// A `tail` that is not a position, or a `released` beyond it or more
    /// than a ring behind it, is `Full::Corrupt`.
    #[inline]
    pub(super) fn reserve(&self, len: u64, flags: u32, me: u32, maxsize: u64) -> Result<u64, Full> {
        let c = self.ctl();
        let t = c.tail.pos.load(Relaxed);
        if !pos_ok(t) {
            return Err(Full::Corrupt);
        }
        let size = rec_size(len);
        let room = self.cap - (t & self.mask);
        let (pad, pos) = if size > room {
            (room, t + room)
        } else {
            (0, t)
        };
        let end = pos + size;
        let need = end.saturating_sub(self.cap);
        if self.released_cache.load(Acquire) < need {
            let r = c.released.v.load(Acquire);
            // `released <= tail <= released + cap` at all times, and
            // nobody else moves `tail` while we hold `wlock`.
            if r > t || t - r > self.cap {
                return Err(Full::Corrupt);
            }
            self.released_cache.store(r, Release);
            if r < need {
                return Err(Full::Space(need));
            }
        }
        if self.counted && flags & FIRST != 0 {
            let puts = c.tail.msgs.load(Relaxed);
            if maxsize != 0 && puts.saturating_sub(self.gets_cache.load(Relaxed)) >= maxsize {
                let g = c.head.msgs.load(Acquire);
                self.gets_cache.store(g, Relaxed);
                if puts.saturating_sub(g) >= maxsize {
                    return Err(Full::Count);
                }
            }
            // Recovery state first (see `recount_puts`), `pre_puts` before
            // `pre_tail`, so that a `pre_tail` equal to `tail` always comes
            // with this reservation's `pre_puts`.
            c.tail.pre_msgs.store(puts, Release);
            c.tail.pre_pos.store(t, Release);
            // Before the header: a reader that counts this message in
            // `gets` has seen its header, so `gets <= puts` for everyone.
            // (Wrapping: a peer may have written anything there.)
            c.tail.msgs.store(puts.wrapping_add(1), Release);
        }
        if pad > 0 {
            let h = self.hdr(t);
            h.len.store((pad - HDR) as u32, Relaxed);
            h.tid.store(me, Relaxed);
            h.stamp.store(t | PAD, Release);
        }
        let h = self.hdr(pos);
        h.len.store(len as u32 | flags, Relaxed);
        h.tid.store(me, Relaxed);
        h.stamp.store(pos | WRITING, Release);
        c.tail.pos.store(end, Release);
        Ok(pos)
    }

    /// Test only: a whole message of `len` bytes reserved (and counted)
    /// by the writer `dead`, never committed: what a producer killed while
    /// copying a message leaves behind.
    #[cfg(test)]
    pub(crate) fn reserve_torn(&self, len: u64, dead: u32) {
        let me = crate::sync::tid();
        assert!(self.try_lock(&self.ctl().tail.lock, me));
        assert!(self.reserve(len, FIRST | LAST, dead, 0).is_ok());
        self.unlock(&self.ctl().tail.lock);
    }

    #[inline]
    pub(super) fn commit(&self, pos: u64) {
        self.hdr(pos).stamp.store(pos | COMMITTED, Release);
        self.notify_data();
    }

    /// Waits until what `reserve` found missing may be there.
    pub(super) fn wait_room(
        &self,
        w: &Waiter<'_>,
        deadline: Deadline,
        full: Full,
        maxsize: u64,
    ) -> Result<(), RingWriteError> {
        match full {
            Full::Space(need) => self.wait_space(w, deadline, need),
            Full::Count => self.wait_count(w, deadline, maxsize),
            Full::Corrupt => Err(RingWriteError::Corrupt),
        }
    }

    /// Waits until a counted ring holds fewer than `maxsize` messages.
    pub(super) fn wait_count(
        &self,
        w: &Waiter<'_>,
        deadline: Deadline,
        maxsize: u64,
    ) -> Result<(), RingWriteError> {
        let c = self.ctl();
        self.block(&c.space, w, deadline, |slow| {
            if slow {
                c.readers.prune();
            }
            if !c.readers.any() {
                Some(Err(RingWriteError::Disconnected))
            } else if self.count() < maxsize {
                Some(Ok(()))
            } else {
                None
            }
        })
        .unwrap_or(Err(RingWriteError::Timeout))
    }

    /// Waits until `released` reaches `need`. A `released` that is not a
    /// position, is beyond `tail` or more than a ring behind it (which no
    /// reader of this protocol leaves) is `RingWriteError::Corrupt`, not a wait
    /// that would never end.
    pub(super) fn wait_space(
        &self,
        w: &Waiter<'_>,
        deadline: Deadline,
        need: u64,
    ) -> Result<(), RingWriteError> {
        let c = self.ctl();
        let r = match self.spin_for_batch(w, deadline, need) {
            Some(r) => r,
            None => self
                .block_paced(&c.space, w, deadline, SPACE_PACE_NS, |slow| {
                    // `tail` first: then `tail <= released + cap` holds
                    // for the values read, whatever moved in between.
                    let t = if slow {
                        c.readers.prune();
                        self.reclaim_dead();
                        c.tail.pos.load(Acquire)
                    } else {
                        0
                    };
                    let r = c.released.v.load(Acquire);
                    if r >= need {
                        Some(Ok(r))
                    } else if !c.readers.any() {
                        Some(Err(RingWriteError::Disconnected))
                    } else if slow && (!pos_ok(r) || t > r + self.cap) {
                        Some(Err(RingWriteError::Corrupt))
                    } else {
                        None
                    }
                })
                .unwrap_or(Err(RingWriteError::Timeout))?,
        };
        // `released` never passes `tail`: `tail` read after it is no less.
        if !pos_ok(r) || r > c.tail.pos.load(Acquire) {
            return Err(RingWriteError::Corrupt);
        }
        // A lower bound for whoever holds `wlock` next (any value `released`
        // had is one); Release pairs with the Acquire load in `reserve`.
        self.released_cache.fetch_max(r, Release);
        Ok(())
    }

    /// While the readers keep releasing, waits for a batch of space (up to
    /// `SPACE_BATCH` beyond `need`), so that the writer then fills it
    /// without reading `released` again: polling it per message would pull
    /// the line the readers write per message back and forth. Polls every
    /// `SPACE_PACE_NS`; once the readers pause (`released` did not move
    /// between two polls) any room that fits the message will do, and with
    /// none it gives up (`None`: the caller waits as usual). Pure spinning,
    /// outside the adaptive budget, so that waiting for a batch never
    /// counts as a spin that failed.
    pub(super) fn spin_for_batch(
        &self,
        w: &Waiter<'_>,
        deadline: Deadline,
        need: u64,
    ) -> Option<u64> {
        if w.mode == WaitMode::NoSpin || cfg!(loom) || deadline.expired() {
            return None;
        }
        let released = &self.ctl().released.v;
        let want = need + SPACE_BATCH.min(self.cap / 8);
        let start = monotonic_ns();
        let mut last = released.load(Acquire);
        loop {
            let until = monotonic_ns() + u64::from(SPACE_PACE_NS);
            while monotonic_ns() < until {
                spin_hint();
            }
            let r = released.load(Acquire);
            if r >= want || (r >= need && r == last) {
                return Some(r);
            }
            if r == last || monotonic_ns() - start > SPACE_BATCH_SPIN_NS || deadline.expired() {
                return None;
            }
            last = r;
        }
    }

    /// A record at `released` claimed by a reader that died: release it.
    /// Also passes over records already marked consumed, whoever marked
    /// them: a reader that died between marking its record and advancing
    /// `released` must not leave the writers waiting for space forever.
    pub(super) fn reclaim_dead(&self) {
        let r = self.ctl().released.v.load(Acquire);
        if !pos_ok(r) {
            return;
        }
        let h = self.hdr(r);
        let s = h.stamp.load(Acquire);
        if s == r | CLAIMED && !alive(h.tid.load(Relaxed)) {
            let marks = &self.ctl().released.marks;
            marks.fetch_add(1, SeqCst);
            if h.stamp
                .compare_exchange(s, r | CONSUMED, SeqCst, Relaxed)
                .is_err()
            {
                marks.fetch_sub(1, SeqCst);
            }
        }
        self.advance_released();
    }
}
