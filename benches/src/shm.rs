//! Group `shm`: the life of a named shared-memory block.
//!
//! | key | what |
//! |---|---|
//! | `shm/raw-1m` | `shm_open(O_CREAT \| O_EXCL)` + `ftruncate` + `mmap` of 1 MiB, a second `shm_open` + `fstat` + `mmap` by name, both unmapped and closed, `shm_unlink` |
//! | `shm/mp-1m` | `mp_shm::SharedMemory::create(name, 1 MiB)` + `attach(name)` + `close()` of both + `unlink()` |
//!
//! The pages are never touched: the rows measure the system calls and the bookkeeping (the
//! `mp` row registers the name with the program's tracker process, as Python's
//! `SharedMemory` does with its resource tracker; `python/shm.py` is the Python twin). Every
//! name is unlinked, also when a step fails.

use std::ffi::CString;
use std::hint::black_box;
use std::io;

use crate::kit::{Config, RowBuilder, Stats, Unit, time};

const GROUP: &str = "shm";
/// Size of the block.
const SIZE: usize = 1 << 20;

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    let mut failed = Vec::new();
    if let Err(e) = raw(cfg) {
        failed.push(("raw-1m", e));
    }
    if let Err(e) = mp(cfg) {
        failed.push(("mp-1m", e));
    }
    failed
}

/// A name of this process's `seq`-th block.
fn name(kind: &str, seq: u64) -> String {
    format!("mp-bench-{kind}-{}-{seq}", std::process::id())
}

/// One create + attach + close + unlink with `mp_shm`.
fn mp_once(seq: u64) -> io::Result<()> {
    let name = name("mp", seq);
    // The creating handle unlinks the name when it drops, so an early return leaves no name
    // behind.
    let a = mp_shm::SharedMemory::create(&name, SIZE).map_err(io::Error::other)?;
    let b = mp_shm::SharedMemory::attach(&name).map_err(io::Error::other)?;
    b.close();
    a.unlink().map_err(io::Error::other)?;
    a.close();
    Ok(())
}

fn mp(cfg: &Config) -> io::Result<()> {
    let mut seq = 0u64;
    let mut once = || {
        seq += 1;
        mp_once(seq)
    };
    for _ in 0..20 {
        once()?; // warm-up (starts the tracker)
    }
    let mut err = None;
    let samples = cfg.sample(20, 1_000_000, || {
        time(|| {
            if let Err(e) = once() {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    RowBuilder::new(
        GROUP,
        "shm/mp-1m",
        "create + attach + close + unlink",
        "mp SharedMemory",
    )
    .size(SIZE as u64)
    .baseline(&["shm/raw-1m", "shm/py-1m"])
    .note(
        "SharedMemory::create(name, 1 MiB), attach(name), close() x2, unlink(); the name \
         registered with the tracker",
    )
    .stats(Unit::Us, Stats::per_op(&samples, 1, Unit::Us))
    .emit();
    Ok(())
}

/// An open descriptor, closed on drop.
struct Fd(libc::c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by this process and is closed once.
        unsafe { libc::close(self.0) };
    }
}

/// A mapping, unmapped on drop.
struct Map(*mut libc::c_void, usize);

impl Map {
    fn new(fd: &Fd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of an open descriptor; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.0,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(p, len))
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; nothing borrows it.
        unsafe { libc::munmap(self.0, self.1) };
    }
}

/// A name, unlinked on drop.
struct Name(CString);

impl Drop for Name {
    fn drop(&mut self) {
        // SAFETY: a NUL-terminated name.
        unsafe { libc::shm_unlink(self.0.as_ptr()) };
    }
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// One create + attach + close + unlink with libc alone.
fn raw_once(seq: u64) -> io::Result<()> {
    let cname = CString::new(format!("/{}", name("raw", seq))).map_err(io::Error::other)?;
    let path = cname.as_ptr();
    // SAFETY: a NUL-terminated name; the descriptor is owned by `Fd` at once.
    let a = Fd(check(unsafe {
        libc::shm_open(
            path,
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    })?);
    let name = Name(cname);
    // SAFETY: `a` is an open descriptor.
    check(unsafe { libc::ftruncate(a.0, SIZE as libc::off_t) })?;
    let ma = Map::new(&a, SIZE)?;
    // SAFETY: as above.
    let b = Fd(check(unsafe {
        libc::shm_open(name.0.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0)
    })?);
    // SAFETY: an all-zero `stat` is a valid value; `b` is an open descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer.
    check(unsafe { libc::fstat(b.0, &mut st) })?;
    let mb = Map::new(&b, st.st_size as usize)?;
    black_box((&ma, &mb));
    drop((mb, b, ma, a));
    drop(name);
    Ok(())
}

fn raw(cfg: &Config) -> io::Result<()> {
    let mut seq = 0u64;
    for _ in 0..20 {
        seq += 1;
        raw_once(seq)?;
    }
    let mut err = None;
    let samples = cfg.sample(20, 1_000_000, || {
        seq += 1;
        time(|| {
            if let Err(e) = raw_once(seq) {
                err = Some(e);
            }
        })
    });
    if let Some(e) = err {
        return Err(e);
    }
    RowBuilder::new(
        GROUP,
        "shm/raw-1m",
        "create + attach + close + unlink",
        "raw shm_open + mmap",
    )
    .size(SIZE as u64)
    .note(
        "shm_open(O_CREAT|O_EXCL) + ftruncate + mmap, shm_open + fstat + mmap, munmap + close \
         x2, shm_unlink",
    )
    .stats(Unit::Us, Stats::per_op(&samples, 1, Unit::Us))
    .emit();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exists(kind: &str, seq: u64) -> bool {
        std::path::Path::new("/dev/shm")
            .join(name(kind, seq))
            .exists()
    }

    #[test]
    fn every_name_is_unlinked() {
        for seq in 1_000_001..1_000_004 {
            raw_once(seq).unwrap();
            mp_once(seq).unwrap();
            assert!(!exists("raw", seq) && !exists("mp", seq));
        }
    }

    #[test]
    fn a_taken_name_fails_and_stays_its_owners() {
        let seq = 2_000_001;
        let theirs = mp_shm::SharedMemory::create(&name("raw", seq), 4096).unwrap();
        assert!(raw_once(seq).is_err());
        assert!(exists("raw", seq));
        theirs.unlink().unwrap();
        let theirs = mp_shm::SharedMemory::create(&name("mp", seq), 4096).unwrap();
        assert!(mp_once(seq).is_err());
        assert!(exists("mp", seq));
        theirs.unlink().unwrap();
        assert!(!exists("raw", seq) && !exists("mp", seq));
    }
}
