//! Group `manager`: the floor for a manager (a server process owning the data, reached over a
//! socket).
//!
//! | key | what |
//! |---|---|
//! | `manager/raw-set` | `map[k] = v` sent to a server process over a socketpair (17-byte request, 9-byte reply) |
//! | `manager/raw-get` | `map[k]` the same way |
//! | `manager/raw-append` | `list.push(v)` the same way |
//! | `manager/mp-start` | `mp_manager::Manager::new()` + `shutdown()` |
//! | `manager/mp-set` | `DictProxy::insert` (one request, one reply) |
//! | `manager/mp-get` | `DictProxy::get` |
//! | `manager/mp-append` | `ListProxy::append` |
//! | `manager/mp-tcp-get` | `DictProxy::get` on a manager served on TCP at 127.0.0.1 with an authkey (`Manager::serve`) |
//!
//! The raw server is a hand-written loop over fixed-size binary frames and a `HashMap` / `Vec`:
//! one blocking round trip per operation, no encoding, no authentication. The `mp-*` rows go
//! through `mp_manager` proxies: postcard frames to a server process, a thread per connection;
//! the connection is authenticated on a Unix socket (abstract namespace) and then moves to a
//! shared-memory `mp_channel::Pipe` (the socket stays open to detect a dead peer). A TCP
//! manager keeps its requests on the TCP connection (after the same HMAC handshake on the
//! authkey).

use std::collections::HashMap;
use std::hint::black_box;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::kit::{Config, RowBuilder, Stats, Unit, read_exact, time, two_processes, write_all};

const GROUP: &str = "manager";

const STOP: u8 = 0;
const SET: u8 = 1;
const GET: u8 = 2;
const APPEND: u8 = 3;

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    let mut failed = Vec::new();
    // The raw rows fork: they run before anything that could start a thread.
    if let Err(e) = raw(cfg) {
        failed.push(("raw server", e));
    }
    if let Err(e) = mp_start(cfg) {
        failed.push(("mp Manager start", io::Error::other(e)));
    }
    if let Err(e) = mp_ops(cfg) {
        failed.push(("mp Manager proxies", io::Error::other(e)));
    }
    if let Err(e) = mp_tcp_get(cfg) {
        failed.push(("mp Manager on TCP", io::Error::other(e)));
    }
    failed
}

/// `DictProxy::get` on a manager that listens on TCP, next to Python's `SyncManager` with a TCP
/// address.
fn mp_tcp_get(cfg: &Config) -> Result<(), mp_manager::Error> {
    let m = mp_manager::Manager::serve("127.0.0.1:0", b"mp-bench".to_vec())?;
    let r = tcp_get_samples(cfg, &m);
    m.shutdown()?;
    let samples = r?;
    RowBuilder::new(GROUP, "manager/mp-tcp-get", "dict get, TCP", "mp Manager")
        .baseline(&["manager/py-tcp-get", "manager/mp-get"])
        .note(
            "Manager::serve(\"127.0.0.1:0\", authkey): proxy call, postcard frames over TCP on \
             the loopback to the server process, a thread per connection",
        )
        .stats(Unit::Us, Stats::per_op(&samples, 1, Unit::Us))
        .emit();
    Ok(())
}

fn tcp_get_samples(
    cfg: &Config,
    m: &mp_manager::Manager,
) -> Result<Vec<Duration>, mp_manager::Error> {
    let d = m.dict::<u64, u64>()?;
    for i in 0..64 {
        d.insert(i, i)?;
    }
    let mut i = 0u64;
    for _ in 0..100 {
        i += 1;
        black_box(d.get(&(i % 64))?); // warm-up
    }
    let mut err = None;
    let samples = cfg.sample(20, 1_000_000, || {
        i += 1;
        time(|| match d.get(&(i % 64)) {
            Ok(v) => {
                black_box(v);
            }
            Err(e) => err = Some(e),
        })
    });
    err.map_or(Ok(samples), Err)
}

