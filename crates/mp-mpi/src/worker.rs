//! The worker side: a rank that serves the root's tasks until told to
//! stop, and never returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mp_proc::{CallError, RawFunction};

use crate::error::MpiError;
use crate::proto::{self, Backoff, Hello, Setup, Watch};
use crate::raw::{self, Comm};

/// How often a worker tells the root it is alive.
pub(crate) const BEAT_EVERY: Duration = Duration::from_millis(500);

struct Link {
    comm: Comm,
    root: i32,
    /// The root's process, once a `SETUP` said which it is.
    root_watch: Option<Watch>,
}

impl Link {
    fn root_gone(&self) -> bool {
        self.root_watch.as_ref().is_some_and(Watch::ended)
    }

    /// Sends and waits (polling, with backoff) until the send completes.
    fn send(&self, tag: i32, buf: Vec<u8>) -> Result<(), MpiError> {
        let mut s = raw::isend(self.comm, self.root, tag, buf)?;
        let mut b = Backoff::default();
        let mut checked = Instant::now();
        while !s.test()? {
            if checked.elapsed() > Duration::from_millis(100) {
                checked = Instant::now();
                if self.root_gone() {
                    s.abandon();
                    return Err(MpiError::Protocol("the root process is gone".into()));
                }
            }
            b.snooze();
        }
        Ok(())
    }

    /// The root's next message: `(tag, body)`.
    fn recv(&self) -> Result<(i32, Vec<u8>), MpiError> {
        let mut b = Backoff::default();
        let mut checked = Instant::now();
        let mut pending = loop {
            if let Some(r) = raw::take_message(self.comm, Some(self.root))? {
                break r;
            }
            if checked.elapsed() > Duration::from_millis(100) {
                checked = Instant::now();
                if self.root_gone() {
                    return Err(MpiError::Protocol("the root process is gone".into()));
                }
            }
            b.snooze();
        };
        b.reset();
        while !pending.test()? {
            if self.root_gone() {
                pending.abandon();
                return Err(MpiError::Protocol("the root process is gone".into()));
            }
            b.snooze();
        }
        let tag = pending.tag;
        Ok((tag, pending.into_data()))
    }
}

/// Sends a `BEAT` every [`BEAT_EVERY`] until `stop` is set.
fn heartbeat(comm: Comm, root: i32, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("mp-mpi-heartbeat".into())
        .spawn(move || {
            let mut last: Option<raw::Send> = None;
            while !stop.load(Ordering::Acquire) {
                let done = match &mut last {
                    Some(s) => s.test().unwrap_or(false),
                    None => true,
                };
                if done {
                    last = raw::isend(comm, root, proto::BEAT, Vec::new()).ok();
                }
                std::thread::park_timeout(BEAT_EVERY);
            }
            if let Some(mut s) = last {
                // A beat still under way when the worker leaves: wait a
                // little for it, then let it go.
                let t = Instant::now();
                while !s.test().unwrap_or(true) {
                    if t.elapsed() > Duration::from_secs(1) {
                        s.abandon();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
        .expect("cannot start the heartbeat thread")
}

/// Serves the root on `comm` (rank `root` there) and exits the process
/// when told to stop. `spawned`: `comm` is the parent intercommunicator.
pub(crate) fn serve(comm: Comm, root: i32, spawned: bool) -> ! {
    let code = match serve_inner(comm, root, spawned) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mp-mpi worker {}: {e}", std::process::id());
            1
        }
    };
    crate::finalize();
    std::process::exit(code);
}

fn serve_inner(comm: Comm, root: i32, spawned: bool) -> Result<(), MpiError> {
    comm.errors_return()?;
    let mut link = Link {
        comm,
        root,
        root_watch: None,
    };
    let my_host = raw::processor_name();
    let hello = Hello {
        pid: std::process::id(),
        host: my_host.clone(),
    };
    link.send(proto::HELLO, encode(&hello)?)?;
    let stop = Arc::new(AtomicBool::new(false));
    let beat = heartbeat(comm, root, stop.clone());
    let result = (|| loop {
        let (tag, body) = link.recv()?;
        match tag {
            proto::SETUP => {
                let setup: Setup = decode(&body)?;
                link.root_watch = Some(Watch::new(setup.root_pid, &setup.root_host, &my_host));
                let outcome = run_init(setup.init);
                link.send(proto::READY, encode(&outcome)?)?;
            }
            proto::TASK => {
                let (seq, out) = run_task(&body)?;
                let mut msg = Vec::with_capacity(9 + out.as_ref().map_or(64, Vec::len));
                msg.extend_from_slice(&seq.to_le_bytes());
                match out {
                    Ok(bytes) => {
                        msg.push(0);
                        msg.extend_from_slice(&bytes);
                    }
                    Err(e) => {
                        msg.push(1);
                        msg.extend_from_slice(&encode(&e)?);
                    }
                }
                link.send(proto::RESULT, msg)?;
            }
            proto::RELEASE => link.send(proto::RELEASED, Vec::new())?,
            proto::STOP => {
                link.send(proto::BYE, Vec::new())?;
                return Ok(());
            }
            other => return Err(MpiError::Protocol(format!("unexpected tag {other}"))),
        }
    })();
    stop.store(true, Ordering::Release);
    beat.thread().unpark();
    let _ = beat.join();
    if result.is_ok() && spawned {
        // The root disconnects too once every worker said goodbye.
        comm.release(true)?;
    }
    result
}

fn run_init(init: Option<(RawFunction, Vec<u8>)>) -> Result<(), String> {
    let Some((func, args)) = init else {
        return Ok(());
    };
    // SAFETY: the root made `func` with `Function::raw` in the same
    // executable (every rank runs the same program), and sent it over the
    // job's own communicator.
    unsafe { func.call(&args, Vec::new()) }
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Runs one `TASK` message: its sequence number and the chunk's output.
fn run_task(body: &[u8]) -> Result<(u64, Result<Vec<u8>, CallError>), MpiError> {
    let ((seq, func), chunk): ((u64, RawFunction), &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| MpiError::Protocol(e.to_string()))?;
    // SAFETY: as in `run_init`.
    let out = unsafe { func.run(chunk) };
    Ok((seq, out))
}

pub(crate) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, MpiError> {
    postcard::to_allocvec(v).map_err(|e| MpiError::Protocol(e.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, MpiError> {
    postcard::from_bytes(b).map_err(|e| MpiError::Protocol(e.to_string()))
}
