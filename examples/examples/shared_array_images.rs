//! Twin of the image-loading program of seed 003 (Sebastian Theiler, "Why
//! pay for a powerful CPU if you can't use all of it?", "Multiprocessing in
//! the Real World"): a few workers, each loading a set number of images
//! from a starting index into one shared array. The seed keeps only the
//! prose, and the Kaggle images are not here, so "loading" image `i` makes
//! its pixels from `i`, and the images are small.
//!
//! The shared array is an `mp::RawArray<u8>` (anonymous shared memory, no
//! lock: the workers write disjoint ranges), which vanishes with its last
//! user, so there is nothing to delete afterwards.
//!
//! ```text
//! Loaded 32 images of 48x64x3 with 4 workers
//! Every image in place: True
//! ```

use mp_examples::py_bool;
use multiprocessing as mp;

const N_IMAGES: usize = 32;
const HEIGHT: usize = 48;
const WIDTH: usize = 64;
const IMAGE: usize = HEIGHT * WIDTH * 3;
const N_WORKERS: usize = 4;

/// Stands in for `cv2.imread(path)`: the pixels of image `i`.
fn load_image(i: usize) -> Vec<u8> {
    (0..IMAGE).map(|p| ((i * 31 + p * 7) % 251) as u8).collect()
}

/// Loads `n` images starting at `start_idx` into the shared array.
fn load_images((data, start_idx, n): (mp::RawArray<u8>, usize, usize)) {
    for i in start_idx..start_idx + n {
        for (p, px) in load_image(i).into_iter().enumerate() {
            data.set(i * IMAGE + p, px);
        }
    }
}

fn main() -> Result<(), mp::Error> {
    mp::init();
    let data = mp::RawArray::<u8>::zeroed(N_IMAGES * IMAGE)?;
    let images_per_worker = N_IMAGES / N_WORKERS;

    let mut workers = Vec::new();
    for w in 0..N_WORKERS {
        let start_idx = w * images_per_worker;
        let p = mp::Process::new(load_images, (data.clone(), start_idx, images_per_worker));
        p.start()?;
        workers.push(p);
    }
    for p in &workers {
        p.join()?;
    }

    println!("Loaded {N_IMAGES} images of {HEIGHT}x{WIDTH}x3 with {N_WORKERS} workers");
    let pixels = data.to_vec();
    let in_place = (0..N_IMAGES).all(|i| pixels[i * IMAGE..(i + 1) * IMAGE] == load_image(i));
    println!("Every image in place: {}", py_bool(in_place));
    Ok(())
}
