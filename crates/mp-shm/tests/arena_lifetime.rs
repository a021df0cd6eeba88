//! Slots go back to their arena when the last handle in any process goes:
//! after rounds of objects shared with forked children, nothing is left.
//! (One test in this file: the count of live slots is process-wide.)

mod common;

use common::*;
use mp_shm::Value;
use mp_sync::Lock;

#[test]
fn slots_shared_with_children_are_freed_after_each_round() {
    let base = mp_os::arena::live_slots();
    for round in 0..3i64 {
        let values: Vec<Value<i64>> = (0..1000).map(|_| Value::new(round).unwrap()).collect();
        let locks: Vec<Lock> = (0..1000).map(|_| Lock::new().unwrap()).collect();
        assert!(mp_os::arena::live_slots() >= base + 2000);
        // Inherited by a fork, and sent to another one as bytes.
        let bytes = postcard::to_allocvec(&(&values[..10], &locks[..10])).unwrap();
        let inherit = fork(|| {
            for (v, l) in values.iter().zip(&locks) {
                let _g = l.acquire().unwrap();
                v.update(|x| *x += 1);
            }
            0
        });
        let receive = fork(|| {
            let (vs, ls): (Vec<Value<i64>>, Vec<Lock>) = postcard::from_bytes(&bytes).unwrap();
            for (v, l) in vs.iter().zip(&ls) {
                let _g = l.acquire().unwrap();
                v.update(|x| *x += 1);
            }
            0
        });
        assert_eq!(inherit.wait(), 0);
        assert_eq!(receive.wait(), 0);
        assert!(values[..10].iter().all(|v| v.get() == round + 2));
        assert!(values[10..].iter().all(|v| v.get() == round + 1));
        drop((values, locks));
        // The parent never decoded `bytes`: the child adopted their counts.
        assert_eq!(mp_os::arena::live_slots(), base, "round {round}");
    }
}
