//! The fork hooks of `mp_os::fork`: their order on both sides of a real
//! `fork`, fresh ids in the child, the child of a raw `clone`, and the
//! fork-safe lock. One test function: the hooks are process-wide, and a
//! fork made by another test at the same time would run them too.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_os::fork::{self, ForkSafeMutex, Hooks, Rank};
use mp_os::liveness;

static LOG: [AtomicU8; 64] = [const { AtomicU8::new(0) }; 64];
static LEN: AtomicUsize = AtomicUsize::new(0);

fn log(tag: u8) {
    let i = LEN.fetch_add(1, SeqCst);
    if i < LOG.len() {
        LOG[i].store(tag, SeqCst);
    }
}

fn logged() -> Vec<u8> {
    let n = LEN.load(SeqCst).min(LOG.len());
    LOG[..n].iter().map(|t| t.load(SeqCst)).collect()
}

fn clear() {
    LEN.store(0, SeqCst);
}

const A_PREPARE: u8 = 1;
const A_PARENT: u8 = 2;
const A_CHILD: u8 = 3;
const B_PREPARE: u8 = 4;
const B_PARENT: u8 = 5;
const B_CHILD: u8 = 6;
const ID_PREPARE: u8 = 7;
const ID_PARENT: u8 = 8;
const ID_CHILD: u8 = 9;
const C_CHILD: u8 = 10;

static A: Hooks = Hooks::new(Rank::Objects)
    .prepare(|| log(A_PREPARE))
    .parent(|| log(A_PARENT))
    .child(|| log(A_CHILD));
static B: Hooks = Hooks::new(Rank::Objects)
    .prepare(|| log(B_PREPARE))
    .parent(|| log(B_PARENT))
    .child(|| log(B_CHILD));
/// Registered last, runs first after the fork (and last before it).
static ID: Hooks = Hooks::new(Rank::Identity)
    .prepare(|| log(ID_PREPARE))
    .parent(|| log(ID_PARENT))
    .child(|| log(ID_CHILD));
/// Only a child handler: the one kind a raw clone runs.
static C: Hooks = Hooks::new(Rank::Objects).child(|| log(C_CHILD));

/// Reaps `pid` (generous deadline; kills it past that); its exit code.
fn reap(pid: libc::pid_t) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child by pid.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            assert!(libc::WIFEXITED(status), "child killed: status {status:#x}");
            return libc::WEXITSTATUS(status);
        }
        if Instant::now() > deadline {
            // SAFETY: our own unreaped child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!("child {pid} did not exit");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Forks; the child exits with `f()` (never returns into the harness).
fn fork_with(f: impl FnOnce() -> i32) -> libc::pid_t {
    // SAFETY: the child only runs `f` (no allocation needed) and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        // SAFETY: leaving the child without running the harness's code.
        unsafe { libc::_exit(code) };
    }
    pid
}

#[test]
fn hooks_run_in_order_on_both_sides_and_the_child_has_fresh_ids() {
    // Fill the caches of this thread and process: the child must not see
    // them.
    let parent_tid = liveness::current_tid();
    let parent_token = liveness::process_token();
    assert_eq!(liveness::token_tid(parent_token), std::process::id());

    for h in [&A, &B, &ID, &C] {
        fork::register(h);
        assert!(fork::registered(h));
    }
    fork::register(&A); // again: still once in the table

    // ---- a fork: prepare in reverse, then by rank and registration.
    clear();
    let pid = fork_with(|| {
        let want = [
            B_PREPARE, A_PREPARE, ID_PREPARE, ID_CHILD, A_CHILD, B_CHILD, C_CHILD,
        ];
        if logged() != want {
            return 10;
        }
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as u32;
        if liveness::current_tid() != me || liveness::current_tid() == parent_tid {
            return 11;
        }
        if liveness::token_tid(liveness::process_token()) != me {
            return 12;
        }
        0
    });
    assert_eq!(
        logged(),
        [
            B_PREPARE, A_PREPARE, ID_PREPARE, ID_PARENT, A_PARENT, B_PARENT
        ],
        "parent side"
    );
    assert_eq!(reap(pid), 0, "child side (10: order, 11/12: stale ids)");

    // ---- a raw clone runs no atfork handler: `after_clone_in_child`
    // runs the child handlers that need no prepare step.
    clear();
    // SAFETY: a raw clone behaves as fork(2) without the atfork handlers.
    // The child allocates nothing (the test harness's other threads may
    // hold the allocator's locks) and leaves with `_exit`.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    assert!(pid >= 0, "clone failed");
    if pid == 0 {
        fork::after_clone_in_child();
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as u32;
        let mut log = [0u8; 8];
        let n = LEN.load(SeqCst).min(8);
        for (i, t) in log.iter_mut().enumerate().take(n) {
            *t = LOG[i].load(SeqCst);
        }
        let code = if log[..n] != [C_CHILD] {
            10
        } else if liveness::current_tid() != me {
            11
        } else {
            0
        };
        // SAFETY: leaving the child without running the harness's code.
        unsafe { libc::_exit(code) };
    }
    assert_eq!(
        reap(pid as libc::pid_t),
        0,
        "raw clone child (10: wrong handlers, 11: stale id)"
    );
    assert!(logged().is_empty(), "nothing runs in the parent of a clone");

    // ---- the fork-safe lock: held by another thread at the fork, taken
    // back by the child.
    static M: ForkSafeMutex<Vec<u32>> = ForkSafeMutex::new(Vec::new());
    M.lock().push(1);
    let (locked_tx, locked_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut g = M.lock();
        g.push(2);
        locked_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        g.push(3);
    });
    locked_rx.recv().unwrap();
    let pid = fork_with(|| {
        if !M.is_locked() {
            return 10;
        }
        // SAFETY: the child's only thread, before any use of the lock; the
        // data is replaced right after.
        unsafe { M.reset_after_fork() };
        let mut g = M.lock();
        if *g != [1, 2] {
            return 11;
        }
        *g = vec![9];
        0
    });
    assert_eq!(reap(pid), 0, "child of a fork under a held lock");
    go_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(*M.lock(), [1, 2, 3], "the parent's data is its own");

    // ---- a guard kept across a fork and taken back.
    M.lock().keep_locked();
    assert!(M.is_locked());
    // SAFETY: the guard kept just above is the lock's only holder, and it
    // is taken back once.
    drop(unsafe { M.take_over() });
    assert!(!M.is_locked());
}
