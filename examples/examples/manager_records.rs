//! Twin of the "Server process managers" program of seed 001
//! (GeeksforGeeks): a list of records held by a `Manager`'s server
//! process; p1 appends a record, then p2 prints them all.
//!
//! ```text
//! New record added!
//!
//! Name: Sam
//! Score: 10
//!
//! Name: Adam
//! Score: 9
//!
//! Name: Kevin
//! Score: 9
//!
//! Name: Jeff
//! Score: 8
//!
//! ```
//!
//! Python's `with Manager() as manager:` is a `Manager` value: its server
//! stops when it is dropped. `for record in records` iterates over a
//! snapshot (`to_vec`).

use multiprocessing as mp;
use multiprocessing::manager::ListProxy;

type Record = (String, u32);

/// Prints the records (tuples) of the list.
fn print_records(records: ListProxy<Record>) {
    for record in records.to_vec().expect("records") {
        println!("Name: {0}\nScore: {1}\n", record.0, record.1);
    }
}

/// Adds a new record to the list.
fn insert_record((record, records): (Record, ListProxy<Record>)) {
    records.append(record).expect("append");
    println!("New record added!\n");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let manager = mp::Manager::new()?;
    // creating a list in server process memory
    let records = manager.list_from(
        [("Sam", 10), ("Adam", 9), ("Kevin", 9)].map(|(name, score)| (name.to_string(), score)),
    )?;
    // new record to be inserted in records
    let new_record = ("Jeff".to_string(), 8);

    // creating new processes
    let p1 = mp::Process::new(insert_record, (new_record, records.clone()));
    let p2 = mp::Process::new(print_records, records.clone());

    // running process p1 to insert new record
    p1.start()?;
    p1.join()?;

    // running process p2 to print records
    p2.start()?;
    p2.join()?;
    Ok(())
}
