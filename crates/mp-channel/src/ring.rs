//! The byte ring every channel is made of: variable-size records in a
//! power-of-two buffer of shared memory, many writers, many readers.
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
//!
//! # Protocol
//!
//! * A writer takes `wlock` (a CAS; a few stores inside), checks space
//!   against `released` (through a cached lower bound) and, in a counted
//!   ring with a bound, the count against `gets` (cached too), bumps `puts`,
//!   writes the header(s) with state WRITING and advances `tail`. A small
//!   message (up to `INLINE_MAX` bytes) is then copied and published with
//!   one store of COMMITTED before the lock is released, so that the
//!   release's atomic swap doubles as the fence before the waiter check; a
//!   larger one is copied after releasing the lock, then committed. The
//!   critical section is crash-consistent: `tail` is its commit point, and a
//!   lock whose holder died is taken over after a liveness check.
//! * A reader spins/sleeps until the record at `head` is committed and
//!   takes `rlock`. A small whole message is decoded straight from the ring
//!   under the lock; then `released` is advanced over it (a plain store when
//!   it is the oldest record, which only its reader can pass; else it is
//!   marked CONSUMED), `head` and `gets` are advanced and the lock is
//!   released: the reader never writes the record, whose cache line the
//!   writer is about to fill again. Any other message
//!   is marked CLAIMED with the reader's token, `head` advances, the lock is
//!   released, the payload is decoded straight from the ring, and the record
//!   is marked CONSUMED; `released` is advanced over consecutive consumed
//!   records (whoever can, with a CAS).
//! * A reader that died inside `rlock` may have advanced `released` past
//!   `head`: whoever takes the lock next moves `head` up to `released`.
//! * Counts survive a holder killed at any instruction: before bumping
//!   `puts` a writer notes `pre_puts` then `pre_tail`; whoever takes over
//!   the lock of a dead writer sets `puts` back to `pre_puts` when `tail`
//!   is still `pre_tail` (the reservation never committed). Before taking
//!   a message a reader notes `pre_head` then `pre_gets`; whoever takes over
//!   the lock of a dead reader sets `gets` to `pre_gets + 1` when the record
//!   at `pre_head` is gone (`head` passed it, or it is consumed or claimed;
//!   a claim the dead reader left half done is completed), and leaves `gets`
//!   alone otherwise (the record will be delivered again).
//! * A record still WRITING whose writer is dead is skipped by readers; a
//!   record CLAIMED by a dead reader is released by writers.
//! * A message larger than a quarter of the ring is streamed: fragments
//!   (FIRST, ..., LAST; the first starts with the total length) written
//!   under `wlock` and read under `rlock`, so one writer streams to one
//!   reader while the others wait. A writer whose deadline passes while it
//!   waits for room for a later fragment gives up: it releases `wlock` with
//!   the message unfinished. Its reader, waiting for the next fragment,
//!   sees `wlock` no longer held by that writer (or the next message's
//!   FIRST fragment) and drops the message; later readers drop its
//!   remaining fragments. A streamed message is read whole or not at all.
//! * Pacing: a writer that finds the ring full waits for a batch of space
//!   (or for the readers to pause), polling `released` at a slow pace; a
//!   reader that finds the ring empty right after a message that was
//!   already waiting polls at a slow pace too. Either way the two sides stay
//!   a few cache lines apart instead of handing one line back and forth per
//!   message.
//! * Wake-ups: a writer that commits reads `data.waiters` after a fence (or
//!   the swap that released its lock) and only then bumps `data.seq` and
//!   calls `futex_wake` (and writes the eventfd when somebody polls).
//!   Readers do the same for `space`.
//!
//! # Peers are not trusted
//!
//! Any process that maps the ring can write anything into it. Every
//! position read from shared memory is checked to be one (16-aligned,
//! below 2^63: `pos_ok`) before it is used, and every record header is
//! read through `hdr`, which masks the position into the buffer, so no
//! value a peer writes makes this process access memory out of bounds or
//! through a misaligned atomic. A record whose length runs beyond the
//! buffer, a `head` beyond `tail`, a `tail` that is not a position or a
//! `released` beyond `tail` or more than a ring behind it is reported as
//! corrupt (`RErr::Corrupt`, `WErr::Corrupt`) instead of being followed,
//! and every loop over records advances by at least one header. A peer can
//! still forge or destroy messages, and can hold a lock for ever (as a
//! slow peer would): blocking calls with a deadline keep it.

use std::sync::atomic::AtomicU32 as LocalU32;
use std::time::Duration;

use mp_os::futex::Wait;
use mp_os::time::{Deadline, monotonic_ns};

use crate::holders::Holders;
use crate::sync::{
    AtomicU32, AtomicU64, Ordering::*, alive, fence, fence_after_rmw, futex_wait, futex_wake_all,
    spin_hint,
};

/// Header bytes per record.
pub(crate) const HDR: u64 = 16;
/// Smallest ring (bytes).
pub(crate) const MIN_CAP: u64 = 4096;
/// Largest ring (bytes).
pub(crate) const MAX_CAP: u64 = 1 << 30;

const ST_MASK: u64 = 0xF;
const WRITING: u64 = 1;
const COMMITTED: u64 = 2;
const CLAIMED: u64 = 3;
const CONSUMED: u64 = 4;
const PAD: u64 = 5;

/// Bits a valid position never has: positions are 16-byte aligned and stay
/// below 2^63 (they count the bytes ever written to the ring: 29 years at
/// 10 GB/s). A position read from shared memory with any of them set is
/// corrupt; checking it is one AND, and it keeps `pos + size` from
/// overflowing.
const BAD_POS: u64 = 15 | 1 << 63;

/// Whether `pos`, read from shared memory, can be a position (see
/// `BAD_POS`).
#[inline]
fn pos_ok(pos: u64) -> bool {
    pos & BAD_POS == 0
}

const FIRST: u32 = 1 << 31;
const LAST: u32 = 1 << 30;
const LEN_MASK: u32 = LAST - 1;

/// Largest message a writer copies and commits while it holds `wlock`, and
/// a reader decodes while it holds `rlock` (without marking the record
/// CLAIMED). Small, so the other writers or readers hardly wait; under loom
/// smaller than some of the model's messages, so both paths are checked.
pub(crate) const INLINE_MAX: u64 = if cfg!(loom) { 3 } else { 512 };

