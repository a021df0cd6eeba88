//! Twin of the threading program of seed 003 ("How to Create Multithreading
//! in Python3?"): one thread prints squares, another cubes, each pausing
//! 0.2 s per number. The seed's code is garbled (mismatched names, the list
//! lost); the twin uses the list `[2, 3, 8, 9]` and the fixed names.
//!
//! Each thread's lines are in order; the two threads interleave as
//! scheduling goes, and "Successed!" (sic) is last:
//!
//! ```text
//! Calculate square numbers:
//! Calculate cube numbers:
//! square:  4
//! cube:  8
//! ...
//! Successed!
//! ```

use std::thread;
use std::time::Duration;

fn calc_square(numbers: Vec<i64>) {
    println!("Calculate square numbers: ");
    for n in numbers {
        thread::sleep(Duration::from_millis(200)); // artificial time-delay
        println!("square:  {}", n * n);
    }
}

fn calc_cube(numbers: Vec<i64>) {
    println!("Calculate cube numbers: ");
    for n in numbers {
        thread::sleep(Duration::from_millis(200));
        println!("cube:  {}", n * n * n);
    }
}

fn main() {
    let arr = vec![2, 3, 8, 9];
    let a = arr.clone();
    let t1 = thread::spawn(move || calc_square(a));
    let t2 = thread::spawn(move || calc_cube(arr));
    t1.join().expect("calc_square panicked");
    t2.join().expect("calc_cube panicked");
    println!("Successed!");
}
