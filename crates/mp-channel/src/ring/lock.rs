//! The ring's two locks (`wlock` on the tail line, `rlock` on the head
//! line): taking one, letting it go, and taking it over from a holder
//! that died, with the repairs that holder may have left half done
//! (`puts`, `gets`, `dropped`, `head`).

use mp_os::lockword::{self, Acquired, Sleepers};
use mp_os::time::Deadline;

use super::Ring;
use super::layout::{ARMED, CLAIMED, CONSUMED, DROP, LEN_MASK, ST_MASK, pos_ok, rec_size};
use crate::sync::{AtomicU32, LockEnv, Ordering::*};

/// Set in a lock word while somebody sleeps on it (`mp_os::lockword`'s
/// `Sleepers::InWord`).
pub(super) const LOCK_WAITERS: u32 = lockword::WAITERS;

impl Ring {
    #[inline]
    pub(super) fn lock(&self, word: &AtomicU32, me: u32, deadline: Deadline) -> bool {
        word.compare_exchange(0, me, Acquire, Relaxed).is_ok() || self.lock_slow(word, me, deadline)
    }

    /// Waits for `word` (see `mp_os::lockword`); one taken over from a
    /// dead holder is repaired first.
    #[cold]
    pub(super) fn lock_slow(&self, word: &AtomicU32, me: u32, deadline: Deadline) -> bool {
        match lockword::acquire_slow::<LockEnv>(word, Sleepers::InWord, me, deadline) {
            Acquired::Yes => true,
            Acquired::Died(_) => {
                self.after_takeover(word);
                true
            }
            Acquired::TimedOut => false,
        }
    }

    /// Takes `word` when its holder died (inside its crash-consistent
    /// section), writing `want(holder)`, and repairs what the holder may
    /// have left half done. `false`: no dead holder, or another process
    /// took it first.
    #[cold]
    pub(super) fn take_over_if_dead(
        &self,
        word: &AtomicU32,
        want: impl FnOnce(u32) -> u32,
    ) -> bool {
        if lockword::take_over_if_dead::<LockEnv>(word, want).is_some() {
            self.after_takeover(word);
            return true;
        }
        false
    }

    /// The lock `word` was taken over from a holder that died: repairs
    /// what it may have left half done.
    #[cold]
    pub(super) fn after_takeover(&self, word: &AtomicU32) {
        if std::ptr::eq(word, &self.ctl().tail.lock) {
            self.recount_puts();
        } else {
            self.recover_reader();
        }
    }

    /// After taking `wlock` over from a dead writer: a reservation that
    /// bumped `puts` but never advanced `tail` is not counted.
    pub(super) fn recount_puts(&self) {
        if !self.counted {
            return;
        }
        let t = &self.ctl().tail;
        if t.pos.load(Acquire) == t.pre_pos.load(Acquire) {
            t.msgs.store(t.pre_msgs.load(Acquire), Release);
        }
    }

    /// After taking `rlock` over from a dead reader: `head` moves past what
    /// it released, and `gets` (and `dropped`) count the message it took,
    /// once. A claim it left half done (record CLAIMED, `head` not moved)
    /// is completed: the message went with the dead reader.
    pub(super) fn recover_reader(&self) {
        self.repair_head();
        if !self.counted {
            return;
        }
        let e = &self.ctl().head;
        let pre = e.pre_pos.load(Acquire);
        if pre & ARMED == 0 {
            return;
        }
        let h = pre & !ST_MASK;
        let mut taken = e.pos.load(Relaxed) > h;
        if !taken {
            let hd = self.hdr(h);
            let s = hd.stamp.load(Acquire);
            if s == h | CONSUMED {
                taken = true;
            } else if s == h | CLAIMED {
                let size = rec_size(u64::from(hd.len.load(Relaxed) & LEN_MASK));
                if (h & self.mask) + size <= self.cap {
                    let marks = &self.ctl().released.marks;
                    marks.fetch_add(1, SeqCst);
                    if hd
                        .stamp
                        .compare_exchange(s, h | CONSUMED, SeqCst, Relaxed)
                        .is_err()
                    {
                        // A writer's `reclaim_dead` released it first.
                        marks.fetch_sub(1, SeqCst);
                    }
                    e.pos.store(h + size, Release);
                    self.advance_released();
                    taken = true;
                }
            }
        }
        if taken {
            e.msgs.store(e.pre_msgs.load(Acquire) + 1, Release);
            if pre & DROP != 0 {
                e.dropped.store(e.pre_dropped.load(Acquire) + 1, Release);
            }
        }
    }

    /// Notes what `recover_reader` needs before a counted take of the
    /// record at `h` (the caller holds `rlock`): `pre_head` first, so that
    /// a `pre_gets` of this take is never paired with an older position.
    /// The take's own stores (all Release or stronger) come after.
    #[inline]
    pub(super) fn arm(&self, h: u64, flag: u64) {
        if self.counted {
            let e = &self.ctl().head;
            e.pre_pos.store(h | ARMED | flag, Release);
            e.pre_msgs.store(e.msgs.load(Relaxed), Release);
            if flag & DROP != 0 {
                e.pre_dropped.store(e.dropped.load(Relaxed), Release);
            }
        }
    }

    /// Counts one message that will never be delivered (under `rlock`).
    #[inline]
    pub(super) fn count_dropped(&self) {
        if self.counted {
            let d = &self.ctl().head.dropped;
            d.store(d.load(Relaxed) + 1, Release);
        }
    }

    /// Counts one message taken in `gets` (counted rings; under `rlock`).
    #[inline]
    pub(super) fn count_get(&self) {
        if self.counted {
            let g = &self.ctl().head.msgs;
            g.store(g.load(Relaxed).wrapping_add(1), Release);
        }
    }

    #[inline]
    pub(super) fn try_lock(&self, word: &AtomicU32, me: u32) -> bool {
        word.compare_exchange(0, me, Acquire, Relaxed).is_ok()
    }

    #[inline]
    pub(super) fn unlock(&self, word: &AtomicU32) {
        lockword::release_in_word::<LockEnv>(word);
    }

    /// Takes `wlock` over from a holder that died, recounts `puts`, and
    /// lets it go (slow path: a reader or `join` that waits sees a count a
    /// dead writer left behind without waiting for the next writer).
    pub(crate) fn recover_wlock(&self, me: u32) {
        self.recover_lock(&self.ctl().tail.lock, me);
    }

    /// Takes `rlock` over from a holder that died, and repairs `head`.
    pub(crate) fn recover_rlock(&self, me: u32) {
        self.recover_lock(&self.ctl().head.lock, me);
    }

    pub(super) fn recover_lock(&self, lock: &AtomicU32, me: u32) {
        if self.take_over_if_dead(lock, |h| me | (h & LOCK_WAITERS)) {
            self.unlock(lock);
        }
    }

    /// A reader that died inside `rlock` may have released a message
    /// without advancing `head` past it: `head` moves up to `released`
    /// (everything below it was consumed). Whether it moved. The caller
    /// holds `rlock`; otherwise `head >= released` at that point.
    #[inline]
    pub(super) fn repair_head(&self) -> bool {
        let c = self.ctl();
        let r = c.released.v.load(Acquire);
        if r > c.head.pos.load(Relaxed) && pos_ok(r) {
            c.head.pos.store(r, Release);
            return true;
        }
        false
    }
}
