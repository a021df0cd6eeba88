use mp_os::futex::AdaptiveSpin;

use mp_os::time::Deadline;

use std::time::Duration;

use super::Ring;
use super::layout::*;
use super::sink::*;
use super::wait::*;
use super::write::*;
use crate::sync::Ordering::*;

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
    ring.ctl().writers.add(mp_os::liveness::process_token());
    ring.ctl().readers.add(mp_os::liveness::process_token());
    let l = Local {
        ring,
        _ctl: ctl,
        _data: data,
    };
    for m in msgs {
        l.ring.write(m, &waiter(&AdaptiveSpin::new()), 0).unwrap();
    }
    l
}

fn waiter(spin: &AdaptiveSpin) -> Waiter<'_> {
    Waiter {
        // Only a safety net against a hang: the test asserts no timing.
        deadline: Deadline::after(Some(Duration::from_secs(20))),
        mode: WaitMode::Adaptive,
        spin,
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
    let spin = AdaptiveSpin::new();
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
    let spin = AdaptiveSpin::new();
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
    let spin = AdaptiveSpin::new();
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
    assert_eq!(l.ring.write(b"e", &now, 3), Err(RingWriteError::Timeout));
    assert_eq!(l.ring.count(), 3);
}

fn dead_token() -> u32 {
    let dead = crate::sync::tid() ^ (1 << mp_os::liveness::TID_BITS);
    assert!(!crate::sync::alive(dead));
    dead
}

fn read_one(l: &Local) -> Vec<u8> {
    let spin = AdaptiveSpin::new();
    l.ring
        .read(&mut VecSink(Vec::new()), &waiter(&spin))
        .unwrap()
}

/// Drains the ring: what is left, in order.
fn drain(l: &Local) -> Vec<Vec<u8>> {
    let spin = AdaptiveSpin::new();
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
    let spin = AdaptiveSpin::new();
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
    let spin = AdaptiveSpin::new();
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
        for (d_off, s_off, len) in [(0, 0, 20_000 - 64), (1, 3, 9_999), (15, 0, 4096), (7, 9, 5)] {
            let mut dst = vec![0u8; 20_000];
            StreamBuf::init(&mut dst[d_off..d_off + len]).copy_in(0, &src[s_off..s_off + len], nt);
            assert_eq!(&dst[d_off..d_off + len], &src[s_off..s_off + len]);
            assert!(dst[..d_off].iter().all(|&b| b == 0));
            assert!(dst[d_off + len..].iter().all(|&b| b == 0));
        }
    }
}
