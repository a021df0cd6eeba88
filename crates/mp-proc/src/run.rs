//! The child side: from a bootstrap message to the target's return value
//! on the way back to the parent, then exit.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::panic::{AssertUnwindSafe, catch_unwind};

use mp_os::fdpass;
use rustix::event::{PollFd, PollFlags};
use rustix::process::Signal;

use crate::child::{exit_now, panic_message};
use crate::function::CallError;
use crate::info;
use crate::wire::{Bootstrap, MAX_FRAME, Outcome, WIRE_VERSION};

/// Exit code of a child that could not even decode its bootstrap.
const EXIT_BOOTSTRAP: i32 = 70;

/// Entry for the spawn method: read the bootstrap from the inherited socket.
pub(crate) fn run_spawned(sock: UnixStream) -> ! {
    match fdpass::recv(&sock, MAX_FRAME) {
        Ok(Some((bytes, fds))) => match decode_bootstrap(&bytes) {
            Some(boot) => run_function(boot, fds, sock),
            None => exit_now(EXIT_BOOTSTRAP),
        },
        _ => exit_now(EXIT_BOOTSTRAP),
    }
}

pub(crate) fn decode_bootstrap(bytes: &[u8]) -> Option<Bootstrap> {
    let boot: Bootstrap = postcard::from_bytes(bytes).ok()?;
    (boot.version == WIRE_VERSION).then_some(boot)
}

/// Runs a function target described by `boot` and exits.
pub(crate) fn run_function(mut boot: Bootstrap, fds: Vec<OwnedFd>, sock: UnixStream) -> ! {
    let args = std::mem::take(&mut boot.args);
    let func = boot.func;
    run(&boot, sock, move || {
        let Some(func) = func else {
            return (
                Outcome::Failed("no target in the bootstrap".into()),
                Vec::new(),
            );
        };
        // The parent handed the arguments' transits over to this process.
        mp_os::handle::expect_handed_over(true);
        // SAFETY: the parent produced `func` with `Function::raw` in this
        // same executable (a fork of it, or an exec of /proc/self/exe), and
        // the bootstrap travelled over a socket only it and we hold.
        let r = unsafe { func.call(&args, fds) };
        mp_os::handle::expect_handed_over(false);
        match r {
            Ok((bytes, fds)) => (Outcome::Returned(bytes), fds),
            Err(CallError::Panicked(m)) => (Outcome::Panicked(m), Vec::new()),
            Err(e) => (Outcome::Failed(e.to_string()), Vec::new()),
        }
    })
}

/// Sets up the child's identity, runs `body`, reports its outcome, exits.
pub(crate) fn run(
    boot: &Bootstrap,
    sock: UnixStream,
    body: impl FnOnce() -> (Outcome, Vec<OwnedFd>),
) -> ! {
    info::become_child(boot);
    crate::logging::install_in_child(boot.log_level);
    if boot.daemon {
        watch_parent(&sock);
    }
    log::info!(target: "mp_proc", "child process calling its target");
    let (outcome, fds) = body();
    // As Python's `util._exit_function`: finish what must be done before
    // leaving (a queue's feeder writes out the values this process put)
    // before the parent learns the outcome.
    mp_os::exit::run();
    let code = match outcome {
        Outcome::Returned(_) => 0,
        _ => 1,
    };
    log::info!(target: "mp_proc", "process exiting with exitcode {code}");
    if let Ok(bytes) = postcard::to_allocvec(&outcome) {
        let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
        let _ = fdpass::send(&sock, &bytes, &borrowed);
    }
    // As Python's child bootstrap does: terminate daemonic children and
    // join the others before leaving.
    crate::children::finish_children();
    exit_now(code)
}

/// Runs a closure target (fork method) and exits.
pub(crate) fn run_closure<R: serde::Serialize>(
    boot: &Bootstrap,
    sock: UnixStream,
    f: Box<dyn FnOnce() -> R + Send>,
) -> ! {
    run(boot, sock, move || {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(r) => encode_return(&r),
            Err(p) => (Outcome::Panicked(panic_message(p.as_ref())), Vec::new()),
        }
    })
}

fn encode_return<R: serde::Serialize>(r: &R) -> (Outcome, Vec<OwnedFd>) {
    let (bytes, fds) = mp_os::handle::collect_fds(|| postcard::to_allocvec(r));
    match bytes {
        Ok(b) => (Outcome::Returned(b), fds),
        Err(e) => (
            Outcome::Failed(format!("cannot serialize the return value: {e}")),
            Vec::new(),
        ),
    }
}

/// A daemon child dies with its parent: a thread waits for the parent's end
/// of the bootstrap socket to hang up (the kernel closes it when the parent
/// dies, however it dies) and then kills this process.
fn watch_parent(sock: &UnixStream) {
    let Ok(fd) = sock.as_fd().try_clone_to_owned() else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("mp-parent-watch".into())
        .spawn(move || {
            let gone = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
            loop {
                let mut pfd = [PollFd::new(&fd, PollFlags::RDHUP)];
                let n = rustix::event::poll(&mut pfd, None).unwrap_or(0);
                if n > 0 && pfd[0].revents().intersects(gone) {
                    let me = rustix::process::getpid();
                    let _ = rustix::process::kill_process(me, Signal::KILL);
                }
            }
        });
}
