//! Twin of seed 000 (journaldev "Python Multiprocessing"), the first
//! program: how many CPUs does this machine have?
//!
//! ```text
//! Number of cpu :  8        (varies with the machine)
//! ```

use multiprocessing as mp;

fn main() {
    mp::init();
    println!("Number of cpu :  {}", mp::cpu_count());
}
