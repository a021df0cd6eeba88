//! Group `ipc`: the OS limits for moving a message between two processes.
//!
//! | key | what |
//! |---|---|
//! | `ipc/spin/8` | round trip over two busy-spun atomic words in shared memory (cache-line ping-pong) |
//! | `ipc/futex/8` | round trip with futex wait/wake on two shared words, never spinning |
//! | `ipc/unix-socket/{8,1024,65536,1048576}` | round trip over a `socketpair(AF_UNIX, SOCK_STREAM)` |
//! | `ipc/pipe/8` | round trip over two `pipe(2)`s |
//! | `ipc/ring-stream/8` | one-way stream through a single-producer single-consumer spin ring in shared memory, msg/s |
//! | `ipc/unix-socket-stream/8` | one-way stream of 8-byte `write`s over a socketpair, msg/s |
//! | `ipc/memcpy/64M` | single-threaded `memcpy` of 64 MiB, GB/s |
//! | `ipc/unix-socket-bw/64M` | one 64 MiB message through a socketpair, GB/s |
//!
//!
//! The rows that measure the project's own channels (mp Pipe / Queue per mode) are in
//! [`mp`] (`ipc/mp.rs`).

use std::cell::RefCell;
use std::hint::black_box;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod mp;

use crate::kit::{
    Config, Pinning, RowBuilder, Side, Stats, Unit, futex_wait, futex_wake, read_exact, time,
    two_processes, write_all,
};

const GROUP: &str = "ipc";
/// Sequence number that tells a server to answer once more and return.
pub(crate) const STOP: u32 = u32::MAX;
/// Sizes of the round-trip rows.
pub(crate) const SIZES: [u64; 4] = [8, 1024, 64 * 1024, 1024 * 1024];
const BIG: usize = 64 * 1024 * 1024;

/// Runs every row of the group.
pub(crate) fn run(cfg: &Config) -> Vec<(&'static str, io::Error)> {
    let mut failed = Vec::new();
    let mut row = |name: &'static str, r: io::Result<()>| {
        if let Err(e) = r {
            failed.push((name, e));
        }
    };
    row("spin", spin(cfg));
    row("futex", futex(cfg));
    for size in SIZES {
        row("unix socket", unix_socket(cfg, size));
    }
    row("pipe", pipe(cfg));
    row("ring stream", ring_stream(cfg));
    row("unix socket stream", socket_stream(cfg));
    row("memcpy", memcpy(cfg));
    row("unix socket 64 MiB", socket_bandwidth(cfg));
    mp::run(cfg, &mut row);
    failed
}

