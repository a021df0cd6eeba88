//! A ring shared with a buggy or hostile peer: whatever it writes into the
//! control block or the record headers, this side gets errors or correct
//! messages, never an access out of bounds, a misaligned atomic, a panic
//! or a wait without end. And a streamed message whose writer's deadline
//! passes is dropped whole.
//!
//! The ring lives in its own mappings with an inaccessible page on each
//! side of the buffer (a read past either end faults), and the writer and
//! the reader use a `Ring` each, with its own caches, as two processes do.

use mp_os::futex::AdaptiveSpin;
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags, mmap_anonymous, mprotect, munmap};

use std::time::Duration;

use super::Ring;
use super::layout::*;
use super::sink::*;
use super::wait::*;
use super::write::*;
use crate::sync::{AtomicU32, AtomicU64, Ordering::*};
use mp_os::time::Deadline;

const CAP: u64 = 4096;
const PAGE: usize = 4096;

/// `len` bytes of zeroed memory between two inaccessible pages.
struct Guarded {
    base: *mut u8,
    total: usize,
}

// SAFETY: plain memory, accessed through the rings' atomics and the
// payload protocol.
unsafe impl Send for Guarded {}
// SAFETY: as for Send.
unsafe impl Sync for Guarded {}

impl Guarded {
    fn new(len: usize) -> Guarded {
        let len = len.div_ceil(PAGE) * PAGE;
        let total = len + 2 * PAGE;
        // SAFETY: a fresh private mapping; only the middle is made
        // accessible, the pages around it stay PROT_NONE.
        unsafe {
            let base = mmap_anonymous(
                std::ptr::null_mut(),
                total,
                ProtFlags::empty(),
                MapFlags::PRIVATE,
            )
            .expect("mmap")
            .cast::<u8>();
            mprotect(
                base.add(PAGE).cast(),
                len,
                MprotectFlags::READ | MprotectFlags::WRITE,
            )
            .expect("mprotect");
            Guarded { base, total }
        }
    }

    fn ptr(&self) -> *mut u8 {
        // SAFETY: inside the mapping.
        unsafe { self.base.add(PAGE) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: our mapping, no longer used (the rings are dropped).
        unsafe { munmap(self.base.cast(), self.total).expect("munmap") };
    }
}

/// One ring as two processes map it: `w` for the writer, `r` for the
/// reader, over the same control block and buffer.
struct Shared {
    w: Ring,
    r: Ring,
    _ctl: Guarded,
    _data: Guarded,
}

fn shared() -> Arc<Shared> {
    let ctl = Guarded::new(CTL_SIZE);
    let data = Guarded::new(CAP as usize);
    // SAFETY: zeroed memory is a valid RingCtl (all atomics) and `CAP`
    // zeroed bytes, both page-aligned and kept alive by `Shared`.
    let (w, r) = unsafe {
        (
            Ring::new(ctl.ptr().cast(), data.ptr(), CAP, -1, true),
            Ring::new(ctl.ptr().cast(), data.ptr(), CAP, -1, true),
        )
    };
    w.ctl().writers.add(mp_os::liveness::process_token());
    r.ctl().readers.add(mp_os::liveness::process_token());
    Arc::new(Shared {
        w,
        r,
        _ctl: ctl,
        _data: data,
    })
}

fn waiter(spin: &AdaptiveSpin, timeout: Duration) -> Waiter<'_> {
    Waiter {
        deadline: Deadline::after(Some(timeout)),
        mode: WaitMode::Adaptive,
        spin,
        me: crate::sync::tid(),
    }
}

fn write(ring: &Ring, msg: &[u8], timeout: Duration) -> Result<(), RingWriteError> {
    let spin = AdaptiveSpin::new();
    ring.write(msg, &waiter(&spin, timeout), 0)
}

fn read(ring: &Ring, timeout: Duration) -> Result<Vec<u8>, RingReadError> {
    let spin = AdaptiveSpin::new();
    ring.read(&mut VecSink(Vec::new()), &waiter(&spin, timeout))
}

const SHORT: Duration = Duration::from_millis(200);
/// Only a safety net: the calls below that must fail fail at once.
const LONG: Duration = Duration::from_secs(4);

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, RingReadError>) {
    assert!(matches!(r, Err(RingReadError::Corrupt(_))), "{r:?}");
}

