//! Group `process`: the OS limits for starting and reaping a process.
//!
//! | key | what |
//! |---|---|
//! | `process/fork` | `fork` of this (small, single-threaded) harness, the child `_exit`s at once, `waitpid` |
//! | `process/posix-spawn` | `posix_spawn` of this binary with [`EXIT_NOW`] (it exits first thing in `main`) + `waitpid` |
//! | `process/fork-exec` | `fork` + `execv` of the same + `waitpid` |
//! | `process/mp-forkserver` | `mp_proc::Process` start + join, forkserver method (server already running) |
//! | `process/mp-spawn` | the same, spawn method (a `posix_spawn` of this binary) |
//! | `process/mp-fork` | the same, fork method |

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt as _;

use crate::kit::{Config, RowBuilder, Stats, Unit, time};

const GROUP: &str = "process";
/// The argument that makes `mp-bench` exit immediately (the child of the spawn rows).
pub(crate) const EXIT_NOW: &str = "--exit-now";

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    let mut failed = Vec::new();
    for (name, r) in [
        ("fork", fork(cfg)),
        ("posix_spawn", spawn(cfg)),
        ("fork+exec", fork_exec(cfg)),
        (
            "mp forkserver",
            mp_start(cfg, mp_proc::StartMethod::Forkserver),
        ),
        ("mp spawn", mp_start(cfg, mp_proc::StartMethod::Spawn)),
        ("mp fork", mp_start(cfg, mp_proc::StartMethod::Fork)),
    ] {
        if let Err(e) = r {
            failed.push((name, e));
        }
    }
    failed
}

/// Waits for `pid` and checks that it exited with status 0.
pub(crate) fn reap(pid: libc::pid_t) -> io::Result<()> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer; `pid` is a child of ours.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "child ended with wait status {status:#x}"
        )))
    }
}

/// `fork`s a child that `_exit(0)`s at once; returns its pid.
pub(crate) fn fork_trivial() -> io::Result<libc::pid_t> {
    // SAFETY: the child only calls `_exit`, which is async-signal-safe.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        // SAFETY: leaving the child at once, without running any destructor.
        0 => unsafe { libc::_exit(0) },
        pid => Ok(pid),
    }
}

fn fork(cfg: &Config) -> io::Result<()> {
    let mut err = None;
    let samples = cfg.sample(20, 5000, || {
        time(|| {
            if let Err(e) = fork_trivial().and_then(reap) {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    RowBuilder::new(GROUP, "process/fork", "start + join", "raw fork+waitpid")
        .note("trivial child: _exit(0) right after fork, from this small harness")
        .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
        .emit();
    Ok(())
}

/// `argv` for re-running this binary with [`EXIT_NOW`], and the executable path.
fn self_argv() -> io::Result<(CString, [CString; 2])> {
    let exe = std::env::current_exe()?;
    let exe = CString::new(exe.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let arg = CString::new(EXIT_NOW).map_err(io::Error::other)?;
    Ok((exe.clone(), [exe, arg]))
}

fn spawn(cfg: &Config) -> io::Result<()> {
    let (exe, args) = self_argv()?;
    let argv = [
        args[0].as_ptr().cast_mut(),
        args[1].as_ptr().cast_mut(),
        std::ptr::null_mut(),
    ];
    unsafe extern "C" {
        static environ: *const *mut libc::c_char;
    }
    let mut err = None;
    let samples = cfg.sample(10, 2000, || {
        time(|| {
            let mut pid = 0;
            // SAFETY: `exe`, `argv` (null-terminated, strings alive) and `environ` are valid;
            // null file actions and attributes mean defaults.
            let rc = unsafe {
                libc::posix_spawn(
                    &mut pid,
                    exe.as_ptr(),
                    std::ptr::null(),
                    std::ptr::null(),
                    argv.as_ptr(),
                    environ,
                )
            };
            let r = if rc == 0 {
                reap(pid)
            } else {
                Err(io::Error::from_raw_os_error(rc))
            };
            if let Err(e) = r {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    RowBuilder::new(
        GROUP,
        "process/posix-spawn",
        "start + join",
        "raw posix_spawn+waitpid",
    )
    .baseline(&["process/fork"])
    .note(format!(
        "spawns this binary with {EXIT_NOW}: it exits first thing in main"
    ))
    .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
    .emit();
    Ok(())
}

fn fork_exec(cfg: &Config) -> io::Result<()> {
    let (exe, args) = self_argv()?;
    let argv = [args[0].as_ptr(), args[1].as_ptr(), std::ptr::null()];
    let mut err = None;
    let samples = cfg.sample(10, 2000, || {
        time(|| {
            // SAFETY: the child only calls execv (argv prepared beforehand) and _exit.
            let r = match unsafe { libc::fork() } {
                -1 => Err(io::Error::last_os_error()),
                0 => {
                    // SAFETY: `exe` and `argv` are valid and null-terminated.
                    unsafe {
                        libc::execv(exe.as_ptr(), argv.as_ptr());
                        libc::_exit(127)
                    }
                }
                pid => reap(pid),
            };
            if let Err(e) = r {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    RowBuilder::new(
        GROUP,
        "process/fork-exec",
        "start + join",
        "raw fork+execv+waitpid",
    )
    .baseline(&["process/posix-spawn"])
    .note(format!("execs this binary with {EXIT_NOW}"))
    .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
    .emit();
    Ok(())
}

/// The target of the mp rows: returns at once.
fn trivial(x: u32) -> u32 {
    x
}

fn mp_start(cfg: &Config, method: mp_proc::StartMethod) -> io::Result<()> {
    if method == mp_proc::StartMethod::Fork {
        // SAFETY: the harness is single-threaded while this group runs, and
        // the child only returns its argument.
        unsafe { mp_proc::enable_fork() };
    }
    let run = || -> io::Result<()> {
        let p = mp_proc::Process::new(trivial, 7).start_method(method);
        p.start().map_err(io::Error::other)?;
        match p.join() {
            Ok(7) => Ok(()),
            other => Err(io::Error::other(format!(
                "unexpected join result {other:?}"
            ))),
        }
    };
    // Warm up: the fork server starts on first use.
    run()?;
    let mut err = None;
    let samples = cfg.sample(10, 5000, || {
        time(|| {
            if let Err(e) = run() {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    let (key, baseline, note) = match method {
        mp_proc::StartMethod::Forkserver => (
            "process/mp-forkserver",
            vec!["process/fork", "process/py-forkserver"],
            "the server is already running; the child returns its argument to join()",
        ),
        mp_proc::StartMethod::Spawn => (
            "process/mp-spawn",
            vec!["process/posix-spawn", "process/py-spawn"],
            "posix_spawn of this binary; the child returns its argument to join()",
        ),
        mp_proc::StartMethod::Fork => (
            "process/mp-fork",
            vec!["process/fork", "process/py-fork"],
            "the child returns its argument to join()",
        ),
    };
    RowBuilder::new(
        GROUP,
        key,
        "start + join",
        &format!("mp Process ({method})"),
    )
    .baseline(&baseline)
    .note(note)
    .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
    .emit();
    Ok(())
}
