//! Runs every example (the Rust twins of the seed programs) and checks the
//! lines it prints: deterministic output exactly, output whose order
//! depends on scheduling as a set or by its invariants. After each run, no
//! process of the example may be left behind.
//!
//! `cargo test` builds the examples of the package before running its
//! tests, so the binaries are in `<target>/<profile>/examples/`, next to
//! the `deps/` directory that holds this test. When only this test target
//! was built (`cargo test --test examples_run`), binaries left by an
//! earlier build are used as they are (maybe stale: plain `cargo test -p
//! mp-examples` rebuilds them), and if there are none, the examples are
//! built once into a separate target directory (the main one is locked
//! while tests run).
//!
//! The last test checks `SEEDS.md` against the programs in `examples/` and
//! this file.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Every example this file runs; the tidy test compares it with SEEDS.md.
const TESTED: &[&str] = &[
    "cpu_count",
    "print_func",
    "square_cube",
    "worker_pids",
    "daemon_join",
    "daemon_join_timeout",
    "global_list",
    "square_list_shared",
    "value_without_lock",
    "value_with_lock",
    "shared_array_rows",
    "shared_array_images",
    "hogwild",
    "lock_stream",
    "event",
    "condition",
    "semaphore",
    "thread_basic",
    "thread_square_cube",
    "queue_colors",
    "queue_tasks",
    "queue_squares",
    "pipe_messages",
    "queue_fancy",
    "producer_consumer",
    "pool_work_log",
    "pool",
    "pool_maxtasksperchild",
    "manager_records",
    "manager_dict",
    "namespaces",
    "namespaces_mutable",
    "semaphore_manager",
    "manager_list_pool",
    "connection_python",
    "shareable_list_python",
    "ndarray_rows",
];

/// Generous: the examples take at most a few seconds, the machine is shared.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long leftover processes get to go away after the example exits.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>/<profile>/examples`, or a fallback build of the examples.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe
            .parent() // deps
            .and_then(Path::parent)
            .expect("the test binary lives in <target>/<profile>/deps");
        let dir = profile_dir.join("examples");
        if TESTED.iter().all(|n| dir.join(n).is_file()) {
            return dir;
        }
        // Only this test was built: build the examples elsewhere.
        let target = profile_dir
            .parent()
            .expect("<target>")
            .join("mp-examples-fallback");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "mp-examples", "--examples"])
            .arg("--manifest-path")
            .arg(manifest_dir().join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .expect("run cargo to build the examples");
        assert!(status.success(), "building the examples failed");
        target.join("debug").join("examples")
    })
}

/// The pids of running processes in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (state, pgrp) = (fields.first(), fields.get(2));
        if pgrp.and_then(|g| g.parse::<u32>().ok()) == Some(pgid) && state != Some(&"Z") {
            pids.push(pid);
        }
    }
    pids
}

/// What an example printed.
struct Output {
    pid: u32,
    lines: Vec<String>,
}

/// Runs example `name` in a process group of its own, waits for it (and
/// for every process it started) and returns its stdout lines. Panics if it
/// fails, times out, or leaves processes behind.
fn run(name: &str) -> Output {
    let exe = examples_dir().join(name);
    let mut child = Command::new(&exe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let pid = child.id();
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });

    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };

    // Children, the fork server, daemons: all must be gone soon.
    let grace = Instant::now() + LEFTOVER_GRACE;
    let mut leftovers = group_members(pid);
    while !leftovers.is_empty() && Instant::now() < grace {
        thread::sleep(Duration::from_millis(50));
        leftovers = group_members(pid);
    }
    for &p in &leftovers {
        // SAFETY: kill has no memory-safety preconditions; `p` is a process
        // of the group this test created.
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }

    let stdout = out_reader.join().expect("stdout reader");
    let stderr = err_reader.join().expect("stderr reader");
    let context = format!("{name}\n--- stdout\n{stdout}--- stderr\n{stderr}");
    let status = status.unwrap_or_else(|| panic!("timed out after {RUN_TIMEOUT:?}: {context}"));
    assert!(status.success(), "{status}: {context}");
    assert!(
        leftovers.is_empty(),
        "processes left running: {leftovers:?}: {context}"
    );
    Output {
        pid,
        lines: stdout.lines().map(str::to_string).collect(),
    }
}

