//! Process semantics under every start method.

use std::time::{Duration, Instant};

use mp_proc::{Error, Process, StartMethod};

fn methods() -> [StartMethod; 3] {
    // SAFETY: the targets in these tests only compute and print; they take
    // no locks shared with the test harness's other threads.
    unsafe { mp_proc::enable_fork() };
    StartMethod::ALL
}

/// Fails if `pid` is still a zombie child of this process.
fn assert_reaped(pid: u32) {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let mut f = after.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid: u32 = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!(
            !(state == "Z" && ppid == std::process::id()),
            "child {pid} left as a zombie"
        );
    }
}

fn add((a, b): (i32, i32)) -> i32 {
    a + b
}

fn panics(msg: String) {
    panic!("{msg}");
}

fn exits(code: i32) {
    std::process::exit(code);
}

fn sleeps(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

fn whoami(_: ()) -> (String, u32, Option<(String, u32)>) {
    let me = mp_proc::current_process();
    let parent = mp_proc::parent_process().map(|p| (p.name().to_string(), p.pid()));
    (me.name().to_string(), me.pid(), parent)
}

fn parent_alive(_: ()) -> Option<(u32, bool)> {
    mp_proc::parent_process().map(|p| (p.pid(), p.is_alive()))
}

#[test]
fn a_child_sees_its_parent_alive() {
    for m in methods() {
        let p = Process::new(parent_alive, ()).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), Some((std::process::id(), true)), "{m}");
    }
}

#[test]
fn return_value_under_every_method() {
    for m in methods() {
        let p = Process::new(add, (40, 2)).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 42, "{m}");
        assert_eq!(p.exitcode(), Some(0), "{m}");
        assert!(!p.is_alive());
    }
}

#[test]
fn panic_message_reaches_join() {
    for m in methods() {
        let p = Process::new(panics, "boom in child".to_string()).start_method(m);
        p.start().unwrap();
        match p.join() {
            Err(Error::Panicked { message }) => assert_eq!(message, "boom in child", "{m}"),
            other => panic!("{m}: expected a panic, got {other:?}"),
        }
        assert_eq!(p.exitcode(), Some(1));
    }
}

#[test]
fn exit_code_of_process_exit() {
    for m in methods() {
        let p = Process::new(exits, 7).start_method(m);
        p.start().unwrap();
        assert!(matches!(p.join(), Err(Error::Exited { code: 7 })), "{m}");
        assert_eq!(p.exitcode(), Some(7));
    }
}

#[test]
fn terminate_and_kill_report_negative_signal() {
    for m in methods() {
        let p = Process::new(sleeps, 60_000).start_method(m);
        p.start().unwrap();
        assert!(p.is_alive());
        assert_eq!(p.exitcode(), None);
        p.terminate().unwrap();
        assert!(matches!(p.join(), Err(Error::Killed { signal: 15 })), "{m}");
        assert_eq!(p.exitcode(), Some(-15));

        let p = Process::new(sleeps, 60_000).start_method(m);
        p.start().unwrap();
        p.kill().unwrap();
        assert!(matches!(p.join(), Err(Error::Killed { signal: 9 })), "{m}");
        assert_eq!(p.exitcode(), Some(-9));
        // Signalling a finished process is a no-op.
        p.terminate().unwrap();
    }
}

#[test]
fn join_timeout_leaves_child_running() {
    for m in methods() {
        let p = Process::new(sleeps, 60_000).start_method(m);
        p.start().unwrap();
        let t = Instant::now();
        assert!(
            p.join_timeout(Duration::from_millis(200))
                .unwrap()
                .is_none()
        );
        assert!(t.elapsed() >= Duration::from_millis(190));
        assert!(p.is_alive());
        p.kill().unwrap();
        assert!(p.join().is_err());
    }
}

#[test]
fn lifecycle_errors() {
    let p = Process::new(add, (1, 1));
    assert!(matches!(p.join(), Err(Error::NotStarted)));
    assert!(matches!(p.terminate(), Err(Error::NotStarted)));
    assert_eq!(p.pid(), None);
    assert_eq!(p.exitcode(), None);
    p.start().unwrap();
    assert!(matches!(p.start(), Err(Error::AlreadyStarted)));
    assert_eq!(p.join().unwrap(), 2);
    assert!(matches!(p.join(), Err(Error::AlreadyJoined)));
    p.close().unwrap();
    assert!(matches!(p.join(), Err(Error::Closed)));
    assert!(matches!(p.start(), Err(Error::Closed)));

    let running = Process::new(sleeps, 60_000);
    running.start().unwrap();
    assert!(matches!(running.close(), Err(Error::StillRunning)));
    running.kill().unwrap();
    let _ = running.join();
    running.close().unwrap();
}

