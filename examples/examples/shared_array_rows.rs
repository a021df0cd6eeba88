//! Twin of the SharedArray program of seed 003 (Sebastian Theiler, "Why pay
//! for a powerful CPU if you can't use all of it?"): fake data in a named
//! shared-memory array, one process per row doing useless calculations on
//! its row in place, and the array deleted at the end
//! (`SharedArray.delete('data')`). The seed keeps only the prose, so the
//! calculation and the sizes are ours.
//!
//! The Python `SharedArray` package is `mp::SharedMemory` here: created by
//! name (`data-PID`, so that two runs do not collide), attached by name in
//! each child, unlinked by its creator. The times vary; the check does not:
//!
//! ```text
//! Serial: 0.09 seconds
//! Multiprocessing (8 processes): 0.05 seconds
//! Same result: True
//! ```

use std::time::Instant;

use mp_examples::py_bool;
use multiprocessing as mp;

const ROWS: usize = 8;
const COLS: usize = 2_000;
const F64: usize = size_of::<f64>();

/// The same useless calculation for every element, as a computing test.
fn useless(x: f64) -> f64 {
    let mut y = x;
    for _ in 0..100 {
        y = (y.sin() + y.cos()).abs().sqrt() + x;
    }
    y
}

fn fake_data() -> Vec<f64> {
    (0..ROWS * COLS).map(|i| i as f64 / COLS as f64).collect()
}

fn to_bytes(xs: &[f64]) -> Vec<u8> {
    xs.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

fn from_bytes(bytes: &[u8]) -> Vec<f64> {
    let words = bytes.chunks_exact(F64);
    words
        .map(|w| f64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .collect()
}

/// Calculates row `i` of the shared array in place.
fn compute_row((name, i): (String, usize)) {
    let shared = mp::SharedMemory::attach(&name).expect("the parent created it");
    let mut bytes = vec![0u8; COLS * F64];
    shared
        .read_at(i * COLS * F64, &mut bytes)
        .expect("in bounds");
    let row: Vec<f64> = from_bytes(&bytes).into_iter().map(useless).collect();
    shared
        .write_at(i * COLS * F64, &to_bytes(&row))
        .expect("in bounds");
}

fn multiprocessing_func(data: &[f64]) -> Result<Vec<f64>, mp::Error> {
    let name = format!("data-{}", std::process::id());
    let shared = mp::SharedMemory::create(&name, data.len() * F64)?;
    shared.write_at(0, &to_bytes(data))?;

    let processes: Vec<_> = (0..ROWS)
        .map(|i| mp::Process::new(compute_row, (name.clone(), i)))
        .collect();
    for p in &processes {
        p.start()?;
    }
    for p in &processes {
        p.join()?;
    }

    let mut bytes = vec![0u8; data.len() * F64];
    shared.read_at(0, &mut bytes)?;
    shared.unlink()?; // SharedArray.delete('data')
    Ok(from_bytes(&bytes))
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let data = fake_data();

    let t = Instant::now();
    let serial: Vec<f64> = data.iter().copied().map(useless).collect();
    println!("Serial: {:.2} seconds", t.elapsed().as_secs_f64());

    let t = Instant::now();
    let parallel = multiprocessing_func(&data)?;
    let secs = t.elapsed().as_secs_f64();
    println!("Multiprocessing ({ROWS} processes): {secs:.2} seconds");

    println!("Same result: {}", py_bool(serial == parallel));
    Ok(())
}
