//! The name tracker: unlinks the `SharedMemory` names a program created and
//! left behind, once the program has ended (Python's resource tracker).
//!
//! # The program and its tracker
//!
//! A function in the executable's `.init_array` runs before `main` in every
//! process that links this crate. In the first process of a program (no
//! `MP_SHM_TRACKER` in its environment: the *root*) it sets
//! `MP_SHM_TRACKER=1:PID:START:NONCE:DEV:INO` (protocol version, the root's
//! pid and start time, 128 random bits, and the device and inode of the
//! executable). Every process that inherits the variable belongs to the same
//! program: children started by spawn, forkserver or fork, and anything
//! else started with the environment (a child started with the variable
//! removed is a program of its own).
//!
//! The tracker is a process that listens on the abstract Unix socket
//! `mp-shm-tracker-v1-UID-PID-NONCE` (`SOCK_SEQPACKET`), derived from the
//! variable, so every process of the program finds the same one. It is
//! started lazily, by the first `SharedMemory::create` of the program; a
//! creator that finds nobody listening starts it, and when two start it at
//! once the `bind` decides.
//!
//! # Protocol (version 1)
//!
//! Each message is one datagram:
//!
//! ```text
//! offset  size  field
//!      0     1  b'R' register (answered by one byte b'K') or b'U' unregister
//!      1     8  st_dev of the object (native endian)
//!      9     8  st_ino of the object
//!     17     -  the name without its leading '/', 1-250 bytes
//! ```
//!
//! Each process that registered or attached holds one connection (the
//! *keepalive*) until it exits (an attacher connects only to a tracker that
//! runs, and never waits); a forked child inherits its parent's and opens its own
//! when it registers. A registration goes over a short connection of its
//! own and waits for the acknowledgement, so a creator knows its name is
//! tracked; an unregistration is sent on the keepalive without waiting.
//!
//! # When the program ends
//!
//! The tracker holds a pidfd of the root. When the root has exited and every
//! connection has hung up (every process that registered or attached, and
//! every fork of one, is gone), the tracker unlinks each registered name whose object is
//! still the one registered (same device and inode, so a name that someone
//! re-created is left alone), reports them on stderr, and exits.

mod server;

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The variable that names the program (see the module docs).
pub(crate) const PROGRAM_VAR: &str = "MP_SHM_TRACKER";
/// Set only in the environment of a tracker being started:
/// `ROOT_PIDFD:ADDRESS` (`-1` when there is no pidfd).
const SERVE_VAR: &str = "MP_SHM_TRACKER_SERVE";
/// Protocol version, in the variable and in the socket address: processes
/// built with another version use another tracker.
const PROTOCOL: u32 = 1;

const MSG_REGISTER: u8 = b'R';
const MSG_UNREGISTER: u8 = b'U';
const ACK: u8 = b'K';
/// The longest message: tag, device, inode and a 250-byte name.
const MAX_MSG: usize = 17 + 250;

/// How long a creator waits for the tracker (to start, accept, answer)
/// before it gives up tracking that name.
const TRACKER_TIMEOUT: Duration = Duration::from_secs(10);

/// Set by the hook in every process where it ran.
static HOOK_RAN: AtomicBool = AtomicBool::new(false);

/// This process's keepalive connection: `pid << 32 | fd`, 0 for none. A
/// forked child finds its parent's (another pid) and opens its own when it
/// registers; the inherited one stays open (it is the parent's
/// connection, held by the child too, as Python's tracker pipe is). A
/// descriptor stored here is never closed: another thread may be sending
/// on it.
static KEEPALIVE: AtomicU64 = AtomicU64::new(0);

extern "C" fn hook(_argc: i32, _argv: *const *const u8, _envp: *const *const u8) {
    run_hook();
}

#[used]
#[unsafe(link_section = ".init_array")]
static HOOK: extern "C" fn(i32, *const *const u8, *const *const u8) = hook;

fn run_hook() {
    if HOOK_RAN.swap(true, Ordering::SeqCst) {
        return;
    }
    if let Some(value) = std::env::var_os(SERVE_VAR) {
        // SAFETY: the hook runs before `main`, while the process has a
        // single thread.
        unsafe { std::env::remove_var(SERVE_VAR) };
        if let Some((pidfd, address)) = parse_serve(&value) {
            server::run(pidfd, &address);
        }
    }
    if program().is_none() {
        let p = Program::root();
        // SAFETY: as above, single-threaded before `main`.
        unsafe { std::env::set_var(PROGRAM_VAR, p.encode()) };
    }
}