/// Runs a ping-pong between two pinned processes. The parent calls `round_trip(side, seq)` (one
/// complete round trip carrying `seq`), timing batches of `batch`, for the configured budget
/// after a warm-up of a tenth of it, then once with [`STOP`]. The child calls `serve(side)`,
/// which answers until it has answered `STOP`. Returns per-batch durations.
pub(crate) fn ping_pong(
    cfg: &Config,
    batch: u32,
    round_trip: impl Fn(&Side<'_>, u32),
    serve: impl Fn(&Side<'_>),
) -> io::Result<(Vec<Duration>, Pinning)> {
    two_processes(0, |side| {
        if !side.is_parent() {
            serve(side);
            return Vec::new();
        }
        let mut seq = 0u32;
        let warm = Instant::now();
        while warm.elapsed() < cfg.budget / 10 {
            seq += 1;
            round_trip(side, seq);
        }
        let samples = cfg.sample(20, 2_000_000, || {
            let t = Instant::now();
            for _ in 0..batch {
                seq += 1;
                round_trip(side, seq);
            }
            t.elapsed()
        });
        round_trip(side, STOP);
        samples
    })
}

/// Busy-waits until `word` satisfies `ok`, returning the value seen.
///
/// # Panics
///
/// After 20 seconds (a dead or stuck peer).
pub(crate) fn spin_until(word: &AtomicU32, ok: impl Fn(u32) -> bool) -> u32 {
    let mut spins = 0u32;
    let mut start = None;
    loop {
        let v = word.load(Ordering::Acquire);
        if ok(v) {
            return v;
        }
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(1 << 20) {
            let t = *start.get_or_insert_with(Instant::now);
            assert!(t.elapsed() < Duration::from_secs(20), "spin: peer stuck");
        }
    }
}

/// Sleeps on the futex `word` until it satisfies `ok` (no spinning), returning the value seen.
///
/// # Panics
///
/// After 20 seconds (a dead or stuck peer).
pub(crate) fn futex_until(word: &AtomicU32, ok: impl Fn(u32) -> bool) -> u32 {
    let mut start = None;
    loop {
        let v = word.load(Ordering::Acquire);
        if ok(v) {
            return v;
        }
        futex_wait(word, v, Duration::from_millis(100));
        let t = *start.get_or_insert_with(Instant::now);
        assert!(t.elapsed() < Duration::from_secs(20), "futex: peer stuck");
    }
}

fn spin(cfg: &Config) -> io::Result<()> {
    let batch = 16;
    let (samples, pin) = ping_pong(
        cfg,
        batch,
        |side, seq| {
            side.shm().word(0).store(seq, Ordering::Release);
            spin_until(side.shm().word(1), |v| v == seq);
        },
        |side| {
            let mut last = 0;
            while last != STOP {
                last = spin_until(side.shm().word(0), |v| v != last);
                side.shm().word(1).store(last, Ordering::Release);
            }
        },
    )?;
    RowBuilder::new(GROUP, "ipc/spin/8", "round trip", "raw spin")
        .size(8)
        .round_trip()
        .note(format!(
            "two AtomicU32 in a MAP_SHARED mapping, busy-spin; {pin}"
        ))
        .note(format!("figures are means of batches of {batch}"))
        .stats(Unit::Us, Stats::per_op(&samples, batch.into(), Unit::Us))
        .emit();
    Ok(())
}

fn futex(cfg: &Config) -> io::Result<()> {
    let (samples, pin) = ping_pong(
        cfg,
        1,
        |side, seq| {
            let (a, b) = (side.shm().word(0), side.shm().word(1));
            a.store(seq, Ordering::Release);
            futex_wake(a, 1);
            futex_until(b, |v| v == seq);
        },
        |side| {
            let (a, b) = (side.shm().word(0), side.shm().word(1));
            let mut last = 0;
            while last != STOP {
                last = futex_until(a, |v| v != last);
                b.store(last, Ordering::Release);
                futex_wake(b, 1);
            }
        },
    )?;
    RowBuilder::new(GROUP, "ipc/futex/8", "round trip", "raw futex")
        .size(8)
        .round_trip()
        .baseline(&["ipc/spin/8"])
        .note(format!(
            "FUTEX_WAIT/FUTEX_WAKE on shared words, no spinning; {pin}"
        ))
        .stats(Unit::Us, Stats::per_op(&samples, 1, Unit::Us))
        .emit();
    Ok(())
}

/// A `socketpair(AF_UNIX, SOCK_STREAM)`, closed on drop.
struct Pair([RawFd; 2]);

impl Pair {
    fn socket() -> io::Result<Self> {
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
        Ok(Self(fds))
    }

    fn pipe() -> io::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: `fds` is a valid out-array of two ints.
        if unsafe { libc::pipe2(&mut fds[0], libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(fds))
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for fd in self.0 {
            // SAFETY: both fds are owned by this pair and closed once.
            unsafe { libc::close(fd) };
        }
    }
}

/// A round trip of one `size`-byte message carrying `seq` in its first bytes: write to `tx`,
/// read the echo from `rx`.
fn fd_round_trip(buf: &RefCell<Vec<u8>>, tx: RawFd, rx: RawFd, seq: u32) {
    let mut buf = buf.borrow_mut();
    buf[..4].copy_from_slice(&seq.to_ne_bytes());
    write_all(tx, &buf).expect("write");
    read_exact(rx, &mut buf).expect("read");
    assert_eq!(buf[..4], seq.to_ne_bytes(), "echo mismatch");
}

/// Echoes messages of `size` bytes from `rx` to `tx` until it has echoed [`STOP`].
fn fd_serve(size: usize, rx: RawFd, tx: RawFd) {
    let mut buf = vec![0u8; size];
    loop {
        read_exact(rx, &mut buf).expect("read");
        write_all(tx, &buf).expect("write");
        if buf[..4] == STOP.to_ne_bytes() {
            return;
        }
    }
}

fn unix_socket(cfg: &Config, size: u64) -> io::Result<()> {
    let pair = Pair::socket()?;
    let [a, b] = pair.0;
    let buf = RefCell::new(vec![0u8; size as usize]);
    let (samples, pin) = ping_pong(
        cfg,
        1,
        |_, seq| fd_round_trip(&buf, a, a, seq),
        |_| fd_serve(size as usize, b, b),
    )?;
    let mut row = RowBuilder::new(
        GROUP,
        &format!("ipc/unix-socket/{size}"),
        "round trip",
        "unix socket",
    )
    .size(size)
    .round_trip();
    if size == 8 {
        row = row.baseline(&["ipc/futex/8"]);
    }
    row.note(format!(
        "socketpair(AF_UNIX, SOCK_STREAM), blocking write + read; {pin}"
    ))
    .stats(Unit::Us, Stats::per_op(&samples, 1, Unit::Us))
    .emit();
    Ok(())
}

fn pipe(cfg: &Config) -> io::Result<()> {
    let (there, back) = (Pair::pipe()?, Pair::pipe()?);
    let buf = RefCell::new(vec![0u8; 8]);
    let (samples, pin) = ping_pong(
        cfg,
        1,
        |_, seq| fd_round_trip(&buf, there.0[1], back.0[0], seq),
        |_| fd_serve(8, there.0[0], back.0[1]),
    )?;
    RowBuilder::new(GROUP, "ipc/pipe/8", "round trip", "pipe")
        .size(8)
        .round_trip()
        .baseline(&["ipc/futex/8"])
        .note(format!("two pipe(2)s, blocking write + read; {pin}"))
        .stats(Unit::Us, Stats::per_op(&samples, 1, Unit::Us))
        .emit();
    Ok(())
}

/// Slots in the raw ring (8-byte messages).
const RING: usize = 4096;
/// The ring's consumer hands slots back in batches of this many (four cache lines), so the
/// producer never writes the cache line the consumer is reading.
const RELEASE_EVERY: u64 = 32;
/// `spin_loop` hints the ring's consumer waits after finding it empty.
const CAUGHT_UP_PAUSE: u32 = 64;

fn ring_stream(cfg: &Config) -> io::Result<()> {
    // Many short rounds: a round that a third process preempts is an outlier, not the median.
    let n: u64 = 200_000;
    let rounds = cfg.pick(100, 20);
    let (samples, pin) = two_processes(RING * 8, |side| {
        let shm = side.shm();
        let (head, tail) = (shm.word64(0), shm.word64(1));
        let slots = shm.data().0.cast::<AtomicU64>();
        // SAFETY: the data area holds RING aligned u64 slots, shared and only used atomically.
        let slot = |i: u64| unsafe { &*slots.add(i as usize % RING) };
        let mut samples = Vec::new();
        let mut pos = 0u64;
        for _ in 0..rounds {
            side.barrier();
            if side.is_parent() {
                // Consumer: times the round from the barrier to the last message.
                let t = Instant::now();
                let mut sum = 0u64;
                let mut seen_head = pos;
                for _ in 0..n {
                    while seen_head == pos {
                        seen_head = head.load(Ordering::Acquire);
                        if seen_head == pos {
                            // Caught up: leave the head's cache line alone for a moment so the
                            // producer can run ahead, instead of pulling it over per message.
                            for _ in 0..CAUGHT_UP_PAUSE {
                                std::hint::spin_loop();
                            }
                        }
                    }
                    sum = sum.wrapping_add(slot(pos).load(Ordering::Relaxed));
                    pos += 1;
                    if pos.is_multiple_of(RELEASE_EVERY) {
                        tail.store(pos, Ordering::Release);
                    }
                }
                tail.store(pos, Ordering::Release);
                samples.push(t.elapsed());
                assert_eq!(sum, (pos - n..pos).sum::<u64>(), "ring lost a message");
            } else {
                let mut seen_tail = pos;
                for _ in 0..n {
                    while pos - seen_tail == RING as u64 {
                        seen_tail = tail.load(Ordering::Acquire);
                        std::hint::spin_loop();
                    }
                    slot(pos).store(pos, Ordering::Relaxed);
                    pos += 1;
                    head.store(pos, Ordering::Release);
                }
            }
        }
        samples
    })?;
    RowBuilder::new(
        GROUP,
        "ipc/ring-stream/8",
        "stream one-way",
        "raw spin ring",
    )
    .size(8)
    .note(format!(
        "SPSC ring of {RING} u64 slots in shared memory, busy-spin both ends, head published \
         per message, slots freed per {RELEASE_EVERY}; {pin}"
    ))
    .note(format!("{n} messages per round"))
    .stats(
        Unit::MsgPerSec,
        Stats::rate(&samples, n as f64, Unit::MsgPerSec),
    )
    .emit();
    Ok(())
}

fn socket_stream(cfg: &Config) -> io::Result<()> {
    let n: u64 = cfg.pick(200_000, 20_000);
    let rounds = cfg.pick(5, 2);
    let pair = Pair::socket()?;
    let [a, b] = pair.0;
    let (samples, pin) = two_processes(0, |side| {
        let mut samples = Vec::new();
        let mut msg = [0u8; 8];
        for _ in 0..rounds {
            side.barrier();
            if side.is_parent() {
                let t = Instant::now();
                for i in 0..n {
                    read_exact(a, &mut msg).expect("read");
                    assert_eq!(u64::from_ne_bytes(msg), i, "stream out of order");
                }
                samples.push(t.elapsed());
            } else {
                for i in 0..n {
                    write_all(b, &i.to_ne_bytes()).expect("write");
                }
            }
        }
        samples
    })?;
    RowBuilder::new(
        GROUP,
        "ipc/unix-socket-stream/8",
        "stream one-way",
        "unix socket",
    )
    .size(8)
    .baseline(&["ipc/ring-stream/8"])
    .note(format!(
        "one write(2) and one read(2) of 8 bytes per message; {pin}"
    ))
    .note(format!("{n} messages per round"))
    .stats(
        Unit::MsgPerSec,
        Stats::rate(&samples, n as f64, Unit::MsgPerSec),
    )
    .emit();
    Ok(())
}

fn memcpy(cfg: &Config) -> io::Result<()> {
    let src = vec![1u8; BIG];
    let mut dst = vec![0u8; BIG];
    dst.copy_from_slice(&src); // fault every page in before timing
    let samples = cfg.sample(3, 200, || {
        time(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    RowBuilder::new(GROUP, "ipc/memcpy/64M", "64 MiB transfer", "memcpy")
        .size(BIG as u64)
        .note("single thread, 64 MiB to 64 MiB, pages faulted in beforehand")
        .stats(Unit::GBps, Stats::rate(&samples, BIG as f64, Unit::GBps))
        .emit();
    Ok(())
}

fn socket_bandwidth(cfg: &Config) -> io::Result<()> {
    let rounds = cfg.pick(8, 2);
    let pair = Pair::socket()?;
    let [a, b] = pair.0;
    let (samples, pin) = two_processes(0, |side| {
        let mut buf = vec![7u8; BIG];
        let mut samples = Vec::new();
        for _ in 0..rounds {
            side.barrier();
            if side.is_parent() {
                let t = Instant::now();
                read_exact(a, &mut buf).expect("read");
                samples.push(t.elapsed());
            } else {
                write_all(b, &buf).expect("write");
            }
        }
        samples
    })?;
    RowBuilder::new(
        GROUP,
        "ipc/unix-socket-bw/64M",
        "64 MiB transfer",
        "unix socket",
    )
    .size(BIG as u64)
    .baseline(&["ipc/memcpy/64M"])
    .note(format!(
        "one 64 MiB write_all / read_exact over a socketpair, default buffers; {pin}"
    ))
    .stats(Unit::GBps, Stats::rate(&samples, BIG as f64, Unit::GBps))
    .emit();
    Ok(())
}