/// Extra space a writer waiting for room waits for while the readers keep
/// releasing (see `wait_space`), and the CPU pauses between its polls.
const SPACE_BATCH: u64 = 4096;
/// The longest a writer spins for such a batch.
const SPACE_BATCH_SPIN_NS: u64 = 20_000;
const SPACE_PACE_NS: u32 = if cfg!(loom) { 0 } else { 300 };
/// How often a reader that caught up with a stream polls for the next
/// message (see `read`).
const STREAM_PACE_NS: u32 = if cfg!(loom) { 0 } else { 300 };

/// `pre_head` flags: a counted take was started at that record; it
/// drops the message (a torn record) rather than delivering it.
const ARMED: u64 = 1;
const DROP: u64 = 2;

const LOCK_WAITERS: u32 = 1 << 31;
/// Spins on a held lock before sleeping (each one a yield under loom).
const LOCK_SPINS: u32 = if cfg!(loom) { 2 } else { 100 };
/// One poller in `data.waiters`.
pub(crate) const POLLER: u32 = 1 << 16;

/// How long a sleeper sleeps before it checks for dead peers.
pub(crate) const SLICE: Duration = Duration::from_millis(100);
const SLICE_NS: u64 = 100_000_000;

/// Adaptive spin budget bounds (nanoseconds).
pub(crate) const SPIN_DEFAULT_NS: u32 = 20_000;
/// A low floor: on a loaded 2-core machine a long spin steals the CPU the
/// peer needs (measured: a 12 us floor made round trips 50 us under load).
const SPIN_MIN_NS: u32 = 1_000;
const SPIN_MAX_NS: u32 = 50_000;

#[inline]
pub(crate) fn rec_size(len: u64) -> u64 {
    (HDR + len + 15) & !15
}

#[repr(C)]
pub(crate) struct RecHeader {
    stamp: AtomicU64,
    len: AtomicU32,
    tid: AtomicU32,
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
    pre_pos: AtomicU64,
    pre_msgs: AtomicU64,
    /// Head line: messages counted in `puts` that will never be delivered;
    /// and its value before the last take that dropped one.
    dropped: AtomicU64,
    pre_dropped: AtomicU64,
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

/// How a blocking call waits.
///
/// ```
/// use mp_channel::WaitMode;
/// assert_eq!(WaitMode::default(), WaitMode::Adaptive);
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum WaitMode {
    /// Spin briefly (adapting the budget to how often spinning pays off),
    /// then sleep on a futex. The default.
    #[default]
    Adaptive,
    /// Sleep on the futex at once: no CPU burnt, a wake-up costs a few
    /// microseconds.
    NoSpin,
    /// Never sleep: poll until the deadline. Lowest latency, burns a CPU;
    /// for latency-critical users with a core to spare.
    BusyPoll,
}

impl WaitMode {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            WaitMode::Adaptive => 0,
            WaitMode::NoSpin => 1,
            WaitMode::BusyPoll => 2,
        }
    }
    pub(crate) fn from_u8(v: u8) -> WaitMode {
        match v {
            1 => WaitMode::NoSpin,
            2 => WaitMode::BusyPoll,
            _ => WaitMode::Adaptive,
        }
    }
}

/// The caller's side of a blocking call.
pub(crate) struct Waiter<'a> {
    pub(crate) deadline: Deadline,
    pub(crate) mode: WaitMode,
    pub(crate) spin_ns: &'a LocalU32,
    pub(crate) me: u32,
}

/// Why a write failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WErr {
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
enum Full {
    /// Bytes: wait until `released` reaches this position.
    Space(u64),
    /// A message slot (counted ring at `maxsize`).
    Count,
    /// `tail` or `released` is not a position this protocol leaves.
    Corrupt,
}

/// Why a read failed.
#[derive(Debug)]
pub(crate) enum RErr {
    Timeout,
    Disconnected,
    TooShort(u64),
    Corrupt(&'static str),
    Decode(postcard::Error),
}

/// Where a reader puts a message.
pub(crate) trait Sink {
    type Out;
    /// Largest message accepted; a larger one stays in the ring.
    fn limit(&self) -> u64 {
        u64::MAX
    }
    /// A message in one record, straight from the ring.
    fn whole(&mut self, bytes: &[u8]) -> Result<Self::Out, RErr>;
    /// A streamed message of `total` bytes: the buffer to fill.
    fn start(&mut self, total: u64) -> Result<&mut [u8], RErr>;
    /// The streamed message is complete.
    fn finish(&mut self, total: u64) -> Result<Self::Out, RErr>;
    /// A message is being taken for this sink (called under `rlock`,
    /// before the take is counted in `gets`).
    fn claimed(&mut self) {}
    /// The streamed message claimed for this sink was dropped (its writer
    /// died or gave up; counted in `dropped` just before).
    fn dropped(&mut self) {}
}

enum Head {
    Empty,
    Writing { tid: u32, size: u64, first: bool },
    Ready { len: u64, flags: u32, tid: u32 },
    Skip { size: u64, pad: bool },
    Corrupt,
}

/// One ring: a control block and a data buffer in shared memory.
pub(crate) struct Ring {
    ctl: *const RingCtl,
    #[cfg(not(loom))]
    data: *mut u8,
    #[cfg(loom)]
    store: loom_store::Store,
    cap: u64,
    mask: u64,
    max_frag: u64,
    efd: i32,
    counted: bool,
    /// A lower bound of `released`, read and written only under `wlock`
    /// (so the lock's acquire/release orders it): spares writers a
    /// cache-line transfer per message.
    released_cache: AtomicU64,
    /// A lower bound of `gets` (counted rings with a bound), under `wlock`
    /// as `released_cache`.
    gets_cache: AtomicU64,
    /// This process's last read found its message waiting (see `read`).
    streaming: std::sync::atomic::AtomicBool,
}

// SAFETY: the pointers refer to shared memory that the owner (`Chan`) keeps
// mapped for the ring's lifetime; all shared state is accessed through
// atomics, and payload bytes only by the single owner of a reserved or
// claimed record.
unsafe impl Send for Ring {}
// SAFETY: as for Send.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring over `ctl` and `cap` bytes at `data`.
    ///
    /// # Safety
    ///
    /// * `ctl` points to a `RingCtl` (zeroed or in use by this protocol) and
    ///   `data` to `cap` bytes, both valid for the ring's lifetime and
    ///   16-byte aligned;
    /// * `cap` is a power of two in `MIN_CAP..=MAX_CAP`;
    /// * `efd` is an eventfd valid for the ring's lifetime, or -1.
    #[cfg(not(loom))]
    pub(crate) unsafe fn new(
        ctl: *const RingCtl,
        data: *mut u8,
        cap: u64,
        efd: i32,
        counted: bool,
    ) -> Ring {
        Ring {
            ctl,
            data,
            cap,
            mask: cap - 1,
            max_frag: (cap / 4).min(1 << 28) - HDR,
            efd,
            counted,
            released_cache: AtomicU64::new(0),
            gets_cache: AtomicU64::new(0),
            streaming: std::sync::atomic::AtomicBool::new(false),
        }
    }

