//! Twin of "how to use a Manager List in a pool of workers" in seed 003
//! (the "Sharing Data Between Processes" article): the seed announces the
//! example and lost its code, so the twin reconstructs the usual program:
//! a list held by a `Manager`, to which the tasks of a `Pool` append.
//!
//! ```python
//! def worker(args):
//!     shared_list, item = args
//!     shared_list.append(item * item)
//!
//! if __name__ == '__main__':
//!     with multiprocessing.Manager() as manager:
//!         shared_list = manager.list()
//!         with multiprocessing.Pool(4) as pool:
//!             pool.map(worker, [(shared_list, i) for i in range(10)])
//!         print('Shared list:', sorted(shared_list))
//! ```
//!
//! The tasks append in an order that depends on scheduling, so the list is
//! sorted before it is printed:
//!
//! ```text
//! Shared list: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
//! ```
//!
//! The list proxy is a serde value: it travels in each task's arguments.

use multiprocessing as mp;
use multiprocessing::manager::ListProxy;

fn worker((shared_list, item): (ListProxy<i32>, i32)) {
    shared_list.append(item * item).expect("append");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let manager = mp::Manager::new()?;
    let shared_list = manager.list::<i32>()?;
    {
        let pool = mp::Pool::new(4)?;
        pool.map(worker, (0..10).map(|i| (shared_list.clone(), i)))?;
        pool.close();
        pool.join()?;
    }
    let mut sorted = shared_list.to_vec()?;
    sorted.sort();
    println!("Shared list: {sorted:?}");
    Ok(())
}
