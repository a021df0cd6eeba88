//! Twin of the "Multiprocessing Value and Lock" program of seed 003, the
//! version *with* a `multiprocessing.Lock` (a reconstruction: the seed's
//! code did not survive, see `value_without_lock`). Each read-modify-write
//! of the shared `Value` happens under the lock, so no update is lost and
//! the result is the expected 1.
//!
//! The idiomatic Rust form of the same step is `v.update(|x| *x *= 10.0)`,
//! which uses the value's own lock; the separate `Lock` mirrors the
//! tutorial.
//!
//! ```text
//! Final value: 1.0
//! ```

use std::thread;
use std::time::Duration;

use multiprocessing as mp;

const STEPS: usize = 20;

fn multiply((v, lock): (mp::Value<f64>, mp::Lock)) {
    for _ in 0..STEPS {
        let _g = lock.acquire().expect("lock holder died");
        let x = v.get();
        thread::sleep(Duration::from_millis(1));
        v.set(x * 10.0);
    }
}

fn divide((v, lock): (mp::Value<f64>, mp::Lock)) {
    for _ in 0..STEPS {
        let _g = lock.acquire().expect("lock holder died");
        let x = v.get();
        thread::sleep(Duration::from_millis(1));
        v.set(x / 10.0);
    }
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let v = mp::Value::new(1.0f64)?;
    let lock = mp::Lock::new()?;
    let m = mp::Process::new(multiply, (v.clone(), lock.clone()));
    let d = mp::Process::new(divide, (v.clone(), lock.clone()));
    m.start()?;
    d.start()?;
    m.join()?;
    d.join()?;
    // Twelve significant digits: 10 is not exact in binary floating point.
    let shown: f64 = format!("{:.11e}", v.get()).parse().expect("a float");
    println!("Final value: {shown:?}");
    Ok(())
}
