//! `set_forkserver_preload` and `set_start_method_force`. One test in its
//! own binary: both change program-wide state (the fork server of this
//! process, the default start method).

use std::sync::atomic::{AtomicU32, Ordering};

use mp_proc::{
    Process, StartMethod, get_start_method, set_forkserver_preload, set_start_method,
    set_start_method_force,
};

static PRELOADED: AtomicU32 = AtomicU32::new(0);

fn preload() {
    PRELOADED.fetch_add(1, Ordering::SeqCst);
}

fn preloaded(_: ()) -> u32 {
    PRELOADED.load(Ordering::SeqCst)
}

#[test]
fn preload_runs_once_in_the_fork_server_and_start_method_can_be_forced() {
    assert!(mp_proc::forkserver_pid().is_none(), "no server yet");
    set_forkserver_preload(Some(preload)).unwrap();
    for _ in 0..3 {
        let p = Process::new(preloaded, ()).start_method(StartMethod::Forkserver);
        p.start().unwrap();
        // Ran once in the server, before it forked this child.
        assert_eq!(p.join().unwrap(), 1);
    }
    // Not in this process, nor in a spawned child.
    assert_eq!(PRELOADED.load(Ordering::SeqCst), 0);
    let s = Process::new(preloaded, ()).start_method(StartMethod::Spawn);
    s.start().unwrap();
    assert_eq!(s.join().unwrap(), 0);

    // set_start_method: once, unless forced; None unsets.
    set_start_method(StartMethod::Spawn).unwrap();
    assert!(matches!(
        set_start_method(StartMethod::Forkserver),
        Err(mp_proc::Error::StartMethodAlreadySet(StartMethod::Spawn))
    ));
    set_start_method_force(Some(StartMethod::Forkserver)).unwrap();
    assert_eq!(get_start_method(), StartMethod::Forkserver);
    assert!(matches!(
        set_start_method_force(Some(StartMethod::Fork)),
        Err(mp_proc::Error::ForkNotEnabled)
    ));
    set_start_method_force(None).unwrap();
    assert_eq!(get_start_method(), StartMethod::Forkserver);
    set_start_method(StartMethod::Spawn).unwrap();
    let p = Process::new(preloaded, ());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 0, "the default is spawn now");
}
