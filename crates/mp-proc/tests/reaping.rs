//! Processes that are started and dropped without `join`: they keep
//! running, and once they end they leave no zombie and no descriptor in the
//! parent (reaped by the next `start()` or `active_children()`, as Python
//! reaps them).
//!
//! One test per binary run at a time matters here (the counts are of this
//! whole process), so the tests share a lock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use mp_proc::{Process, StartMethod};
use mp_shm::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn methods() -> [StartMethod; 3] {
    // SAFETY: the targets only compute, sleep and write shared memory; they
    // take no locks shared with the harness's other threads.
    unsafe { mp_proc::enable_fork() };
    StartMethod::ALL
}

fn echo(x: u32) -> u32 {
    x
}

fn big(len: usize) -> Vec<u8> {
    vec![7; len]
}

fn late_writer((v, ms): (Value<u32>, u64)) {
    std::thread::sleep(Duration::from_millis(ms));
    v.set(1);
}

/// `(pid, state)` of every process whose parent is this process, the fork
/// server excepted.
fn our_children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let server = mp_proc::forkserver_pid();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let mut f = after.split_whitespace();
        let state = f.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == me && Some(pid) != server {
            out.push((pid, state));
        }
    }
    out
}

fn zombies() -> usize {
    our_children().iter().filter(|c| c.1 == 'Z').count()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Waits until every child of ours (the fork server aside) has exited:
/// only zombies, if anything, are left.
fn wait_all_exited() {
    let t = Instant::now();
    loop {
        let running: Vec<_> = our_children().into_iter().filter(|c| c.1 != 'Z').collect();
        if running.is_empty() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "children still running after 60 s: {running:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts one process and joins it, so that the fork server and the
/// crate's own descriptors exist before counting.
fn warm_up(m: StartMethod) {
    let p = Process::new(echo, 1).start_method(m);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 1);
}

fn start_and_drop(m: StartMethod, n: u32) {
    for i in 0..n {
        let p = Process::new(echo, i).start_method(m);
        p.start().unwrap();
        drop(p);
    }
}

const N: u32 = 300;
/// Descriptors this process may open meanwhile for reasons of its own.
const SLACK: usize = 8;

#[test]
fn start_reaps_dropped_children() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for m in methods() {
        warm_up(m);
        let fds = open_fds();
        start_and_drop(m, N);
        wait_all_exited();
        let p = Process::new(echo, 9).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 9);
        drop(p);
        assert_eq!(zombies(), 0, "{m}: zombies left after start()");
        let now = open_fds();
        assert!(
            now <= fds + SLACK,
            "{m}: {fds} descriptors before, {now} after"
        );
    }
}

#[test]
fn active_children_reaps_dropped_children() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for m in methods() {
        warm_up(m);
        let fds = open_fds();
        start_and_drop(m, N);
        wait_all_exited();
        assert!(mp_proc::active_children().is_empty(), "{m}");
        assert_eq!(zombies(), 0, "{m}: zombies left after active_children()");
        let now = open_fds();
        assert!(
            now <= fds + SLACK,
            "{m}: {fds} descriptors before, {now} after"
        );
    }
}

#[test]
fn a_dropped_process_keeps_running() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for m in methods() {
        let v = Value::new(0u32).unwrap();
        let p = Process::new(late_writer, (v.clone(), 300)).start_method(m);
        p.start().unwrap();
        drop(p);
        let t = Instant::now();
        while v.get() == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{m}: the dropped child did not run to its end"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        wait_all_exited();
        assert!(mp_proc::active_children().is_empty(), "{m}");
        assert_eq!(zombies(), 0, "{m}");
    }
}

#[test]
fn a_dropped_process_with_a_large_result_still_ends() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for m in methods() {
        warm_up(m);
        let fds = open_fds();
        // Far more than a socket buffer: nobody will read it.
        let p = Process::new(big, 8 << 20).start_method(m);
        p.start().unwrap();
        drop(p);
        wait_all_exited();
        assert!(mp_proc::active_children().is_empty(), "{m}");
        assert_eq!(zombies(), 0, "{m}");
        let now = open_fds();
        assert!(
            now <= fds + SLACK,
            "{m}: {fds} descriptors before, {now} after"
        );
    }
}
