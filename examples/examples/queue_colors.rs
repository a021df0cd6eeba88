//! Twin of the "Python multiprocessing Queue class" program of seed 000
//! (journaldev): four colors put in a `Queue`, then taken out until it is
//! empty, all in one process.
//!
//! The tutorial does not show the output; the program prints (Python's
//! `print('item no: ', cnt, ' ', color)` puts a space between arguments):
//!
//! ```text
//! pushing items to queue:
//! item no:  1   red
//! item no:  2   green
//! item no:  3   blue
//! item no:  4   black
//!
//! popping items from queue:
//! item no:  0   red
//! item no:  1   green
//! item no:  2   blue
//! item no:  3   black
//! ```
//!
//! (In Python, `queue.empty()` right after the `put`s can be `True` for a
//! moment, because a feeder thread writes the items to the pipe later; a
//! `put` here has written the item when it returns, so `empty()` is exact.)

use multiprocessing as mp;

fn main() -> Result<(), mp::Error> {
    mp::init();
    let colors = ["red", "green", "blue", "black"];
    let mut cnt = 1;
    // instantiating a queue object
    let queue = mp::Queue::<String>::new()?;
    println!("pushing items to queue:");
    for color in colors {
        println!("item no:  {cnt}   {color}");
        queue.put(color.to_string())?;
        cnt += 1;
    }

    println!("\npopping items from queue:");
    cnt = 0;
    while !queue.empty() {
        println!("item no:  {cnt}   {}", queue.get()?);
        cnt += 1;
    }
    Ok(())
}
