//! Twin of the "QUEUE" program of seed 000 and of the Queue program of
//! seed 001 (GeeksforGeeks), the same program: p1 puts the squares of a
//! list in a `Queue`; once it has ended, p2 prints them.
//!
//! ```text
//! Queue elements:
//! 1
//! 4
//! 9
//! 16
//! Queue is now empty!
//! ```

use multiprocessing as mp;

/// Squares a given list into the queue.
fn square_list((mylist, q): (Vec<i32>, mp::Queue<i32>)) {
    // append squares of mylist to queue
    for num in mylist {
        q.put(num * num).expect("put");
    }
}

/// Prints the queue's elements.
fn print_queue(q: mp::Queue<i32>) {
    println!("Queue elements:");
    while !q.empty() {
        println!("{}", q.get().expect("get"));
    }
    println!("Queue is now empty!");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    // input list
    let mylist = vec![1, 2, 3, 4];
    // creating multiprocessing Queue
    let q = mp::Queue::<i32>::new()?;

    // creating new processes
    let p1 = mp::Process::new(square_list, (mylist, q.clone()));
    let p2 = mp::Process::new(print_queue, q.clone());

    // running process p1 to square list
    p1.start()?;
    p1.join()?;

    // running process p2 to get queue elements
    p2.start()?;
    p2.join()?;
    Ok(())
}
