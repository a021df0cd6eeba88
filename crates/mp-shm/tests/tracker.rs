//! The name tracker: the names a program's processes create and leave
//! behind (killed, or exited without unlinking) are unlinked when the
//! program ends, and not before; persistent names are kept; the tracker
//! does not outlive the program.
//!
//! Each test starts a *program*: this test binary re-run with a role in its
//! environment (and without the tracker variable, so that it is a program
//! of its own). The program forks and spawns children of its own, reports
//! on stdout, and ends when the test closes its stdin or kills it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_os::segment::Segment;
use mp_shm::SharedMemory;

const ROLE: &str = "MP_SHM_TRACKER_TEST_ROLE";
const ARG: &str = "MP_SHM_TRACKER_TEST_ARG";
const SELF_TEST: &str = "MP_SHM_TRACKER_TEST_SELF";
const PROGRAM_VAR: &str = "MP_SHM_TRACKER";
/// Generous: the machine is shared and noisy.
const TIMEOUT: Duration = Duration::from_secs(60);
const NAMES_PER_CHILD: usize = 20;

// ---------------------------------------------------------------- roles

/// In a program started by a test: plays the role and exits.
fn play_role() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let arg = std::env::var(ARG).unwrap_or_default();
    let code = match role.as_str() {
        "creator" => creator(&arg),
        "main-killed" => main_killed(&arg),
        "children" => children(&arg),
        "kept" => kept(&arg),
        "captured" => captured(&arg),
        "orphan" => orphan(&arg),
        "attacher" => attacher(&arg),
        "stalled" => stalled(&arg),
        _ => 90,
    };
    std::process::exit(code);
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "role: {line}");
    let _ = out.flush();
}

fn wait_for_stdin_eof() {
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(1000));
    }
}

/// `MODE:NAME`: creates NAME, then sleeps until killed (`sleep`), exits
/// without unlinking (`exit`) or makes it persistent and exits (`persist`).
fn creator(arg: &str) -> i32 {
    let (mode, name) = arg.split_once(':').expect("MODE:NAME");
    let shm = SharedMemory::create(name, 4096).expect("create");
    match mode {
        "sleep" => {
            say("created");
            sleep_forever()
        }
        "exit" => std::mem::forget(shm),
        "persist" => std::mem::forget(shm.into_persistent()),
        _ => return 91,
    }
    0
}

