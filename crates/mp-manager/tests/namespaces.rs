//! A TCP manager between two hosts: the server and its clients run in two
//! network namespaces that this test creates, joined by a veth pair with
//! private addresses, so every request crosses a real interface. Checked:
//! the right and a wrong key, proxies of every built-in kind, a proxy
//! published on one side and used on the other, and a client whose link is
//! cut while it holds a lock (the server's keepalive releases the lock
//! within its peer timeout, while the client still lives). Prints the
//! round-trip time of a request across the veth.
//!
//! Needs root and `ip netns` (iproute2); skipped with the reason printed
//! otherwise. Traffic goes only to addresses inside the two namespaces, and
//! the namespaces (with the veth pair in them) are deleted however the test
//! ends.

use std::fs::File;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::{Duration, Instant};

use mp_manager::{Error, LockProxy, Manager};
use mp_proc::Process;
use mp_shm::Value;
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

const KEY: &[u8] = b"a key both hosts were given";
const SERVER_IP: &str = "10.231.0.1";
const CLIENT_IP: &str = "10.231.0.2";
const PORT: u16 = 7031;
/// The server's peer timeout: how long it gives a client that stopped
/// answering before it releases what the client held.
const PEER_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous bound for anything that should take well under a second.
const LONG: Duration = Duration::from_secs(60);

/// Runs `ip` with `args`; its error output if it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip`: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two network namespaces, "server" and "client", joined by a veth pair:
/// `SERVER_IP/30` on the server's end, `CLIENT_IP/30` on the client's.
/// Dropping it deletes both namespaces (and so the pair).
struct Hosts {
    server: String,
    client: String,
    client_if: String,
}

impl Hosts {
    /// The two hosts, or why they cannot be made here.
    fn create() -> Result<Hosts, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("needs root to create network namespaces".into());
        }
        let id = std::process::id();
        let hosts = Hosts {
            server: format!("mp-mgr-srv-{id}"),
            client: format!("mp-mgr-cli-{id}"),
            client_if: format!("mpc{id}"),
        };
        // From here on, a failure still deletes what was made (drop).
        let server_if = format!("mps{id}");
        let (s, c, cif) = (&hosts.server, &hosts.client, &hosts.client_if);
        ip(&["netns", "add", s])?;
        ip(&["netns", "add", c])?;
        ip(&[
            "link", "add", &server_if, "netns", s, "type", "veth", "peer", "name", cif, "netns", c,
        ])?;
        for (ns, dev, addr) in [(s, &server_if, SERVER_IP), (c, cif, CLIENT_IP)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/30"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// Takes the client's end of the link down: nothing more passes in
    /// either direction, and no FIN or RST tells the server.
    fn cut_link(&self) {
        ip(&["-n", &self.client, "link", "set", &self.client_if, "down"]).unwrap();
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cleanup: {e}");
            }
        }
    }
}

/// A child process killed (and reaped) however the test ends.
struct Killed<R: serde::Serialize + serde::de::DeserializeOwned + 'static>(Process<R>);

impl<R: serde::Serialize + serde::de::DeserializeOwned + 'static> Drop for Killed<R> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.join_timeout(LONG);
    }
}

/// Moves the calling thread, and the threads it starts afterwards, into the
/// network namespace `ns`.
fn enter(ns: &str) {
    let f = File::open(format!("/var/run/netns/{ns}")).unwrap();
    move_into_link_name_space(f.as_fd(), Some(LinkNameSpaceType::Network)).unwrap();
}

fn server_addr() -> String {
    format!("{SERVER_IP}:{PORT}")
}

/// Connects with `key`, retrying while the server is not listening yet.
fn connect(key: &[u8]) -> Result<Manager, Error> {
    let t = Instant::now();
    loop {
        match Manager::connect(server_addr().as_str(), key.to_vec()) {
            Err(Error::Io { .. } | Error::ServerGone) if t.elapsed() < LONG => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => return other,
        }
    }
}

/// The server host: serves until killed.
fn serve(ns: String) {
    enter(&ns);
    Manager::builder()
        .tcp(server_addr().as_str())
        .unwrap()
        .authkey(KEY.to_vec())
        .peer_timeout(PEER_TIMEOUT)
        .serve_forever()
        .unwrap();
}

