//! A fork server that stops answering or dies in the middle of a request.
//!
//! These tests stop, kill and sabotage the one fork server of this test
//! binary, so they run one at a time.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mp_proc::{Process, StartMethod};

static SERIAL: Mutex<()> = Mutex::new(());

fn echo(x: u32) -> u32 {
    x
}

/// Appends one byte to the file at `path` (one byte per run of the target).
fn count_run(path: String) -> u32 {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    f.write_all(b"x").unwrap();
    7
}

fn run_one() -> Result<u32, mp_proc::Error> {
    let p = Process::new(echo, 5).start_method(StartMethod::Forkserver);
    p.start()?;
    p.join()
}

fn gone(pid: u32) -> bool {
    // Reaped: no such process (or, in theory, a new process with its pid).
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| {
        let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        ppid != std::process::id()
    })
}

#[test]
fn a_stopped_server_is_replaced_within_the_deadline() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(run_one().unwrap(), 5);
    let server = mp_proc::forkserver_pid().expect("a fork server is running");
    // SAFETY: signalling our own child, the fork server.
    unsafe { libc::kill(server as i32, libc::SIGSTOP) };
    let t = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(run_one());
    });
    let got = rx.recv_timeout(Duration::from_secs(60));
    let took = t.elapsed();
    if got.is_err() {
        // start() hung: end it (by killing the server) before failing.
        // SAFETY: as above.
        unsafe { libc::kill(server as i32, libc::SIGKILL) };
    }
    worker.join().unwrap();
    let got = got.expect("start() did not return within 60 s of the server being stopped");
    assert_eq!(got.unwrap(), 5, "the request went to a new server");
    assert!(took < Duration::from_secs(30), "start() took {took:?}");
    let now = mp_proc::forkserver_pid().expect("a new fork server");
    assert_ne!(now, server);
    assert!(gone(server), "the stopped server was not killed and reaped");
}

#[test]
fn a_server_dying_mid_request_does_not_run_the_target_twice() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join(format!("mp-proc-runs-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // Every server started from now on exits right after it forks a child,
    // before it answers.
    // SAFETY: the tests of this binary run one at a time (SERIAL), and no
    // other thread of this process reads the environment meanwhile.
    unsafe { std::env::set_var("MP_PROC_FORKSERVER_FAULT", "exit-after-fork") };
    if let Some(server) = mp_proc::forkserver_pid() {
        // SAFETY: signalling our own child, the fork server; the next start
        // starts a new one, with the variable set.
        unsafe { libc::kill(server as i32, libc::SIGKILL) };
    }
    let mut results = Vec::new();
    for _ in 0..5 {
        let p = Process::new(count_run, path.to_str().unwrap().to_string())
            .start_method(StartMethod::Forkserver);
        results.push(p.start().and_then(|()| p.join()));
    }
    // SAFETY: as above.
    unsafe { std::env::remove_var("MP_PROC_FORKSERVER_FAULT") };
    // Let any stray child finish its run before counting.
    std::thread::sleep(Duration::from_millis(500));
    let runs = std::fs::read(&path).map(|b| b.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    for r in &results {
        assert!(matches!(r, Ok(7)), "{results:?}");
    }
    assert_eq!(runs, 5, "5 starts ran the target {runs} times");
    if let Some(server) = mp_proc::forkserver_pid() {
        // SAFETY: as above; the next test gets a server without the fault.
        unsafe { libc::kill(server as i32, libc::SIGKILL) };
    }
    assert_eq!(run_one().unwrap(), 5);
}

/// The pids of the processes whose parent is this one.
fn children() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
                after.split_whitespace().nth(1) == Some(me.to_string().as_str())
            })
        })
        .collect()
}

#[test]
fn a_child_greeting_after_the_deadline_does_not_run_and_is_reaped() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let path = std::env::temp_dir().join(format!("mp-proc-late-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    // The next server exits right after it forks, and its child greets only
    // after the parent has stopped waiting for it.
    // SAFETY: the tests of this binary run one at a time (SERIAL), and no
    // other thread of this process reads the environment meanwhile.
    unsafe { std::env::set_var("MP_PROC_FORKSERVER_FAULT", "exit-after-fork-late-hello") };
    if let Some(server) = mp_proc::forkserver_pid() {
        // SAFETY: signalling our own child, the fork server; the next start
        // starts a new one, with the variable set.
        unsafe { libc::kill(server as i32, libc::SIGKILL) };
        let t = Instant::now();
        while !gone(server) && t.elapsed() < Duration::from_secs(30) {
            let _ = mp_proc::active_children();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let before = children();
    let p = Process::new(count_run, path.to_str().unwrap().to_string())
        .start_method(StartMethod::Forkserver);
    let started = p.start();
    // SAFETY: as above.
    unsafe { std::env::remove_var("MP_PROC_FORKSERVER_FAULT") };
    assert!(
        matches!(&started, Err(mp_proc::Error::Forkserver(m)) if m.contains("unknown")),
        "{started:?}"
    );
    let late: Vec<u32> = children()
        .into_iter()
        .filter(|c| !before.contains(c))
        .collect();
    assert_eq!(late.len(), 1, "the late child: {late:?}");
    let late = late[0];
    // It greets, sees that its parent gave up, leaves, and is reaped.
    let t = Instant::now();
    while !gone(late) {
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "the late child {late} was never reaped"
        );
        let _ = mp_proc::active_children();
        std::thread::sleep(Duration::from_millis(50));
    }
    let runs = std::fs::read(&path).map(|b| b.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&path);
    assert_eq!(runs, 0, "the late child ran its target");
    assert_eq!(run_one().unwrap(), 5);
}
