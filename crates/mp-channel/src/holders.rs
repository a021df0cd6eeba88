//! The table of processes holding one side (writers or readers) of a ring.
//!
//! ```text
//! offset  size  field
//!      0     4  total     registrations, all slots plus overflow (fast check)
//!      4     4  overflow  registrations that found no free slot (never pruned)
//!      8  2040  slots     255 x u64: (token << 32) | count, 0 = free
//! ```
//!
//! `token` is the holding process's liveness token (`mp_os::liveness`: pid
//! in bits 0..22, a stamp of the process's start time above), so that a
//! dead holder whose pid was reused is still found dead.
//!
//! `total` is incremented before a slot and decremented after it, so it
//! never under-counts: `total == 0` means nobody holds the side. A slot of a
//! process that died without unregistering is found by [`Holders::prune`]
//! (a liveness check, slow path only) and its count subtracted. A process
//! that finds every slot taken prunes the table before it falls back to the
//! overflow counter; registrations there cannot be told apart, so the side
//! of a channel with more than 255 live holder processes at once stops
//! reporting their deaths (a documented limit).

use crate::sync::{AtomicU32, AtomicU64, Ordering::*};

/// Slots per table (a few under loom, which models every atomic).
pub(crate) const SLOTS: usize = if cfg!(loom) { 7 } else { 255 };

/// Registration marker for the overflow counter (in a role word).
pub(crate) const OVERFLOW: u32 = 1 << 31;

#[repr(C, align(64))]
pub(crate) struct Holders {
    pub(crate) total: AtomicU32,
    overflow: AtomicU32,
    slots: [AtomicU64; SLOTS],
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<Holders>() == 2048);

impl Holders {
    #[cfg(any(loom, test))]
    pub(crate) fn new() -> Self {
        Holders {
            total: AtomicU32::new(0),
            overflow: AtomicU32::new(0),
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Registers one holder for `pid`; returns the role word to keep
    /// (`pid`, or `pid | OVERFLOW` when the table was full).
    pub(crate) fn add(&self, pid: u32) -> u32 {
        self.total.fetch_add(1, SeqCst);
        for attempt in 0..8 {
            if attempt == 4 {
                // Full: free the slots of dead processes (short-lived
                // children that never unregistered) before overflowing.
                self.prune();
            }
            let mut free = None;
            for s in &self.slots {
                let v = s.load(Acquire);
                if v == 0 {
                    free.get_or_insert(s);
                } else if (v >> 32) as u32 == pid
                    && v & 0xFFFF_FFFF != 0
                    && s.compare_exchange(v, v + 1, AcqRel, Relaxed).is_ok()
                {
                    return pid;
                }
            }
            if let Some(s) = free
                && s.compare_exchange(0, (u64::from(pid) << 32) | 1, AcqRel, Relaxed)
                    .is_ok()
            {
                return pid;
            }
        }
        self.overflow.fetch_add(1, SeqCst);
        pid | OVERFLOW
    }

    /// Removes one holder registered with `add` (its returned role word);
    /// whether it was found (a slot of a process judged dead is gone).
    pub(crate) fn remove(&self, role: u32) -> bool {
        if role & OVERFLOW != 0 {
            self.overflow.fetch_sub(1, SeqCst);
            self.total.fetch_sub(1, SeqCst);
            return true;
        }
        let pid = u64::from(role);
        for s in &self.slots {
            let mut v = s.load(Acquire);
            while v >> 32 == pid && v & 0xFFFF_FFFF != 0 {
                let new = if v & 0xFFFF_FFFF == 1 { 0 } else { v - 1 };
                match s.compare_exchange(v, new, AcqRel, Acquire) {
                    Ok(_) => {
                        self.total.fetch_sub(1, SeqCst);
                        return true;
                    }
                    Err(cur) => v = cur,
                }
            }
        }
        // Not found: the slot was pruned (this process was judged dead,
        // which cannot happen to a live process) and `total` adjusted.
        false
    }

    /// Removes one registration of `pid`, from its slot or else from the
    /// overflow counter (for counts that a process registers and removes
    /// one at a time, without keeping the role word).
    pub(crate) fn remove_one(&self, pid: u32) {
        if self.remove(pid) {
            return;
        }
        if self
            .overflow
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.total.fetch_sub(1, SeqCst);
        }
    }

    /// Whether anybody holds this side (cheap).
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.total.load(SeqCst) != 0
    }

