//! Descriptors that the parent left open without close-on-exec do not leak
//! into spawn and forkserver children (Python's spawn closes them too); a
//! fork child inherits everything, as in Python.

use mp_proc::{Process, StartMethod};

/// The inode behind `fd` in this process, if `fd` is open.
fn inode(fd: i32) -> Option<u64> {
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`, which outlives the call.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some(st.st_ino)
}

/// Whether the child holds the parent's pipe ends (same descriptor numbers,
/// same inode).
fn holds((fds, ino): ([i32; 2], u64)) -> [bool; 2] {
    fds.map(|fd| inode(fd) == Some(ino))
}

#[test]
fn spawn_and_forkserver_children_do_not_inherit_stray_descriptors() {
    // A pipe without O_CLOEXEC, as C code or an old library would make it.
    let mut fds = [0i32; 2];
    // SAFETY: pipe writes two descriptors into `fds`.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let ino = inode(fds[0]).unwrap();
    assert_eq!(inode(fds[1]), Some(ino));
    // The fork server must be started after the pipe exists to show that it
    // does not pass the pipe on either (it is started lazily, by the first
    // forkserver start below).
    assert!(mp_proc::forkserver_pid().is_none());
    for m in [StartMethod::Forkserver, StartMethod::Spawn] {
        let p = Process::new(holds, (fds, ino)).start_method(m);
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), [false, false], "{m}");
    }
    // The probe itself works: a fork child holds the pipe.
    // SAFETY: the target only calls fstat.
    unsafe { mp_proc::enable_fork() };
    let p = Process::new(holds, (fds, ino)).start_method(StartMethod::Fork);
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), [true, true], "fork");
    // SAFETY: closing the pipe made above.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
}
