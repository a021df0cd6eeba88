//! Twin of the Hogwild program of seed 003 (PyTorch "Multiprocessing best
//! practices"): several processes train one model whose parameters live in
//! shared memory, updating them without any lock.
//!
//! There is no PyTorch here: the "model" is `y = w * x + b`, its two
//! parameters an `mp::RawArray<f64>` (shared, no lock, like
//! `model.share_memory()`), and each process runs plain SGD on noise-free
//! samples of `y = 3x + 2`. Updates from different processes may overwrite
//! each other, which Hogwild accepts; the model still converges:
//!
//! ```text
//! w = 3.00, b = 2.00
//! ```

use multiprocessing as mp;

const NUM_PROCESSES: usize = 4;
const STEPS: usize = 5_000;
const LEARNING_RATE: f64 = 0.1;

fn train((model, rank): (mp::RawArray<f64>, usize)) {
    for step in 0..STEPS {
        let x = ((step * 7 + rank * 13) % 100) as f64 / 100.0;
        let y = 3.0 * x + 2.0;
        let (w, b) = (model.get(0), model.get(1));
        let error = w * x + b - y;
        model.set(0, w - LEARNING_RATE * error * x); // updates the shared parameters
        model.set(1, b - LEARNING_RATE * error);
    }
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let model = mp::RawArray::<f64>::zeroed(2)?;
    let mut processes = Vec::new();
    for rank in 0..NUM_PROCESSES {
        let p = mp::Process::new(train, (model.clone(), rank));
        p.start()?;
        processes.push(p);
    }
    for p in &processes {
        p.join()?;
    }
    println!("w = {:.2}, b = {:.2}", model.get(0), model.get(1));
    Ok(())
}
