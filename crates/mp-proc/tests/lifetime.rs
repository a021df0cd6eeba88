//! Daemons, exit handling and parent death.

use std::time::{Duration, Instant};

use mp_proc::{Process, StartMethod};
use mp_shm::Value;
use mp_testkit::gone_within;

fn methods() -> [StartMethod; 3] {
    // SAFETY: the targets only start processes, touch shared memory and sleep.
    unsafe { mp_proc::enable_fork() };
    StartMethod::ALL
}

fn sleeper(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn late_writer((v, ms): (Value<u32>, u64)) {
    std::thread::sleep(Duration::from_millis(ms));
    v.set(1);
}

/// Starts a daemon that sleeps for a minute, publishes its pid, then either
/// sleeps (to be killed) or returns (exiting normally).
fn start_daemon((pid_out, method, then_sleep): (Value<u32>, String, bool)) {
    methods();
    let d = Process::new(sleeper, 60_000)
        .daemon(true)
        .start_method(method.parse().unwrap());
    d.start().unwrap();
    pid_out.set(d.pid().unwrap());
    if then_sleep {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// Starts a non-daemon child that sets `v` after a pause, and returns at once.
fn start_non_daemon((v, method): (Value<u32>, String)) {
    methods();
    let c = Process::new(late_writer, (v, 300)).start_method(method.parse().unwrap());
    c.start().unwrap();
}

fn wait_nonzero(v: &Value<u32>) -> u32 {
    let t = Instant::now();
    while v.get() == 0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "child never published"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    v.get()
}

#[test]
fn daemon_dies_when_parent_is_killed() {
    for m in methods() {
        let pid = Value::new(0u32).unwrap();
        let parent = Process::new(start_daemon, (pid.clone(), m.to_string(), true))
            .start_method(StartMethod::Spawn);
        parent.start().unwrap();
        let daemon = wait_nonzero(&pid);
        assert!(mp_os::liveness::thread_alive(daemon));
        parent.kill().unwrap();
        assert!(parent.join().is_err());
        assert!(
            gone_within(daemon, Duration::from_secs(10)),
            "daemon {daemon} outlived its killed parent ({m})"
        );
    }
}

#[test]
fn daemon_terminated_when_parent_exits_normally() {
    for m in methods() {
        let pid = Value::new(0u32).unwrap();
        let parent = Process::new(start_daemon, (pid.clone(), m.to_string(), false))
            .start_method(StartMethod::Forkserver);
        parent.start().unwrap();
        parent.join().unwrap();
        let daemon = pid.get();
        assert_ne!(daemon, 0);
        assert!(
            gone_within(daemon, Duration::from_secs(10)),
            "daemon survived ({m})"
        );
    }
}

#[test]
fn non_daemon_children_are_joined_before_exit() {
    for m in methods() {
        let v = Value::new(0u32).unwrap();
        let parent = Process::new(start_non_daemon, (v.clone(), m.to_string()));
        parent.start().unwrap();
        parent.join().unwrap();
        // The grandchild finished before its parent was allowed to exit.
        assert_eq!(v.get(), 1, "{m}");
    }
}

#[test]
fn daemon_join_timeout_leaves_it_alive() {
    let d = Process::new(sleeper, 60_000).daemon(true);
    d.start().unwrap();
    assert!(
        d.join_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none()
    );
    assert!(d.is_alive());
    d.terminate().unwrap();
    assert!(d.join().is_err());
}

#[test]
fn killed_forkserver_is_restarted() {
    let p = Process::new(sleeper, 1).start_method(StartMethod::Forkserver);
    p.start().unwrap();
    p.join().unwrap();
    let server = mp_proc::forkserver_pid().expect("a fork server is running");
    // SAFETY: signalling our own child, the fork server.
    unsafe { libc::kill(server as i32, libc::SIGKILL) };
    let q = Process::new(sleeper, 1).start_method(StartMethod::Forkserver);
    q.start().unwrap();
    q.join().unwrap();
    let again = mp_proc::forkserver_pid().expect("a new fork server");
    assert_ne!(again, server);
}
