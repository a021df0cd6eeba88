//! Twin of "Example 1" of seed 002 (edureka "How To Best Implement
//! Multiprocessing In Python?"): one process prints a square, another a
//! cube, and the parent waits for both.
//!
//! The two children run at the same time, so "Square" and "Cube" may come
//! in either order; "Done!" is always last:
//!
//! ```text
//! Square: 100
//! Cube: 1000
//! Done!
//! ```

use multiprocessing as mp;

fn print_cube(num: i64) {
    println!("Cube: {}", num * num * num);
}

fn print_square(num: i64) {
    println!("Square: {}", num * num);
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let p1 = mp::Process::new(print_square, 10);
    let p2 = mp::Process::new(print_cube, 10);
    p1.start()?;
    p2.start()?;
    p1.join()?;
    p2.join()?;
    // both processes finished
    println!("Done!");
    Ok(())
}
