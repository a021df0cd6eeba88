//! `log_to_stderr`: records of the parent and of children of every start
//! method, in Python's `[LEVEL/ProcessName] message` format, on standard
//! error. One test in its own binary: it installs the global logger and
//! redirects this process's standard error to a file.

use std::io::Read;
use std::os::fd::AsRawFd;

use log::LevelFilter;
use mp_proc::{Process, StartMethod};

fn work(_: ()) -> u32 {
    7
}

fn die_holding(lock: mp_sync::Lock) {
    std::mem::forget(lock.acquire().unwrap());
}

#[test]
fn records_reach_stderr_in_pythons_format() {
    // Off until asked: the macros cost one load of the max level.
    assert_eq!(log::max_level(), LevelFilter::Off);
    let _ = mp_proc::get_logger();

    let path = std::env::temp_dir().join(format!("mp-proc-logging-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    // SAFETY: saving and replacing this process's descriptor 2 with
    // descriptors it owns; restored below.
    let saved = unsafe { libc::dup(2) };
    assert!(saved >= 0);
    // SAFETY: as above.
    assert!(unsafe { libc::dup2(file.as_raw_fd(), 2) } >= 0);

    mp_proc::log_to_stderr(LevelFilter::Debug);
    assert_eq!(log::max_level(), LevelFilter::Debug);
    for (name, method) in [
        ("logged-spawn", StartMethod::Spawn),
        ("logged-forkserver", StartMethod::Forkserver),
    ] {
        let p = Process::new(work, ()).name(name).start_method(method);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), 7);
    }
    let lock = mp_sync::Lock::new().unwrap();
    let p = Process::new(die_holding, lock.clone()).name("holder");
    p.start().unwrap();
    p.join().unwrap();
    assert!(lock.acquire().is_err(), "owner died");

    // SAFETY: restoring the saved descriptor 2.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let mut out = String::new();
    std::fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    for name in ["logged-spawn", "logged-forkserver"] {
        for line in [
            format!("[INFO/{name}] child process calling its target"),
            format!("[INFO/{name}] process exiting with exitcode 0"),
        ] {
            assert!(out.lines().any(|l| l == line), "{line:?} not in:\n{out}");
        }
        assert!(
            out.lines().any(
                |l| l.starts_with(&format!("[DEBUG/MainProcess] started process {name} (pid "))
            ),
            "{out}"
        );
        assert!(
            out.lines().any(|l| l
                .starts_with(&format!("[DEBUG/MainProcess] process {name} (pid "))
                && l.ends_with(") ended with exitcode 0")),
            "{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("[WARNING/MainProcess] a lock's owner (thread ")),
        "{out}"
    );
}
