//! Handles travel as serde values inside a descriptor transport.

mod common;

use common::{LONG, fork};
use mp_channel::{JoinableQueue, PipeEnd, Queue, RecvError, pipe};
use mp_os::handle::{collect_fds, provide_fds};

#[test]
fn handles_travel_through_postcard_with_their_descriptors() {
    let (a, b) = pipe().unwrap();
    let q = Queue::<String>::new().unwrap();
    let jq = JoinableQueue::<u8>::new().unwrap();
    let (bytes, fds) = collect_fds(|| postcard::to_allocvec(&(&b, &q, &jq)));
    let bytes = bytes.unwrap();
    assert_eq!(fds.len(), 3 * 2 + 1, "segment + eventfds per handle");
    drop(b);
    let mut child = fork(move || {
        let (b, q, jq): (PipeEnd, Queue<String>, JoinableQueue<u8>) =
            provide_fds(fds, || postcard::from_bytes(&bytes)).unwrap();
        let v: u32 = b.recv().unwrap();
        b.send(&(v * 2)).unwrap();
        q.put(format!("got {v}")).unwrap();
        jq.get().unwrap();
        jq.task_done().unwrap();
        0
    });
    a.send(&21u32).unwrap();
    assert_eq!(a.recv::<u32>().unwrap(), 42);
    assert_eq!(q.get().unwrap(), "got 21");
    jq.put(1).unwrap();
    jq.join().unwrap();
    assert_eq!(child.wait_within(LONG), 0);
    // The child's end went with it.
    assert!(matches!(a.recv::<u32>(), Err(RecvError::Disconnected)));
}

#[test]
fn foreign_or_wrong_kind_handles_are_rejected() {
    let q = Queue::<u8>::new().unwrap();
    let (bytes, fds) = collect_fds(|| postcard::to_allocvec(&q));
    let r: Result<PipeEnd, _> = provide_fds(fds, || postcard::from_bytes(&bytes.unwrap()));
    assert!(r.is_err());
    let (bytes, fds) = collect_fds(|| postcard::to_allocvec(&q));
    let r: Result<JoinableQueue<u8>, _> =
        provide_fds(fds, || postcard::from_bytes(&bytes.unwrap()));
    assert!(r.is_err());
    // Garbage is an error, never a panic.
    for junk in [&b""[..], b"\x00", b"\x00\x05\x01\x02", &[0xff; 40]] {
        assert!(provide_fds(Vec::new(), || postcard::from_bytes::<Queue<u8>>(junk)).is_err());
    }
    // A closed handle cannot travel.
    q.close();
    let (a, _b) = pipe().unwrap();
    a.close();
    let (r, _) = collect_fds(|| postcard::to_allocvec(&a));
    assert!(r.is_err());
}
