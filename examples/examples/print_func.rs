//! Twin of seed 000 (journaldev "Python Multiprocessing"), the Process
//! class program: `print_func` run in four processes, once without
//! arguments (the default continent) and once per name.
//!
//! Python's default argument `continent='Asia'` becomes an `Option`: the
//! process started "without arguments" gets `None`.
//!
//! The four processes run at the same time, so the order of the lines
//! depends on scheduling; the set of lines is always:
//!
//! ```text
//! The name of continent is :  Asia
//! The name of continent is :  America
//! The name of continent is :  Europe
//! The name of continent is :  Africa
//! ```

use multiprocessing as mp;

fn print_func(continent: Option<String>) {
    let continent = continent.unwrap_or_else(|| "Asia".to_string());
    println!("The name of continent is :  {continent}");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let names = ["America", "Europe", "Africa"];
    let mut procs = Vec::new();

    let proc = mp::Process::new(print_func, None); // without any argument
    proc.start()?;
    procs.push(proc);

    // with arguments
    for name in names {
        let proc = mp::Process::new(print_func, Some(name.to_string()));
        proc.start()?;
        procs.push(proc);
    }

    // complete the processes
    for proc in &procs {
        proc.join()?;
    }
    Ok(())
}
