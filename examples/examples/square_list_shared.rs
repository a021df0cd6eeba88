//! Twin of the "SHARE MEMORY" program of seed 000 and of "Sharing data
//! between processes" in seed 001 (GeeksforGeeks): a child squares a list
//! into a shared `Array` and stores the sum in a shared `Value`; the parent
//! sees both.
//!
//! ```text
//! Result(in process p1): [1, 4, 9, 16]
//! Sum of squares(in process p1): 30
//! Result(in main program): [1, 4, 9, 16]
//! Sum of squares(in main program): 30
//! ```

use multiprocessing as mp;

fn square_list((mylist, result, square_sum): (Vec<i32>, mp::Array<i32>, mp::Value<i32>)) {
    // append squares of mylist to result array
    for (idx, num) in mylist.iter().enumerate() {
        result.set(idx, num * num);
    }
    // square_sum value
    square_sum.set(result.to_vec().iter().sum());
    println!("Result(in process p1): {:?}", result.to_vec());
    println!("Sum of squares(in process p1): {}", square_sum.get());
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let mylist = vec![1, 2, 3, 4];
    // Array('i', 4) and Value('i'): zero-initialized shared integers
    let result = mp::Array::<i32>::zeroed(4)?;
    let square_sum = mp::Value::new(0i32)?;

    let p1 = mp::Process::new(square_list, (mylist, result.clone(), square_sum.clone()));
    p1.start()?;
    p1.join()?;

    println!("Result(in main program): {:?}", result.to_vec());
    println!("Sum of squares(in main program): {}", square_sum.get());
    Ok(())
}
