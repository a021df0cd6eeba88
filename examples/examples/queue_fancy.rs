//! Twin of `multiprocessing_queue.py` in seed 004 (PyMOTW-3 "Passing
//! Messages to Processes"): an object of a user type travels through a
//! `Queue` to a worker, which calls its method.
//!
//! ```text
//! Doing something fancy in Process-1 for Fancy Dan!
//! ```
//!
//! Python pickles the object; here the type derives serde's `Serialize`
//! and `Deserialize`. Python's `queue.join_thread()` waits for the feeder
//! thread to flush the queue; `put` here has written the value when it
//! returns, so there is nothing to wait for.

use multiprocessing as mp;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct MyFancyClass {
    name: String,
}

impl MyFancyClass {
    fn new(name: &str) -> MyFancyClass {
        MyFancyClass {
            name: name.to_string(),
        }
    }

    fn do_something(&self) {
        let proc_name = mp::current_process().name().to_string();
        println!("Doing something fancy in {proc_name} for {}!", self.name);
    }
}

fn worker(q: mp::Queue<MyFancyClass>) {
    let obj = q.get().expect("get");
    obj.do_something();
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let queue = mp::Queue::<MyFancyClass>::new()?;
    let p = mp::Process::new(worker, queue.clone());
    p.start()?;

    queue.put(MyFancyClass::new("Fancy Dan"))?;

    // Wait for the worker to finish
    queue.close();
    p.join()?;
    Ok(())
}
