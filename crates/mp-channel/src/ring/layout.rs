//! The ring's shared-memory layout: the control block, the record
//! headers, and the constants that give their fields meaning.
//!
//! # Control block (`RingCtl`, layout version 5)
//!
//! ```text
//! offset  size  field
//!      0     8  tail          next byte to reserve (monotonic, never wraps)
//!      8     4  wlock         writers' lock: holder token | WAITERS (bit 31), 0 = free
//!     16     8  puts          messages put (counted rings; written under wlock)
//!     24     8  pre_tail      counted rings: `tail` when `puts` was last bumped
//!     32     8  pre_puts      counted rings: `puts` before that bump
//!     64     8  head          next record to claim
//!     72     4  rlock         readers' lock, as wlock
//!     80     8  gets          messages taken (counted rings; written under rlock)
//!     88     8  pre_head      counted rings: the record of the last counted take | ARMED | DROP
//!     96     8  pre_gets      counted rings: `gets` before that take
//!    104     8  dropped       counted rings: messages counted in `puts` never delivered
//!                             (torn by a dead writer, or a stream whose writer died)
//!    112     8  pre_dropped   `dropped` before the last take flagged DROP
//!    128     8  released      bytes below this may be overwritten
//!    136     8  marks         records marked CONSUMED that `released` has not passed
//!    192     4  data.seq      futex word readers sleep on (bumped on commit)
//!    196     4  data.waiters  sleepers (low 16 bits) + pollers (high 16 bits)
//!    256     4  space.seq     futex word writers sleep on (bumped on release)
//!    260     4  space.waiters sleeping writers
//!    320  2048  writers       holder table (see `holders`)
//!   2368  2048  readers       holder table
//!   4416        end
//! ```
//!
//! Each group of words a side writes on every message has its own cache
//! line: writers own the `tail` line, readers the `head` and `released`
//! lines, and neither side writes the other's. A queue's message count
//! (`qsize`, the `maxsize` bound) is `puts - gets`: two counters that each
//! side bumps with a plain store under its own lock, instead of one shared
//! counter that both sides would pull back and forth per message.
//!
//! A *token* is a thread's liveness token (`mp_os::liveness`): its kernel
//! thread id in bits 0..22 and a stamp of its start time in bits 22..31, so
//! that a dead peer whose id was given to a new thread still looks dead.
//!
//! # Records
//!
//! A record is a 16-byte header and its payload, padded to 16 bytes; it
//! never wraps (a PAD record fills the end of the buffer instead).
//!
//! ```text
//! offset  size  field
//!      0     8  stamp  position of the record | state (low 4 bits)
//!      8     4  len    payload bytes | FIRST (bit 31) | LAST (bit 30)
//!     12     4  tid    writer's liveness token; the claiming reader's after a claim
//!     16   len  payload
//! ```
//!
//! States: WRITING (reserved), COMMITTED, CLAIMED (a reader copies it),
//! CONSUMED (space may be released), PAD. Because the stamp holds the
//! record's absolute position, a stale header from an earlier lap never
//! looks valid.

use crate::holders::Holders;
use crate::sync::{AtomicU32, AtomicU64};

/// Header bytes per record.
pub(crate) const HDR: u64 = 16;
/// Smallest ring (bytes).
pub(crate) const MIN_CAP: u64 = 4096;
/// Largest ring (bytes).
pub(crate) const MAX_CAP: u64 = 1 << 30;

pub(super) const ST_MASK: u64 = 0xF;
pub(super) const WRITING: u64 = 1;
pub(super) const COMMITTED: u64 = 2;
pub(super) const CLAIMED: u64 = 3;
pub(super) const CONSUMED: u64 = 4;
pub(super) const PAD: u64 = 5;

/// Bits a valid position never has: positions are 16-byte aligned and stay
/// below 2^63 (they count the bytes ever written to the ring: 29 years at
/// 10 GB/s). A position read from shared memory with any of them set is
/// corrupt; checking it is one AND, and it keeps `pos + size` from
/// overflowing.
pub(super) const BAD_POS: u64 = 15 | 1 << 63;

