//! A channel end in a process's arguments keeps the channel connected until
//! the child has it, and for no longer than the `Process` or the child:
//! whatever happens to the process (never started, start failed, killed
//! before it decoded its arguments), the peer ends up `Disconnected`.

use std::time::Duration;

use mp_channel::{Pipe, PipeEnd, RecvTimeoutError};
use mp_proc::{Error, Process, StartMethod};

/// Long enough for a dead holder to be noticed on a noisy machine; a
/// registration that is never released turns into this timeout.
const LIMIT: Duration = Duration::from_secs(30);

fn send_one(tx: PipeEnd) {
    tx.send(&1u32).unwrap();
}

fn sleep_long(_tx: PipeEnd) {
    std::thread::sleep(Duration::from_secs(120));
}

fn disconnected(rx: &PipeEnd) {
    match rx.recv_timeout::<u32>(LIMIT) {
        Err(RecvTimeoutError::Disconnected) => {}
        r => panic!("expected Disconnected, got {r:?}"),
    }
}

#[test]
fn a_process_dropped_before_start_releases_its_arguments() {
    let (rx, tx) = Pipe::new(false).unwrap();
    let p = Process::new(send_one, tx.clone());
    drop(p);
    drop(tx);
    disconnected(&rx);
}

#[test]
fn a_failed_start_keeps_nothing_once_the_process_is_dropped() {
    let (rx, tx) = Pipe::new(false).unwrap();
    // The fork method is not enabled in this test binary: start fails.
    let p = Process::new(send_one, tx.clone()).start_method(StartMethod::Fork);
    assert!(matches!(p.start(), Err(Error::ForkNotEnabled)));
    drop(p);
    drop(tx);
    disconnected(&rx);
}

#[test]
fn a_child_killed_before_it_decoded_its_arguments_releases_them() {
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let (rx, tx) = Pipe::new(false).unwrap();
        let p = Process::new(sleep_long, tx.clone()).start_method(method);
        p.start().unwrap();
        // A spawned child is still loading the program: killed before it
        // ever sees its arguments.
        p.kill().unwrap();
        drop(tx);
        // Not joined yet (a zombie): the parent need not reap it first.
        disconnected(&rx);
        assert!(matches!(p.join(), Err(Error::Killed { .. })), "{method:?}");
    }
}

#[test]
fn the_channel_stays_connected_until_the_child_has_its_end() {
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let (rx, tx) = Pipe::new(false).unwrap();
        let p = Process::new(send_one, tx.clone()).start_method(method);
        p.start().unwrap();
        // Dropped before the child has (probably) decoded it: the value
        // still arrives, then the end is gone with the child.
        drop(tx);
        assert_eq!(rx.recv_timeout::<u32>(LIMIT).unwrap(), 1, "{method:?}");
        disconnected(&rx);
        p.join().unwrap();
    }
}

fn drop_then_wait((tx, done): (PipeEnd, PipeEnd)) {
    // Well after `start` has returned in the parent.
    std::thread::sleep(Duration::from_millis(300));
    drop(tx);
    let _ = done.recv_timeout::<u32>(Duration::from_secs(60));
}

#[test]
fn a_child_that_lets_go_of_its_end_disconnects_the_peer_while_it_runs() {
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let (rx, tx) = Pipe::new(false).unwrap();
        let (done_rx, done_tx) = Pipe::new(false).unwrap();
        let p = Process::new(drop_then_wait, (tx.clone(), done_rx.clone())).start_method(method);
        p.start().unwrap();
        drop((tx, done_rx));
        // The child holds the end once (not once more for the transit).
        disconnected(&rx);
        assert!(
            p.is_alive(),
            "{method:?}: Disconnected only once the child exited"
        );
        done_tx.send(&1u32).unwrap();
        p.join().unwrap();
    }
}
