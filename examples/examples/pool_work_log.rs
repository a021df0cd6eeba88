//! Twin of the "Python multiprocessing Pool" program of seed 000
//! (journaldev): `Pool(2).map(work_log, work)`, where each item sleeps its
//! number of seconds, so two items run at a time and a free worker takes
//! the next one.
//!
//! The tutorial's output is an image that is not in the seed. To keep the
//! example short, one tutorial second is [`SECOND`] (a quarter of a
//! second) here: the lines say "5 seconds" and the wait is 1.25 s. With
//! items A 5, B 2, C 1, D 3 and two workers, the program prints (the first
//! two lines in either order):
//!
//! ```text
//!  Process A waiting 5 seconds
//!  Process B waiting 2 seconds
//!  Process B Finished.
//!  Process C waiting 1 seconds
//!  Process C Finished.
//!  Process D waiting 3 seconds
//!  Process A Finished.
//!  Process D Finished.
//! ```
//!
//! What does not depend on scheduling: never more than two items waiting at
//! once, each item waits once and then finishes.

use std::thread;
use std::time::Duration;

use multiprocessing as mp;

/// One tutorial second.
const SECOND: Duration = Duration::from_millis(250);

fn work_log((name, seconds): (String, u32)) {
    println!(" Process {name} waiting {seconds} seconds");
    thread::sleep(SECOND * seconds);
    println!(" Process {name} Finished.");
}

fn pool_handler() -> Result<(), mp::Error> {
    let work = [("A", 5), ("B", 2), ("C", 1), ("D", 3)].map(|(n, s)| (n.to_string(), s));
    let p = mp::Pool::new(2)?;
    p.map(work_log, work)?;
    Ok(())
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    pool_handler()
}
