//! Twin of `multiprocessing_pool.py` in seed 004 (PyMOTW-3 "Process
//! Pools"): `Pool(cpu_count() * 2, initializer=start_process).map`, after
//! the built-in `map` for comparison.
//!
//! Python's built-in `map` is lazy and prints as `<map object at 0x...>`;
//! Rust's `Iterator::map` is lazy too and prints its `Debug` form. Each
//! worker's initializer prints its name; the workers are named
//! `PoolWorker-N` (Python: `ForkPoolWorker-N` under the fork start method,
//! `ForkServerPoolWorker-N` under forkserver), and they start at the same
//! time, so those lines come in any order. With two CPUs:
//!
//! ```text
//! Input : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
//! Built-in: Map { iter: Iter([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) }
//! Starting PoolWorker-1
//! Starting PoolWorker-3
//! Starting PoolWorker-2
//! Starting PoolWorker-4
//! Pool : [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
//! ```

use multiprocessing as mp;

fn do_calculation(data: i32) -> i32 {
    data * 2
}

fn start_process(_: ()) {
    println!("Starting {}", mp::current_process().name());
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let inputs: Vec<i32> = (0..10).collect();
    println!("Input : {inputs:?}");

    let builtin_outputs = inputs.iter().map(|&x| do_calculation(x));
    println!("Built-in: {builtin_outputs:?}");

    let pool_size = mp::cpu_count() * 2;
    let pool = mp::Pool::builder()
        .processes(pool_size)
        .initializer(start_process, ())
        .build()?;
    let pool_outputs = pool.map(do_calculation, inputs)?;
    pool.close(); // no more tasks
    pool.join()?; // wrap up current tasks

    println!("Pool : {pool_outputs:?}");
    Ok(())
}
