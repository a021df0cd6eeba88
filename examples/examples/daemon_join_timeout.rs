//! Twin of `multiprocessing_daemon_join_timeout.py` in seed 003 (PyMOTW
//! "Waiting for Processes"): `join` with a timeout shorter than the daemon's
//! sleep returns while the daemon is still alive.
//!
//! Python's `d.join(1)` is `d.join_timeout(1 s)`, which returns `None` when
//! the process is still running (and leaves it running). When `main`
//! returns, the daemon is terminated, as Python does at exit, so its
//! "Exiting" line never comes.
//!
//! As in `daemon_join`, each child's lines are
//! buffered until it exits, as Python 2 buffered them when this output was
//! recorded: the daemon is terminated before it flushes, so the output is
//! PyMOTW's:
//!
//! ```text
//! Starting: non-daemon
//! Exiting : non-daemon
//! d.is_alive() True
//! ```

use std::io::{self, BufWriter, Write};
use std::thread;
use std::time::Duration;

use mp_examples::py_bool;
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
    n.start()?;

    d.join_timeout(Duration::from_secs(1))?; // None: the daemon still runs
    println!("d.is_alive() {}", py_bool(d.is_alive()));
    n.join()?;
    Ok(()) // the daemon is terminated here, as Python does at exit
}