fn set(lines: &[String]) -> BTreeSet<&str> {
    lines.iter().map(String::as_str).collect()
}

fn set_of<'a>(lines: &[&'a str]) -> BTreeSet<&'a str> {
    lines.iter().copied().collect()
}

/// `lines` contains `wanted` in this relative order.
fn assert_subsequence(lines: &[String], wanted: &[&str]) {
    let mut it = lines.iter();
    for w in wanted {
        assert!(
            it.any(|l| l == w),
            "{w:?} missing or out of order in {lines:#?}"
        );
    }
}

#[test]
fn cpu_count() {
    let out = run("cpu_count");
    assert_eq!(out.lines.len(), 1, "{:?}", out.lines);
    let n: usize = out.lines[0]
        .strip_prefix("Number of cpu :  ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", out.lines));
    assert!(n >= 1);
}

#[test]
fn print_func() {
    let out = run("print_func");
    let want =
        ["Asia", "America", "Europe", "Africa"].map(|c| format!("The name of continent is :  {c}"));
    assert_eq!(out.lines.len(), 4, "{:?}", out.lines);
    assert_eq!(set(&out.lines), set(&want));
}

#[test]
fn square_cube() {
    let out = run("square_cube");
    assert_eq!(out.lines.len(), 3, "{:?}", out.lines);
    assert_eq!(set(&out.lines[..2]), set_of(&["Square: 100", "Cube: 1000"]));
    assert_eq!(out.lines[2], "Done!");
}

#[test]
fn worker_pids() {
    let out = run("worker_pids");
    let l = &out.lines;
    assert_eq!(l.len(), 8, "{l:?}");
    assert_eq!(l[0], format!("ID of main process: {}", out.pid));
    let pid_after = |prefix: &str| -> u32 {
        l[1..5]
            .iter()
            .find_map(|s| s.strip_prefix(prefix))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix:?} in {l:?}"))
    };
    let w1 = pid_after("ID of process running worker1: ");
    let w2 = pid_after("ID of process running worker2: ");
    assert_eq!(pid_after("ID of process p1: "), w1);
    assert_eq!(pid_after("ID of process p2: "), w2);
    assert!(w1 != w2 && w1 != out.pid && w2 != out.pid, "{l:?}");
    assert_subsequence(
        l,
        &[
            &format!("ID of process p1: {w1}"),
            &format!("ID of process p2: {w2}"),
        ],
    );
    assert_eq!(
        l[5..],
        [
            "Both processes finished execution!",
            "Process p1 is alive: False",
            "Process p2 is alive: False",
        ]
    );
}

#[test]
fn daemon_join() {
    let out = run("daemon_join");
    assert_eq!(
        out.lines,
        [
            "Starting: non-daemon",
            "Exiting : non-daemon",
            "Starting: daemon",
            "Exiting : daemon",
        ]
    );
}

#[test]
fn daemon_join_timeout() {
    let out = run("daemon_join_timeout");
    assert_eq!(
        out.lines,
        [
            "Starting: non-daemon",
            "Exiting : non-daemon",
            "d.is_alive() True",
        ]
    );
}

#[test]
fn global_list() {
    let out = run("global_list");
    assert_eq!(
        out.lines,
        [
            "Result(in process p1): [1, 4, 9, 16]",
            "Result(in main program): []",
        ]
    );
}

#[test]
fn square_list_shared() {
    let out = run("square_list_shared");
    assert_eq!(
        out.lines,
        [
            "Result(in process p1): [1, 4, 9, 16]",
            "Sum of squares(in process p1): 30",
            "Result(in main program): [1, 4, 9, 16]",
            "Sum of squares(in main program): 30",
        ]
    );
}

#[test]
fn value_without_lock() {
    // The result is whatever the race left; only its form is fixed.
    let out = run("value_without_lock");
    assert_eq!(out.lines.len(), 1, "{:?}", out.lines);
    let v: f64 = out.lines[0]
        .strip_prefix("Final value: ")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", out.lines));
    assert!(v > 0.0, "{v}");
}

#[test]
fn value_with_lock() {
    let out = run("value_with_lock");
    assert_eq!(out.lines, ["Final value: 1.0"]);
}

