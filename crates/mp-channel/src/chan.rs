//! A channel's shared segment: one or two rings plus a small header, and
//! the eventfds that signal readability to pollers.
//!
//! # Segment layout (magic `MPCH`, version 6)
//!
//! After the 64-byte segment [`Header`](mp_os::segment::Header):
//!
//! ```text
//! offset          size        field
//!      0             4        kind       1 = pipe, 2 = queue
//!      4             4        nrings     1 (simplex pipe, queue) or 2 (duplex pipe)
//!      8             8        cap        bytes per ring buffer (power of two)
//!     16             8        maxsize    queue bound in messages (0 = none)
//!     24             4        flags      bit 0: joinable, bit 1: counted
//!     28            36        reserved
//!     64             8        join.done  JoinableQueue: task_done() calls, and values
//!                                        taken that could not be decoded
//!     72             4        join.seq   futex word join() sleeps on
//!     76             4        join.waiters
//!     80             8        join.lost  tasks written off and reported by join()
//!     88             8        join.written  tasks written off because their consumer died
//!    128          2048        taken      JoinableQueue: values got and not yet task_done,
//!                                        per process (a holder table, see `holders`)
//!   2176          2048        buffered   unbounded queues: values put and still in the
//!                                        putting process's feeder buffer, per process
//!   4224   4416 x nrings      RingCtl per ring (see `ring`)
//!   DATA     cap x nrings     ring buffers; DATA is page-aligned in the segment
//! ```

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use mp_os::handle::Fd;
use mp_os::object::{Kind, Object, Plain};
use mp_os::segment::{HEADER_SIZE, Segment};
use serde::{Deserialize, Serialize};

use crate::holders::Holders;
use crate::ring::{CTL_SIZE, MAX_CAP, MIN_CAP, Ring, RingCtl};
use crate::sync::{AtomicU32, AtomicU64};

/// Magic and layout version of a channel segment.
const KIND: Kind = Kind::new(*b"MPCH", 6);

pub(crate) const KIND_PIPE: u32 = 1;
pub(crate) const KIND_QUEUE: u32 = 2;
const FLAG_JOINABLE: u32 = 1;
const FLAG_COUNTED: u32 = 2;

#[repr(C)]
struct ChanHeader {
    kind: u32,
    nrings: u32,
    cap: u64,
    maxsize: u64,
    flags: u32,
    _reserved: [u8; 36],
}

// SAFETY: repr(C), integers only: any bits are a ChanHeader (and `attach`
// checks the values before it uses them).
unsafe impl Plain for ChanHeader {}

/// JoinableQueue state. The unfinished count is derived, never stored:
/// `puts - dropped - done - written` (the ring's counts survive a holder
/// killed at any instruction, so this does too; see `queue`).
#[repr(C, align(64))]
pub(crate) struct JoinCtl {
    pub(crate) done: AtomicU64,
    pub(crate) seq: AtomicU32,
    pub(crate) waiters: AtomicU32,
    pub(crate) lost: AtomicU64,
    pub(crate) written: AtomicU64,
}

/// Offset of the `taken` table in the payload.
const TAKEN: usize = 128;
/// Offset of the `buffered` table in the payload.
const BUFFERED: usize = TAKEN + std::mem::size_of::<Holders>();
/// Offset of the first ring control block in the payload.
const RINGS: usize = BUFFERED + std::mem::size_of::<Holders>();

const _: () = assert!(std::mem::size_of::<ChanHeader>() == 64);
const _: () = assert!(std::mem::size_of::<JoinCtl>() == 64);

fn data_offset(nrings: u64) -> u64 {
    let end = (HEADER_SIZE + RINGS) as u64 + nrings * CTL_SIZE as u64;
    end.div_ceil(4096) * 4096 - HEADER_SIZE as u64
}

/// The mapped channel: segment, rings, eventfds.
pub(crate) struct Chan {
    /// This process's buffer of values put and not yet in the ring
    /// (unbounded queues; see `feed`).
    pub(crate) feed: crate::feed::Feed,
    obj: Object<ChanHeader>,
    efds: Vec<OwnedFd>,
    rings: Vec<Ring>,
    pub(crate) kind: u32,
    pub(crate) maxsize: u64,
    pub(crate) joinable: bool,
}