    /// Removes `n` registrations of `pid` (as `remove_one` `n` times).
    pub(crate) fn remove_n(&self, pid: u32, mut n: u64) {
        for s in &self.slots {
            if n == 0 {
                return;
            }
            let mut v = s.load(Acquire);
            while (v >> 32) as u32 == pid && v & 0xFFFF_FFFF != 0 {
                let k = n.min(v & 0xFFFF_FFFF);
                let new = if k == v & 0xFFFF_FFFF { 0 } else { v - k };
                match s.compare_exchange(v, new, AcqRel, Acquire) {
                    Ok(_) => {
                        self.total.fetch_sub(k as u32, SeqCst);
                        n -= k;
                        break;
                    }
                    Err(cur) => v = cur,
                }
            }
        }
        for _ in 0..n {
            if self
                .overflow
                .fetch_update(SeqCst, SeqCst, |c| c.checked_sub(1))
                .is_err()
            {
                return;
            }
            self.total.fetch_sub(1, SeqCst);
        }
    }

    /// Registrations in the slots, plus the overflow counter: exact for
    /// live processes, unlike `total`, which a process killed inside `add`
    /// leaves one too high. Slots of dead processes count until pruned.
    pub(crate) fn sum(&self) -> u64 {
        let slots: u64 = self
            .slots
            .iter()
            .map(|s| s.load(Acquire) & 0xFFFF_FFFF)
            .sum();
        slots + u64::from(self.overflow.load(SeqCst))
    }

    /// Registrations of `pid` in its slot.
    pub(crate) fn count_of(&self, pid: u32) -> u64 {
        self.slots
            .iter()
            .map(|s| s.load(Acquire))
            .find(|v| (v >> 32) as u32 == pid)
            .map_or(0, |v| v & 0xFFFF_FFFF)
    }

    /// Frees the slots of dead processes; returns how many registrations
    /// they held. Slow: reads `/proc` per slot.
    pub(crate) fn prune(&self) -> u64 {
        let mut freed = 0u64;
        for s in &self.slots {
            let v = s.load(Acquire);
            if v == 0 {
                continue;
            }
            let pid = (v >> 32) as u32;
            if !pid_alive(pid) && s.compare_exchange(v, 0, AcqRel, Relaxed).is_ok() {
                self.total.fetch_sub((v & 0xFFFF_FFFF) as u32, SeqCst);
                freed += v & 0xFFFF_FFFF;
            }
        }
        freed
    }
}

fn pid_alive(pid: u32) -> bool {
    #[cfg(loom)]
    {
        let _ = pid;
        true
    }
    #[cfg(not(loom))]
    {
        pid == mp_os::liveness::process_token() || mp_os::liveness::token_alive(pid)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use mp_os::liveness::{TID_BITS, process_token};

    #[test]
    fn a_full_table_is_pruned_before_it_overflows() {
        let h = Holders::new();
        let init = mp_os::liveness::token_of(1).expect("pid 1 exists");
        // Every slot taken by "dead" processes (pid 1 with another stamp).
        for i in 0..SLOTS as u32 {
            let dead = (init & mp_os::liveness::TID_MASK) | (((i % 511) + 1) << TID_BITS);
            let dead = if dead == init {
                dead ^ (1 << TID_BITS)
            } else {
                dead
            };
            h.slots[i as usize].store(u64::from(dead) << 32 | 1, SeqCst);
        }
        h.total.store(SLOTS as u32, SeqCst);
        let me = process_token();
        let role = h.add(me);
        assert_eq!(role & OVERFLOW, 0, "a pruned slot was reused");
        assert_eq!(h.total.load(SeqCst), 1);
        h.remove(role);
        assert!(!h.any());
    }

    #[test]
    fn prune_frees_dead_holders_and_keeps_live_ones() {
        let h = Holders::new();
        let me = process_token();
        let role = h.add(me);
        assert_eq!(role, me);
        // pid 1 runs for the whole life of the machine, but not with the
        // start time of our process: a holder that died and whose pid went
        // to a process started at another time.
        let init = mp_os::liveness::token_of(1).expect("pid 1 exists");
        let reused = init ^ (1 << TID_BITS);
        h.add(reused);
        h.add(reused);
        assert_eq!(h.total.load(SeqCst), 3);
        assert_eq!(h.prune(), 2);
        assert_eq!(
            h.total.load(SeqCst),
            1,
            "the reused pid's two registrations go"
        );
        assert!(h.any());
        h.remove(role);
        assert!(!h.any());
    }
}