#[test]
fn shared_array_rows() {
    let out = run("shared_array_rows");
    let l = &out.lines;
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(
        l[0].starts_with("Serial: ") && l[0].ends_with(" seconds"),
        "{l:?}"
    );
    assert!(l[1].starts_with("Multiprocessing (8 processes): "), "{l:?}");
    assert_eq!(l[2], "Same result: True");
    // The named segment was deleted (SharedArray.delete).
    assert!(!Path::new(&format!("/dev/shm/data-{}", out.pid)).exists());
}

#[test]
fn shared_array_images() {
    let out = run("shared_array_images");
    assert_eq!(
        out.lines,
        [
            "Loaded 32 images of 48x64x3 with 4 workers",
            "Every image in place: True",
        ]
    );
}

#[test]
fn hogwild() {
    let out = run("hogwild");
    assert_eq!(out.lines, ["w = 3.00, b = 2.00"]);
}

#[test]
fn lock_stream() {
    let out = run("lock_stream");
    assert_eq!(out.lines.len(), 2, "{:?}", out.lines);
    assert_eq!(
        set(&out.lines),
        set_of(&["Lock acquired via with", "Lock acquired directly"])
    );
}

#[test]
fn event() {
    let out = run("event");
    let l = &out.lines;
    assert_eq!(l.len(), 6, "{l:?}");
    assert_eq!(
        set(&l[..3]),
        set_of(&[
            "main: waiting before calling Event.set()",
            "wait_for_event: starting",
            "wait_for_event_timeout: starting",
        ])
    );
    assert_eq!(l[3], "wait_for_event_timeout: e.is_set()-> False");
    assert_eq!(
        set(&l[4..]),
        set_of(&["main: event is set", "wait_for_event: e.is_set()-> True"])
    );
}

#[test]
fn condition() {
    let out = run("condition");
    let l = &out.lines;
    assert_eq!(l.len(), 6, "{l:?}");
    assert_eq!(
        l[..4],
        [
            "Starting stage_2[1]",
            "Starting stage_2[2]",
            "Starting s1",
            "s1 done and ready for stage 2",
        ]
    );
    assert_eq!(
        set(&l[4..]),
        set_of(&["stage_2[1] running", "stage_2[2] running"])
    );
}

/// Parses `['a', 'b']`.
fn py_list(s: &str) -> Vec<String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not a list: {s:?}"));
    if inner.is_empty() {
        return Vec::new();
    }
    inner
        .split(", ")
        .map(|n| n.trim_matches('\'').to_string())
        .collect()
}

#[test]
fn semaphore() {
    check_active_pool(&run("semaphore"));
}

#[test]
fn semaphore_manager() {
    check_active_pool(&run("semaphore_manager"));
}

/// The invariants of the semaphore program's output.
fn check_active_pool(out: &Output) {
    let mut activated = Vec::new();
    for line in &out.lines {
        let active = if let Some(rest) = line.strip_prefix("Activating ") {
            let (name, list) = rest
                .split_once(" now running ")
                .unwrap_or_else(|| panic!("{line:?}"));
            let active = py_list(list);
            assert!(active.iter().any(|a| a == name), "{line:?}");
            activated.push(name.to_string());
            active
        } else if let Some(list) = line.strip_prefix("Now running ") {
            py_list(list)
        } else {
            panic!("unexpected line {line:?}");
        };
        assert!(active.len() <= 3, "more than three active: {line:?}");
    }
    activated.sort_by_key(|n| n.parse::<u32>().unwrap_or(u32::MAX));
    let all: Vec<String> = (0..10).map(|i| i.to_string()).collect();
    assert_eq!(activated, all, "{:#?}", out.lines);
    assert!(
        out.lines
            .last()
            .is_some_and(|l| l.starts_with("Now running ")),
        "{:#?}",
        out.lines
    );
}

#[test]
fn thread_basic() {
    let out = run("thread_basic");
    let mut want = vec!["Child Thread Here!!"; 6];
    want.push("Main Thread Here!!");
    assert_eq!(out.lines, want);
}

