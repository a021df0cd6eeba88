//! Twin of "Example 2" of seed 002 (edureka): each worker prints its own
//! process id (`os.getpid()` is `std::process::id()`), the parent prints the
//! children's pids, and after `join` neither child is alive.
//!
//! The pids vary; the lines of the workers and the parent's "ID of process
//! p1/p2" lines interleave as scheduling goes. The first line and the last
//! three are always in this order:
//!
//! ```text
//! ID of main process: 18938
//! ID of process running worker1: 18939
//! ID of process running worker2: 18940
//! ID of process p1: 18939
//! ID of process p2: 18940
//! Both processes finished execution!
//! Process p1 is alive: False
//! Process p2 is alive: False
//! ```

use mp_examples::py_bool;
use multiprocessing as mp;

fn worker1(_: ()) {
    println!("ID of process running worker1: {}", std::process::id());
}

fn worker2(_: ()) {
    println!("ID of process running worker2: {}", std::process::id());
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    println!("ID of main process: {}", std::process::id());

    let p1 = mp::Process::new(worker1, ());
    let p2 = mp::Process::new(worker2, ());
    p1.start()?;
    p2.start()?;

    // process IDs (known once started)
    println!("ID of process p1: {}", p1.pid().expect("p1 was started"));
    println!("ID of process p2: {}", p2.pid().expect("p2 was started"));

    p1.join()?;
    p2.join()?;
    println!("Both processes finished execution!");

    println!("Process p1 is alive: {}", py_bool(p1.is_alive()));
    println!("Process p2 is alive: {}", py_bool(p2.is_alive()));
    Ok(())
}