#[test]
fn misaligned_head_is_corrupt() {
    let s = shared();
    write(&s.w, b"one", SHORT).unwrap();
    s.r.ctl().head.pos.store(8, SeqCst);
    assert_corrupt(read(&s.r, LONG));
}

#[test]
fn head_beyond_position_range_is_corrupt() {
    let s = shared();
    write(&s.w, b"one", SHORT).unwrap();
    s.r.ctl().head.pos.store(u64::MAX - 15, SeqCst);
    assert_corrupt(read(&s.r, LONG));
}

#[test]
fn misaligned_tail_is_corrupt() {
    for t in [8, CAP - 8, CAP + 4] {
        let s = shared();
        let c = s.w.ctl();
        // Consistent otherwise: everything before `t` was read.
        c.tail.pos.store(t, SeqCst);
        c.head.pos.store(t & !15, SeqCst);
        c.released.v.store(t & !15, SeqCst);
        assert_eq!(
            write(&s.w, b"x", SHORT),
            Err(RingWriteError::Corrupt),
            "tail {t}"
        );
        assert_eq!(
            write(&s.w, &[7; 2000], SHORT),
            Err(RingWriteError::Corrupt),
            "tail {t}"
        );
    }
}

/// A small committed record in the last 16 bytes of the buffer whose
/// length runs past its end: the inline read path must not follow it.
#[test]
fn inline_record_running_past_the_buffer_is_corrupt() {
    let s = shared();
    let c = s.w.ctl();
    let h = CAP - 16;
    c.tail.pos.store(h, SeqCst);
    c.head.pos.store(h, SeqCst);
    c.released.v.store(h, SeqCst);
    let hd = s.w.hdr(h);
    hd.len.store(100 | FIRST | LAST, SeqCst);
    hd.tid.store(crate::sync::tid(), SeqCst);
    hd.stamp.store(h | COMMITTED, SeqCst);
    c.tail.pos.store(h + rec_size(100), SeqCst);
    assert_corrupt(read(&s.r, LONG));
}

#[test]
fn huge_record_length_is_corrupt() {
    for flags in [FIRST | LAST, FIRST, 0] {
        let s = shared();
        write(&s.w, b"one", SHORT).unwrap();
        s.w.hdr(0).len.store(LEN_MASK | flags, SeqCst);
        assert_corrupt(read(&s.r, LONG));
    }
}

/// A misaligned `released`: readers still read what is there (without
/// following it), writers report the damage once they need room.
#[test]
fn misaligned_released_is_not_followed() {
    let s = shared();
    write(&s.w, b"one", SHORT).unwrap();
    s.r.ctl().released.v.store(8, SeqCst);
    assert_eq!(read(&s.r, LONG).unwrap(), b"one");
    let mut got = Ok(());
    for _ in 0..10 {
        got = write(&s.w, &[1; 1000], LONG);
        if got.is_err() {
            break;
        }
    }
    assert_eq!(got, Err(RingWriteError::Corrupt));
}

/// `released` more than a ring behind `tail`: a writer that needs room
/// reports it rather than waiting for space that never comes.
#[test]
fn released_a_ring_behind_tail_is_corrupt() {
    let s = shared();
    for _ in 0..4 {
        write(&s.w, &[1; 1000], SHORT).unwrap();
        read(&s.r, SHORT).unwrap();
    }
    write(&s.w, &[2; 1000], SHORT).unwrap();
    write(&s.w, &[3; 1000], SHORT).unwrap();
    s.r.ctl().released.v.store(1024, SeqCst);
    let start = Instant::now();
    let mut got = Ok(());
    for _ in 0..8 {
        got = write(&s.w, &[4; 1000], LONG);
        if got.is_err() {
            break;
        }
    }
    assert_eq!(got, Err(RingWriteError::Corrupt));
    assert!(start.elapsed() < LONG, "reported, not waited for");
}

