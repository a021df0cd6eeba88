//! Twin of the "Python multiprocessing example" of seed 000 (journaldev):
//! ten tasks in one `Queue`, four processes that take them with
//! `get_nowait` until the queue is empty, and a second `Queue` where they
//! log what they did; the parent prints that log after joining them.
//!
//! Which process takes which task depends on scheduling ("The output of the
//! following code will vary from time to time"): first the ten tasks, each
//! printed once by the process that took it, then the ten log lines, each
//! process's in the order it took its tasks, for example:
//!
//! ```text
//! Task no 0
//! Task no 1
//! Task no 2
//! Task no 3
//! Task no 4
//! ...
//! Task no 0 is done by Process-1
//! Task no 4 is done by Process-1
//! Task no 8 is done by Process-1
//! Task no 1 is done by Process-2
//! ...
//! ```
//!
//! Python's `except queue.Empty: break` is a match on `TryRecvError::Empty`.
//! As in Python, `get_nowait` also reports `Empty` when another process is
//! taking an item at that moment, so a process may stop early; the last
//! one left sees nobody else and always drains the queue, so every task is
//! done once.

use std::thread;
use std::time::Duration;

use multiprocessing as mp;
use multiprocessing::channel::TryRecvError;

fn do_job(
    (tasks_to_accomplish, tasks_that_are_done): (mp::Queue<String>, mp::Queue<String>),
) -> bool {
    loop {
        // get_nowait() fails with TryRecvError::Empty if the queue is empty
        let task = match tasks_to_accomplish.get_nowait() {
            Ok(task) => task,
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("get_nowait: {e}"),
        };
        // no error: add the task completion message to tasks_that_are_done
        println!("{task}");
        let done = format!("{task} is done by {}", mp::current_process().name());
        tasks_that_are_done.put(done).expect("put");
        thread::sleep(Duration::from_millis(500));
    }
    true
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let number_of_task = 10;
    let number_of_processes = 4;
    let tasks_to_accomplish = mp::Queue::<String>::new()?;
    let tasks_that_are_done = mp::Queue::<String>::new()?;
    let mut processes = Vec::new();

    for i in 0..number_of_task {
        tasks_to_accomplish.put(format!("Task no {i}"))?;
    }

    // creating processes
    for _ in 0..number_of_processes {
        let p = mp::Process::new(
            do_job,
            (tasks_to_accomplish.clone(), tasks_that_are_done.clone()),
        );
        p.start()?;
        processes.push(p);
    }

    // completing process
    for p in &processes {
        p.join()?;
    }

    // print the output
    while !tasks_that_are_done.empty() {
        println!("{}", tasks_that_are_done.get()?);
    }
    Ok(())
}
