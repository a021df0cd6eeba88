//! Twin of `multiprocessing_daemon_join.py` in seed 003 (PyMOTW "Waiting
//! for Processes"): a daemon that sleeps two seconds and a non-daemon that
//! returns at once; the parent joins both, so the daemon's "Exiting" line is
//! printed too.
//!
//! The tutorial's output comes from Python 2 writing to a block-buffered
//! stdout (not a terminal): each child's lines appear when that child exits,
//! the non-daemon (started one second later, done at once) before the daemon
//! (done two seconds after its start). The twin buffers each child's lines
//! the same way (a `BufWriter` flushed when the target returns), so it
//! prints the tutorial's lines in the tutorial's order:
//!
//! ```text
//! Starting: non-daemon
//! Exiting : non-daemon
//! Starting: daemon
//! Exiting : daemon
//! ```

use std::io::{self, BufWriter, Write};
use std::thread;
use std::time::Duration;

use multiprocessing as mp;

fn daemon(_: ()) {
    let name = mp::current_process().name().to_string();
    let mut out = BufWriter::new(io::stdout());
    writeln!(out, "Starting: {name}").expect("stdout");
    thread::sleep(Duration::from_secs(2));
    writeln!(out, "Exiting : {name}").expect("stdout");
    out.flush().expect("stdout");
}

fn non_daemon(_: ()) {
    let name = mp::current_process().name().to_string();
    let mut out = BufWriter::new(io::stdout());
    writeln!(out, "Starting: {name}").expect("stdout");
    writeln!(out, "Exiting : {name}").expect("stdout");
    out.flush().expect("stdout");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let d = mp::Process::new(daemon, ()).name("daemon").daemon(true);
    let n = mp::Process::new(non_daemon, ())
        .name("non-daemon")
        .daemon(false);

    d.start()?;
    thread::sleep(Duration::from_secs(1));
    n.start()?;

    d.join()?;
    n.join()?;
    Ok(())
}
