//! `TaskPool`: one generic function on every pool, and a pool implemented
//! outside the crate (as another crate's pool would be).

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use mp_pool::{CallKind, Error, Pool, Sink, Submit, TaskPool, ThreadPool};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn add((a, b): (u64, u64)) -> u64 {
    a + b
}

fn fail_on_seven(x: u64) -> u64 {
    assert!(x != 7, "seven");
    x
}

/// Counts the primes below `below` with every kind of call of the trait.
fn count_primes<P: TaskPool>(pool: &P, below: u64) -> Result<usize, Error> {
    let count = |flags: Vec<bool>| flags.into_iter().filter(|&p| p).count();
    let by_map = count(pool.map(is_prime, 0..below)?);
    let by_chunks = count(pool.map_chunked(is_prime, 0..below, 7)?);
    let by_async = count(pool.map_async_chunked(is_prime, 0..below, 13)?.get()?);
    let by_imap = pool
        .imap_unordered(is_prime, 0..below)?
        .filter(|r| matches!(r, Ok(true)))
        .count();
    let by_ordered = count(
        pool.imap_chunked(is_prime, 0..below, 5)?
            .collect::<Result<_, _>>()?,
    );
    let by_apply = (0..below)
        .map(|n| pool.apply_async(is_prime, n))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|r| r.get())
        .collect::<Result<Vec<bool>, _>>()?;
    assert_eq!(by_map, by_chunks);
    assert_eq!(by_map, by_async);
    assert_eq!(by_map, by_imap);
    assert_eq!(by_map, by_ordered);
    assert_eq!(by_map, count(by_apply));
    Ok(by_map)
}

/// The rest of the API, generically: tuples, per-item results, a closed
/// pool.
fn other_calls<P: TaskPool>(pool: &P) {
    assert_eq!(pool.starmap(add, [(1, 2), (3, 4)]).unwrap(), [3, 7]);
    assert_eq!(
        pool.starmap_async(add, [(5, 6)]).unwrap().get().unwrap(),
        [11]
    );
    assert_eq!(pool.apply(add, (20, 22)).unwrap(), 42);
    let each = pool.map_results(fail_on_seven, 5..9).unwrap();
    assert!(each[2].is_err() && each[3].as_ref().ok() == Some(&8));
    assert!(matches!(
        pool.map(fail_on_seven, 0..10),
        Err(Error::TaskPanicked { .. })
    ));
    assert!(matches!(
        pool.try_map(is_prime, [Ok(1), Err("bad")]),
        Err(Error::Input(_))
    ));
    assert!(matches!(
        pool.map_async_chunked(is_prime, 0..3, 0),
        Err(Error::InvalidArgument(_))
    ));
    pool.close();
    pool.join().unwrap();
    assert!(matches!(pool.map(is_prime, 0..3), Err(Error::Closed)));
    assert!(matches!(pool.imap(is_prime, 0..3), Err(Error::Closed)));
}

#[test]
fn count_primes_on_a_process_pool_and_a_thread_pool() {
    let pool = Pool::new(2).unwrap();
    assert_eq!(count_primes(&pool, 1000).unwrap(), 168);
    other_calls(&pool);
    let threads = ThreadPool::new(2).unwrap();
    assert_eq!(count_primes(&threads, 1000).unwrap(), 168);
    other_calls(&threads);
}

/// A pool of no workers: every chunk runs on the submitting thread, from
/// outside the crate, through the public `Sink` only.
#[derive(Default)]
struct Inline {
    closed: Mutex<bool>,
    chunks: AtomicUsize,
    kinds: Mutex<Vec<CallKind>>,
}

impl TaskPool for Inline {
    fn processes(&self) -> usize {
        1
    }

    fn check_running(&self) -> Result<(), Error> {
        if *self.closed.lock().unwrap() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn start_call<'a, A, R>(&'a self, f: fn(A) -> R, sink: &Sink<R>) -> Result<Submit<'a, A>, Error>
    where
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.check_running()?;
        self.kinds.lock().unwrap().push(sink.kind());
        let sink = sink.clone();
        Ok(Box::new(move |chunks: Vec<(usize, Vec<A>)>| {
            for (index, items) in chunks {
                self.chunks.fetch_add(1, Ordering::Relaxed);
                let out = items
                    .into_iter()
                    .map(|a| {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(a))).map_err(
                            |_| Error::TaskPanicked {
                                message: "panicked".into(),
                            },
                        )
                    })
                    .collect();
                sink.deliver_each(index, out);
            }
            Ok(())
        }))
    }

    fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }

    fn terminate(&self) {
        self.close();
    }

    fn join(&self) -> Result<(), Error> {
        if *self.closed.lock().unwrap() {
            Ok(())
        } else {
            Err(Error::StillRunning)
        }
    }
}

#[test]
fn a_pool_implemented_outside_the_crate_gets_the_whole_api() {
    let pool = Inline::default();
    assert_eq!(count_primes(&pool, 200).unwrap(), 46);
    let kinds = pool.kinds.lock().unwrap().clone();
    assert_eq!(kinds[0], CallKind::Map { items: 200 });
    assert!(kinds.contains(&CallKind::Stream));
    assert!(kinds.contains(&CallKind::Async));
    // map_chunked(.., 7) over 200 items is 29 chunks, among the others.
    assert!(pool.chunks.load(Ordering::Relaxed) >= 29);
    other_calls(&pool);
}