#[test]
fn thread_square_cube() {
    let out = run("thread_square_cube");
    let l = &out.lines;
    assert_eq!(l.len(), 11, "{l:?}");
    assert_subsequence(
        l,
        &[
            "Calculate square numbers: ",
            "square:  4",
            "square:  9",
            "square:  64",
            "square:  81",
        ],
    );
    assert_subsequence(
        l,
        &[
            "Calculate cube numbers: ",
            "cube:  8",
            "cube:  27",
            "cube:  512",
            "cube:  729",
        ],
    );
    assert_eq!(l[10], "Successed!");
}

/// Python's `cpu_count()`: the online CPUs, as `mp::cpu_count` counts them.
fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(0).max(1)
}

#[test]
fn queue_colors() {
    let out = run("queue_colors");
    assert_eq!(
        out.lines,
        [
            "pushing items to queue:",
            "item no:  1   red",
            "item no:  2   green",
            "item no:  3   blue",
            "item no:  4   black",
            "",
            "popping items from queue:",
            "item no:  0   red",
            "item no:  1   green",
            "item no:  2   blue",
            "item no:  3   black",
        ]
    );
}

#[test]
fn queue_tasks() {
    let out = run("queue_tasks");
    let l = &out.lines;
    assert_eq!(l.len(), 20, "{l:#?}");
    let tasks: Vec<String> = (0..10).map(|i| format!("Task no {i}")).collect();
    assert_eq!(set(&l[..10]), set(&tasks), "{l:#?}");
    // The log: every task once; each process took its tasks in queue order.
    let mut done = BTreeSet::new();
    let mut last_by_process = std::collections::BTreeMap::new();
    for line in &l[10..] {
        let (task, process) = line
            .strip_prefix("Task no ")
            .and_then(|r| r.split_once(" is done by Process-"))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let task: u32 = task.parse().expect("task number");
        let process: u32 = process.parse().expect("process number");
        assert!((1..=4).contains(&process), "{line:?}");
        assert!(done.insert(task), "task {task} done twice: {l:#?}");
        if let Some(last) = last_by_process.insert(process, task) {
            assert!(last < task, "Process-{process} out of order: {l:#?}");
        }
    }
    assert_eq!(done, (0..10).collect(), "{l:#?}");
}

#[test]
fn queue_squares() {
    let out = run("queue_squares");
    assert_eq!(
        out.lines,
        [
            "Queue elements:",
            "1",
            "4",
            "9",
            "16",
            "Queue is now empty!"
        ]
    );
}

#[test]
fn pipe_messages() {
    let out = run("pipe_messages");
    let l = &out.lines;
    assert_eq!(l.len(), 7, "{l:#?}");
    let sent = ["hello", "hey", "hru?", "END"].map(|m| format!("Sent the message: {m}"));
    let received = ["hello", "hey", "hru?"].map(|m| format!("Received the message: {m}"));
    let all: Vec<String> = sent.iter().chain(&received).cloned().collect();
    assert_eq!(set(l), set(&all));
    assert_subsequence(l, &sent.each_ref().map(String::as_str));
    assert_subsequence(l, &received.each_ref().map(String::as_str));
}

#[test]
fn queue_fancy() {
    let out = run("queue_fancy");
    assert_eq!(
        out.lines,
        ["Doing something fancy in Process-1 for Fancy Dan!"]
    );
}

#[test]
fn producer_consumer() {
    let out = run("producer_consumer");
    let l = &out.lines;
    let n = 2 * online_cpus();
    assert_eq!(l[0], format!("Creating {n} consumers"), "{l:#?}");
    assert_eq!(l.len(), 1 + 10 + n + 10, "{l:#?}");
    // Every consumer line comes before the results (tasks.join()).
    let mut tasks = BTreeSet::new();
    let mut exited = BTreeSet::new();
    for line in &l[1..11 + n] {
        let (consumer, what) = line
            .strip_prefix("Consumer-")
            .and_then(|r| r.split_once(": "))
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        let consumer: usize = consumer.parse().expect("consumer number");
        assert!((1..=n).contains(&consumer), "{line:?}");
        assert!(!exited.contains(&consumer), "a task after the pill: {l:#?}");
        if what == "Exiting" {
            exited.insert(consumer);
        } else {
            let (a, b) = what.split_once(" * ").expect("a * b");
            assert_eq!(a, b, "{line:?}");
            assert!(tasks.insert(a.parse::<u32>().expect("a")), "{l:#?}");
        }
    }
    assert_eq!(tasks, (0..10).collect(), "{l:#?}");
    assert_eq!(exited, (1..=n).collect(), "{l:#?}");
    let results: Vec<String> = (0..10)
        .map(|i| format!("Result: {i} * {i} = {}", i * i))
        .collect();
    assert_eq!(set(&l[11 + n..]), set(&results), "{l:#?}");
}

