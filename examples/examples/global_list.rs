//! Twin of the first program of seed 001 (GeeksforGeeks "Multiprocessing in
//! Python | Set 2"): a child appends to a global list, and the parent's
//! global list stays empty, because each process has its own memory.
//!
//! ```text
//! Result(in process p1): [1, 4, 9, 16]
//! Result(in main program): []
//! ```

use std::sync::Mutex;

use multiprocessing as mp;

/// Python's module-level `result = []`.
static RESULT: Mutex<Vec<i32>> = Mutex::new(Vec::new());

fn square_list(mylist: Vec<i32>) {
    let mut result = RESULT.lock().unwrap();
    // append squares of mylist to the global list
    for num in mylist {
        result.push(num * num);
    }
    println!("Result(in process p1): {:?}", *result);
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let p1 = mp::Process::new(square_list, vec![1, 2, 3, 4]);
    p1.start()?;
    p1.join()?;
    // the child's appends happened in the child's copy of RESULT
    println!("Result(in main program): {:?}", *RESULT.lock().unwrap());
    Ok(())
}
