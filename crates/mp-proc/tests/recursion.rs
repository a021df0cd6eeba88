//! A child whose entry hook did not run must not start processes: that
//! would re-run `main` in a loop (a fork bomb). Simulated by setting the
//! bootstrap variable after the hook has run.

use mp_proc::{Error, Process};

fn noop(_: ()) {}

#[test]
fn start_refused_when_bootstrap_variable_is_left() {
    // SAFETY: this test binary has a single test; no other thread reads the
    // environment concurrently.
    unsafe { std::env::set_var("MP_PROC_BOOT_FD", "3") };
    let p = Process::new(noop, ());
    assert!(matches!(p.start(), Err(Error::RecursiveStart)));
    // The refusal is sticky for this process, even after the variable goes.
    // SAFETY: as above.
    unsafe { std::env::remove_var("MP_PROC_BOOT_FD") };
    let q = Process::new(noop, ());
    assert!(matches!(q.start(), Err(Error::RecursiveStart)));
    let msg = Error::RecursiveStart.to_string();
    assert!(msg.contains("mp_proc::init()"), "{msg}");
}
