//! Twin of the "Multiprocessing Value and Lock" program of seed 003, the
//! version *before* the lock. The seed describes the program but its code
//! did not survive, so this is a reconstruction from the text: one process
//! multiplies a shared `Value` by 10, another divides it by 10, the same
//! number of times, so the result should be 1.
//!
//! `v.value *= 10` in Python is a read and then a write, each under the
//! value's own lock but not together: the other process can write in
//! between, and its update is lost. The pause between the read and the
//! write stands for the work Python's interpreter does there, and makes the
//! race easy to see. The result varies from run to run and is usually not
//! 1.0; compare with `value_with_lock`.
//!
//! ```text
//! Final value: 1000.0       (varies: 1e-5, 10.0, 1.0, ...)
//! ```

use std::thread;
use std::time::Duration;

use multiprocessing as mp;

const STEPS: usize = 20;

fn multiply(v: mp::Value<f64>) {
    for _ in 0..STEPS {
        let x = v.get();
        thread::sleep(Duration::from_millis(1));
        v.set(x * 10.0);
    }
}

fn divide(v: mp::Value<f64>) {
    for _ in 0..STEPS {
        let x = v.get();
        thread::sleep(Duration::from_millis(1));
        v.set(x / 10.0);
    }
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let v = mp::Value::new(1.0f64)?;
    let m = mp::Process::new(multiply, v.clone());
    let d = mp::Process::new(divide, v.clone());
    m.start()?;
    d.start()?;
    m.join()?;
    d.join()?;
    // Twelve significant digits: 10 is not exact in binary floating point.
    let shown: f64 = format!("{:.11e}", v.get()).parse().expect("a float");
    println!("Final value: {shown:?}");
    Ok(())
}