    #[inline]
    pub(crate) fn ctl(&self) -> &RingCtl {
        // SAFETY: see `new`: valid for the ring's lifetime.
        unsafe { &*self.ctl }
    }

    /// Bytes of ring buffer.
    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

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

    /// Largest message written in one record; a longer one is streamed.
    pub(crate) fn max_frag(&self) -> u64 {
        self.max_frag
    }

    #[cfg(not(loom))]
    #[inline]
    fn hdr(&self, pos: u64) -> &RecHeader {
        // SAFETY: `pos & mask & !15` is a 16-aligned offset below `cap`
        // (also for a corrupt `pos` read from shared memory: the mask
        // makes every header access aligned and in bounds), which leaves
        // room for a 16-byte header in the 16-aligned buffer; RecHeader is
        // all atomics, so any bytes are a valid value.
        unsafe {
            &*self
                .data
                .add((pos & self.mask & !(HDR - 1)) as usize)
                .cast::<RecHeader>()
        }
    }

    /// Copies `src` into the payload of the record at `pos`, at `off`.
    ///
    /// # Safety
    ///
    /// The caller reserved the record (state WRITING, its own) with a
    /// payload of at least `off + src.len()` bytes.
    #[cfg(not(loom))]
    #[inline]
    unsafe fn put(&self, pos: u64, off: u64, src: &[u8]) {
        // SAFETY: records never wrap; the reservation covers the range and
        // nobody else touches it until it is committed.
        unsafe {
            let dst = self.data.add(((pos & self.mask) + HDR + off) as usize);
            std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len());
        }
    }

    /// Runs `f` on `len` payload bytes of the record at `pos`, from `off`.
    ///
    /// # Safety
    ///
    /// The caller owns the record (claimed it, or holds `rlock` over it
    /// committed), `pos` is a valid position (`pos_ok`) and the range is
    /// inside its payload, which ends inside the buffer (`look` or
    /// `try_take_inline` checked it).
    #[cfg(not(loom))]
    #[inline]
    unsafe fn with_payload<R>(
        &self,
        pos: u64,
        off: u64,
        len: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> R {
        // SAFETY: the claim gives this reader the range until it marks the
        // record consumed; the writer finished before committing.
        let s = unsafe {
            std::slice::from_raw_parts(
                self.data.add(((pos & self.mask) + HDR + off) as usize),
                len as usize,
            )
        };
        f(s)
    }

    // ------------------------------------------------------------ locks

    #[inline]
    fn lock(&self, word: &AtomicU32, me: u32, deadline: Deadline) -> bool {
        word.compare_exchange(0, me, Acquire, Relaxed).is_ok() || self.lock_slow(word, me, deadline)
    }

    #[cold]
    fn lock_slow(&self, word: &AtomicU32, me: u32, deadline: Deadline) -> bool {
        let mut spins = 0u32;
        let mut want = me;
        loop {
            let cur = word.load(Relaxed);
            if cur == 0 {
                if word.compare_exchange(0, want, Acquire, Relaxed).is_ok() {
                    return true;
                }
                continue;
            }
            if spins < LOCK_SPINS {
                spins += 1;
                if spins > LOCK_SPINS / 2 {
                    yield_now();
                } else {
                    spin_hint();
                }
                continue;
            }
            if cur & LOCK_WAITERS == 0
                && word
                    .compare_exchange(cur, cur | LOCK_WAITERS, Relaxed, Relaxed)
                    .is_err()
            {
                continue;
            }
            want = me | LOCK_WAITERS;
            if futex_wait(word, cur | LOCK_WAITERS, deadline.min_after(SLICE)) == Wait::TimedOut {
                if self.take_over_if_dead(word, |_| want) {
                    return true;
                }
                if deadline.expired() {
                    return false;
                }
            }
        }
    }

    /// Takes `word` when its holder died (inside its crash-consistent
    /// section), writing `want(holder)`, and repairs what the holder may
    /// have left half done. `false`: no dead holder, or another process
    /// took it first.
    #[cold]
    fn take_over_if_dead(&self, word: &AtomicU32, want: impl FnOnce(u32) -> u32) -> bool {
        let holder = word.load(Relaxed);
        if holder != 0
            && !alive(holder & !LOCK_WAITERS)
            && word
                .compare_exchange(holder, want(holder), Acquire, Relaxed)
                .is_ok()
        {
            self.after_takeover(word);
            return true;
        }
        false
    }

    /// The lock `word` was taken over from a holder that died: repairs
    /// what it may have left half done.
    #[cold]
    fn after_takeover(&self, word: &AtomicU32) {
        if std::ptr::eq(word, &self.ctl().tail.lock) {
            self.recount_puts();
        } else {
            self.recover_reader();
        }
    }

    /// After taking `wlock` over from a dead writer: a reservation that
    /// bumped `puts` but never advanced `tail` is not counted.
    fn recount_puts(&self) {
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
    fn recover_reader(&self) {
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
    fn arm(&self, h: u64, flag: u64) {
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
    fn count_dropped(&self) {
        if self.counted {
            let d = &self.ctl().head.dropped;
            d.store(d.load(Relaxed) + 1, Release);
        }
    }

    #[inline]
    fn try_lock(&self, word: &AtomicU32, me: u32) -> bool {
        word.compare_exchange(0, me, Acquire, Relaxed).is_ok()
    }

    #[inline]
    fn unlock(&self, word: &AtomicU32) {
        if word.swap(0, Release) & LOCK_WAITERS != 0 {
            futex_wake_all(word);
        }
    }

    // ------------------------------------------------------ notifications

    #[inline]
    fn notify_data(&self) {
        fence(SeqCst);
        self.wake_readers();
    }

    /// Wakes sleeping readers and pollers, if any (the caller fenced after
    /// its commit).
    #[inline]
    fn wake_readers(&self) {
        let w = self.ctl().data.waiters.load(Relaxed);
        if w != 0 {
            self.wake_data(w);
        }
    }

    #[cold]
    fn wake_data(&self, w: u32) {
        let d = &self.ctl().data;
        d.seq.fetch_add(1, SeqCst);
        if w & (POLLER - 1) != 0 {
            futex_wake_all(&d.seq);
        }
        if w >= POLLER {
            self.signal_efd();
        }
    }

    fn signal_efd(&self) {
        #[cfg(not(loom))]
        if self.efd >= 0 {
            // SAFETY: `efd` is valid for the ring's lifetime (see `new`).
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.efd) };
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
    }

    #[inline]
    fn notify_space(&self) {
        fence(SeqCst);
        self.wake_writers();
    }

    /// Wakes sleeping writers, if any (the caller fenced after releasing).
    #[inline]
    fn wake_writers(&self) {
        let s = &self.ctl().space;
        if s.waiters.load(Relaxed) != 0 {
            s.seq.fetch_add(1, SeqCst);
            futex_wake_all(&s.seq);
        }
    }

    /// Wakes everybody (a side was closed or dropped).
    pub(crate) fn notify_all(&self) {
        let c = self.ctl();
        c.data.seq.fetch_add(1, SeqCst);
        futex_wake_all(&c.data.seq);
        c.space.seq.fetch_add(1, SeqCst);
        futex_wake_all(&c.space.seq);
        self.signal_efd();
    }

    /// Registers (`true`) or unregisters a poller (eventfd readiness).
    pub(crate) fn poller(&self, on: bool) {
        let w = &self.ctl().data.waiters;
        if on {
            w.fetch_add(POLLER, SeqCst);
            fence(SeqCst);
        } else {
            w.fetch_sub(POLLER, SeqCst);
        }
    }

    // ------------------------------------------------------------ waiting

    /// Waits until `check` returns `Some` (it is told `true` when a slow
    /// check for dead peers is due), or `deadline` passes (`None`).
    fn block<R>(
        &self,
        ev: &Wake,
        w: &Waiter<'_>,
        deadline: Deadline,
        check: impl FnMut(bool) -> Option<R>,
    ) -> Option<R> {
        self.block_paced(ev, w, deadline, 0, check)
    }

    /// [`block`](Ring::block) polling at most once per `pace_ns` while it
    /// spins (0: as fast as it can). Polling a word the other side writes
    /// per message pulls its cache line over and back each time: a writer
    /// waiting for space, and a reader that caught up with a stream, poll
    /// at a slower pace.
    fn block_paced<R>(
        &self,
        ev: &Wake,
        w: &Waiter<'_>,
        deadline: Deadline,
        pace_ns: u32,
        mut check: impl FnMut(bool) -> Option<R>,
    ) -> Option<R> {
        if let Some(r) = check(false) {
            return Some(r);
        }
        if deadline.expired() {
            return None;
        }
        let pause = || {
            if pace_ns == 0 {
                spin_hint();
            } else {
                let until = monotonic_ns() + u64::from(pace_ns);
                while monotonic_ns() < until {
                    spin_hint();
                }
            }
        };
        let timer_every = if pace_ns > 0 { 1 } else { 16 };
        let started = monotonic_ns();
        let mut last_slow = started;
        match w.mode {
            WaitMode::BusyPoll => {
                let mut i = 0u32;
                loop {
                    pause();
                    if let Some(r) = check(false) {
                        return Some(r);
                    }
                    i = i.wrapping_add(1);
                    if i.is_multiple_of(128 / timer_every) {
                        if deadline.expired() {
                            return None;
                        }
                        let now = monotonic_ns();
                        if now - last_slow > SLICE_NS {
                            last_slow = now;
                            if let Some(r) = check(true) {
                                return Some(r);
                            }
                        }
                    }
                }
            }
            WaitMode::Adaptive => {
                let budget = w.spin_ns.load(Relaxed).clamp(SPIN_MIN_NS, SPIN_MAX_NS);
                let start = monotonic_ns();
                let mut i = 0u32;
                loop {
                    pause();
                    if let Some(r) = check(false) {
                        if budget < SPIN_MAX_NS {
                            w.spin_ns.store((budget * 2).min(SPIN_MAX_NS), Relaxed);
                        }
                        return Some(r);
                    }
                    i += 1;
                    if i.is_multiple_of(timer_every) {
                        let el = monotonic_ns() - start;
                        if el > u64::from(budget) || deadline.expired() {
                            break;
                        }
                        if el > u64::from(budget) / 2 {
                            yield_now();
                        }
                    }
                }
                w.spin_ns.store((budget / 2).max(SPIN_MIN_NS), Relaxed);
            }
            WaitMode::NoSpin => {}
        }
        let slept = loop {
            ev.waiters.fetch_add(1, SeqCst);
            fence(SeqCst);
            let seq = ev.seq.load(SeqCst);
            if let Some(r) = check(false) {
                ev.waiters.fetch_sub(1, SeqCst);
                break Some(r);
            }
            let r = futex_wait(&ev.seq, seq, deadline.min_after(SLICE));
            ev.waiters.fetch_sub(1, SeqCst);
            let now = monotonic_ns();
            if r == Wait::TimedOut || now - last_slow > SLICE_NS {
                last_slow = now;
                if let Some(r) = check(true) {
                    break Some(r);
                }
                if deadline.expired() {
                    break None;
                }
            }
        };
        if w.mode == WaitMode::Adaptive && slept.is_some() {
            // The spin gave up, yet the wait was short: spin that long
            // next time (else a budget halved below the usual wait of a
            // request/reply exchange would never grow back, and every
            // wait would pay a futex wake-up).
            let waited = monotonic_ns() - started;
            if waited < u64::from(SPIN_MAX_NS) / 2 {
                let learnt = (2 * waited as u32).clamp(SPIN_MIN_NS, SPIN_MAX_NS);
                w.spin_ns.fetch_max(learnt, Relaxed);
            }
        }
        slept
    }

    // ------------------------------------------------------------ writers

    /// [`write_within`](Ring::write_within) with `w.deadline` bounding
    /// the whole call.
    #[cfg(test)]
    pub(crate) fn write(&self, msg: &[u8], w: &Waiter<'_>, maxsize: u64) -> Result<(), WErr> {
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
    ) -> Result<(), WErr> {
        if msg.len() as u64 <= INLINE_MAX && self.try_put_inline(msg, w.me, maxsize) {
            return Ok(());
        }
        self.write_slow(msg, w, maxsize, rest)
    }

    /// The common case of [`write_within`](Ring::write_within) in few
    /// instructions: a small message, `wlock` free, room in the ring.
    /// `false`: nothing was written (the general path sorts it out).
    #[inline]
    fn try_put_inline(&self, msg: &[u8], me: u32, maxsize: u64) -> bool {
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
    fn put_commit_unlock(&self, pos: u64, msg: &[u8]) {
        // SAFETY: the caller reserved `msg.len()` payload bytes at `pos`.
        unsafe { self.put(pos, 0, msg) };
        self.hdr(pos).stamp.store(pos | COMMITTED, Release);
        self.unlock(&self.ctl().tail.lock);
        fence_after_rmw();
        self.wake_readers();
    }

    /// `rest`: the deadline for the fragments after the first of a
    /// streamed message.
    fn write_slow(
        &self,
        msg: &[u8],
        w: &Waiter<'_>,
        maxsize: u64,
        rest: Deadline,
    ) -> Result<(), WErr> {
        if !self.ctl().readers.any() {
            return Err(WErr::Disconnected);
        }
        if msg.len() as u64 <= self.max_frag {
            self.write_whole(msg, w, maxsize)
        } else {
            self.write_stream(msg, w, maxsize, rest)
        }
    }

    fn write_whole(&self, msg: &[u8], w: &Waiter<'_>, maxsize: u64) -> Result<(), WErr> {
        let c = self.ctl();
        let len = msg.len() as u64;
        loop {
            if !self.lock(&c.tail.lock, w.me, w.deadline) {
                return Err(WErr::Timeout);
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

    /// Streams a large message (under `wlock` from the first fragment to
    /// the last). The first fragment waits for room until `w.deadline`, the
    /// others until `rest`; a writer that gives up after its first
    /// fragment releases `wlock` with the message unfinished, which tells
    /// its reader that the message was abandoned (see `read_stream`).
    fn write_stream(
        &self,
        msg: &[u8],
        w: &Waiter<'_>,
        maxsize: u64,
        rest: Deadline,
    ) -> Result<(), WErr> {
        let c = self.ctl();
        let total = msg.len() as u64;
        if !self.lock(&c.tail.lock, w.me, w.deadline) {
            return Err(WErr::Timeout);
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

    /// Reserves a record of `len` payload bytes at the tail (the caller
    /// holds `wlock`); a FIRST record of a counted ring also counts one
    /// message in `puts`, within `maxsize` (0: unbounded).
    /// A `tail` that is not a position, or a `released` beyond it or more
    /// than a ring behind it, is `Full::Corrupt`.
    fn reserve(&self, len: u64, flags: u32, me: u32, maxsize: u64) -> Result<u64, Full> {
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
    fn commit(&self, pos: u64) {
        self.hdr(pos).stamp.store(pos | COMMITTED, Release);
        self.notify_data();
    }

    /// Waits until what `reserve` found missing may be there.
    fn wait_room(
        &self,
        w: &Waiter<'_>,
        deadline: Deadline,
        full: Full,
        maxsize: u64,
    ) -> Result<(), WErr> {
        match full {
            Full::Space(need) => self.wait_space(w, deadline, need),
            Full::Count => self.wait_count(w, deadline, maxsize),
            Full::Corrupt => Err(WErr::Corrupt),
        }
    }

    /// Waits until a counted ring holds fewer than `maxsize` messages.
    fn wait_count(&self, w: &Waiter<'_>, deadline: Deadline, maxsize: u64) -> Result<(), WErr> {
        let c = self.ctl();
        self.block(&c.space, w, deadline, |slow| {
            if slow {
                c.readers.prune();
            }
            if !c.readers.any() {
                Some(Err(WErr::Disconnected))
            } else if self.count() < maxsize {
                Some(Ok(()))
            } else {
                None
            }
        })
        .unwrap_or(Err(WErr::Timeout))
    }

    /// Waits until `released` reaches `need`. A `released` that is not a
    /// position, is beyond `tail` or more than a ring behind it (which no
    /// reader of this protocol leaves) is `WErr::Corrupt`, not a wait
    /// that would never end.
    fn wait_space(&self, w: &Waiter<'_>, deadline: Deadline, need: u64) -> Result<(), WErr> {
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
                        Some(Err(WErr::Disconnected))
                    } else if slow && (!pos_ok(r) || t > r + self.cap) {
                        Some(Err(WErr::Corrupt))
                    } else {
                        None
                    }
                })
                .unwrap_or(Err(WErr::Timeout))?,
        };
        // `released` never passes `tail`: `tail` read after it is no less.
        if !pos_ok(r) || r > c.tail.pos.load(Acquire) {
            return Err(WErr::Corrupt);
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
    fn spin_for_batch(&self, w: &Waiter<'_>, deadline: Deadline, need: u64) -> Option<u64> {
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
    fn reclaim_dead(&self) {
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

    // ------------------------------------------------------------ readers

    /// What the record at `h` is. A position that is not one, or a
    /// record that would end beyond the buffer, is `Head::Corrupt`.
    fn look(&self, h: u64) -> Head {
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

    fn read_check(&self, slow: bool, me: u32) -> Option<Result<(), RErr>> {
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
                return Some(Err(RErr::Corrupt("ring head beyond its tail")));
            }
        }
        if !c.writers.any() {
            // Nobody will complete a record still being written.
            self.skip_torn(me);
            if self.peek_ready() {
                return Some(Ok(()));
            }
            return Some(Err(RErr::Disconnected));
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

    fn recover_lock(&self, lock: &AtomicU32, me: u32) {
        if self.take_over_if_dead(lock, |h| me | (h & LOCK_WAITERS)) {
            self.unlock(lock);
        }
    }

    /// A reader that died inside `rlock` may have released a message
    /// without advancing `head` past it: `head` moves up to `released`
    /// (everything below it was consumed). Whether it moved. The caller
    /// holds `rlock`; otherwise `head >= released` at that point.
    #[inline]
    fn repair_head(&self) -> bool {
        let c = self.ctl();
        let r = c.released.v.load(Acquire);
        if r > c.head.pos.load(Relaxed) && pos_ok(r) {
            c.head.pos.store(r, Release);
            return true;
        }
        false
    }

    /// Counts one message taken in `gets` (counted rings; under `rlock`).
    #[inline]
    fn count_get(&self) {
        if self.counted {
            let g = &self.ctl().head.msgs;
            g.store(g.load(Relaxed).wrapping_add(1), Release);
        }
    }

    /// Takes the small whole message at `h` (committed, payload `len`;
    /// the caller holds `rlock`, which this releases): decodes it straight
    /// from the ring under the lock, then releases it.
    fn take_inline<S: Sink>(&self, h: u64, len: u64, sink: &mut S) -> Result<S::Out, RErr> {
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
    unsafe fn decode_then<S: Sink>(
        &self,
        h: u64,
        len: u64,
        sink: &mut S,
        done: fn(&Ring, u64, u64),
    ) -> Result<S::Out, RErr> {
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
    fn release_inline(&self, h: u64, size: u64) {
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
    fn skip(&self, h: u64, size: u64, pad: bool) {
        if pad {
            self.mark_consumed(h);
        }
        self.ctl().head.pos.store(h + size, Release);
        self.advance_released();
    }

    #[inline]
    fn claim_at(&self, h: u64, len: u64, me: u32) {
        let hd = self.hdr(h);
        hd.tid.store(me, Relaxed);
        hd.stamp.store(h | CLAIMED, Release);
        self.ctl().head.pos.store(h + rec_size(len), Release);
    }

    /// Marks the record at `h` CONSUMED (counted in `released.marks`).
    #[inline]
    fn mark_consumed(&self, h: u64) {
        self.ctl().released.marks.fetch_add(1, SeqCst);
        self.hdr(h).stamp.store(h | CONSUMED, SeqCst);
    }

    /// Done with the claimed record at `h` of `size` bytes: release its
    /// space directly when it is the oldest (the common case, which spares
    /// a store to the writer's cache line), else mark it for whoever
    /// releases the records before it.
    #[inline]
    fn consume(&self, h: u64, size: u64) {
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
    fn advance_released(&self) {
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
    pub(crate) fn read<S: Sink>(&self, sink: &mut S, w: &Waiter<'_>) -> Result<S::Out, RErr> {
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
    fn try_take_inline<S: Sink>(&self, sink: &mut S, me: u32) -> Option<Result<S::Out, RErr>> {
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

    fn read_slow<S: Sink>(&self, sink: &mut S, w: &Waiter<'_>) -> Result<S::Out, RErr> {
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
                None => return Err(RErr::Timeout),
                Some(Err(e)) => return Err(e),
                Some(Ok(())) => {}
            }
            if let Some(r) = self.try_take_inline(sink, w.me) {
                return r;
            }
            if !self.lock(&c.head.lock, w.me, w.deadline) {
                return Err(RErr::Timeout);
            }
            if let Some(out) = self.claim(sink, w)? {
                return Ok(out);
            }
        }
    }

    /// Claims the message at `head` (the caller holds `rlock`, which this
    /// releases). `Ok(None)`: nothing to take after all; try again.
    fn claim<S: Sink>(&self, sink: &mut S, w: &Waiter<'_>) -> Result<Option<S::Out>, RErr> {
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
                    return Err(RErr::Corrupt("invalid record header in the ring"));
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
                            return Err(RErr::TooShort(len));
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
                        return Err(RErr::Corrupt("streamed message without its length"));
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
                        return Err(RErr::Corrupt(
                            "streamed message shorter than its first fragment",
                        ));
                    }
                    if total > sink.limit() {
                        unlock();
                        return Err(RErr::TooShort(total));
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

    /// Whether the writer `wtid` of the streamed message being read gave
    /// up on it (its deadline passed): it no longer holds `wlock`, which it
    /// holds from the first fragment to the last, and the next fragment is
    /// not there. The lock word is read first, so that a fragment committed
    /// before the writer let go of the lock is seen.
    fn abandoned(&self, wtid: u32) -> bool {
        self.ctl().tail.lock.load(Acquire) & !LOCK_WAITERS != wtid && !self.peek_ready()
    }

    /// Reads the fragments of a streamed message (holding `rlock`, which
    /// this releases). `Ok(None)`: the writer died or gave up mid-message
    /// (the message is dropped: a reader gets a streamed message whole or
    /// not at all). The wait for each fragment has no deadline of its own:
    /// it ends when the fragment comes or the writer dies or gives up.
    fn read_stream<S: Sink>(
        &self,
        h0: u64,
        len0: u64,
        wtid: u32,
        total: u64,
        sink: &mut S,
        w: &Waiter<'_>,
    ) -> Result<Option<S::Out>, RErr> {
        let c = self.ctl();
        let unlock = || self.unlock(&c.head.lock);
        let buf = match sink.start(total) {
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
        unsafe { self.with_payload(h0, 8, off, |b| copy_out(&mut buf[..off as usize], b, nt)) };
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
                    return Err(RErr::Corrupt("invalid record header in the ring"));
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
                        return Err(RErr::Corrupt("streamed message longer than announced"));
                    }
                    let dst = &mut buf[off as usize..(off + len) as usize];
                    // SAFETY: we claimed the record at h.
                    unsafe { self.with_payload(h, 0, len, |b| copy_out(dst, b, nt)) };
                    self.consume(h, rec_size(len));
                    off += len;
                    if flags & LAST != 0 && off != total {
                        unlock();
                        return Err(RErr::Corrupt("streamed message shorter than announced"));
                    }
                }
            }
        }
        unlock();
        sink.finish(total).map(Some)
    }
}

/// Streamed messages at least this large are copied out of the ring with
/// non-temporal stores (see `copy_out`).
const STREAM_AROUND_CACHE: u64 = 16 << 20;

/// Copies `src` into `dst` (same length); `nt`: with non-temporal stores,
/// which write whole lines to memory without first reading them into the
/// cache (a third less memory traffic for a destination that does not fit
/// in the caches anyway).
fn copy_out(dst: &mut [u8], src: &[u8], nt: bool) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    if nt && dst.len() >= 4096 {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_sfence, _mm_stream_si128};
        let n = dst.len();
        assert_eq!(n, src.len());
        // Unaligned head and tail by plain copies, the 16-aligned middle in
        // blocks of 64 bytes.
        let head = (dst.as_ptr() as usize).wrapping_neg() & 15;
        let body = (n - head) & !63;
        dst[..head].copy_from_slice(&src[..head]);
        // SAFETY: `head + body <= n` for both slices; `d` is 16-aligned;
        // unaligned loads; SSE2 is part of x86-64. The fence orders the
        // non-temporal stores before whatever the caller does next
        // (releasing the record, returning the buffer).
        unsafe {
            let mut d = dst.as_mut_ptr().add(head).cast::<__m128i>();
            let mut s = src.as_ptr().add(head).cast::<__m128i>();
            let end = d.add(body / 16);
            while d < end {
                let a = _mm_loadu_si128(s);
                let b = _mm_loadu_si128(s.add(1));
                let c = _mm_loadu_si128(s.add(2));
                let e = _mm_loadu_si128(s.add(3));
                _mm_stream_si128(d, a);
                _mm_stream_si128(d.add(1), b);
                _mm_stream_si128(d.add(2), c);
                _mm_stream_si128(d.add(3), e);
                d = d.add(4);
                s = s.add(4);
            }
            _mm_sfence();
        }
        dst[head + body..].copy_from_slice(&src[head + body..]);
        return;
    }
    let _ = nt;
    dst.copy_from_slice(src);
}

fn yield_now() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}

#[cfg(loom)]
mod loom_store {
    //! Under loom, headers are loom atomics and payload bytes loom cells
    //! (so that loom checks the payload hand-off for races).
    use super::{HDR, RecHeader, Ring};
    use loom::cell::UnsafeCell;

    pub(crate) struct Store {
        pub(crate) hdrs: Vec<RecHeader>,
        pub(crate) bytes: Vec<UnsafeCell<u8>>,
    }

    impl Store {
        pub(crate) fn new(cap: u64) -> Store {
            use crate::sync::{AtomicU32, AtomicU64};
            let hdrs = (0..cap / HDR)
                .map(|_| RecHeader {
                    stamp: AtomicU64::new(0),
                    len: AtomicU32::new(0),
                    tid: AtomicU32::new(0),
                })
                .collect();
            let bytes = (0..cap).map(|_| UnsafeCell::new(0)).collect();
            Store { hdrs, bytes }
        }
    }

    impl Ring {
        pub(crate) fn new_loom(ctl: *const super::RingCtl, cap: u64, counted: bool) -> Ring {
            Ring {
                ctl,
                store: Store::new(cap),
                cap,
                mask: cap - 1,
                max_frag: cap / 2 - HDR,
                efd: -1,
                counted,
                released_cache: crate::sync::AtomicU64::new(0),
                gets_cache: crate::sync::AtomicU64::new(0),
                streaming: std::sync::atomic::AtomicBool::new(false),
            }
        }

        pub(super) fn hdr(&self, pos: u64) -> &RecHeader {
            &self.store.hdrs[((pos & self.mask) / HDR) as usize]
        }

        pub(super) unsafe fn put(&self, pos: u64, off: u64, src: &[u8]) {
            let base = ((pos & self.mask) + HDR + off) as usize;
            for (i, b) in src.iter().enumerate() {
                // SAFETY: loom checks the exclusive access.
                self.store.bytes[base + i].with_mut(|p| unsafe { *p = *b });
            }
        }

        pub(super) unsafe fn with_payload<R>(
            &self,
            pos: u64,
            off: u64,
            len: u64,
            f: impl FnOnce(&[u8]) -> R,
        ) -> R {
            let base = ((pos & self.mask) + HDR + off) as usize;
            let v: Vec<u8> = (0..len as usize)
                .map(|i| {
                    // SAFETY: loom checks the access.
                    self.store.bytes[base + i].with(|p| unsafe { *p })
                })
                .collect();
            f(&v)
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests;

#[cfg(all(test, not(loom)))]
mod peer_tests;

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicU32 as LocalU32;

    use mp_os::time::Deadline;

    use super::*;
    use crate::io::VecSink;

    const CAP: u64 = 4096;

    /// A counted ring over heap memory, this thread registered on both
    /// sides, holding `msgs` (each one small record).
    struct Local {
        ring: Ring,
        _ctl: Box<RingCtl>,
        _data: Vec<u128>,
    }

    fn local(msgs: &[&[u8]]) -> Local {
        // SAFETY: every field of RingCtl is an atomic: all zeroes is valid.
        let ctl = Box::new(unsafe { std::mem::MaybeUninit::<RingCtl>::zeroed().assume_init() });
        let mut data = vec![0u128; (CAP / 16) as usize];
        // SAFETY: both live as long as `Local`, 16-aligned; CAP is valid.
        let ring = unsafe { Ring::new(&*ctl, data.as_mut_ptr().cast(), CAP, -1, true) };
        ring.ctl().writers.add(crate::attach::process_token());
        ring.ctl().readers.add(crate::attach::process_token());
        let l = Local {
            ring,
            _ctl: ctl,
            _data: data,
        };
        for m in msgs {
            l.ring.write(m, &waiter(&LocalU32::new(0)), 0).unwrap();
        }
        l
    }

    fn waiter(spin: &LocalU32) -> Waiter<'_> {
        Waiter {
            // Only a safety net against a hang: the test asserts no timing.
            deadline: Deadline::after(Some(Duration::from_secs(20))),
            mode: WaitMode::Adaptive,
            spin_ns: spin,
            me: crate::sync::tid(),
        }
    }

    /// A reader that died inside `rlock` after releasing the record at
    /// `head` but before advancing `head` (it holds the lock still).
    fn die_after_release(l: &Local) {
        let c = l.ring.ctl();
        let dead = crate::sync::tid() ^ (1 << mp_os::liveness::TID_BITS);
        assert!(!crate::sync::alive(dead));
        let h = c.head.pos.load(SeqCst);
        let size = rec_size(u64::from(l.ring.hdr(h).len.load(SeqCst) & LEN_MASK));
        c.head.lock.store(dead, SeqCst);
        c.released.v.store(h + size, SeqCst);
    }

    #[test]
    fn next_reader_moves_head_past_a_message_a_dead_reader_released() {
        let l = local(&[b"one", b"two"]);
        die_after_release(&l);
        let spin = LocalU32::new(0);
        let got = l
            .ring
            .read(&mut VecSink(Vec::new()), &waiter(&spin))
            .unwrap();
        assert_eq!(got, b"two");
        assert_eq!(
            l.ring.count(),
            1,
            "the dead reader's message was never counted out"
        );
    }

    #[test]
    fn reader_recovers_when_the_released_record_was_already_reused() {
        let l = local(&[b"one", b"two"]);
        die_after_release(&l);
        // A writer reused the released slot: its stamp names a later lap.
        let c = l.ring.ctl();
        let h = c.head.pos.load(SeqCst);
        l.ring.hdr(h).stamp.store((h + CAP) | WRITING, SeqCst);
        let spin = LocalU32::new(0);
        let got = l
            .ring
            .read(&mut VecSink(Vec::new()), &waiter(&spin))
            .unwrap();
        assert_eq!(got, b"two");
        assert_eq!(
            c.head.lock.load(SeqCst),
            0,
            "the dead reader's lock was released"
        );
    }

    #[test]
    fn counts_follow_puts_and_gets() {
        let l = local(&[b"a", b"b", b"c"]);
        assert_eq!(l.ring.count(), 3);
        let spin = LocalU32::new(0);
        l.ring
            .read(&mut VecSink(Vec::new()), &waiter(&spin))
            .unwrap();
        assert_eq!(l.ring.count(), 2);
        // maxsize 3 with 2 in: one more fits, then the ring is full.
        let now = Waiter {
            deadline: Deadline::now(),
            ..waiter(&spin)
        };
        l.ring.write(b"d", &now, 3).unwrap();
        assert_eq!(l.ring.write(b"e", &now, 3), Err(WErr::Timeout));
        assert_eq!(l.ring.count(), 3);
    }

    fn dead_token() -> u32 {
        let dead = crate::sync::tid() ^ (1 << mp_os::liveness::TID_BITS);
        assert!(!crate::sync::alive(dead));
        dead
    }

    fn read_one(l: &Local) -> Vec<u8> {
        let spin = LocalU32::new(0);
        l.ring
            .read(&mut VecSink(Vec::new()), &waiter(&spin))
            .unwrap()
    }

    /// Drains the ring: what is left, in order.
    fn drain(l: &Local) -> Vec<Vec<u8>> {
        let spin = LocalU32::new(0);
        let now = Waiter {
            deadline: Deadline::now(),
            ..waiter(&spin)
        };
        std::iter::from_fn(|| l.ring.read(&mut VecSink(Vec::new()), &now).ok()).collect()
    }

    #[test]
    fn a_writer_killed_after_counting_a_reservation_it_never_made_is_recounted() {
        let l = local(&[b"one"]);
        let c = l.ring.ctl();
        // A writer that counted its message in `puts` and died before
        // moving `tail`, holding `wlock`.
        let (t, puts) = (c.tail.pos.load(SeqCst), c.tail.msgs.load(SeqCst));
        c.tail.lock.store(dead_token(), SeqCst);
        c.tail.pre_msgs.store(puts, SeqCst);
        c.tail.pre_pos.store(t, SeqCst);
        c.tail.msgs.store(puts + 1, SeqCst);
        let spin = LocalU32::new(0);
        l.ring.write(b"two", &waiter(&spin), 0).unwrap();
        assert_eq!(l.ring.count(), 2, "the dead writer's count was undone");
        assert_eq!(drain(&l), vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(l.ring.count(), 0);
        // A writer that died after moving `tail` is not undone: its torn
        // record is counted, then dropped by the reader that skips it.
        let (t, puts) = (c.tail.pos.load(SeqCst), c.tail.msgs.load(SeqCst));
        let dead = dead_token();
        c.tail.lock.store(dead, SeqCst);
        c.tail.pre_msgs.store(puts, SeqCst);
        c.tail.pre_pos.store(t, SeqCst);
        c.tail.msgs.store(puts + 1, SeqCst);
        let h = l.ring.hdr(t);
        h.len.store(3 | FIRST | LAST, SeqCst);
        h.tid.store(dead, SeqCst);
        h.stamp.store(t | WRITING, SeqCst);
        c.tail.pos.store(t + rec_size(3), SeqCst);
        l.ring.write(b"three", &waiter(&spin), 0).unwrap();
        assert_eq!(l.ring.count(), 2);
        assert_eq!(read_one(&l), b"three");
        assert_eq!(l.ring.count(), 0);
        assert_eq!(l.ring.dropped(), 1, "the torn record is counted dropped");
    }

    /// A reader that died holding `rlock` after `steps` of taking the
    /// message at `head`: 0 armed only, 1 released it and moved `head`
    /// without counting it, 2 marked it CLAIMED without moving `head`.
    fn reader_dies(l: &Local, steps: u32) {
        let c = l.ring.ctl();
        let h = c.head.pos.load(SeqCst);
        let size = rec_size(u64::from(l.ring.hdr(h).len.load(SeqCst) & LEN_MASK));
        let dead = dead_token();
        c.head.lock.store(dead, SeqCst);
        l.ring.arm(h, 0);
        match steps {
            0 => {}
            1 => {
                c.released.v.store(h + size, SeqCst);
                c.head.pos.store(h + size, SeqCst);
            }
            _ => {
                l.ring.hdr(h).tid.store(dead, SeqCst);
                l.ring.hdr(h).stamp.store(h | CLAIMED, SeqCst);
            }
        }
    }

    #[test]
    fn a_reader_killed_before_taking_its_message_leaves_it_for_the_next() {
        let l = local(&[b"one", b"two"]);
        reader_dies(&l, 0);
        assert_eq!(read_one(&l), b"one");
        assert_eq!(l.ring.count(), 1);
        assert_eq!(drain(&l), vec![b"two".to_vec()]);
        assert_eq!(l.ring.count(), 0);
    }

    #[test]
    fn a_reader_killed_after_taking_its_message_is_counted_once() {
        let l = local(&[b"one", b"two", b"three"]);
        reader_dies(&l, 1);
        assert_eq!(read_one(&l), b"two");
        assert_eq!(
            l.ring.count(),
            1,
            "the message the dead reader took is counted"
        );
        assert_eq!(drain(&l), vec![b"three".to_vec()]);
        assert_eq!(l.ring.count(), 0);
    }

    #[test]
    fn a_claim_a_dead_reader_left_half_done_is_completed() {
        let l = local(&[b"one", b"two"]);
        reader_dies(&l, 2);
        assert_eq!(read_one(&l), b"two");
        assert_eq!(l.ring.count(), 0);
        // The space of the claimed record was released: many laps pass.
        let spin = LocalU32::new(0);
        for i in 0..1000u32 {
            l.ring.write(&i.to_le_bytes(), &waiter(&spin), 0).unwrap();
            assert_eq!(read_one(&l), i.to_le_bytes());
        }
        assert_eq!(l.ring.count(), 0);
    }

    #[test]
    fn copy_out_copies_every_byte_at_any_alignment() {
        let src: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for nt in [false, true] {
            for (d_off, s_off, len) in
                [(0, 0, 20_000 - 64), (1, 3, 9_999), (15, 0, 4096), (7, 9, 5)]
            {
                let mut dst = vec![0u8; 20_000];
                copy_out(&mut dst[d_off..d_off + len], &src[s_off..s_off + len], nt);
                assert_eq!(&dst[d_off..d_off + len], &src[s_off..s_off + len]);
                assert!(dst[..d_off].iter().all(|&b| b == 0));
                assert!(dst[d_off + len..].iter().all(|&b| b == 0));
            }
        }
    }
}
