//! Twin of `multiprocessing_event.py` in seed 004 (PyMOTW-3 "Signaling
//! between Processes"): one process blocks on an `Event`, another waits for
//! it with a two-second timeout and gives up; the parent sets it after three
//! seconds. (The seed lost the line `e.wait()` of `wait_for_event`; the
//! twin has it, as the output shows.)
//!
//! The first three lines come in an order that depends on scheduling, and
//! so do the last two; the fourth line comes at two seconds:
//!
//! ```text
//! main: waiting before calling Event.set()
//! wait_for_event: starting
//! wait_for_event_timeout: starting
//! wait_for_event_timeout: e.is_set()-> False
//! main: event is set
//! wait_for_event: e.is_set()-> True
//! ```

use std::thread;
use std::time::Duration;

use mp_examples::py_bool;
use multiprocessing as mp;

/// Waits for the event to be set before doing anything.
fn wait_for_event(e: mp::Event) {
    println!("wait_for_event: starting");
    e.wait();
    println!("wait_for_event: e.is_set()-> {}", py_bool(e.is_set()));
}

/// Waits `t` seconds and then times out.
fn wait_for_event_timeout((e, t): (mp::Event, u64)) {
    println!("wait_for_event_timeout: starting");
    e.wait_timeout(Duration::from_secs(t));
    println!(
        "wait_for_event_timeout: e.is_set()-> {}",
        py_bool(e.is_set())
    );
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let e = mp::Event::new()?;
    let w1 = mp::Process::new(wait_for_event, e.clone()).name("block");
    w1.start()?;
    let w2 = mp::Process::new(wait_for_event_timeout, (e.clone(), 2)).name("nonblock");
    w2.start()?;

    println!("main: waiting before calling Event.set()");
    thread::sleep(Duration::from_secs(3));
    e.set();
    println!("main: event is set");

    w1.join()?;
    w2.join()?;
    Ok(())
}
