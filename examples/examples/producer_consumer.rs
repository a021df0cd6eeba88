//! Twin of `multiprocessing_producer_consumer.py` in seed 004 (PyMOTW-3
//! "Passing Messages to Processes"): `cpu_count() * 2` consumers take
//! `Task`s from a `JoinableQueue` until a poison pill (`None`), and put
//! their answers in a result `Queue`; the parent waits with `tasks.join()`
//! and prints the results.
//!
//! Python subclasses `Process` (`Consumer.run`); here `Consumer` is a plain
//! serde struct whose `run(self)` method is the target, and the processes
//! are named `Consumer-N` as Python names instances of a subclass. The
//! seed lost the `break` after the poison pill; the twin has it.
//!
//! Which consumer takes which task, and the order of the results, depend on
//! scheduling ("there is no guarantee about the order they will be
//! completed"). With two CPUs:
//!
//! ```text
//! Creating 4 consumers
//! Consumer-1: 0 * 0
//! Consumer-2: 1 * 1
//! Consumer-3: 2 * 2
//! Consumer-4: 3 * 3
//! ...
//! Consumer-2: Exiting
//! ...
//! Result: 1 * 1 = 1
//! Result: 0 * 0 = 0
//! ...
//! ```
//!
//! Every consumer line comes before the first result: a consumer prints
//! before it calls `task_done`, and the parent prints after `tasks.join()`.

use std::fmt;
use std::thread;
use std::time::Duration;

use multiprocessing as mp;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Consumer {
    task_queue: mp::JoinableQueue<Option<Task>>,
    result_queue: mp::Queue<String>,
}

impl Consumer {
    fn run(self) {
        let proc_name = mp::current_process().name().to_string();
        loop {
            let next_task = self.task_queue.get().expect("get");
            let Some(next_task) = next_task else {
                // Poison pill means shutdown
                println!("{proc_name}: Exiting");
                self.task_queue.task_done().expect("task_done");
                break;
            };
            println!("{proc_name}: {next_task}");
            let answer = next_task.call();
            self.task_queue.task_done().expect("task_done");
            self.result_queue.put(answer).expect("put");
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Task {
    a: i64,
    b: i64,
}

impl Task {
    /// Python's `__call__`.
    fn call(&self) -> String {
        thread::sleep(Duration::from_millis(100)); // pretend to take time to do the work
        format!("{self} = {}", self.a * self.b)
    }
}

/// Python's `__str__`.
impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} * {}", self.a, self.b)
    }
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    // Establish communication queues
    let tasks = mp::JoinableQueue::<Option<Task>>::new()?;
    let results = mp::Queue::<String>::new()?;

    // Start consumers
    let num_consumers = mp::cpu_count() * 2;
    println!("Creating {num_consumers} consumers");
    let consumers: Vec<_> = (1..=num_consumers)
        .map(|i| {
            let consumer = Consumer {
                task_queue: tasks.clone(),
                result_queue: results.clone(),
            };
            mp::Process::new(Consumer::run, consumer).name(format!("Consumer-{i}"))
        })
        .collect();
    for w in &consumers {
        w.start()?;
    }

    // Enqueue jobs
    let mut num_jobs = 10;
    for i in 0..num_jobs {
        tasks.put(Some(Task { a: i, b: i }))?;
    }

    // Add a poison pill for each consumer
    for _ in 0..num_consumers {
        tasks.put(None)?;
    }

    // Wait for all of the tasks to finish
    tasks.join()?;

    // Start printing results
    while num_jobs > 0 {
        let result = results.get()?;
        println!("Result: {result}");
        num_jobs -= 1;
    }

    for w in &consumers {
        w.join()?;
    }
    Ok(())
}
