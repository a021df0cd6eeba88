//! Objects in shared arenas travel to children under every start method
//! and are freed once the last handle anywhere goes. (One test in this
//! file: the count of live slots is process-wide.)

use mp_proc::{Process, StartMethod};
use mp_shm::Value;
use mp_sync::Lock;

fn bump((values, locks): (Vec<Value<i64>>, Vec<Lock>)) -> Value<i64> {
    for (v, l) in values.iter().zip(&locks) {
        let _g = l.acquire().unwrap();
        v.update(|x| *x += 1);
    }
    // A new object, returned to the parent.
    Value::new(values.len() as i64).unwrap()
}

#[test]
fn slots_passed_to_children_are_freed_after_each_round() {
    // SAFETY: the targets only touch shared memory.
    unsafe { mp_proc::enable_fork() };
    let base = mp_os::arena::live_slots();
    for m in StartMethod::ALL {
        for round in 0..2i64 {
            let values: Vec<Value<i64>> = (0..300).map(|_| Value::new(round).unwrap()).collect();
            let locks: Vec<Lock> = (0..300).map(|_| Lock::new().unwrap()).collect();
            let p = Process::new(bump, (values.clone(), locks.clone())).start_method(m);
            p.start().unwrap();
            let made = p.join().unwrap();
            assert_eq!(made.get(), 300, "{m}");
            assert!(values.iter().all(|v| v.get() == round + 1), "{m}");
            drop((values, locks, made, p));
            assert_eq!(mp_os::arena::live_slots(), base, "{m}, round {round}");
        }
    }
}