/// A writer already waiting for room sees `released` damaged.
#[test]
fn writer_waiting_for_room_sees_a_corrupt_released() {
    let s = shared();
    while write(&s.w, &[1; 1000], Duration::ZERO).is_ok() {}
    let s2 = s.clone();
    let t = std::thread::spawn(move || {
        let start = Instant::now();
        (write(&s2.w, &[2; 1000], LONG), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    s.r.ctl().released.v.store(8, SeqCst);
    let (got, took) = t.join().unwrap();
    assert_eq!(got, Err(RingWriteError::Corrupt));
    assert!(took < LONG, "reported, not waited for");
}

/// `head` beyond `tail`: a reader reports it rather than waiting for a
/// record that never comes.
#[test]
fn head_beyond_tail_is_corrupt() {
    let s = shared();
    write(&s.w, b"one", SHORT).unwrap();
    s.r.ctl().head.pos.store(2 * CAP, SeqCst);
    let start = Instant::now();
    assert_corrupt(read(&s.r, LONG));
    assert!(start.elapsed() < LONG, "reported, not waited for");
}

/// Peak resident memory of this process (bytes).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// A streamed message announcing 1 GiB whose writer died after its first
/// fragment: the reader drops it, having spent address space on the
/// announced length but no memory.
#[test]
fn lying_stream_length_costs_no_memory() {
    let s = shared();
    let dead = crate::sync::tid() ^ (1 << mp_os::liveness::TID_BITS);
    assert!(!crate::sync::alive(dead));
    let pos = s.w.reserve(8 + 100, FIRST, dead, 0).unwrap();
    // SAFETY: we reserved 108 payload bytes at `pos`.
    unsafe {
        s.w.put(pos, 0, &(1u64 << 30).to_le_bytes());
        s.w.put(pos, 8, &[0x55; 100]);
    }
    s.w.commit(pos);
    let before = peak_rss();
    assert!(matches!(
        read(&s.r, Duration::from_millis(500)),
        Err(RingReadError::Timeout)
    ));
    let grew = peak_rss().saturating_sub(before);
    assert!(grew < 256 << 20, "peak memory grew by {grew} bytes");
}

// ------------------------------------------------------ timed streaming

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Runs `f` on a thread; panics if it does not return within `limit`
/// (the thread is left behind: the test has failed anyway).
fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .expect("the call did not return within its limit")
}

/// A message four times the ring, nobody reading: the timed write gives
/// up near its deadline, not only while waiting for its first fragment;
/// a reader then drops the fragments that made it into the ring and gets
/// the next message, and the counts balance.
#[test]
fn timed_stream_gives_up_at_its_deadline_and_is_dropped_whole() {
    let s = shared();
    let big = pattern(4 * CAP as usize, 1);
    let deadline = Duration::from_millis(300);
    let s2 = s.clone();
    let (got, took) = within(Duration::from_secs(20), move || {
        let start = Instant::now();
        (write(&s2.w, &big, deadline), start.elapsed())
    });
    assert_eq!(got, Err(RingWriteError::Timeout));
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline + Duration::from_secs(3), "{took:?}");
    let s2 = s.clone();
    let reader = std::thread::spawn(move || read(&s2.r, Duration::from_secs(10)));
    write(&s.w, b"next", Duration::from_secs(10)).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), b"next");
    assert_eq!(s.r.count(), 0, "the dropped message was counted out");
    // The ring streams as before.
    let big = pattern(3 * CAP as usize + 5, 2);
    let s2 = s.clone();
    let reader = std::thread::spawn(move || read(&s2.r, Duration::from_secs(10)));
    write(&s.w, &big, Duration::from_secs(10)).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), big);
}

/// Fills the buffer slowly, so that the writer gives up while its reader
/// is inside the message.
struct SlowSink(Vec<u8>);

impl Sink for SlowSink {
    type Out = Vec<u8>;
    fn whole(&mut self, bytes: &[u8]) -> Result<Vec<u8>, RingReadError> {
        Ok(bytes.to_vec())
    }
    fn start(&mut self, total: u64) -> Result<StreamBuf<'_>, RingReadError> {
        std::thread::sleep(Duration::from_millis(600));
        self.0 = vec![0; total as usize];
        Ok(StreamBuf::init(&mut self.0))
    }
    unsafe fn finish(&mut self, _total: u64) -> Result<Vec<u8>, RingReadError> {
        Ok(std::mem::take(&mut self.0))
    }
}