/// Whether `pos`, read from shared memory, can be a position (see
/// `BAD_POS`).
#[inline]
pub(super) fn pos_ok(pos: u64) -> bool {
    pos & BAD_POS == 0
}

pub(super) const FIRST: u32 = 1 << 31;
pub(super) const LAST: u32 = 1 << 30;
pub(super) const LEN_MASK: u32 = LAST - 1;

/// Largest message a writer copies and commits while it holds `wlock`, and
/// a reader decodes while it holds `rlock` (without marking the record
/// CLAIMED). Small, so the other writers or readers hardly wait; under loom
/// smaller than some of the model's messages, so both paths are checked.
pub(crate) const INLINE_MAX: u64 = if cfg!(loom) { 3 } else { 512 };

/// `pre_head` flags: a counted take was started at that record; it
/// drops the message (a torn record) rather than delivering it.
pub(super) const ARMED: u64 = 1;
pub(super) const DROP: u64 = 2;

#[inline]
pub(crate) fn rec_size(len: u64) -> u64 {
    (HDR + len + 15) & !15
}

#[repr(C)]
pub(crate) struct RecHeader {
    pub(super) stamp: AtomicU64,
    pub(super) len: AtomicU32,
    pub(super) tid: AtomicU32,
}

#[repr(C, align(64))]
pub(crate) struct End {
    pub(crate) pos: AtomicU64,
    pub(crate) lock: AtomicU32,
    /// Messages that passed this end (counted rings): `puts` on the tail
    /// line, `gets` on the head line; written under the end's lock.
    pub(crate) msgs: AtomicU64,
    /// Recovery state of the last counted operation (see the module docs):
    /// the position it worked at, and `msgs` before it.
    pub(super) pre_pos: AtomicU64,
    pub(super) pre_msgs: AtomicU64,
    /// Head line: messages counted in `puts` that will never be delivered;
    /// and its value before the last take that dropped one.
    pub(super) dropped: AtomicU64,
    pub(super) pre_dropped: AtomicU64,
}

#[repr(C, align(64))]
pub(crate) struct Word64 {
    pub(crate) v: AtomicU64,
    /// On the `released` line: records marked CONSUMED and not yet passed
    /// by `released` (out-of-order completions, pads, skipped records).
    pub(crate) marks: AtomicU64,
}

#[repr(C, align(64))]
pub(crate) struct Wake {
    pub(crate) seq: AtomicU32,
    pub(crate) waiters: AtomicU32,
}

/// The control block (see the module docs for the layout).
#[repr(C)]
pub(crate) struct RingCtl {
    pub(crate) tail: End,
    pub(crate) head: End,
    pub(crate) released: Word64,
    pub(crate) data: Wake,
    pub(crate) space: Wake,
    pub(crate) writers: Holders,
    pub(crate) readers: Holders,
}

/// Size of the control block in shared memory.
pub(crate) const CTL_SIZE: usize = 4416;
#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<RingCtl>() == CTL_SIZE);
    assert!(std::mem::offset_of!(End, lock) == 8);
    assert!(std::mem::offset_of!(End, msgs) == 16);
    assert!(std::mem::offset_of!(End, pre_pos) == 24);
    assert!(std::mem::offset_of!(End, pre_msgs) == 32);
    assert!(std::mem::offset_of!(End, dropped) == 40);
    assert!(std::mem::offset_of!(End, pre_dropped) == 48);
    assert!(std::mem::offset_of!(Word64, marks) == 8);
    assert!(std::mem::offset_of!(RingCtl, head) == 64);
    assert!(std::mem::offset_of!(RingCtl, released) == 128);
    assert!(std::mem::offset_of!(RingCtl, data) == 192);
    assert!(std::mem::offset_of!(RingCtl, space) == 256);
    assert!(std::mem::offset_of!(RingCtl, writers) == 320);
    assert!(std::mem::offset_of!(RingCtl, readers) == 2368);
    assert!(std::mem::size_of::<RecHeader>() == HDR as usize);
};