impl std::fmt::Debug for Chan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chan")
            .field("rings", &self.rings.len())
            .field("capacity", &self.rings[0].capacity())
            .field("maxsize", &self.maxsize)
            .finish_non_exhaustive()
    }
}

impl Chan {
    /// Creates a channel segment with `nrings` rings of `cap` bytes.
    pub(crate) fn create(
        kind: u32,
        nrings: u32,
        cap: u64,
        maxsize: u64,
        joinable: bool,
    ) -> io::Result<Chan> {
        let cap = normalize_cap(cap);
        let len = data_offset(u64::from(nrings)) + cap * u64::from(nrings);
        let len = usize::try_from(len).map_err(|_| io::Error::other("ring too large"))?;
        let flags = if joinable { FLAG_JOINABLE } else { 0 }
            | if kind == KIND_QUEUE { FLAG_COUNTED } else { 0 };
        let hdr = ChanHeader {
            kind,
            nrings,
            cap,
            maxsize,
            flags,
            _reserved: [0; 36],
        };
        let obj = Object::create_own(KIND, hdr, len - std::mem::size_of::<ChanHeader>())?;
        let efds = (0..nrings)
            .map(|_| new_eventfd())
            .collect::<io::Result<Vec<_>>>()?;
        Chan::attach(obj, efds)
    }

    /// Maps the rings of a channel object, validating its header.
    fn attach(obj: Object<ChanHeader>, efds: Vec<OwnedFd>) -> io::Result<Chan> {
        let bad = |m: &str| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not a channel segment: {m}"),
            )
        };
        if obj.payload_len() < RINGS {
            return Err(bad("too small"));
        }
        let hdr = obj.head();
        let (kind, nrings, cap) = (hdr.kind, hdr.nrings, hdr.cap);
        if !(kind == KIND_PIPE || kind == KIND_QUEUE) || !(1..=2).contains(&nrings) {
            return Err(bad("unknown kind"));
        }
        if !cap.is_power_of_two() || !(MIN_CAP..=MAX_CAP).contains(&cap) {
            return Err(bad("bad ring size"));
        }
        let need = data_offset(u64::from(nrings)) + cap * u64::from(nrings);
        if (obj.payload_len() as u64) < need {
            return Err(bad("segment smaller than its rings"));
        }
        if efds.len() != nrings as usize {
            return Err(bad("wrong number of eventfds"));
        }
        let counted = hdr.flags & FLAG_COUNTED != 0;
        let mut rings = Vec::new();
        for i in 0..u64::from(nrings) {
            let ctl = obj.region(RINGS + (i as usize) * CTL_SIZE, CTL_SIZE);
            let start = data_offset(u64::from(nrings)) + i * cap;
            let data = obj.region(start as usize, cap as usize);
            let (Some(ctl), Some(data)) = (ctl, data) else {
                return Err(bad("segment smaller than its rings"));
            };
            // SAFETY: both regions are inside the payload (checked just
            // above); the segment is kept alive by `Chan` as long as the
            // rings; the layout is the one `create` wrote (magic and
            // version match); the eventfds are owned by `Chan` too.
            let ring = unsafe {
                Ring::new(
                    ctl.cast::<RingCtl>().as_ptr(),
                    data.as_ptr(),
                    cap,
                    efds[i as usize].as_raw_fd(),
                    counted,
                )
            };
            rings.push(ring);
        }
        Ok(Chan {
            feed: crate::feed::Feed::new(),
            kind,
            maxsize: hdr.maxsize,
            joinable: hdr.flags & FLAG_JOINABLE != 0,
            obj,
            efds,
            rings,
        })
    }

    pub(crate) fn ring(&self, i: u8) -> &Ring {
        &self.rings[i as usize]
    }

    pub(crate) fn efd(&self, i: u8) -> BorrowedFd<'_> {
        self.efds[i as usize].as_fd()
    }

    /// The start of the payload (the ChanHeader), for the fixed part
    /// after it, whose size `attach` checked.
    fn payload(&self) -> *mut u8 {
        self.obj.as_ptr().cast::<u8>()
    }

    pub(crate) fn join_ctl(&self) -> &JoinCtl {
        // SAFETY: offset 64 of the payload is the JoinCtl (checked size in
        // `attach`), 64-byte aligned, all atomics.
        unsafe { &*self.payload().add(64).cast::<JoinCtl>() }
    }

    /// The JoinableQueue table of values taken and not yet done, per
    /// process.
    pub(crate) fn taken(&self) -> &Holders {
        // SAFETY: offset TAKEN of the payload is the table (checked size in
        // `attach`), 64-byte aligned, all atomics (zeroed = empty).
        unsafe { &*self.payload().add(TAKEN).cast::<Holders>() }
    }

    /// Values put and still in a feeder buffer, per process (see `feed`).
    pub(crate) fn buffered(&self) -> &Holders {
        // SAFETY: offset BUFFERED of the payload is the table (checked size
        // in `attach`), 64-byte aligned, all atomics (zeroed = empty).
        unsafe { &*self.payload().add(BUFFERED).cast::<Holders>() }
    }

    /// Drains the eventfd of ring `i`; whether it was signalled.
    pub(crate) fn drain_efd(&self, i: u8) -> bool {
        let mut b = [0u8; 8];
        rustix::io::read(&self.efds[i as usize], &mut b).is_ok()
    }

    /// Makes the eventfd of ring `i` readable again.
    pub(crate) fn signal_efd(&self, i: u8) {
        let _ = rustix::io::write(&self.efds[i as usize], &1u64.to_ne_bytes());
    }
}

