//! Big inputs and outputs through shared memory: one read-only input
//! shared with every worker once, and workers filling disjoint parts of one
//! shared array (the image-loading pattern).

use std::sync::OnceLock;

use mp_pool::Pool;
use mp_shm::RawArray;

const W: usize = 256;
const H: usize = 64;

/// Loads "row" `row` of the image into the shared array.
fn load_row((image, row): (RawArray<u32>, usize)) -> u32 {
    for x in 0..W {
        image.set(row * W + x, (row * 10_000 + x) as u32);
    }
    std::process::id()
}

#[test]
fn workers_fill_disjoint_parts_of_one_shared_array() {
    let image = RawArray::<u32>::zeroed(W * H).unwrap();
    let pool = Pool::new(2).unwrap();
    let pids = pool
        .map_chunked(load_row, (0..H).map(|r| (image.clone(), r)), 4)
        .unwrap();
    assert!(pids.iter().all(|p| *p != std::process::id()));
    let v = image.to_vec();
    for row in 0..H {
        for x in 0..W {
            assert_eq!(v[row * W + x], (row * 10_000 + x) as u32);
        }
    }
    // The same through apply_async, one task per row.
    let image2 = RawArray::<u32>::zeroed(W * H).unwrap();
    let rs: Vec<_> = (0..H)
        .map(|r| pool.apply_async(load_row, (image2.clone(), r)).unwrap())
        .collect();
    for r in rs {
        r.get().unwrap();
    }
    assert_eq!(image2.to_vec(), v);
}

static INPUT: OnceLock<RawArray<u64>> = OnceLock::new();

/// The initializer keeps the shared input for the tasks of this worker.
fn attach_input(input: RawArray<u64>) {
    INPUT.set(input).expect("initializer ran twice");
}

/// Sums one slice of the shared input: the task carries only the range.
fn sum_range((start, end): (usize, usize)) -> u64 {
    let input = INPUT.get().expect("the initializer attached the input");
    (start..end).map(|i| input.get(i)).sum()
}

#[test]
fn a_big_read_only_input_is_shared_once_through_the_initializer() {
    let n = 1 << 20; // 8 MiB of u64, never copied through a channel
    let data: Vec<u64> = (0..n as u64).collect();
    let input = RawArray::from_slice(&data).unwrap();
    let pool = Pool::builder()
        .processes(2)
        .initializer(attach_input, input.clone())
        .build()
        .unwrap();
    let step = n / 16;
    let parts = pool
        .map_chunked(sum_range, (0..16).map(|i| (i * step, (i + 1) * step)), 1)
        .unwrap();
    let total: u64 = parts.iter().sum();
    assert_eq!(total, data.iter().sum::<u64>());
}

fn sum_vec(v: Vec<u64>) -> (usize, u64) {
    (v.len(), v.iter().sum())
}

#[test]
fn large_arguments_and_results_pass() {
    // A chunk bigger than the task ring (1 MiB) is streamed through it.
    let pool = Pool::new(2).unwrap();
    let big: Vec<u64> = (0..600_000).collect();
    let (len, sum) = pool.apply(sum_vec, big.clone()).unwrap();
    assert_eq!(len, big.len());
    assert_eq!(sum, big.iter().sum::<u64>());
    let echo = pool.map_chunked(sum_vec, vec![big.clone(); 4], 1).unwrap();
    assert_eq!(echo.len(), 4);
}