/// A child started the way spawn starts one: this executable, exec'd anew,
/// with the program's environment.
fn spawn_creator(mode: &str, name: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([&std::env::var(SELF_TEST).unwrap(), "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(ROLE, "creator")
        .env(ARG, format!("{mode}:{name}"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Whether a spawned creator said that `create` returned.
fn said_created(c: &mut Child) -> bool {
    let out = BufReader::new(c.stdout.take().unwrap());
    out.lines()
        .map_while(Result::ok)
        .any(|l| l.contains("role: created"))
}

/// Waits until a flag in shared memory is set.
fn wait_flag(flag: &mp_shm::Value<u32>) -> bool {
    let deadline = Instant::now() + TIMEOUT;
    while flag.get() == 0 {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// The main process creates a name and waits to be killed.
fn main_killed(prefix: &str) -> i32 {
    let shm = SharedMemory::create(&format!("{prefix}-main"), 4096).expect("create");
    say("ready");
    let _keep = shm;
    sleep_forever()
}

/// Forked and spawned children create names; some are killed, some exit
/// without unlinking. The program then waits for its stdin to close.
fn children(prefix: &str) -> i32 {
    // Killed only once `create` returned: a creator killed between creating
    // the object and registering its name leaves it behind (the window is
    // one round trip to the tracker; see the crate README).
    let fork_done = mp_shm::Value::new(0u32).unwrap();
    let fork_killed = common::fork({
        let prefix = prefix.to_string();
        let done = fork_done.clone();
        move || {
            let mut held = Vec::new();
            for i in 0..NAMES_PER_CHILD {
                held.push(
                    SharedMemory::create(&format!("{prefix}-fork-killed-{i}"), 4096).unwrap(),
                );
            }
            done.set(1);
            sleep_forever()
        }
    });
    let fork_exit = common::fork({
        let prefix = prefix.to_string();
        move || {
            for i in 0..NAMES_PER_CHILD {
                let shm = SharedMemory::create(&format!("{prefix}-fork-exit-{i}"), 4096).unwrap();
                std::mem::forget(shm);
            }
            0
        }
    });
    let mut spawn_killed = spawn_creator("sleep", &format!("{prefix}-spawn-killed"));
    let mut spawn_exit = spawn_creator("exit", &format!("{prefix}-spawn-exit"));

    let exited = fork_exit.wait() == 0 && spawn_exit.wait().unwrap().success();
    let created = wait_flag(&fork_done) && said_created(&mut spawn_killed);
    fork_killed.kill();
    fork_killed.wait();
    spawn_killed.kill().unwrap();
    spawn_killed.wait().unwrap();
    if !exited || !created {
        return 2;
    }
    say("ready");
    wait_for_stdin_eof();
    0
}

/// Persistent names (main, forked child, spawned child), leaked ones, and
/// a name whose object was replaced behind the creator's back.
fn kept(prefix: &str) -> i32 {
    let persist = SharedMemory::create(&format!("{prefix}-main-persist"), 4096)
        .unwrap()
        .into_persistent();
    let leak = SharedMemory::create(&format!("{prefix}-main-leak"), 4096).unwrap();
    let replaced_name = format!("{prefix}-main-replaced");
    let replaced = SharedMemory::create(&replaced_name, 4096).unwrap();
    // Another program removes the name and creates its own object there.
    Segment::unlink_named(&replaced_name).unwrap();
    let other = Segment::create_named(&replaced_name, 4096).unwrap();
    drop(other);

    let child = common::fork({
        let prefix = prefix.to_string();
        move || {
            let p = SharedMemory::create(&format!("{prefix}-fork-persist"), 4096).unwrap();
            std::mem::forget(p.into_persistent());
            let l = SharedMemory::create(&format!("{prefix}-fork-leak"), 4096).unwrap();
            std::mem::forget(l);
            0
        }
    });
    let mut spawned = spawn_creator("persist", &format!("{prefix}-spawn-persist"));
    if child.wait() != 0 || !spawned.wait().unwrap().success() {
        return 2;
    }
    say("ready");
    wait_for_stdin_eof();
    // Leave without running destructors, as a crash would.
    std::mem::forget((persist, leak, replaced));
    0
}

/// Runs a child of the program that creates a name and exits, reading its
/// stdout and stderr to the end: the tracker it started must hold neither.
fn captured(prefix: &str) -> i32 {
    let name = format!("{prefix}-captured");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([&std::env::var(SELF_TEST).unwrap(), "--exact", "--nocapture"])
            .args(["--test-threads", "1"])
            .env(ROLE, "creator")
            .env(ARG, format!("exit:{name}"))
            .output();
        let _ = tx.send(out.map(|o| o.status.success()));
    });
    match rx.recv_timeout(TIMEOUT / 2) {
        Ok(Ok(true)) => {}
        Ok(_) => return 2,
        Err(_) => return 3, // still waiting for the end of the output
    }
    say("ready");
    wait_for_stdin_eof();
    0
}

/// Attaches to a name and waits to be killed.
fn attacher(name: &str) -> i32 {
    let _shm = SharedMemory::attach(name).expect("attach");
    say("attached");
    sleep_forever()
}

/// A forked child creates a name and exits without unlinking; a spawned
/// child attaches to it and outlives the program's first process.
fn orphan(prefix: &str) -> i32 {
    let name = format!("{prefix}-left");
    let creator = common::fork({
        let name = name.clone();
        move || {
            std::mem::forget(SharedMemory::create(&name, 4096).unwrap());
            0
        }
    });
    if creator.wait() != 0 {
        return 2;
    }
    let mut a = Command::new(std::env::current_exe().unwrap())
        .args([&std::env::var(SELF_TEST).unwrap(), "--exact", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(ROLE, "attacher")
        .env(ARG, &name)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = BufReader::new(a.stdout.take().unwrap());
    if !out
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("role: attached"))
    {
        let _ = a.kill();
        let _ = a.wait();
        return 3;
    }
    say(&format!("ready {}", a.id()));
    wait_for_stdin_eof();
    // Leaves the attacher running: it outlives the program's root.
    std::mem::forget(a);
    0
}

/// Creates a name (starting the tracker), waits for a line on stdin, then
/// creates another and reports whether it is tracked and how long it took.
fn stalled(prefix: &str) -> i32 {
    let first = SharedMemory::create(&format!("{prefix}-first"), 4096).unwrap();
    if !first.is_tracked() {
        return 2;
    }
    say("started");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    let t = Instant::now();
    let second = SharedMemory::create(&format!("{prefix}-second"), 4096).unwrap();
    say(&format!(
        "created {} {}",
        second.is_tracked(),
        t.elapsed().as_secs()
    ));
    wait_for_stdin_eof();
    std::mem::forget((first, second));
    0
}

// ---------------------------------------------------------------- test side

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// A program under test; killed, reaped and its names removed on drop.
struct Program {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    names: Vec<String>,
}

impl Program {
    fn start(test: &str, role: &str, prefix: &str, names: Vec<String>) -> Program {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads", "1"])
            .env(ROLE, role)
            .env(ARG, prefix)
            .env(SELF_TEST, test)
            .env_remove(PROGRAM_VAR)
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the program");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness's "test NAME ... " has no newline of its own.
                if let Some(at) = line.find("role: ") {
                    let _ = tx.send(line[at + "role: ".len()..].to_string());
                }
            }
        });
        Program {
            child,
            stdin,
            lines,
            names,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect_line(&self, want: &str) {
        match self.lines.recv_timeout(TIMEOUT) {
            Ok(l) => assert_eq!(l, want),
            Err(e) => panic!("the program did not say {want:?}: {e:?}"),
        }
    }

    /// Closes its stdin; it exits with 0.
    fn finish(&mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the program failed: {status:?}");
    }

    /// SIGKILLs its whole process group, as a terminal's or a
    /// supervisor's group signal does.
    fn kill_group(&mut self) {
        let pgid = self.child.id() as libc::pid_t;
        // SAFETY: signalling the process group of our own child.
        assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
        self.child.wait().unwrap();
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for n in &self.names {
            let _ = Segment::unlink_named(n);
        }
    }
}

/// A tracker process: its pid and start time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tracker {
    pid: u32,
    start: u64,
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// The trackers of the program whose root is `root`: processes whose
/// argv is `mp-shm-tracker mp-shm-tracker-v1-UID-ROOT-NONCE`.
fn trackers_of(root: u32) -> Vec<Tracker> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        if args.len() < 2 || args[0] != b"mp-shm-tracker" {
            continue;
        }
        let address = String::from_utf8_lossy(args[1]);
        if address.split('-').nth(5) == Some(&root.to_string()) {
            found.extend(start_time(pid).map(|start| Tracker { pid, start }));
        }
    }
    found
}

/// The program's one tracker, while the program runs.
fn the_tracker(root: u32) -> Tracker {
    let found = trackers_of(root);
    assert_eq!(found.len(), 1, "one tracker for the program: {found:?}");
    found[0]
}

/// Waits until the tracker process is gone: no such pid, or the pid now
/// belongs to a process that started later. A zombie still counts as there.
fn assert_tracker_ends(t: Tracker) {
    let deadline = Instant::now() + TIMEOUT;
    while start_time(t.pid) == Some(t.start) {
        assert!(
            Instant::now() < deadline,
            "the tracker {t:?} outlived its program"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn assert_gone(names: &[String]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let left: Vec<&String> = names.iter().filter(|n| exists(n)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still in /dev/shm after the program ended: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn prefix(tag: &str) -> String {
    format!("mp-shm-trk-{}-{tag}", std::process::id())
}

#[test]
fn killed_main_process_names_are_unlinked_when_the_program_ends() {
    play_role();
    let prefix = prefix("main");
    let names = vec![format!("{prefix}-main")];
    let mut p = Program::start(
        "killed_main_process_names_are_unlinked_when_the_program_ends",
        "main-killed",
        &prefix,
        names.clone(),
    );
    p.expect_line("ready");
    assert!(exists(&names[0]));
    let tracker = the_tracker(p.pid());
    // The tracker is outside the program's process group: it survives the
    // group's SIGKILL and cleans up.
    p.kill_group();
    assert_gone(&names);
    assert_tracker_ends(tracker);
}

#[test]
fn names_of_killed_and_exited_children_are_unlinked_when_the_program_ends() {
    play_role();
    let prefix = prefix("children");
    let mut names = Vec::new();
    for kind in ["fork-killed", "fork-exit"] {
        names.extend((0..NAMES_PER_CHILD).map(|i| format!("{prefix}-{kind}-{i}")));
    }
    names.push(format!("{prefix}-spawn-killed"));
    names.push(format!("{prefix}-spawn-exit"));
    let mut p = Program::start(
        "names_of_killed_and_exited_children_are_unlinked_when_the_program_ends",
        "children",
        &prefix,
        names.clone(),
    );
    p.expect_line("ready");
    // The children are gone but the program runs: every name stays.
    std::thread::sleep(Duration::from_millis(200));
    let missing: Vec<&String> = names.iter().filter(|n| !exists(n)).collect();
    assert!(
        missing.is_empty(),
        "unlinked while the program runs: {missing:?}"
    );
    // All of the program's processes found the same tracker.
    let tracker = the_tracker(p.pid());
    p.finish();
    assert_gone(&names);
    assert_tracker_ends(tracker);
}

#[test]
fn persistent_and_replaced_names_are_kept() {
    play_role();
    let prefix = prefix("kept");
    let kept: Vec<String> = [
        "main-persist",
        "fork-persist",
        "spawn-persist",
        "main-replaced",
    ]
    .iter()
    .map(|k| format!("{prefix}-{k}"))
    .collect();
    let leaked: Vec<String> = ["main-leak", "fork-leak"]
        .iter()
        .map(|k| format!("{prefix}-{k}"))
        .collect();
    let mut p = Program::start(
        "persistent_and_replaced_names_are_kept",
        "kept",
        &prefix,
        kept.iter().chain(&leaked).cloned().collect(),
    );
    p.expect_line("ready");
    let tracker = the_tracker(p.pid());
    p.finish();
    assert_gone(&leaked);
    assert_tracker_ends(tracker);
    for n in &kept {
        assert!(exists(n), "{n} was unlinked");
        Segment::unlink_named(n).unwrap();
    }
}

#[test]
fn reading_a_creators_output_to_the_end_does_not_wait_for_the_program() {
    play_role();
    let prefix = prefix("captured");
    let names = vec![format!("{prefix}-captured")];
    let mut p = Program::start(
        "reading_a_creators_output_to_the_end_does_not_wait_for_the_program",
        "captured",
        &prefix,
        names.clone(),
    );
    p.expect_line("ready");
    assert!(exists(&names[0]), "unlinked while the program runs");
    let tracker = the_tracker(p.pid());
    p.finish();
    assert_gone(&names);
    assert_tracker_ends(tracker);
}

#[test]
fn a_process_that_attached_keeps_the_names_until_it_ends() {
    play_role();
    let prefix = prefix("orphan");
    let names = vec![format!("{prefix}-left")];
    let mut p = Program::start(
        "a_process_that_attached_keeps_the_names_until_it_ends",
        "orphan",
        &prefix,
        names.clone(),
    );
    let line = p
        .lines
        .recv_timeout(TIMEOUT)
        .expect("the program did not say ready");
    let attacher: u32 = line.strip_prefix("ready ").unwrap().parse().unwrap();
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            // SAFETY: signalling the attacher this test started (through
            // the program), by pid; it is alive until this test kills it.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGKILL) };
        }
    }
    let attacher = Kill(attacher);
    let attacher_start = start_time(attacher.0).expect("the attacher runs");
    let tracker = the_tracker(p.pid());
    p.finish();
    // The root and the creator are gone; the attacher still runs.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        exists(&names[0]),
        "unlinked while a process of the program runs"
    );
    assert_eq!(
        start_time(tracker.pid),
        Some(tracker.start),
        "the tracker ended early"
    );
    assert_eq!(start_time(attacher.0), Some(attacher_start));
    drop(attacher);
    assert_gone(&names);
    assert_tracker_ends(tracker);
}

#[test]
fn a_tracker_that_does_not_answer_delays_create_but_does_not_hang_it() {
    use std::io::Write;
    play_role();
    let prefix = prefix("stalled");
    let names = vec![format!("{prefix}-first"), format!("{prefix}-second")];
    let mut p = Program::start(
        "a_tracker_that_does_not_answer_delays_create_but_does_not_hang_it",
        "stalled",
        &prefix,
        names.clone(),
    );
    p.expect_line("started");
    let tracker = the_tracker(p.pid());
    struct Stopped(u32);
    impl Drop for Stopped {
        fn drop(&mut self) {
            // SAFETY: resuming the tracker this test stopped.
            unsafe { libc::kill(self.0 as libc::pid_t, libc::SIGCONT) };
        }
    }
    // SAFETY: stopping the program's tracker; `Stopped` resumes it.
    let r = unsafe { libc::kill(tracker.pid as libc::pid_t, libc::SIGSTOP) };
    assert_eq!(r, 0);
    let stopped = Stopped(tracker.pid);
    writeln!(p.stdin.as_mut().unwrap(), "go").unwrap();
    let line = p.lines.recv_timeout(TIMEOUT).expect("create hung");
    let mut words = line.split(' ');
    assert_eq!(words.next(), Some("created"));
    assert_eq!(words.next(), Some("false"), "tracked by a stopped tracker?");
    let secs: u64 = words.next().unwrap().parse().unwrap();
    assert!(secs < 25, "create took {secs} s");
    drop(stopped);
    p.finish();
    assert_gone(&names[..1]);
    assert_tracker_ends(tracker);
}
