//! `SharedMemory` names created by children of every start method are
//! registered with the one tracker of their program, stay while the program
//! runs, and are unlinked when it ends, whether their creator was killed or
//! returned without unlinking.
//!
//! The program is this test binary re-run with a role in its environment
//! (and without the tracker variable, so that it is a program of its own).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_proc::{Process, StartMethod};
use mp_shm::{SharedMemory, Value};

const ROLE: &str = "MP_PROC_SHM_TRACKER_TEST_ROLE";
const PREFIX: &str = "MP_PROC_SHM_TRACKER_TEST_PREFIX";
const TIMEOUT: Duration = Duration::from_secs(60);

/// Creates `name`, reports whether the tracker registered it (1) or not
/// (2), then either returns without unlinking or waits to be killed.
fn creator((name, report, leave): (String, Value<u32>, bool)) {
    let shm = SharedMemory::create(&name, 4096).unwrap();
    report.set(if shm.is_tracked() { 1 } else { 2 });
    if leave {
        std::mem::forget(shm);
        return;
    }
    std::thread::sleep(Duration::from_secs(120));
}

fn wait_report(v: &Value<u32>) -> u32 {
    let t = Instant::now();
    while v.get() == 0 && t.elapsed() < TIMEOUT {
        std::thread::sleep(Duration::from_millis(5));
    }
    v.get()
}

fn names(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for m in StartMethod::ALL {
        out.push(format!("{prefix}-{m}-killed"));
        out.push(format!("{prefix}-{m}-left"));
    }
    out
}

/// The program: one killed creator and one that leaves its name behind,
/// per start method; then it waits for its stdin to close.
fn program(prefix: &str) -> i32 {
    // SAFETY: the targets only create shared memory, write a Value and sleep.
    unsafe { mp_proc::enable_fork() };
    for m in StartMethod::ALL {
        let killed = Value::new(0u32).unwrap();
        let p = Process::new(
            creator,
            (format!("{prefix}-{m}-killed"), killed.clone(), false),
        )
        .start_method(m);
        p.start().unwrap();
        let tracked = wait_report(&killed) == 1;
        p.kill().unwrap();
        let _ = p.join();
        if !tracked {
            return 2;
        }
        let left = Value::new(0u32).unwrap();
        let p = Process::new(creator, (format!("{prefix}-{m}-left"), left.clone(), true))
            .start_method(m);
        p.start().unwrap();
        p.join().unwrap();
        if left.get() != 1 {
            return 3;
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "role: ready");
    let _ = out.flush();
    drop(out);
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    0
}

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Tracker processes (`argv`: `mp-shm-tracker mp-shm-tracker-v1-UID-ROOT-NONCE`)
/// of the program whose root is `root`: (pid, start time).
fn trackers_of(root: u32) -> Vec<(u32, u64)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.len() >= 2
            && args[0] == b"mp-shm-tracker"
            && String::from_utf8_lossy(args[1]).split('-').nth(5) == Some(&root.to_string())
        {
            found.extend(start_time(pid).map(|s| (pid, s)));
        }
    }
    found
}

#[test]
fn names_left_by_children_of_every_start_method_are_unlinked_when_the_program_ends() {
    if let Ok(role) = std::env::var(ROLE) {
        assert_eq!(role, "program");
        std::process::exit(program(&std::env::var(PREFIX).unwrap()));
    }
    let prefix = format!("mp-proc-trk-{}", std::process::id());
    let names = names(&prefix);
    struct Cleanup(Vec<String>, std::process::Child);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = self.1.kill();
            let _ = self.1.wait();
            for n in &self.0 {
                let _ = mp_os::segment::Segment::unlink_named(n);
            }
        }
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "names_left_by_children_of_every_start_method_are_unlinked_when_the_program_ends",
            "--exact",
            "--nocapture",
        ])
        .env(ROLE, "program")
        .env(PREFIX, &prefix)
        .env_remove("MP_SHM_TRACKER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let mut guard = Cleanup(names.clone(), child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("role: ready") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(TIMEOUT * 2)
        .expect("the program's children did not all register their names");

    // The creators are gone but the program runs: every name stays, and
    // every child found the same tracker.
    for n in &names {
        assert!(exists(n), "{n} was unlinked while the program runs");
    }
    let trackers = trackers_of(pid);
    assert_eq!(
        trackers.len(),
        1,
        "one tracker for the program: {trackers:?}"
    );
    let (tracker, started) = trackers[0];

    drop(stdin);
    assert!(guard.1.wait().unwrap().success());
    let deadline = Instant::now() + TIMEOUT;
    while names.iter().any(|n| exists(n)) || start_time(tracker) == Some(started) {
        assert!(
            Instant::now() < deadline,
            "after the program ended: left {:?}, tracker alive: {}",
            names.iter().filter(|n| exists(n)).collect::<Vec<_>>(),
            start_time(tracker) == Some(started)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
