//! Twin of `multiprocessing_semaphore.py` in seed 004 (PyMOTW-3
//! "Controlling Concurrent Access to Resources"): ten workers, and a
//! `Semaphore(3)` that lets at most three of them be active at once.
//!
//! The tutorial's `ActivePool` keeps the names of the active workers in a
//! `Manager().list()` guarded by a `Lock`. The twin keeps them in a shared
//! `Array` instead (slot order = order of activation, `-1` = free), whose
//! own lock plays the role of `ActivePool.lock`; the semaphore part is the
//! same.
//!
//! The workers sleep a random time, so the output varies from run to run;
//! what does not vary is that no list ever holds more than three names, each
//! worker is activated once, and the last line is `Now running []`:
//!
//! ```text
//! Activating 0 now running ['0', '1', '2']
//! Activating 1 now running ['0', '1', '2']
//! Activating 2 now running ['0', '1', '2']
//! Activating 3 now running ['0', '1', '3']
//! ...
//! Now running ['9']
//! Now running []
//! ```

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::thread;
use std::time::Duration;

use mp_examples::py_str_list;
use multiprocessing as mp;
use serde::{Deserialize, Serialize};

const WORKERS: i32 = 10;

/// The names of the active workers, in order of activation.
#[derive(Clone, Serialize, Deserialize)]
struct ActivePool {
    active: mp::Array<i32>,
}

impl ActivePool {
    fn new() -> Result<ActivePool, mp::Error> {
        let free = vec![-1; WORKERS as usize];
        Ok(ActivePool {
            active: mp::Array::from_slice(&free)?,
        })
    }

    fn make_active(&self, name: i32) {
        self.active.update(|slots| {
            if let Some(slot) = slots.iter_mut().find(|s| **s < 0) {
                *slot = name;
            }
        });
    }

    fn make_inactive(&self, name: i32) {
        self.active.update(|slots| {
            if let Some(i) = slots.iter().position(|s| *s == name) {
                slots[i..].rotate_left(1); // keep the order of the others
                *slots.last_mut().expect("not empty") = -1;
            }
        });
    }

    /// Python's `str(pool)`: the list of names, read under the lock.
    fn show(&self) -> String {
        self.active
            .update(|slots| py_str_list(slots.iter().filter(|s| **s >= 0)))
    }
}

/// Python's `random.random()`: a float in [0, 1).
fn random() -> f64 {
    let bits = RandomState::new().hash_one(std::process::id());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn worker((s, pool): (mp::Semaphore, ActivePool)) {
    let name: i32 = mp::current_process()
        .name()
        .parse()
        .expect("named by number");
    let _slot = s.acquire(); // with s:
    pool.make_active(name);
    println!("Activating {name} now running {}", pool.show());
    thread::sleep(Duration::from_secs_f64(random()));
    pool.make_inactive(name);
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let pool = ActivePool::new()?;
    let s = mp::Semaphore::new(3)?;
    let jobs: Vec<_> = (0..WORKERS)
        .map(|i| mp::Process::new(worker, (s.clone(), pool.clone())).name(i.to_string()))
        .collect();
    for j in &jobs {
        j.start()?;
    }

    loop {
        let mut alive = 0;
        for j in &jobs {
            if j.is_alive() {
                alive += 1;
                j.join_timeout(Duration::from_millis(100))?;
                println!("Now running {}", pool.show());
            }
        }
        if alive == 0 {
            // all done
            break;
        }
    }
    Ok(())
}