#[test]
fn pool_work_log() {
    let out = run("pool_work_log");
    let l = &out.lines;
    let work = [("A", 5), ("B", 2), ("C", 1), ("D", 3)];
    let all: Vec<String> = work
        .iter()
        .flat_map(|(n, s)| {
            [
                format!(" Process {n} waiting {s} seconds"),
                format!(" Process {n} Finished."),
            ]
        })
        .collect();
    assert_eq!(l.len(), 8, "{l:#?}");
    assert_eq!(set(l), set(&all), "{l:#?}");
    // Pool(2): two items at a time, each finishes after it started.
    let mut running = BTreeSet::new();
    for line in l {
        let name = &line[" Process ".len()..][..1];
        if line.ends_with("Finished.") {
            assert!(
                running.remove(name),
                "{name} finished before it started: {l:#?}"
            );
        } else {
            running.insert(name);
            assert!(running.len() <= 2, "more than two at a time: {l:#?}");
        }
    }
}

/// The lines of the `pool` programs around the workers' lines; returns the
/// worker numbers of the `Starting PoolWorker-N` lines.
fn check_pool(out: &Output) -> BTreeSet<usize> {
    let l = &out.lines;
    assert!(l.len() >= 3, "{l:#?}");
    assert_eq!(l[0], "Input : [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]");
    assert_eq!(
        l[1],
        "Built-in: Map { iter: Iter([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]) }"
    );
    assert_eq!(l[l.len() - 1], "Pool : [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]");
    let mut workers = BTreeSet::new();
    for line in &l[2..l.len() - 1] {
        let n: usize = line
            .strip_prefix("Starting PoolWorker-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"));
        assert!(workers.insert(n), "{line:?} twice: {l:#?}");
    }
    workers
}

#[test]
fn pool() {
    let out = run("pool");
    let size = 2 * online_cpus();
    // Every worker runs the initializer once.
    assert_eq!(check_pool(&out), (1..=size).collect(), "{:#?}", out.lines);
}

#[test]
fn pool_maxtasksperchild() {
    let out = run("pool_maxtasksperchild");
    let workers = check_pool(&out);
    // map cuts the ten inputs into tasks of `chunk` items; a worker runs at
    // most two tasks, so at least `tasks / 2` workers start (five with two
    // CPUs: more than the pool's four).
    let size = 2 * online_cpus();
    let chunk = 10usize.div_ceil(4 * size);
    let tasks = 10usize.div_ceil(chunk);
    let least = size.max(tasks.div_ceil(2));
    assert!(workers.len() >= least, "{:#?}", out.lines);
    assert!((1..=size).all(|n| workers.contains(&n)), "{:#?}", out.lines);
}

#[test]
fn manager_records() {
    let out = run("manager_records");
    assert_eq!(
        out.lines,
        [
            "New record added!",
            "",
            "Name: Sam",
            "Score: 10",
            "",
            "Name: Adam",
            "Score: 9",
            "",
            "Name: Kevin",
            "Score: 9",
            "",
            "Name: Jeff",
            "Score: 8",
            "",
        ]
    );
}

#[test]
fn manager_dict() {
    let out = run("manager_dict");
    assert_eq!(
        out.lines,
        ["Results: {0: 0, 1: 2, 2: 4, 3: 6, 4: 8, 5: 10, 6: 12, 7: 14, 8: 16, 9: 18}"]
    );
}

#[test]
fn namespaces() {
    let out = run("namespaces");
    assert_eq!(
        out.lines,
        [
            "Before event, error: 'Namespace' object has no attribute 'value'",
            "After event: This is the value",
        ]
    );
}

#[test]
fn namespaces_mutable() {
    let out = run("namespaces_mutable");
    assert_eq!(out.lines, ["Before event: []", "After event : []"]);
}

#[test]
fn manager_list_pool() {
    let out = run("manager_list_pool");
    assert_eq!(
        out.lines,
        ["Shared list: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]"]
    );
}

