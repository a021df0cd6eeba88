//! `SharedMemoryManager`: the server unlinks every block and list it made
//! at shutdown, on drop, and when its owner is killed.

use std::path::Path;
use std::time::{Duration, Instant};

use mp_channel::Queue;
use mp_manager::{Error, SharedMemoryManager};
use mp_proc::Process;
use mp_shm::{Item, ShareableList, SharedMemory};

fn in_dev_shm(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// Whether process `pid` has gone (or is a zombie nobody has reaped yet).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|state| state == "Z"),
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn shutdown_unlinks_every_block_and_list() {
    let smm = SharedMemoryManager::start().unwrap();
    let server = smm.pid().unwrap();
    let a = smm.shared_memory(100).unwrap();
    let l = smm
        .shareable_list(&["x".into(), 2.5.into(), Item::None])
        .unwrap();
    let b = smm.shared_memory(1 << 20).unwrap();
    assert!(!a.is_owner(), "handed out attached, the server owns them");
    a.write_at(0, b"abc").unwrap();
    l.set(0, "yz").unwrap();
    let names = smm.names().unwrap();
    assert_eq!(names, [a.name(), l.name(), b.name()]);
    assert!(names.iter().all(|n| in_dev_shm(n)));
    // Another attacher sees the same memory.
    let again = ShareableList::attach(l.name()).unwrap();
    assert_eq!(again.get(0).unwrap(), Item::Str("yz".into()));
    // A failure on the server is an error here, and the server goes on.
    assert!(matches!(smm.shared_memory(0), Err(Error::Remote(_))));
    smm.shutdown().unwrap();
    assert!(names.iter().all(|n| !in_dev_shm(n)), "all unlinked");
    assert!(gone(server));
    // Mappings stay valid after the names are gone.
    let mut buf = [0u8; 3];
    a.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"abc");
    assert!(matches!(smm.shared_memory(8), Err(Error::Shutdown)));
    smm.shutdown().unwrap(); // twice is fine
}

#[test]
fn drop_unlinks_too() {
    let smm = SharedMemoryManager::start().unwrap();
    let name = smm.shared_memory(64).unwrap().name().to_string();
    assert!(in_dev_shm(&name));
    drop(smm);
    assert!(!in_dev_shm(&name));
    assert!(SharedMemory::attach(&name).is_err());
}

/// Starts a manager, makes a block and a list, reports their names and the
/// server's pid, and waits to be killed.
fn owner(q: Queue<(Vec<String>, u32)>) {
    let smm = SharedMemoryManager::start().expect("start");
    smm.shared_memory(4096).expect("block");
    smm.shareable_list(&[1.into(), "two".into()]).expect("list");
    q.put((smm.names().expect("names"), smm.pid().expect("pid")))
        .expect("put");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn the_server_cleans_up_when_its_owner_is_killed() {
    let q = Queue::new().unwrap();
    let p = Process::new(owner, q.clone());
    p.start().unwrap();
    let (names, server) = q.get_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(names.len(), 2);
    assert!(names.iter().all(|n| in_dev_shm(n)));
    p.kill().unwrap();
    assert!(p.join().is_err());
    wait_until("the blocks are unlinked", || {
        names.iter().all(|n| !in_dev_shm(n))
    });
    wait_until("the server exits", || gone(server));
}

/// Run in a subprocess by the next test: leaks a manager and lets the
/// process exit normally.
#[test]
fn leak_helper() {
    if std::env::var_os("MP_SMM_LEAK").is_none() {
        return;
    }
    let smm = SharedMemoryManager::start().unwrap();
    let block = smm.shared_memory(64).unwrap();
    println!("block={}", block.name());
    std::mem::forget(smm);
}

#[test]
fn a_leaked_manager_does_not_hang_the_exit_and_still_cleans_up() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "leak_helper", "--nocapture", "--test-threads=1"])
        .env("MP_SMM_LEAK", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the process that leaked a manager did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{status}: {out}");
    let name = out
        .split("block=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no block name in {out:?}"));
    assert!(!in_dev_shm(name), "the server unlinked {name}");
}

#[test]
fn a_forked_child_leaving_through_exit_leaves_the_owners_manager_alone() {
    let smm = SharedMemoryManager::start().unwrap();
    let block = smm.shared_memory(64).unwrap();
    block.write_at(0, b"kept").unwrap();
    let name = block.name().to_string();
    // SAFETY: the child only calls exit(3), which runs the atexit
    // handlers (the manager's among them) as a fork-method child's end does.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: ending the child.
        unsafe { libc::exit(0) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child by pid.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    assert_eq!(
        smm.names().unwrap(),
        std::slice::from_ref(&name),
        "the manager answers"
    );
    assert!(in_dev_shm(&name), "the block is still there");
    let again = smm.shared_memory(8).unwrap();
    let mut got = [0u8; 4];
    SharedMemory::attach(&name)
        .unwrap()
        .read_at(0, &mut got)
        .unwrap();
    assert_eq!(&got, b"kept");
    smm.shutdown().unwrap();
    assert!(!in_dev_shm(&name));
    assert!(!in_dev_shm(again.name()));
}
