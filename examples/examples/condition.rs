//! Twin of `multiprocessing_condition.py` in seed 004 (PyMOTW-3
//! "Synchronizing Operations"): two stage-2 processes wait on a `Condition`
//! until the stage-1 process has done its work and notifies them all.
//!
//! Python's `with cond: cond.wait()` is `cond.acquire()?.wait()?`: waiting
//! and notifying are methods of the guard that proves the lock is held.
//! The processes start one second apart, so the first four lines are in
//! this order; the two stage-2 processes then wake together and print in
//! either order:
//!
//! ```text
//! Starting stage_2[1]
//! Starting stage_2[2]
//! Starting s1
//! s1 done and ready for stage 2
//! stage_2[1] running
//! stage_2[2] running
//! ```

use std::thread;
use std::time::Duration;

use multiprocessing as mp;

/// Performs the first stage of work, then notifies stage 2 to continue.
fn stage_1(cond: mp::Condition) {
    let name = mp::current_process().name().to_string();
    println!("Starting {name}");
    let g = cond.acquire().expect("lock holder died");
    println!("{name} done and ready for stage 2");
    g.notify_all();
}

/// Waits for the condition telling us stage 1 is done.
fn stage_2(cond: mp::Condition) {
    let name = mp::current_process().name().to_string();
    println!("Starting {name}");
    let mut g = cond.acquire().expect("lock holder died");
    g.wait().expect("wait on the condition");
    println!("{name} running");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let condition = mp::Condition::new()?;
    let s1 = mp::Process::new(stage_1, condition.clone()).name("s1");
    let s2_clients: Vec<_> = (1..3)
        .map(|i| mp::Process::new(stage_2, condition.clone()).name(format!("stage_2[{i}]")))
        .collect();

    for c in &s2_clients {
        c.start()?;
        thread::sleep(Duration::from_secs(1));
    }
    s1.start()?;

    s1.join()?;
    for c in &s2_clients {
        c.join()?;
    }
    Ok(())
}