fn parse_serve(value: &OsStr) -> Option<(RawFd, String)> {
    let (fd, address) = value.to_str()?.split_once(':')?;
    let fd: RawFd = fd.parse().ok()?;
    if !address.starts_with("mp-shm-tracker-") {
        return None;
    }
    Some((fd, address.to_string()))
}

/// The program a process belongs to (from [`PROGRAM_VAR`]).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Program {
    root_pid: u32,
    /// The root's start time (clock ticks since boot), 0 if unknown.
    root_start: u64,
    nonce: u128,
    /// Device and inode of the root's executable, (0, 0) if unknown.
    exe: (u64, u64),
}

impl Program {
    fn root() -> Program {
        let pid = std::process::id();
        Program {
            root_pid: pid,
            root_start: start_time(pid).unwrap_or(0),
            nonce: random_u128(),
            exe: exe_id().unwrap_or((0, 0)),
        }
    }

    fn encode(&self) -> String {
        format!(
            "{PROTOCOL}:{}:{}:{:032x}:{}:{}",
            self.root_pid, self.root_start, self.nonce, self.exe.0, self.exe.1
        )
    }

    fn decode(s: &str) -> Option<Program> {
        let mut it = s.split(':');
        if it.next()?.parse::<u32>().ok()? != PROTOCOL {
            return None;
        }
        let p = Program {
            root_pid: it.next()?.parse().ok()?,
            root_start: it.next()?.parse().ok()?,
            nonce: u128::from_str_radix(it.next()?, 16).ok()?,
            exe: (it.next()?.parse().ok()?, it.next()?.parse().ok()?),
        };
        (it.next().is_none() && p.root_pid != 0).then_some(p)
    }

    /// The tracker's abstract socket name (without the leading NUL).
    fn address(&self) -> String {
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() };
        format!(
            "mp-shm-tracker-v{PROTOCOL}-{uid}-{}-{:032x}",
            self.root_pid, self.nonce
        )
    }
}

fn program() -> Option<Program> {
    Program::decode(std::env::var_os(PROGRAM_VAR)?.to_str()?)
}

fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: writes at most `len - filled` bytes into `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n <= 0 {
            // No entropy source: fall back to the clock and the pid,
            // which still make the name unique on this machine.
            let t = mp_os::time::monotonic_ns() as u128;
            return (t << 64) ^ (std::process::id() as u128) << 32 ^ t.rotate_left(17);
        }
        filled += n as usize;
    }
    u128::from_ne_bytes(buf)
}

/// Field 22 of `/proc/PID/stat`: the process's start time in clock ticks
/// since boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    // after the command: state is field 3, so start time is the 20th here
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

fn exe_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/exe").ok()?;
    Some((m.dev(), m.ino()))
}

/// Whether re-executing this program runs the hook: it ran here, or this
/// is the root's executable, where it ran (a child started by spawn runs
/// its target from another crate's hook, possibly before this one's).
fn may_start_tracker(p: &Program) -> bool {
    HOOK_RAN.load(Ordering::SeqCst) || (p.exe != (0, 0) && exe_id() == Some(p.exe))
}

fn message(tag: u8, name: &str, id: (u64, u64)) -> Vec<u8> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut m = Vec::with_capacity(17 + bare.len());
    m.push(tag);
    m.extend_from_slice(&id.0.to_ne_bytes());
    m.extend_from_slice(&id.1.to_ne_bytes());
    m.extend_from_slice(bare.as_bytes());
    m
}

/// Device and inode of the object behind `fd`.
pub(crate) fn object_id(fd: std::os::fd::BorrowedFd<'_>) -> Option<(u64, u64)> {
    // SAFETY: an all-zero `stat` is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open for the call; `st` is a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

/// Connects this process to the program's tracker, starting it if there is
/// none, before it creates a name: a creator killed between creating the
/// object and registering it leaves the name behind, so that window is kept
/// to one round trip (starting the tracker takes milliseconds).
pub(crate) fn prepare() {
    std::hint::black_box(&HOOK);
    if let Some(program) = program() {
        let _ = keepalive(&program, &program.address());
    }
}

/// Registers a name this process just created, starting the program's
/// tracker if there is none. Returns whether the tracker acknowledged it;
/// on `false` the name is not tracked (no hook in this executable, no
/// program variable, the tracker could not be started or did not answer).
/// The registration travels on this process's keepalive connection (one
/// round trip, no connection of its own).
pub(crate) fn register(name: &str, id: (u64, u64)) -> bool {
    // Referenced from the code that creates names, so that the linker keeps
    // the object that holds the hook.
    std::hint::black_box(&HOOK);
    let Some(program) = program() else {
        return false;
    };
    let address = program.address();
    let msg = message(MSG_REGISTER, name, id);
    for _attempt in 0..3 {
        let Some(held) = keepalive(&program, &address) else {
            return false;
        };
        match request(held, &msg) {
            Ok(()) => return true,
            // A tracker that is alive but does not answer (stopped, or
            // swamped): do not wait for it again.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => {
                // The tracker went away (killed, or it was ending as we
                // connected): drop our claim on it and start again.
                let _ = KEEPALIVE.compare_exchange(held, 0, Ordering::AcqRel, Ordering::Acquire);
            }
        }
    }
    false
}

/// Tells the tracker to forget a name (unlinked, or made persistent).
/// Fire and forget: the tracker reads every message before it notices that
/// a connection hung up.
pub(crate) fn unregister(name: &str, id: (u64, u64)) {
    let held = KEEPALIVE.load(Ordering::Acquire);
    if held == 0 {
        return;
    }
    let fd = held as u32 as RawFd;
    let msg = message(MSG_UNREGISTER, name, id);
    // SAFETY: the keepalive descriptor is never closed (see KEEPALIVE);
    // `msg` is valid for its length.
    unsafe {
        libc::send(fd, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL);
    }
}

/// A process that attaches to a name keeps the program's tracker (if one
/// runs) from ending while it lives: it may hand the name on, or attach
/// again. Never starts a tracker; never waits for a tracker that does not
/// accept at once.
pub(crate) fn hold() {
    let Some(program) = program() else {
        return;
    };
    let me = std::process::id();
    let held = KEEPALIVE.load(Ordering::Acquire);
    if held != 0 && (held >> 32) as u32 == me {
        return;
    }
    if let Ok(sock) = connect(&program.address(), true) {
        store_keepalive(held, sock);
    }
}

/// This process's keepalive connection (opened, and the tracker started,
/// if needed). Returns the value stored in [`KEEPALIVE`].
fn keepalive(program: &Program, address: &str) -> Option<u64> {
    let me = std::process::id();
    let held = KEEPALIVE.load(Ordering::Acquire);
    if held != 0 && (held >> 32) as u32 == me {
        return Some(held);
    }
    let sock = match connect(address, false) {
        Ok(s) => s,
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
            if !may_start_tracker(program) {
                return None;
            }
            start(program, address).ok()?;
            connect(address, false).ok()?
        }
        Err(_) => return None,
    };
    Some(store_keepalive(held, sock))
}

/// Makes `sock` this process's keepalive unless another thread stored one
/// since `held` was read; returns the value now stored.
fn store_keepalive(held: u64, sock: OwnedFd) -> u64 {
    let me = std::process::id();
    let new = (me as u64) << 32 | sock.as_raw_fd() as u32 as u64;
    match KEEPALIVE.compare_exchange(held, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            // From now on the descriptor lives as long as the process.
            let _ = sock.into_raw_fd();
            new
        }
        // Another thread of this process stored one first: use it.
        Err(other) => other,
    }
}

fn sockaddr(address: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // abstract namespace: a leading NUL, then the name (not NUL-terminated)
    let bytes = address.as_bytes();
    let n = bytes.len().min(sa.sun_path.len() - 1);
    for (d, s) in sa.sun_path[1..=n].iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + 1 + n;
    (sa, len as libc::socklen_t)
}

fn seqpacket_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor we just opened and own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_timeout(fd: RawFd, opt: libc::c_int, d: Duration) {
    let tv = libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: `tv` is a valid timeval for the duration of the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
}

/// The uid of the process at the other end of a connected socket.
fn peer_uid(fd: RawFd) -> Option<u32> {
    // SAFETY: an all-zero ucred is valid.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid out-pointers of the right size.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

/// Connects to the tracker, with send and receive timeouts, and checks
/// that it runs as our user (the abstract namespace has no permissions).
/// `at_once`: fail rather than wait when its queue of connections is full.
fn connect(address: &str, at_once: bool) -> io::Result<OwnedFd> {
    let sock = seqpacket_socket()?;
    let wait = if at_once {
        // a unix socket's connect waits for room in the queue at most this
        Duration::from_millis(1)
    } else {
        TRACKER_TIMEOUT
    };
    set_timeout(sock.as_raw_fd(), libc::SO_SNDTIMEO, wait);
    set_timeout(sock.as_raw_fd(), libc::SO_RCVTIMEO, TRACKER_TIMEOUT);
    let (sa, len) = sockaddr(address);
    // SAFETY: `sa` is a valid sockaddr_un of `len` bytes.
    let r = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&sa as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if peer_uid(sock.as_raw_fd()) != Some(me) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the shared memory tracker's socket belongs to another user",
        ));
    }
    if at_once {
        set_timeout(sock.as_raw_fd(), libc::SO_SNDTIMEO, TRACKER_TIMEOUT);
    }
    Ok(sock)
}

/// Sends one registration on this process's keepalive connection `held`
/// (see [`KEEPALIVE`]) and waits for an acknowledgement.
///
/// Several threads may register at once on the one connection: the
/// acknowledgements are alike and each answers one registration, so each
/// thread takes one. An acknowledgement left unread by a thread that timed
/// out answers an earlier registration on the same ordered connection, so
/// the one taken in its place still says the tracker is reading; the
/// registration itself is queued on the connection, which the tracker
/// drains before it notices a hang-up.
fn request(held: u64, msg: &[u8]) -> io::Result<()> {
    let fd = held as u32 as RawFd;
    // SAFETY: the keepalive descriptor is never closed (see KEEPALIVE);
    // `msg` is valid for its length.
    let n = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL) };
    if n != msg.len() as isize {
        return Err(io::Error::last_os_error());
    }
    let mut ack = [0u8; 1];
    // SAFETY: `ack` is a valid 1-byte buffer; the descriptor as above.
    let n = unsafe { libc::recv(fd, ack.as_mut_ptr().cast(), 1, 0) };
    if n == 1 && ack[0] == ACK {
        Ok(())
    } else if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the shared memory tracker hung up",
        ))
    }
}

/// A pidfd of the program's root, if it still runs and is the process
/// the variable names (same start time).
fn root_pidfd(p: &Program) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags; returns a new descriptor
    // (close-on-exec) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.root_pid as libc::pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor we just opened and own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    // Checked after opening: if the root was gone and its pid reused
    // before pidfd_open, the start time differs; if it exits after, the
    // pidfd reports that.
    let same = if p.root_start == 0 {
        p.root_pid == std::process::id()
    } else {
        start_time(p.root_pid) == Some(p.root_start)
    };
    same.then_some(fd)
}

/// Starts the tracker: `posix_spawn`s this executable with [`SERVE_VAR`]
/// set; its hook binds the address, forks the tracker proper and exits, so
/// the tracker is nobody's child here (no zombie) once we reaped it.
fn start(program: &Program, address: &str) -> io::Result<()> {
    let pidfd = root_pidfd(program);
    let raw_pidfd = pidfd.as_ref().map_or(-1, |f| f.as_raw_fd());

    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let argv0 = CString::new("mp-shm-tracker").expect("no NUL");
    let argv1 = CString::new(address).map_err(io::Error::other)?;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.as_bytes();
            k != SERVE_VAR.as_bytes() && !k.starts_with(b"MP_PROC_")
        })
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    env.push(CString::new(format!("{SERVE_VAR}={raw_pidfd}:{address}")).map_err(io::Error::other)?);
    let argv = [argv0.as_ptr(), argv1.as_ptr(), std::ptr::null()];
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());

    let mut pid: libc::pid_t = 0;
    // SAFETY: the structures are initialized by their init functions before
    // use and destroyed afterwards; every pointer passed to posix_spawn
    // points to a NUL-terminated string or array that outlives the call.
    let rc = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawnattr_init(&mut attr);
        if raw_pidfd >= 0 {
            // dup2 onto itself clears FD_CLOEXEC in the child (glibc >= 2.29).
            libc::posix_spawn_file_actions_adddup2(&mut actions, raw_pidfd, raw_pidfd);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawnattr_setsigmask(&mut attr, &empty);
        libc::posix_spawnattr_setflags(&mut attr, libc::POSIX_SPAWN_SETSIGMASK as _);
        let rc = libc::posix_spawn(
            &mut pid,
            exe.as_ptr(),
            &actions,
            &attr,
            argv.as_ptr() as *const *mut libc::c_char,
            envp.as_ptr() as *const *mut libc::c_char,
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        libc::posix_spawnattr_destroy(&mut attr);
        rc
    };
    drop(pidfd);
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    reap_starter(pid)
}

/// Waits for the starter process (it exits as soon as the tracker is
/// listening) and reaps it; kills it if it takes too long.
fn reap_starter(pid: libc::pid_t) -> io::Result<()> {
    let deadline = Instant::now() + TRACKER_TIMEOUT;
    let mut nap = Duration::from_micros(200);
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child by pid.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else {
                Err(io::Error::other("the shared memory tracker did not start"))
            };
        }
        if r < 0 {
            // ECHILD: reaped by someone else (SIGCHLD ignored, or a
            // program-wide reaper): see whether it listens.
            return Ok(());
        }
        if Instant::now() >= deadline {
            // SAFETY: signalling and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the shared memory tracker did not start in time",
            ));
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests;
