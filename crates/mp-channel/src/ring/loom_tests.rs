//! Loom model of the ring's index protocol: reserve, commit, claim,
//! release, padding at the wrap, locks and wake-ups (futex waits become
//! yields). Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p mp-channel --release --lib loom`.

use mp_os::futex::AdaptiveSpin;

use loom::sync::Arc;
use mp_os::time::Deadline;

use super::Ring;
use super::layout::*;
use super::read::*;
use super::sink::*;
use super::wait::*;
use crate::holders::Holders;
use crate::sync::Ordering::*;
use crate::sync::{AtomicU32, AtomicU64};

impl RingCtl {
    fn new_loom() -> RingCtl {
        let end = || End {
            pos: AtomicU64::new(0),
            lock: AtomicU32::new(0),
            msgs: AtomicU64::new(0),
            pre_pos: AtomicU64::new(0),
            pre_msgs: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            pre_dropped: AtomicU64::new(0),
        };
        let w64 = || Word64 {
            v: AtomicU64::new(0),
            marks: AtomicU64::new(0),
        };
        let wake = || Wake {
            seq: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        };
        RingCtl {
            tail: end(),
            head: end(),
            released: w64(),
            data: wake(),
            space: wake(),
            writers: Holders::new(),
            readers: Holders::new(),
        }
    }
}

struct Model {
    _ctl: Box<RingCtl>,
    ring: Ring,
}

// SAFETY: the ring points into `_ctl`, which lives as long as the model.
unsafe impl Send for Model {}
// SAFETY: as for Send.
unsafe impl Sync for Model {}

/// Runs `f` under loom with bounds that keep the whole model to seconds.
fn check(f: impl Fn() + Sync + Send + 'static) {
    check_bounded(2, f);
}

fn check_bounded(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(preemptions));
    b.max_branches = 100_000;
    b.check(f);
}

fn model(cap: u64) -> Arc<Model> {
    let ctl = Box::new(RingCtl::new_loom());
    let ring = Ring::new_loom(&*ctl, cap, true);
    ring.ctl().writers.add(1);
    ring.ctl().readers.add(1);
    Arc::new(Model { _ctl: ctl, ring })
}

struct Collect;

impl Sink for Collect {
    type Out = Vec<u8>;
    fn whole(&mut self, b: &[u8]) -> Result<Vec<u8>, RingReadError> {
        Ok(b.to_vec())
    }
    fn start(&mut self, _total: u64) -> Result<StreamBuf<'_>, RingReadError> {
        unreachable!("no streamed messages in the model")
    }
    unsafe fn finish(&mut self, _total: u64) -> Result<Vec<u8>, RingReadError> {
        unreachable!()
    }
}

fn send(m: &Model, msg: &[u8]) {
    send_max(m, msg, 0);
}

fn send_max(m: &Model, msg: &[u8], maxsize: u64) {
    let spin = AdaptiveSpin::new();
    let w = Waiter {
        deadline: Deadline::never(),
        mode: WaitMode::NoSpin,
        spin: &spin,
        me: crate::sync::tid(),
    };
    m.ring.write(msg, &w, maxsize).unwrap();
}

fn recv(m: &Model) -> Vec<u8> {
    let spin = AdaptiveSpin::new();
    let w = Waiter {
        deadline: Deadline::never(),
        mode: WaitMode::NoSpin,
        spin: &spin,
        me: crate::sync::tid(),
    };
    m.ring.read(&mut Collect, &w).unwrap()
}

#[test]
fn loom_spsc_wraps_in_order() {
    // 64-byte ring, 32-byte records: the third message wraps.
    check(|| {
        let m = model(64);
        let m2 = m.clone();
        let t = loom::thread::spawn(move || {
            for i in 1..=3u8 {
                send(&m2, &[i; 5]);
            }
        });
        for i in 1..=3u8 {
            assert_eq!(recv(&m), vec![i; 5]);
        }
        t.join().unwrap();
        let c = m.ring.ctl();
        assert_eq!(c.released.v.load(SeqCst), c.tail.pos.load(SeqCst));
        assert_eq!(m.ring.count(), 0);
    });
}

#[test]
fn loom_two_writers_one_reader() {
    check_bounded(1, || {
        let m = model(64);
        let ts: Vec<_> = (1..=2u8)
            .map(|i| {
                let m = m.clone();
                loom::thread::spawn(move || send(&m, &[i; 3]))
            })
            .collect();
        let mut got = [recv(&m), recv(&m)];
        got.sort();
        assert_eq!(got, [vec![1; 3], vec![2; 3]]);
        for t in ts {
            t.join().unwrap();
        }
    });
}

#[test]
fn loom_one_writer_two_readers_out_of_order_release() {
    check_bounded(1, || {
        let m = model(64);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                loom::thread::spawn(move || recv(&m))
            })
            .collect();
        send(&m, &[1; 4]);
        send(&m, &[2; 4]);
        let mut got: Vec<_> = readers.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![vec![1; 4], vec![2; 4]]);
        // Both records released, whatever order the readers finished in.
        let c = m.ring.ctl();
        assert_eq!(c.released.v.load(SeqCst), c.tail.pos.load(SeqCst));
    });
}

#[test]
fn loom_inline_and_claimed_readers_release_out_of_order() {
    // The 2-byte message is decoded under `rlock` (at most `INLINE_MAX`),
    // the 4-byte one claimed and decoded outside it: either may finish
    // first, and `released` must pass both.
    assert!(2 <= INLINE_MAX && 4 > INLINE_MAX);
    check_bounded(1, || {
        let m = model(64);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let m = m.clone();
                loom::thread::spawn(move || recv(&m))
            })
            .collect();
        send(&m, &[1; 4]);
        send(&m, &[2; 2]);
        let mut got: Vec<_> = readers.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![vec![1; 4], vec![2; 2]]);
        let c = m.ring.ctl();
        assert_eq!(c.released.v.load(SeqCst), c.tail.pos.load(SeqCst));
        assert_eq!(m.ring.count(), 0);
    });
}

#[test]
fn loom_maxsize_bounds_the_count() {
    check(|| {
        let m = model(256);
        let m2 = m.clone();
        let t = loom::thread::spawn(move || {
            for i in 1..=2u8 {
                send_max(&m2, &[i; 2], 1);
            }
        });
        for i in 1..=2u8 {
            assert!(m.ring.count() <= 1);
            assert_eq!(recv(&m), vec![i; 2]);
        }
        t.join().unwrap();
        assert_eq!(m.ring.count(), 0);
    });
}
