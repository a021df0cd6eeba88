//! A model of the streaming window: the real [`Collector`], [`Feeder`]
//! and [`IMap`], with simulated workers that finish chunks at scripted
//! points (while the input is read, inside the hand-over, or later on a
//! thread), so that the races between the caller's accounting and the
//! workers' progress are played out, the extreme ones (workers done
//! before the caller looks) deterministically.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::collector::{Chunk, Collector, Mode};
use super::feeder::{Feeder, Input};
use super::imap::IMap;
use super::sink::Submit;
use std::sync::mpsc;
use std::thread;

/// xorshift64*: reproducible schedules without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// When the simulated workers finish chunks on the caller's thread.
#[derive(Clone, Copy, Debug)]
enum Policy {
    /// Never: only the background worker finishes chunks.
    Lazy,
    /// Every chunk, as soon as it is handed over (workers infinitely
    /// faster than the caller).
    AllOnSubmit,
    /// A random number of them, in random order, at each hand-over.
    RandomOnSubmit,
    /// One at random, now and then, while the input is read, and a
    /// random number at each hand-over.
    WhileReading,
}

struct Sim {
    coll: Arc<Collector<u64>>,
    /// Chunks handed over and not finished.
    outstanding: Mutex<Vec<(usize, Vec<u64>)>>,
    rng: Mutex<Rng>,
    window: usize,
}

impl Sim {
    /// Finishes up to `k` outstanding chunks, picked at random.
    fn finish(&self, k: usize) {
        for _ in 0..k {
            let picked = {
                let mut out = self.outstanding.lock().unwrap();
                if out.is_empty() {
                    return;
                }
                let i = self.rng.lock().unwrap().below(out.len());
                out.swap_remove(i)
            };
            self.deliver(picked);
        }
    }

    fn deliver(&self, (index, items): (usize, Vec<u64>)) {
        let results = items.into_iter().map(|x| 2 * x + 1).collect();
        self.coll.deliver(index, Chunk::Ok(results));
    }

    fn random(&self, n: usize) -> usize {
        self.rng.lock().unwrap().below(n)
    }
}

/// Streams `items` items through a window of `window` chunks and checks
/// what the stream hands out.
fn run(window: usize, chunksize: usize, items: u64, ordered: bool, policy: Policy) {
    let coll = Collector::new(Mode::Stream { ordered }, None);
    let sim = Arc::new(Sim {
        coll: coll.clone(),
        outstanding: Mutex::new(Vec::new()),
        rng: Mutex::new(Rng(0x9e37_79b9_7f4a_7c15 ^ (window as u64) << 8 ^ items)),
        window,
    });
    let stop = Arc::new(AtomicBool::new(false));
    // The background worker: finishes the oldest chunk every so often,
    // so that a correct stream always completes.
    let bg = {
        let (sim, stop) = (sim.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let next = {
                    let mut out = sim.outstanding.lock().unwrap();
                    (!out.is_empty()).then(|| out.remove(0))
                };
                match next {
                    Some(c) => sim.deliver(c),
                    None => thread::sleep(Duration::from_micros(50)),
                }
            }
        })
    };
    let input: Input<'_, u64> = {
        let sim = sim.clone();
        Box::new((0..items).map(move |x| {
            if matches!(policy, Policy::WhileReading) && sim.random(4) == 0 {
                sim.finish(1);
            }
            Ok(x)
        }))
    };
    let submit: Submit<'_, u64> = {
        let sim = sim.clone();
        Box::new(move |chunks: Vec<(usize, Vec<u64>)>| {
            let (s, d) = sim.coll.counts();
            assert!(
                s - d <= sim.window,
                "{} unfinished chunks in a window of {}",
                s - d,
                sim.window
            );
            let n = chunks.len();
            sim.outstanding.lock().unwrap().extend(chunks);
            match policy {
                Policy::Lazy => {}
                Policy::AllOnSubmit => sim.finish(usize::MAX),
                Policy::RandomOnSubmit | Policy::WhileReading => {
                    let k = sim.random(n + 2);
                    sim.finish(k);
                }
            }
            Ok(())
        })
    };
    let mut feeder = Feeder::new(input, chunksize, coll.clone(), window, submit).unwrap();
    feeder.feed().unwrap();
    let out: Vec<u64> = IMap::new(coll, window / 2, feeder)
        .map(Result::unwrap)
        .collect();
    stop.store(true, Ordering::Relaxed);
    bg.join().unwrap();
    let what = format!("window {window}, chunksize {chunksize}, {items} items, {policy:?}");
    assert_eq!(out.len() as u64, items, "{what}");
    if ordered {
        assert!(
            out.iter().zip(0..).all(|(&r, x)| r == 2 * x + 1),
            "out of order: {what}"
        );
    } else {
        let mut seen = vec![false; items as usize];
        for r in out {
            let x = (r as usize - 1) / 2;
            assert!(!std::mem::replace(&mut seen[x], true), "{x} twice: {what}");
        }
    }
}

#[test]
fn window_accounting_never_stalls_and_loses_nothing() {
    let policies = [
        Policy::Lazy,
        Policy::AllOnSubmit,
        Policy::RandomOnSubmit,
        Policy::WhileReading,
    ];
    for window in [1, 2, 3, 8, 64, 1024] {
        for chunksize in [1, 3] {
            let long = (3 * window * chunksize + 1) as u64;
            for items in [0, 1, long] {
                for ordered in [true, false] {
                    for policy in policies {
                        let what = format!(
                            "window {window}, chunksize {chunksize}, {items} items, \
                             ordered {ordered}, {policy:?}"
                        );
                        let (tx, rx) = mpsc::channel();
                        let t = thread::spawn(move || {
                            run(window, chunksize, items, ordered, policy);
                            let _ = tx.send(());
                        });
                        match rx.recv_timeout(Duration::from_secs(30)) {
                            Ok(()) => t.join().unwrap(),
                            Err(mpsc::RecvTimeoutError::Timeout) => {
                                panic!("the stream stalled: {what}")
                            }
                            Err(mpsc::RecvTimeoutError::Disconnected) => {
                                if let Err(e) = t.join() {
                                    std::panic::resume_unwind(e);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