#[test]
fn reader_inside_a_stream_drops_it_when_its_writer_gives_up() {
    let s = shared();
    let s2 = s.clone();
    let reader = std::thread::spawn(move || {
        let spin = AdaptiveSpin::new();
        s2.r.read(
            &mut SlowSink(Vec::new()),
            &waiter(&spin, Duration::from_secs(10)),
        )
    });
    let big = pattern(8 * CAP as usize, 3);
    let s2 = s.clone();
    let got = within(Duration::from_secs(20), move || {
        write(&s2.w, &big, Duration::from_millis(300))
    });
    assert_eq!(got, Err(RingWriteError::Timeout));
    write(&s.w, b"after", Duration::from_secs(10)).unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), b"after");
    assert_eq!(s.r.count(), 0);
}

// ------------------------------------------------- random scribbling

/// A value written over a word of shared memory.
#[derive(Debug, Clone)]
enum Val {
    Any(u64),
    /// The current value plus a small (possibly misaligned) offset.
    Near(i16),
    /// The current value with one bit flipped.
    Flip(u8),
    Zero,
    Max,
}

impl Val {
    fn apply(&self, cur: u64) -> u64 {
        match *self {
            Val::Any(v) => v,
            Val::Near(d) => cur.wrapping_add_signed(i64::from(d)),
            Val::Flip(b) => cur ^ (1 << (b % 64)),
            Val::Zero => 0,
            Val::Max => u64::MAX,
        }
    }
}

/// Where a scribble goes.
#[derive(Debug, Clone)]
enum Spot {
    /// One of the control block's words (ends, released, wake words).
    Ctl(usize),
    /// A header field of the record `k` records (16 bytes) after the
    /// position in the control block word `base` (tail, head, released):
    /// 0 stamp, 1 length and flags, 2 token.
    Hdr { base: usize, k: i8, field: u8 },
}

#[derive(Debug, Clone)]
struct Scribble {
    after_us: u16,
    spot: Spot,
    val: Val,
}

/// Offsets and widths of the control block's words (see the module docs).
const CTL_WORDS: [(usize, u8); 12] = [
    (0, 8),
    (8, 4),
    (16, 8),
    (64, 8),
    (72, 4),
    (80, 8),
    (128, 8),
    (136, 8),
    (192, 4),
    (196, 4),
    (256, 4),
    (260, 4),
];

fn val() -> impl Strategy<Value = Val> {
    prop_oneof![
        any::<u64>().prop_map(Val::Any),
        any::<i16>().prop_map(Val::Near),
        (-64i16..64).prop_map(Val::Near),
        any::<u8>().prop_map(Val::Flip),
        Just(Val::Zero),
        Just(Val::Max),
    ]
}

fn scribble() -> impl Strategy<Value = Scribble> {
    let spot = prop_oneof![
        (0..CTL_WORDS.len()).prop_map(Spot::Ctl),
        (0usize..3, -4i8..8, 0u8..3).prop_map(|(base, k, field)| Spot::Hdr { base, k, field }),
    ];
    (0u16..3000, spot, val()).prop_map(|(after_us, spot, val)| Scribble {
        after_us,
        spot,
        val,
    })
}

impl Scribble {
    fn apply(&self, ring: &Ring) {
        let ctl = ring.ctl as *const u8;
        let word64 = |off: usize| {
            // SAFETY: an 8-aligned 8-byte field of the control block.
            unsafe { &*ctl.add(off).cast::<AtomicU64>() }
        };
        let word32 = |off: usize| {
            // SAFETY: a 4-aligned 4-byte field of the control block.
            unsafe { &*ctl.add(off).cast::<AtomicU32>() }
        };
        match self.spot {
            Spot::Ctl(i) => match CTL_WORDS[i] {
                (off, 8) => {
                    let w = word64(off);
                    w.store(self.val.apply(w.load(SeqCst)), SeqCst);
                }
                (off, _) => {
                    let w = word32(off);
                    let v = self.val.apply(u64::from(w.load(SeqCst)));
                    w.store(v as u32, SeqCst);
                }
            },
            Spot::Hdr { base, k, field } => {
                let base = word64([0, 64, 128][base]).load(SeqCst);
                let pos = base.wrapping_add_signed(16 * i64::from(k));
                let h = ring.hdr(pos);
                match field {
                    0 => h.stamp.store(self.val.apply(h.stamp.load(SeqCst)), SeqCst),
                    1 => {
                        let v = self.val.apply(u64::from(h.len.load(SeqCst)));
                        h.len.store(v as u32, SeqCst);
                    }
                    _ => {
                        let v = self.val.apply(u64::from(h.tid.load(SeqCst)));
                        h.tid.store(v as u32, SeqCst);
                    }
                }
            }
        }
    }
}

