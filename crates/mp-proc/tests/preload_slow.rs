//! A fork-server preload slower than a request's deadline: the first
//! `start()` waits for it, and it runs once. Alone in its binary: the
//! preload and the fork server are program-wide.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use mp_proc::{Process, StartMethod, set_forkserver_preload};

/// Where the preload (in the server, whose parent is the test process)
/// notes each run.
fn runs_file(test_pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("mp-proc-slow-preload-{test_pid}"))
}

fn slow_preload() {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() } as u32;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(runs_file(parent))
        .unwrap();
    f.write_all(b"x").unwrap();
    // Longer than a request's 5 s deadline.
    std::thread::sleep(Duration::from_secs(6));
}

fn triple(x: u32) -> u32 {
    x * 3
}

#[test]
fn a_preload_slower_than_a_request_deadline_runs_once_and_start_waits_for_it() {
    let path = runs_file(std::process::id());
    let _ = std::fs::remove_file(&path);
    set_forkserver_preload(Some(slow_preload)).unwrap();
    let p = Process::new(triple, 5).start_method(StartMethod::Forkserver);
    let started = p.start();
    let runs = std::fs::read(&path).map(|b| b.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    started.unwrap();
    assert_eq!(p.join().unwrap(), 15);
    assert_eq!(runs, 1, "the preload ran {runs} times");
    let server = mp_proc::forkserver_pid().expect("a fork server");
    let q = Process::new(triple, 7).start_method(StartMethod::Forkserver);
    q.start().unwrap();
    assert_eq!(q.join().unwrap(), 21);
    assert_eq!(mp_proc::forkserver_pid(), Some(server), "the same server");
}
