//! Async receive across processes (`tokio` feature).
#![cfg(feature = "tokio")]

mod common;

use std::time::Duration;

use common::{LONG, fork};
use mp_channel::{Pipe, Queue, RecvError};

#[test]
fn recv_async_and_get_async_across_processes() {
    let (rx, tx) = Pipe::new(false).unwrap();
    let q = Queue::<String>::new().unwrap();
    let q2 = q.clone();
    let mut child = fork(move || {
        for i in 0..50u32 {
            std::thread::sleep(Duration::from_millis(2));
            tx.send(&i).unwrap();
        }
        q2.put("done".into()).unwrap();
        0
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..50u32 {
            assert_eq!(rx.recv_async::<u32>().await.unwrap(), i);
        }
        assert_eq!(q.get_async().await.unwrap(), "done");
        // The child exits: Disconnected, without blocking the runtime.
        assert!(matches!(
            rx.recv_async::<u32>().await,
            Err(RecvError::Disconnected)
        ));
    });
    assert_eq!(child.wait_within(LONG), 0);
}
