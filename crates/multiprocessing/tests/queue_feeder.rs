//! A child started with `Process` puts more than its queue's ring holds and
//! returns before anyone reads: every value arrives, in order (the child
//! waits for its feeder before it exits, as Python's does).

use std::time::Duration;

use multiprocessing::channel::Bytes;
use multiprocessing::{Process, Queue, StartMethod};

const N: u32 = 20_000;

fn item(i: u32) -> Bytes {
    let mut v = vec![(i % 251) as u8; 1_000];
    v[..4].copy_from_slice(&i.to_le_bytes());
    Bytes(v)
}

fn produce(q: Queue<Bytes>) -> u32 {
    for i in 0..N {
        q.put(item(i)).unwrap();
    }
    N
}

#[test]
fn a_child_puts_more_than_the_ring_holds_and_every_value_arrives() {
    // SAFETY: the target only puts into a queue; it takes no lock shared
    // with the test harness's other threads.
    unsafe { multiprocessing::proc::enable_fork() };
    for m in StartMethod::ALL {
        let q = Queue::<Bytes>::new().unwrap();
        let p = Process::new(produce, q.clone()).start_method(m);
        p.start().unwrap();
        // Read only once the child has put everything (Python's tutorial
        // order: the child does not block in put).
        std::thread::sleep(Duration::from_millis(500));
        for i in 0..N {
            let v = q
                .get_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("{m:?}: item {i}: {e}"));
            assert!(*v == *item(i), "{m:?}: item {i}");
        }
        assert_eq!(p.join().unwrap(), N, "{m:?}");
        assert!(q.empty());
    }
}
