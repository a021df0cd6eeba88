//! The byte ring every channel is made of: variable-size records in a
//! power-of-two buffer of shared memory, many writers, many readers.
//!
//! The protocol is described here (a *token* is a thread's liveness
//! token, see `layout`); each part lives in its own file:
//! `layout` (the control block and record headers in shared memory),
//! `lock` (the two locks and the repairs after a dead holder), `wait`
//! (spinning, sleeping, wake-ups), `write`, `read`, `stream` (messages
//! larger than a quarter of the ring) and `sink` (where a reader puts a
//! message).
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
//! corrupt (`RingReadError::Corrupt`, `RingWriteError::Corrupt`) instead of being followed,
//! and every loop over records advances by at least one header. A peer can
//! still forge or destroy messages, and can hold a lock for ever (as a
//! slow peer would): blocking calls with a deadline keep it.

mod layout;
mod lock;
#[cfg(loom)]
mod loom_store;
mod read;
mod sink;
mod stream;
mod wait;
mod write;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod peer_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub(crate) use layout::RingCtl;
#[cfg(not(loom))]
pub(crate) use layout::{CTL_SIZE, MAX_CAP, MIN_CAP};
#[cfg(not(loom))]
pub(crate) use sink::RingReadError;
#[cfg(not(loom))]
pub(crate) use sink::{DecodeSink, KEEP_SCRATCH, Sink, SliceSink, StreamBuf, VecSink};
pub use wait::WaitMode;
#[cfg(not(loom))]
pub(crate) use wait::{SLICE, Waiter};
#[cfg(not(loom))]
pub(crate) use write::RingWriteError;

use crate::sync::AtomicU64;
#[cfg(not(loom))]
use layout::{HDR, RecHeader};

/// One ring: a control block and a data buffer in shared memory.
pub(crate) struct Ring {
    ctl: *const RingCtl,
    #[cfg(not(loom))]
    data: *mut u8,
    #[cfg(loom)]
    store: loom_store::Store,
    cap: u64,
    mask: u64,
    /// `mask` without the low 4 bits: any value masked with it is the
    /// offset of a header (see `hdr`).
    #[cfg(not(loom))]
    hdr_mask: u64,
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
            hdr_mask: (cap - 1) & !(HDR - 1),
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

    /// Largest message written in one record; a longer one is streamed.
    pub(crate) fn max_frag(&self) -> u64 {
        self.max_frag
    }

    #[cfg(not(loom))]
    #[inline]
    fn hdr(&self, pos: u64) -> &RecHeader {
        // SAFETY: `pos & hdr_mask` (`pos & mask & !15`) is a 16-aligned
        // offset below `cap` (also for a corrupt `pos` read from shared
        // memory: the mask makes every header access aligned and in
        // bounds), which leaves room for a 16-byte header in the 16-aligned
        // buffer; RecHeader is all atomics, so any bytes are a valid value.
        unsafe {
            &*self
                .data
                .add((pos & self.hdr_mask) as usize)
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
}