/// Message `seq` of the random run: sizes from inline to streamed over
/// several laps; payload bytes with the high bit set (never a position),
/// a checksum at the end.
fn message(seq: u64) -> Vec<u8> {
    let len = [8usize, 40, 300, 700, 1500, 3000, 9000][(seq % 7) as usize];
    let mut m = Vec::with_capacity(len + 16);
    m.extend_from_slice(&(seq | 1 << 63).to_le_bytes());
    m.extend(
        (0..len).map(|i| 0x80 | ((seq as usize).wrapping_mul(7).wrapping_add(i) as u8 & 0x7F)),
    );
    let sum = checksum(&m);
    m.extend_from_slice(&sum.to_le_bytes());
    m
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The sequence number of a message of the run, `None` when the bytes
/// are not one (what a decoder would report as an error).
fn decode(m: &[u8]) -> Option<u64> {
    if m.len() < 16 {
        return None;
    }
    let (body, sum) = m.split_at(m.len() - 8);
    let seq = u64::from_le_bytes(body[..8].try_into().unwrap()) & !(1 << 63);
    (checksum(body).to_le_bytes() == sum && message(seq) == m).then_some(seq)
}

/// What one run saw.
#[derive(Debug, Default)]
struct Run {
    sent: Vec<u64>,
    got: Vec<u64>,
    garbled: usize,
    send_errors: usize,
    recv_errors: usize,
}

const MSGS: u64 = 120;
const OP: Duration = Duration::from_millis(150);

/// A writer and a reader exchange `MSGS` messages while `scribbles` are
/// written over the control block and the headers. Each call is bounded
/// by `OP`; a side stops after a few errors in a row (a damaged ring stays
/// damaged).
fn run(scribbles: Vec<Scribble>) -> Run {
    let s = shared();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (s, done) = (s.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut sent, mut errors, mut streak) = (Vec::new(), 0, 0);
            for seq in 0..MSGS {
                match write(&s.w, &message(seq), OP) {
                    Ok(()) => {
                        sent.push(seq);
                        streak = 0;
                    }
                    Err(_) => {
                        errors += 1;
                        streak += 1;
                        if streak == 4 {
                            break;
                        }
                    }
                }
            }
            done.store(true, SeqCst);
            (sent, errors)
        })
    };
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        std::thread::spawn(move || {
            let mut run = Run::default();
            let mut streak = 0;
            loop {
                match read(&s.r, OP) {
                    Ok(m) => {
                        streak = 0;
                        match decode(&m) {
                            Some(seq) => run.got.push(seq),
                            None => run.garbled += 1,
                        }
                    }
                    Err(_) => {
                        run.recv_errors += 1;
                        streak += 1;
                        if done.load(SeqCst) && streak >= 2 {
                            break;
                        }
                        if streak >= 50 {
                            break;
                        }
                    }
                }
            }
            run
        })
    };
    for sc in &scribbles {
        std::thread::sleep(Duration::from_micros(u64::from(sc.after_us)));
        sc.apply(&s.w);
    }
    let mut run = reader.join().expect("reader panicked");
    let (sent, errors) = writer.join().expect("writer panicked");
    run.sent = sent;
    run.send_errors = errors;
    run
}

/// Without scribbles every message arrives, once, in order.
#[test]
fn undisturbed_run_delivers_everything() {
    let r = within(Duration::from_secs(60), || run(Vec::new()));
    assert_eq!(r.sent, (0..MSGS).collect::<Vec<_>>());
    assert_eq!(r.got, r.sent);
    assert_eq!(r.garbled, 0);
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random bytes over the control block and the record headers while a
    /// writer and a reader run: only errors or messages whose write
    /// succeeded (a damaged ring may lose or repeat them; a record a
    /// scribble forged out of other bytes is not a message of the run, as
    /// a decoder would reject it), no panic, no hang.
    #[test]
    fn scribbled_ring_gives_errors_or_sent_messages(
        scribbles in proptest::collection::vec(scribble(), 1..12)
    ) {
        let r = within(Duration::from_secs(120), move || run(scribbles));
        for seq in &r.got {
            prop_assert!(r.sent.contains(seq), "got {seq}, never sent whole: {r:?}");
        }
    }
}
