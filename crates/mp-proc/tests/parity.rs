//! Python parity of `Process`: the daemon flag inherited from the creating
//! process, a child's knowledge of its start method, `interrupt()`.

use std::time::Duration;

use mp_proc::{Process, StartMethod, current_process, get_start_method};

fn methods() -> [StartMethod; 3] {
    // SAFETY: the targets only start processes and sleep.
    unsafe { mp_proc::enable_fork() };
    StartMethod::ALL
}

fn am_i_a_daemon(_: ()) -> bool {
    current_process().daemon()
}

/// Starts a grandchild with the default daemon flag (or an explicit one)
/// and reports (the default it got, what the grandchild saw).
fn child_starts((method, explicit): (StartMethod, Option<bool>)) -> (bool, bool) {
    methods();
    let mut p = Process::new(am_i_a_daemon, ()).start_method(method);
    if let Some(d) = explicit {
        p = p.daemon(d);
    }
    let default = p.is_daemon();
    p.start().unwrap();
    (default, p.join().unwrap())
}

#[test]
fn daemon_flag_defaults_to_the_creating_process() {
    for method in methods() {
        // The first process is not a daemon: its children default to false.
        assert!(!Process::new(am_i_a_daemon, ()).is_daemon());
        let d = Process::new(child_starts, (method, None))
            .daemon(true)
            .start_method(method);
        d.start().unwrap();
        assert_eq!(
            d.join().unwrap(),
            (true, true),
            "{method}: a daemon's child"
        );
        let n = Process::new(child_starts, (method, None)).start_method(method);
        n.start().unwrap();
        assert_eq!(
            n.join().unwrap(),
            (false, false),
            "{method}: a non-daemon's child"
        );
        let o = Process::new(child_starts, (method, Some(false)))
            .daemon(true)
            .start_method(method);
        o.start().unwrap();
        assert_eq!(
            o.join().unwrap(),
            (false, false),
            "{method}: explicit daemon(false) wins"
        );
    }
}

fn my_method(_: ()) -> (Option<StartMethod>, StartMethod) {
    (current_process().start_method(), get_start_method())
}

#[test]
fn a_child_knows_its_start_method() {
    for method in methods() {
        let p = Process::new(my_method, ()).start_method(method);
        assert_eq!(p.info().start_method(), None);
        p.start().unwrap();
        assert_eq!(p.info().start_method(), Some(method));
        assert_eq!(p.join().unwrap(), (Some(method), method), "{method}");
    }
    assert_eq!(current_process().start_method(), None);
    // SAFETY: the closure only returns what the child knows.
    let f = unsafe { Process::from_closure(|| my_method(())) };
    f.start().unwrap();
    assert_eq!(
        f.join().unwrap(),
        (Some(StartMethod::Fork), StartMethod::Fork)
    );
}

fn nap(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn interrupt_sends_sigint() {
    for method in methods() {
        let p = Process::new(nap, 60_000).start_method(method);
        assert!(matches!(p.interrupt(), Err(mp_proc::Error::NotStarted)));
        p.start().unwrap();
        p.interrupt().unwrap();
        assert!(matches!(
            p.join(),
            Err(mp_proc::Error::Killed { signal }) if signal == libc::SIGINT
        ));
        assert_eq!(p.exitcode(), Some(-libc::SIGINT), "{method}");
        // A finished process: no effect, no error.
        p.interrupt().unwrap();
    }
}
