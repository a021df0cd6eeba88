use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::Duration;

use super::*;

/// A token that looks like this thread's but names a thread that is gone
/// (another start-time stamp).
fn dead_token() -> u32 {
    let dead = liveness::current_token() ^ (1 << liveness::TID_BITS);
    assert!(!Os::alive(dead));
    dead
}

/// Only a safety net against a hang: nothing asserts timing.
fn long() -> Deadline {
    Deadline::after(Some(Duration::from_secs(20)))
}

#[test]
fn a_dead_holders_word_is_taken_over_in_word() {
    let me = liveness::current_token();
    let dead = dead_token();
    let word = AtomicU32::new(dead);
    let got = acquire_slow::<Os>(&word, Sleepers::InWord, me, long());
    assert_eq!(got, Acquired::Died(dead));
    assert_eq!(word.load(SeqCst) & !WAITERS, me);
    release_in_word::<Os>(&word);
    assert_eq!(word.load(SeqCst), 0);
}

#[test]
fn a_dead_holders_word_is_taken_over_counted() {
    let me = liveness::current_token();
    let dead = dead_token();
    let (word, waiters) = (AtomicU32::new(dead), AtomicU32::new(0));
    let got = acquire_slow::<Os>(&word, Sleepers::Count(&waiters), me, long());
    assert_eq!(got, Acquired::Died(dead));
    assert_eq!(word.load(SeqCst), me);
    assert_eq!(waiters.load(SeqCst), 0);
    assert!(
        !release_counted::<Os>(&word, &waiters, dead),
        "not the holder"
    );
    assert!(release_counted::<Os>(&word, &waiters, me));
    assert_eq!(word.load(SeqCst), 0);
}

#[test]
fn a_live_holder_is_waited_for_until_the_deadline() {
    let holder = liveness::current_token();
    let word = AtomicU32::new(holder);
    let waiters = AtomicU32::new(0);
    let soon = || Deadline::after(Some(Duration::from_millis(150)));
    assert_eq!(
        acquire_slow::<Os>(&word, Sleepers::InWord, holder + 1, soon()),
        Acquired::TimedOut
    );
    assert_eq!(word.load(SeqCst), holder | WAITERS, "sleepers flagged");
    word.store(holder, SeqCst);
    assert_eq!(
        acquire_slow::<Os>(&word, Sleepers::Count(&waiters), holder + 1, soon()),
        Acquired::TimedOut
    );
    assert_eq!(word.load(SeqCst), holder);
    assert_eq!(take_over_if_dead::<Os>(&word, |_| 1), None);
}

/// Threads that take the word in turn, each adding to a counter that is
/// not atomic as a whole (a load and a store): no increment is lost.
fn contended(counted: bool) {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 2000;
    let word = Arc::new((AtomicU32::new(0), AtomicU32::new(0), AtomicU64::new(0)));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let word = Arc::clone(&word);
            std::thread::spawn(move || {
                let (w, waiters, n) = &*word;
                let me = liveness::current_token();
                let sleepers = || {
                    if counted {
                        Sleepers::Count(waiters)
                    } else {
                        Sleepers::InWord
                    }
                };
                for _ in 0..ROUNDS {
                    if w.compare_exchange(0, me, SeqCst, Relaxed).is_err() {
                        assert_eq!(acquire_slow::<Os>(w, sleepers(), me, long()), Acquired::Yes);
                    }
                    n.store(n.load(Relaxed) + 1, Relaxed);
                    if counted {
                        assert!(release_counted::<Os>(w, waiters, me));
                    } else {
                        release_in_word::<Os>(w);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(word.2.load(SeqCst), THREADS * ROUNDS);
    assert_eq!(word.0.load(SeqCst), 0);
}

#[test]
fn contended_word_in_word_loses_no_update() {
    contended(false);
}

#[test]
fn contended_counted_word_loses_no_update() {
    contended(true);
}
