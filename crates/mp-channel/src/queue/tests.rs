use std::sync::Mutex;
use std::time::Duration;

use super::{JoinableQueue, Queue};

/// Keeps the records logged in this test binary.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &log::Record<'_>) {
        let line = format!("{} {}: {}", r.level(), r.target(), r.args());
        self.0.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn a_reader_skipping_a_dead_writers_record_logs_it() {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    let q = Queue::<u32>::new().unwrap();
    // A producer killed while copying its value into the ring.
    let dead = crate::sync::tid() ^ (1 << mp_os::liveness::TID_BITS);
    assert!(!crate::sync::alive(dead));
    q.registration.chan.ring(0).reserve_torn(1000, dead);
    q.put(2).unwrap();
    assert_eq!(q.get_timeout(Duration::from_secs(30)).unwrap(), 2);
    let logged = CAPTURE.0.lock().unwrap();
    assert!(
        logged
            .iter()
            .any(|l| l.starts_with("WARN mp_channel: skipped a message whose writer")),
        "{logged:?}"
    );
}

#[test]
fn join_drops_a_record_a_dead_producer_never_committed() {
    let q = JoinableQueue::<u32>::new().unwrap();
    q.put(1).unwrap();
    assert_eq!(q.get_nowait().unwrap(), 1);
    q.task_done().unwrap();
    // A producer killed while copying its value into the ring.
    let dead = crate::sync::tid() ^ (1 << mp_os::liveness::TID_BITS);
    assert!(!crate::sync::alive(dead));
    q.queue.registration.chan.ring(0).reserve_torn(1000, dead);
    assert_eq!(q.unfinished(), 1);
    // Nobody waits in `get`: `join` itself skips the torn record.
    assert!(q.join_timeout(Duration::from_secs(10)).unwrap());
    assert_eq!(q.unfinished(), 0);
    q.put(2).unwrap();
    assert_eq!(q.get_nowait().unwrap(), 2);
    q.task_done().unwrap();
    assert!(q.join_timeout(Duration::from_secs(1)).unwrap());
}
