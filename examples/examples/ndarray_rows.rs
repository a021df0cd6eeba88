//! A 2-D array in shared memory filled by rows from a `Pool`, the numpy
//! pattern of seed 003 (`np.frombuffer(shared.get_obj()).reshape(rows,
//! cols)`, each worker writing its row, the parent reading the matrix).
//! The seed keeps only the prose, so the sizes and values are ours.
//!
//! In Python:
//!
//! ```python
//! def fill_row(i):
//!     m = np.frombuffer(shared.get_obj()).reshape(ROWS, COLS)
//!     with shared.get_lock():
//!         m[i, :] = i * np.arange(COLS)
//!
//! shared = mp.Array('d', ROWS * COLS)
//! with mp.Pool(4, initializer=init, initargs=(shared,)) as pool:
//!     pool.map(fill_row, range(ROWS))
//! ```
//!
//! Here the shared `mp::Array<f64>` travels in each task's arguments; a
//! worker computes its row, locks the array and writes the row through the
//! guard's `view_mut((ROWS, COLS))` (a view of shared memory is sound only
//! while nobody else can write it: under the lock). Needs the `ndarray`
//! feature of `multiprocessing`. Prints:
//!
//! ```text
//! Filled a 8x1000 shared array by rows with a Pool of 4 workers
//! Row sums: [0, 499500, 999000, 1498500, 1998000, 2497500, 2997000, 3496500]
//! Column 999: [0, 999, 1998, 2997, 3996, 4995, 5994, 6993]
//! Same as serial: True
//! ```

use mp_examples::py_bool;
use multiprocessing as mp;
use multiprocessing::shm::ndarray::{Array1, Array2, Axis};

const ROWS: usize = 8;
const COLS: usize = 1_000;
const WORKERS: usize = 4;

fn row(i: usize) -> Array1<f64> {
    Array1::from_iter((0..COLS).map(|j| (i * j) as f64))
}

/// Computes row `i` and writes it into the shared matrix under its lock.
fn fill_row((shared, i): (mp::Array<f64>, usize)) {
    let values = row(i);
    let mut guard = shared.lock();
    let mut matrix = guard.view_mut((ROWS, COLS)).expect("ROWS x COLS elements");
    matrix.row_mut(i).assign(&values);
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let shared = mp::Array::<f64>::zeroed(ROWS * COLS)?;
    let pool = mp::Pool::new(WORKERS)?;
    pool.map(fill_row, (0..ROWS).map(|i| (shared.clone(), i)))?;
    println!("Filled a {ROWS}x{COLS} shared array by rows with a Pool of {WORKERS} workers");

    let matrix: Array2<f64> = shared.to_ndarray((ROWS, COLS))?;
    println!(
        "Row sums: {:?}",
        matrix.sum_axis(Axis(1)).map(|&s| s as u64).to_vec()
    );
    println!(
        "Column 999: {:?}",
        matrix.column(COLS - 1).map(|&x| x as u64).to_vec()
    );

    let mut serial = Array2::<f64>::zeros((ROWS, COLS));
    for (i, mut r) in serial.axis_iter_mut(Axis(0)).enumerate() {
        r.assign(&row(i));
    }
    println!("Same as serial: {}", py_bool(matrix == serial));
    Ok(())
}