#[test]
fn ndarray_rows() {
    let out = run("ndarray_rows");
    assert_eq!(
        out.lines,
        [
            "Filled a 8x1000 shared array by rows with a Pool of 4 workers",
            "Row sums: [0, 499500, 999000, 1498500, 1998000, 2497500, 2997000, 3496500]",
            "Column 999: [0, 999, 1998, 2997, 3996, 4995, 5994, 6993]",
            "Same as serial: True",
        ]
    );
}

#[test]
fn connection_python() {
    let out = run("connection_python");
    if out
        .lines
        .first()
        .is_some_and(|l| l.starts_with("python3 is not available"))
    {
        eprintln!("skipping the exchange checks: {}", out.lines[0]);
        return;
    }
    assert_eq!(
        out.lines,
        [
            r#"Rust -> Python: {"float": 2.5, "nothing": None, "ok": True, "primes": [2, 3, 5, 7], "who": "Rust"}"#,
            r#"Python -> Rust: ("sum of primes", 17, b[1, 2, 3])"#,
            "Rust -> Python: 1048576 bytes",
            "Python -> Rust: 1048576 bytes, ours reversed: True",
            r#"Python -> Rust: {"bytes": b[0, 1], "tuple": (1, "two", 3), "version": 3, "who": "Python"}"#,
            r#"Rust -> Python: ("thanks", 42)"#,
            "Python checked everything: True",
        ]
    );
}

#[test]
fn shareable_list_python() {
    let out = run("shareable_list_python");
    if out
        .lines
        .get(1)
        .is_some_and(|l| l.starts_with("python3 is not available"))
    {
        eprintln!("skipping the exchange checks: {}", out.lines[1]);
        return;
    }
    assert_eq!(
        out.lines,
        [
            "Rust made:        ['howdy', b'HoWdY', -273.154, 100, None, True, 42]",
            "Python sees:      ['howdy', b'HoWdY', -273.154, 100, None, True, 42]",
            "Python wrote:     ['hi', b'HoWdY', -273.154, 101, None, False, 42]",
            "Python made:      ['Python', 3.11, None, True, b'\\x00\\x01']",
            "Rust wrote:       ['Rust', 3.11, 2026, True, b'\\x00\\x01']",
            "Python sees:      ['Rust', 3.11, 2026, True, b'\\x00\\x01']",
        ]
    );
    let leftovers: Vec<_> = fs::read_dir("/dev/shm")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("mp-{}-", out.pid)))
                .collect()
        })
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "left in /dev/shm: {leftovers:?}");
}

/// SEEDS.md, the programs in `examples/` and [`TESTED`] agree: every
/// program marked done has its file and a test here, and there is no other
/// program.
#[test]
fn seeds_catalog_is_complete() {
    let seeds = fs::read_to_string(manifest_dir().join("SEEDS.md")).expect("SEEDS.md");

    let mut done = BTreeSet::new();
    let mut pending = BTreeSet::new();
    for heading in seeds.lines().filter_map(|l| l.strip_prefix("### `")) {
        let (name, status) = heading
            .split_once("` — ")
            .unwrap_or_else(|| panic!("malformed heading: ### `{heading}"));
        match status {
            "done" => assert!(done.insert(name), "{name} listed twice"),
            "not a program" => {}
            s if s.starts_with("pending: needs mp-") => {
                assert!(pending.insert(name), "{name} listed twice")
            }
            s => panic!("unknown status {s:?} for {name}"),
        }
    }
    assert!(done.is_disjoint(&pending));
    // Every seed program has its twin (DESIGN.md).
    assert!(pending.is_empty(), "programs still pending: {pending:?}");

    // Cargo discovers every `examples/NAME.rs` of this package as an example.
    let registered: BTreeSet<String> = fs::read_dir(manifest_dir().join("examples"))
        .expect("examples/examples/")
        .filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "rs").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    for name in &done {
        assert!(registered.contains(*name), "examples/{name}.rs missing");
    }
    let registered: BTreeSet<&str> = registered.iter().map(String::as_str).collect();
    assert_eq!(registered, done, "examples/ and SEEDS.md disagree");
    assert_eq!(set_of(TESTED), done, "TESTED and SEEDS.md disagree");
}
