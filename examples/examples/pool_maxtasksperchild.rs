//! Twin of `multiprocessing_pool_maxtasksperchild.py` in seed 004
//! (PyMOTW-3 "Process Pools"): the `pool` program with
//! `maxtasksperchild=2`, so each worker is replaced after two tasks and
//! more workers start than the pool's size.
//!
//! With two CPUs the pool has four workers and `map` cuts the ten inputs
//! into ten tasks (chunk size 1), so at least five workers run; the
//! successor of a retiring worker starts at once, even if no work is left,
//! so more may print their line. Their order depends on scheduling:
//!
//! ```text
//! Input : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
//! Built-in: Map { iter: Iter([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) }
//! Starting PoolWorker-1
//! Starting PoolWorker-2
//! Starting PoolWorker-4
//! Starting PoolWorker-5
//! Starting PoolWorker-6
//! Starting PoolWorker-3
//! Starting PoolWorker-7
//! Starting PoolWorker-8
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
        .max_tasks_per_child(2)
        .build()?;
    let pool_outputs = pool.map(do_calculation, inputs)?;
    pool.close(); // no more tasks
    pool.join()?; // wrap up current tasks

    println!("Pool : {pool_outputs:?}");
    Ok(())
}