#[test]
fn unit_join_twice_is_fine() {
    let p = Process::new(sleeps, 1);
    p.start().unwrap();
    p.join().unwrap();
    p.join().unwrap();
}

#[test]
fn names_and_parents() {
    for m in methods() {
        let p = Process::new(whoami, ()).name("worker-x").start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap();
        let (name, child_pid, parent) = p.join().unwrap();
        assert_eq!(name, "worker-x");
        assert_eq!(child_pid, pid);
        assert_eq!(
            parent,
            Some(("MainProcess".to_string(), std::process::id()))
        );
    }
    let p = Process::new(whoami, ());
    assert!(p.get_name().starts_with("Process-"), "{}", p.get_name());
}

#[test]
fn hundred_processes_exit_zero() {
    for m in methods() {
        let procs: Vec<_> = (0..100)
            .map(|i| Process::new(add, (i, 1)).start_method(m))
            .collect();
        for p in &procs {
            p.start().unwrap();
        }
        for (i, p) in procs.iter().enumerate() {
            assert_eq!(p.join().unwrap(), i as i32 + 1);
            assert_eq!(p.exitcode(), Some(0));
            assert_reaped(p.pid().unwrap());
        }
    }
}

#[test]
fn hundred_terminated_report_sigterm() {
    for m in methods() {
        let procs: Vec<_> = (0..100)
            .map(|_| Process::new(sleeps, 60_000).start_method(m))
            .collect();
        for p in &procs {
            p.start().unwrap();
        }
        for p in &procs {
            p.terminate().unwrap();
        }
        for p in &procs {
            assert!(matches!(p.join(), Err(Error::Killed { signal: 15 })), "{m}");
            assert_eq!(p.exitcode(), Some(-15));
            assert_reaped(p.pid().unwrap());
        }
    }
}

#[test]
fn closure_needs_fork() {
    let captured = String::from("123");
    // SAFETY: the closure only sums a vector.
    let p = unsafe {
        Process::from_closure(move || captured.bytes().map(|b| i32::from(b - b'0')).sum::<i32>())
    };
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 6);

    // SAFETY: as above.
    let p = unsafe { Process::from_closure(|| 1) }.start_method(StartMethod::Spawn);
    assert!(matches!(p.start(), Err(Error::ClosureNeedsFork)));
}

#[test]
fn active_children_reaps_finished() {
    let quick = Process::new(sleeps, 1);
    let slow = Process::new(sleeps, 60_000).name("slow-one");
    quick.start().unwrap();
    slow.start().unwrap();
    quick.join().unwrap();
    let active = mp_proc::active_children();
    assert!(active.iter().any(|c| c.name() == "slow-one"));
    assert!(!active.iter().any(|c| Some(c.pid()) == quick.pid()));
    slow.kill().unwrap();
    let _ = slow.join();
    assert!(
        !mp_proc::active_children()
            .iter()
            .any(|c| c.name() == "slow-one")
    );
}

/// Builds a large return value, says so, and returns it.
fn big_text((ready, len): (mp_shm::Value<u32>, usize)) -> String {
    let s = "x".repeat(len);
    ready.set(1);
    s
}

#[test]
fn join_timeout_keeps_its_deadline_while_a_result_arrives_in_part() {
    for m in methods() {
        let ready = mp_shm::Value::new(0u32).unwrap();
        let len = 16 << 20;
        let p = Process::new(big_text, (ready.clone(), len)).start_method(m);
        p.start().unwrap();
        let pid = p.pid().unwrap() as i32;
        let t = Instant::now();
        while ready.get() == 0 {
            assert!(t.elapsed() < Duration::from_secs(60), "{m}: no result");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Let the child fill the socket, then stop it in the middle of its
        // result frame.
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        // If join_timeout overran, this watchdog ends the wait (by killing
        // the child) so that the test fails instead of hanging.
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || {
            if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let t = Instant::now();
        let got = p.join_timeout(Duration::from_millis(500));
        let took = t.elapsed();
        let _ = done_tx.send(());
        watchdog.join().unwrap();
        assert!(
            matches!(got, Ok(None)),
            "{m}: join_timeout should report a running child, got {:?}",
            got.map(|s| s.map(|s| s.len()))
        );
        assert!(
            took < Duration::from_secs(30),
            "{m}: join_timeout took {took:?}"
        );
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGCONT) };
        let s = p.join().unwrap();
        assert_eq!(s.len(), len, "{m}");
        assert!(s.bytes().all(|b| b == b'x'), "{m}");
    }
}
