//! Twin of `multiprocessing_lock.py` in seed 004 (PyMOTW-3 "Controlling
//! Access to Resources"): two processes write to one shared stream (the
//! parent's stdout, passed in the arguments as Python passes `sys.stdout`),
//! taking turns with a `Lock`: once with a scoped guard (Python's
//! `with lock:`), once acquiring and releasing by hand.
//!
//! The two processes race for the lock, so the lines come in either order:
//!
//! ```text
//! Lock acquired via with
//! Lock acquired directly
//! ```

use std::io::Write;

use mp_examples::SharedStream;
use multiprocessing as mp;

fn worker_with((lock, mut stream): (mp::Lock, SharedStream)) {
    let _g = lock.acquire().expect("lock holder died"); // with lock:
    stream
        .write_all(b"Lock acquired via with\n")
        .expect("write");
}

fn worker_no_with((lock, mut stream): (mp::Lock, SharedStream)) {
    let g = lock.acquire().expect("lock holder died"); // lock.acquire()
    let written = stream.write_all(b"Lock acquired directly\n");
    drop(g); // finally: lock.release()
    written.expect("write");
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let lock = mp::Lock::new()?;
    let w = mp::Process::new(worker_with, (lock.clone(), SharedStream::stdout()?));
    let nw = mp::Process::new(worker_no_with, (lock.clone(), SharedStream::stdout()?));
    w.start()?;
    nw.start()?;
    w.join()?;
    nw.join()?;
    Ok(())
}
