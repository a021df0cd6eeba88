//! Twin of `multiprocessing_manager_dict.py` in seed 004 (PyMOTW-3
//! "Managing Shared State"): ten processes each set one key of a dict held
//! by a `Manager`.
//!
//! ```text
//! Results: {0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12, 7: 14, 8: 16, 9: 18}
//! ```
//!
//! Python prints the dict in insertion order, which is the order in which
//! the processes happened to run; `copy()` here gives a `BTreeMap`, sorted
//! by key, so the line is always the one above.

use multiprocessing as mp;
use multiprocessing::manager::DictProxy;

fn worker((d, key, value): (DictProxy<i32, i32>, i32, i32)) {
    d.insert(key, value).expect("insert");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let mgr = mp::Manager::new()?;
    let d = mgr.dict::<i32, i32>()?;
    let jobs: Vec<_> = (0..10)
        .map(|i| mp::Process::new(worker, (d.clone(), i, i * 2)))
        .collect();
    for j in &jobs {
        j.start()?;
    }
    for j in &jobs {
        j.join()?;
    }
    println!("Results: {:?}", d.copy()?);
    Ok(())
}