/// A client host: one proxy of every built-in kind, each used once.
fn every_kind(ns: String) {
    enter(&ns);
    let m = connect(KEY).unwrap();
    let d = m.dict::<String, u32>().unwrap();
    d.insert("a".into(), 1).unwrap();
    assert_eq!(d.get(&"a".into()).unwrap(), Some(1));
    let l = m.list_from(vec![3, 1, 2]).unwrap();
    l.append(0).unwrap();
    l.sort().unwrap();
    assert_eq!(l.to_vec().unwrap(), [0, 1, 2, 3]);
    let n = m.namespace().unwrap();
    n.set("x", &42u8).unwrap();
    assert_eq!(n.get::<u8>("x").unwrap(), 42);
    let v = m.value(5i64).unwrap();
    assert_eq!(v.set(6).unwrap(), 5);
    assert_eq!(v.get().unwrap(), 6);
    let q = m.queue::<String>().unwrap();
    q.put("job".into()).unwrap();
    assert_eq!(q.get_timeout(LONG).unwrap(), "job");
    let jq = m.joinable_queue::<u8>().unwrap();
    jq.put(1).unwrap();
    assert_eq!(jq.get().unwrap(), 1);
    jq.task_done().unwrap();
    jq.join_timeout(LONG).unwrap();
    let lock = m.lock().unwrap();
    let g = lock.acquire().unwrap();
    assert!(lock.try_acquire().unwrap().is_none());
    drop(g);
    assert!(lock.try_acquire().unwrap().is_some());
    let r = m.rlock().unwrap();
    let outer = r.acquire().unwrap();
    let inner = r.acquire().unwrap();
    drop(inner);
    drop(outer);
    let s = m.semaphore(2).unwrap();
    let units = (s.acquire().unwrap(), s.acquire().unwrap());
    assert!(s.try_acquire().unwrap().is_none());
    drop(units);
    let e = m.event().unwrap();
    e.set().unwrap();
    assert!(e.wait_timeout(LONG).unwrap());
    let c = m.condition().unwrap();
    let g = c.acquire().unwrap();
    g.notify_all().unwrap();
    assert!(
        !g.wait_timeout(Duration::from_millis(50)).unwrap(),
        "nobody notifies"
    );
    g.release().unwrap();
    let b = m.barrier(1).unwrap();
    b.wait_timeout(LONG).unwrap();
}

/// A client host with the wrong key: refused.
fn wrong_key(ns: String) -> bool {
    enter(&ns);
    drop(connect(KEY).unwrap()); // the server is up
    matches!(connect(b"not the key"), Err(Error::Auth(_)))
}

/// A client host: the round-trip times of `n` reads of a value, in
/// nanoseconds, sorted.
fn round_trips((ns, n): (String, usize)) -> Vec<u64> {
    enter(&ns);
    let m = connect(KEY).unwrap();
    let v = m.value(7u64).unwrap();
    for _ in 0..200 {
        v.get().unwrap();
    }
    let mut times: Vec<u64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(v.get().unwrap(), 7);
            t.elapsed().as_nanos() as u64
        })
        .collect();
    times.sort_unstable();
    times
}

/// A client host that takes a lock, publishes it, says so, and holds it.
fn hold_lock((ns, ready): (String, Value<u32>)) {
    enter(&ns);
    let m = connect(KEY).unwrap();
    let lock = m.lock().unwrap();
    m.publish("held", &lock).unwrap();
    let _g = lock.acquire().unwrap();
    ready.set(1);
    std::thread::sleep(Duration::from_secs(600));
}

/// On the server's host: takes the published lock, waiting at most `LONG`.
fn take_lock(ns: String) -> bool {
    enter(&ns);
    let m = connect(KEY).unwrap();
    let lock: LockProxy = m.lookup("held").unwrap();
    lock.acquire_timeout(LONG).unwrap().is_some()
}

#[test]
fn a_manager_across_two_network_namespaces() {
    let hosts = match Hosts::create() {
        Ok(h) => h,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let server = Process::new(serve, hosts.server.clone());
    server.start().unwrap();
    let server = Killed(server);

    let p = Process::new(every_kind, hosts.client.clone());
    p.start().unwrap();
    p.join().unwrap();

    let p = Process::new(wrong_key, hosts.client.clone());
    p.start().unwrap();
    assert!(p.join().unwrap(), "a wrong key was not refused");

    let p = Process::new(round_trips, (hosts.client.clone(), 2000));
    p.start().unwrap();
    let t = p.join().unwrap();
    eprintln!(
        "round trip of a value read across the veth ({CLIENT_IP} -> {SERVER_IP}), \
         {} calls: median {:.1} us, p90 {:.1} us, min {:.1} us",
        t.len(),
        t[t.len() / 2] as f64 / 1e3,
        t[t.len() * 9 / 10] as f64 / 1e3,
        t[0] as f64 / 1e3,
    );

    // A client whose link is cut while it holds a lock.
    let ready = Value::new(0u32).unwrap();
    let holder = Process::new(hold_lock, (hosts.client.clone(), ready.clone()));
    holder.start().unwrap();
    let holder = Killed(holder);
    let t = Instant::now();
    while ready.get() == 0 {
        assert!(t.elapsed() < LONG, "the holder never took the lock");
        assert!(
            holder.0.is_alive(),
            "the holder died: {:?}",
            holder.0.exitcode()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    hosts.cut_link();
    let cut = Instant::now();
    let p = Process::new(take_lock, hosts.server.clone());
    p.start().unwrap();
    assert!(
        p.join().unwrap(),
        "the cut-off client's lock was never released"
    );
    eprintln!(
        "the lock of the cut-off client was free {:.1} s after the cut (peer timeout {PEER_TIMEOUT:?})",
        cut.elapsed().as_secs_f64()
    );
    assert!(
        holder.0.is_alive(),
        "released by keepalive, not by the holder's death"
    );

    drop(holder);
    drop(server);
    drop(hosts);
}