impl crate::feed::FeedTarget for Chan {
    fn feed(&self) -> &crate::feed::Feed {
        &self.feed
    }

    fn feed_ring(&self) -> &Ring {
        self.ring(0)
    }

    fn buffered_table(&self) -> &Holders {
        self.buffered()
    }
}

/// Checks that a received descriptor is an eventfd (when `/proc` can tell).
fn check_eventfd(fd: BorrowedFd<'_>) -> io::Result<()> {
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match std::fs::read_link(&link) {
        Ok(target) if target.as_os_str() != "anon_inode:[eventfd]" => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("channel handle with a descriptor that is not an eventfd ({target:?})"),
        )),
        // Without /proc there is nothing to ask; the ring works regardless.
        _ => Ok(()),
    }
}

fn normalize_cap(cap: u64) -> u64 {
    cap.clamp(MIN_CAP, MAX_CAP).next_power_of_two().min(MAX_CAP)
}

fn new_eventfd() -> io::Result<OwnedFd> {
    use rustix::event::{EventfdFlags, eventfd};
    Ok(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?)
}

// ---------------------------------------------------------------- wire form

/// How a channel handle is written: the segment, its eventfds, the roles
/// of the handle and, inside a transport, `transit`: the sender's token
/// when the sender keeps one registration per role until the receiver
/// releases it (`collect_fds`), or `GUARDED` when the carrier of the bytes
/// keeps it (`collect_handles`; see the transit guard of handles).
#[derive(Serialize)]
pub(crate) struct WireOut<'a> {
    seg: &'a Segment,
    efds: Vec<Fd<BorrowedFd<'a>>>,
    pub(crate) send: Option<u8>,
    pub(crate) recv: Option<u8>,
    pub(crate) mode: u8,
    pub(crate) transit: u32,
}

#[derive(Deserialize)]
pub(crate) struct WireIn {
    seg: Segment,
    efds: Vec<Fd<OwnedFd>>,
    pub(crate) send: Option<u8>,
    pub(crate) recv: Option<u8>,
    pub(crate) mode: u8,
    pub(crate) transit: u32,
}

impl Chan {
    pub(crate) fn wire(
        &self,
        send: Option<u8>,
        recv: Option<u8>,
        mode: u8,
        transit: u32,
    ) -> WireOut<'_> {
        WireOut {
            seg: self.obj.segment(),
            efds: self.efds.iter().map(|f| Fd(f.as_fd())).collect(),
            send,
            recv,
            mode,
            transit,
        }
    }
}

impl WireIn {
    /// Attaches to the channel described; validates everything.
    pub(crate) fn into_chan(self, kind: u32) -> io::Result<Chan> {
        // The segment is a sealed memfd (checked by its `Deserialize`).
        for f in &self.efds {
            check_eventfd(f.0.as_fd())?;
        }
        let obj = Object::attach(self.seg, KIND)?;
        let chan = Chan::attach(obj, self.efds.into_iter().map(|f| f.0).collect())?;
        let n = chan.rings.len() as u8;
        if chan.kind != kind
            || self.send.is_some_and(|i| i >= n)
            || self.recv.is_some_and(|i| i >= n)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "channel handle of the wrong kind",
            ));
        }
        Ok(chan)
    }
}
