//! Twin of `multiprocessing_semaphore.py` in seed 004 (PyMOTW-3
//! "Controlling Concurrent Access to Resources") as the tutorial writes
//! it: the `ActivePool` keeps the names of the active workers in a
//! `Manager().list()` guarded by a `Lock`, and a `Semaphore(3)` lets at most
//! three of ten workers be active at once. (`semaphore.rs` is the same
//! program with a shared `Array` instead of the manager list.)
//!
//! Python's `ActivePool.__init__` starts the manager itself; here `main`
//! owns the `Manager` (it is not a value that travels to the workers) and
//! the pool holds the list proxy and the lock, which do travel.
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
use multiprocessing::manager::ListProxy;
use serde::{Deserialize, Serialize};

/// The names of the active workers, in order of activation.
#[derive(Clone, Serialize, Deserialize)]
struct ActivePool {
    active: ListProxy<String>,
    lock: mp::Lock,
}

impl ActivePool {
    fn new(mgr: &mp::Manager) -> Result<ActivePool, mp::Error> {
        Ok(ActivePool {
            active: mgr.list()?,
            lock: mp::Lock::new()?,
        })
    }

    fn make_active(&self, name: &str) {
        let _g = self.lock.acquire().expect("lock");
        self.active.append(name.to_string()).expect("append");
    }

    fn make_inactive(&self, name: &str) {
        let _g = self.lock.acquire().expect("lock");
        self.active.remove(&name.to_string()).expect("remove");
    }

    /// Python's `str(pool)`: the list of names, read under the lock.
    fn show(&self) -> String {
        let _g = self.lock.acquire().expect("lock");
        py_str_list(self.active.to_vec().expect("to_vec"))
    }
}

/// Python's `random.random()`: a float in [0, 1).
fn random() -> f64 {
    let bits = RandomState::new().hash_one(std::process::id());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn worker((s, pool): (mp::Semaphore, ActivePool)) {
    let name = mp::current_process().name().to_string();
    let _slot = s.acquire(); // with s:
    pool.make_active(&name);
    println!("Activating {name} now running {}", pool.show());
    thread::sleep(Duration::from_secs_f64(random()));
    pool.make_inactive(&name);
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let mgr = mp::Manager::new()?;
    let pool = ActivePool::new(&mgr)?;
    let s = mp::Semaphore::new(3)?;
    let jobs: Vec<_> = (0..10)
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