/// `Manager::new()` + `shutdown()`, next to Python's `Manager()` + `shutdown()`.
fn mp_start(cfg: &Config) -> Result<(), mp_manager::Error> {
    let mut err = None;
    let samples = cfg.sample(cfg.pick(5, 2), 200, || {
        time(|| match mp_manager::Manager::new() {
            Ok(m) => {
                if let Err(e) = m.shutdown() {
                    err = Some(e);
                }
            }
            Err(e) => err = Some(e),
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    RowBuilder::new(GROUP, "manager/mp-start", "start + shutdown", "mp Manager")
        .baseline(&["manager/py-start", "process/fork"])
        .note("Manager::new() + shutdown(): bind, start the server (forkserver), handshake, stop")
        .stats(Unit::Ms, Stats::per_op(&samples, 1, Unit::Ms))
        .emit();
    Ok(())
}

/// Proxy round trips, the same operations as the raw and Python rows.
fn mp_ops(cfg: &Config) -> Result<(), mp_manager::Error> {
    let m = mp_manager::Manager::new()?;
    let d = m.dict::<u64, u64>()?;
    let l = m.list::<u64>()?;
    let mut err = None;
    let mut i = 0u64;
    let mut rows: Vec<Vec<Duration>> = Vec::new();
    for op in [SET, GET, APPEND] {
        let call = |i: u64| -> Result<(), mp_manager::Error> {
            match op {
                SET => {
                    black_box(d.insert(i % 64, i)?);
                }
                GET => {
                    black_box(d.get(&(i % 64))?);
                }
                _ => {
                    black_box(l.append(i)?);
                }
            }
            Ok(())
        };
        for _ in 0..100 {
            i += 1;
            call(i)?; // warm-up (and the connection's handshake)
        }
        rows.push(cfg.sample(20, 1_000_000, || {
            i += 1;
            time(|| {
                if let Err(e) = call(i) {
                    err = Some(e);
                }
            })
        }));
    }
    m.shutdown()?;
    if let Some(e) = err {
        return Err(e);
    }
    let note = "proxy call: postcard frames over a shared-memory pipe set up on an \
                authenticated Unix socket, to the server process (forkserver), a thread per \
                connection";
    for ((key, name, base), samples) in [
        ("manager/mp-set", "dict set", "set"),
        ("manager/mp-get", "dict get", "get"),
        ("manager/mp-append", "list append", "append"),
    ]
    .into_iter()
    .zip(&rows)
    {
        RowBuilder::new(GROUP, key, name, "mp Manager")
            .baseline(&[
                &format!("manager/raw-{base}"),
                &format!("manager/py-{base}"),
            ])
            .note(note)
            .stats(Unit::Us, Stats::per_op(samples, 1, Unit::Us))
            .emit();
    }
    Ok(())
}

/// One request: op, key, value; returns the reply value.
fn call(fd: RawFd, op: u8, key: u64, value: u64) -> u64 {
    let mut req = [0u8; 17];
    req[0] = op;
    req[1..9].copy_from_slice(&key.to_le_bytes());
    req[9..].copy_from_slice(&value.to_le_bytes());
    write_all(fd, &req).expect("write");
    let mut rep = [0u8; 9];
    read_exact(fd, &mut rep).expect("read");
    assert_eq!(rep[0], 0, "server error");
    u64::from_le_bytes(rep[1..].try_into().expect("8 bytes"))
}

fn serve(fd: RawFd) {
    let mut map = HashMap::<u64, u64>::new();
    let mut list = Vec::<u64>::new();
    loop {
        let mut req = [0u8; 17];
        read_exact(fd, &mut req).expect("read");
        let key = u64::from_le_bytes(req[1..9].try_into().expect("8 bytes"));
        let value = u64::from_le_bytes(req[9..].try_into().expect("8 bytes"));
        let (status, out) = match req[0] {
            SET => (0, map.insert(key, value).unwrap_or(0)),
            GET => map.get(&key).map_or((1, 0), |v| (0, *v)),
            APPEND => {
                list.push(value);
                (0, list.len() as u64)
            }
            _ => (0, 0),
        };
        let mut rep = [status; 9];
        rep[1..].copy_from_slice(&out.to_le_bytes());
        write_all(fd, &rep).expect("write");
        if req[0] == STOP {
            return;
        }
    }
}

fn raw(cfg: &Config) -> io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid out-array of two ints.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            &mut fds[0],
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let [a, b] = fds;
    let r = two_processes(0, |side| {
        if !side.is_parent() {
            serve(b);
            return Vec::new();
        }
        let mut rows: Vec<Vec<Duration>> = Vec::new();
        for op in [SET, GET, APPEND] {
            let mut i = 0u64;
            for _ in 0..100 {
                i += 1;
                call(a, op, i % 64, i);
            }
            rows.push(cfg.sample(20, 1_000_000, || {
                i += 1;
                time(|| {
                    black_box(call(a, op, i % 64, i));
                })
            }));
        }
        call(a, STOP, 0, 0);
        rows
    });
    for fd in fds {
        // SAFETY: both fds were created above and are closed once.
        unsafe { libc::close(fd) };
    }
    let (rows, pin) = r?;
    let note = format!("HashMap/Vec server process over a socketpair, binary frames; {pin}");
    for ((key, name), samples) in [
        ("manager/raw-set", "dict set"),
        ("manager/raw-get", "dict get"),
        ("manager/raw-append", "list append"),
    ]
    .into_iter()
    .zip(&rows)
    {
        RowBuilder::new(GROUP, key, name, "raw socket server")
            .baseline(&["ipc/unix-socket/8"])
            .note(&note)
            .stats(Unit::Us, Stats::per_op(samples, 1, Unit::Us))
            .emit();
    }
    Ok(())
}
