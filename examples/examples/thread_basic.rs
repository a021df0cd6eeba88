//! Twin of the threading program of seed 003 ("How to Create Threads in
//! Python?"): not multiprocessing at all, but in the seed, so here it is
//! with `std::thread`. The child thread prints six lines, and `join` makes
//! the main thread wait for it before its own line:
//!
//! ```text
//! Child Thread Here!!       (six times)
//! Main Thread Here!!
//! ```

use std::thread;

fn new() {
    for _ in 0..6 {
        println!("Child Thread Here!!");
    }
}

fn main() {
    let t1 = thread::spawn(new);
    t1.join().expect("the child thread panicked");
    println!("Main Thread Here!!");
}
