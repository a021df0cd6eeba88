//! The `ipc` rows that measure the project's own channels (`mp-channel`), next to the OS
//! limits of the parent module and Python's rows.
//!
//! | key | what |
//! |---|---|
//! | `ipc/mp-pipe/{8,1024,65536,1048576}` | duplex `Pipe` round trip, default (adaptive spin) mode, `send_bytes` + `recv_bytes_into` |
//! | `ipc/mp-pipe-nospin/8` | the same with spinning off (`WaitMode::NoSpin`): every wait sleeps on the futex |
//! | `ipc/mp-pipe-busy/8` | the same in busy-poll mode (`WaitMode::BusyPoll`) |
//! | `ipc/mp-queue/{8,1024,65536,1048576}` | round trip over two `Queue<Vec<u8>>`s (serde values, postcard) |
//! | `ipc/mp-queue-bytes/{65536,1048576}` | the same over two `Queue<mp_channel::Bytes>`s (one block, no per-byte serde) |
//! | `ipc/mp-queue-{string,f64,struct}/{1024,65536,1048576}` | the same with payloads as users write them: `String`, `Vec<f64>`, and a struct holding a `Vec<u8>` and a `Vec<f64>` |
//! | `ipc/mp-queue-stream/8` | one-way stream of `u64` through a `Queue<u64>`, msg/s |
//! | `ipc/mp-pipe-stream/8` | one-way stream of 8-byte `send_bytes` through a simplex `Pipe`, msg/s |
//! | `ipc/mp-pipe-bw/64M` | one 64 MiB `send_bytes` through a `Pipe` (larger than its ring: streamed), GB/s |
//! | `ipc/mp-sharedbuf/64M` | one 64 MiB `mp_shm::SharedBuf`, written by the sender, through a `Queue` by handle (put + get, no byte copied), GB/s |

use std::cell::RefCell;
use std::io;
use std::time::Instant;

use mp_channel::{Bytes, Pipe, PipeEnd, Queue, WaitMode};
use mp_shm::SharedBuf;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{BIG, GROUP, SIZES, STOP, ping_pong};
use crate::kit::Config;
use crate::kit::{RowBuilder, Stats, Unit, two_processes};

/// Runs every mp row; failures are reported by name.
pub(crate) fn run(cfg: &Config, row: &mut impl FnMut(&'static str, io::Result<()>)) {
    for size in SIZES {
        row("mp pipe", pipe(cfg, size, WaitMode::Adaptive));
    }
    row("mp pipe no-spin", pipe(cfg, 8, WaitMode::NoSpin));
    row("mp pipe busy-poll", pipe(cfg, 8, WaitMode::BusyPoll));
    for size in SIZES {
        row("mp queue", queue::<Vec<u8>>(cfg, size, QUEUE_VEC));
    }
    for size in SIZES.into_iter().filter(|&s| s >= 65536) {
        row("mp queue bytes", queue::<Bytes>(cfg, size, QUEUE_BYTES));
    }
    for size in SIZES.into_iter().filter(|&s| s >= 1024) {
        row("mp queue string", queue::<String>(cfg, size, QUEUE_STRING));
        row("mp queue f64", queue::<Vec<f64>>(cfg, size, QUEUE_F64));
        row("mp queue struct", queue::<Frame>(cfg, size, QUEUE_STRUCT));
    }
    row("mp queue stream", queue_stream(cfg));
    row("mp pipe stream", pipe_stream(cfg));
    row("mp pipe 64 MiB", pipe_bandwidth(cfg));
    row("mp SharedBuf 64 MiB", shared_buf_transfer(cfg));
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// One round trip of a `buf.len()`-byte message carrying `seq` in its first bytes.
fn pipe_round_trip(end: &PipeEnd, buf: &RefCell<Vec<u8>>, seq: u32) {
    let mut buf = buf.borrow_mut();
    buf[..4].copy_from_slice(&seq.to_ne_bytes());
    end.send_bytes(&buf).expect("send");
    let n = end.recv_bytes_into(&mut buf).expect("recv");
    assert_eq!(n, buf.len());
    assert_eq!(buf[..4], seq.to_ne_bytes(), "echo mismatch");
}

fn pipe_serve(end: &PipeEnd, size: usize) {
    let mut buf = vec![0u8; size];
    loop {
        let n = end.recv_bytes_into(&mut buf).expect("recv");
        end.send_bytes(&buf[..n]).expect("send");
        if buf[..4] == STOP.to_ne_bytes() {
            return;
        }
    }
}

fn pipe(cfg: &Config, size: u64, mode: WaitMode) -> io::Result<()> {
    let capacity = (4 * size as usize).max(64 * 1024).next_power_of_two();
    let (a, b) = Pipe::builder()
        .capacity(capacity)
        .wait_mode(mode)
        .build()
        .map_err(other)?;
    let buf = RefCell::new(vec![0u8; size as usize]);
    let batch: u32 = if size <= 1024 { 16 } else { 1 };
    let (samples, pin) = ping_pong(
        cfg,
        batch,
        |_, seq| pipe_round_trip(&a, &buf, seq),
        |_| pipe_serve(&b, size as usize),
    )?;
    let (key, imp, baseline): (String, &str, Vec<String>) = match mode {
        WaitMode::Adaptive if size == 8 => (
            "ipc/mp-pipe/8".into(),
            "mp Pipe",
            vec![
                "ipc/spin/8".into(),
                "ipc/futex/8".into(),
                "ipc/py-pipe/8".into(),
            ],
        ),
        WaitMode::Adaptive => (
            format!("ipc/mp-pipe/{size}"),
            "mp Pipe",
            vec![
                format!("ipc/unix-socket/{size}"),
                format!("ipc/py-pipe/{size}"),
            ],
        ),
        WaitMode::NoSpin => (
            "ipc/mp-pipe-nospin/8".into(),
            "mp Pipe (no spin)",
            vec!["ipc/futex/8".into()],
        ),
        WaitMode::BusyPoll => (
            "ipc/mp-pipe-busy/8".into(),
            "mp Pipe (busy-poll)",
            vec!["ipc/spin/8".into()],
        ),
    };
    let baseline: Vec<&str> = baseline.iter().map(String::as_str).collect();
    RowBuilder::new(GROUP, &key, "round trip", imp)
        .size(size)
        .round_trip()
        .baseline(&baseline)
        .note(format!(
            "duplex Pipe, {mode:?} mode, send_bytes + recv_bytes_into, ring {capacity} B; {pin}"
        ))
        .stats(Unit::Us, Stats::per_op(&samples, batch.into(), Unit::Us))
        .emit();
    Ok(())
}

/// How a queue row names itself: key prefix, implementation, message type.
struct QueueKind {
    key: &'static str,
    imp: &'static str,
    ty: &'static str,
}

const QUEUE_VEC: QueueKind = QueueKind {
    key: "ipc/mp-queue",
    imp: "mp Queue",
    ty: "Vec<u8>",
};

const QUEUE_BYTES: QueueKind = QueueKind {
    key: "ipc/mp-queue-bytes",
    imp: "mp Queue<Bytes>",
    ty: "Bytes",
};

const QUEUE_STRING: QueueKind = QueueKind {
    key: "ipc/mp-queue-string",
    imp: "mp Queue<String>",
    ty: "String",
};

const QUEUE_F64: QueueKind = QueueKind {
    key: "ipc/mp-queue-f64",
    imp: "mp Queue<Vec<f64>>",
    ty: "Vec<f64>",
};

const QUEUE_STRUCT: QueueKind = QueueKind {
    key: "ipc/mp-queue-struct",
    imp: "mp Queue<Frame>",
    ty: "Frame { seq, label, pixels: Vec<u8>, weights: Vec<f64> }",
};

/// A message of about `size` bytes that carries a sequence number.
pub(crate) trait Payload: Serialize + DeserializeOwned {
    fn make(size: usize, seq: u32) -> Self;
    fn seq(&self) -> u32;
    fn set_seq(&mut self, seq: u32);
}

impl Payload for Vec<u8> {
    fn make(size: usize, seq: u32) -> Self {
        let mut v = vec![0u8; size.max(4)];
        v[..4].copy_from_slice(&seq.to_ne_bytes());
        v
    }
    fn seq(&self) -> u32 {
        u32::from_ne_bytes(self[..4].try_into().expect("4 bytes"))
    }
    fn set_seq(&mut self, seq: u32) {
        self[..4].copy_from_slice(&seq.to_ne_bytes());
    }
}

impl Payload for Bytes {
    fn make(size: usize, seq: u32) -> Self {
        Bytes(Vec::make(size, seq))
    }
    fn seq(&self) -> u32 {
        self.0.seq()
    }
    fn set_seq(&mut self, seq: u32) {
        self.0.set_seq(seq);
    }
}

impl Payload for String {
    fn make(size: usize, seq: u32) -> Self {
        let mut s = format!("{seq:08x}");
        s.extend(std::iter::repeat_n('x', size.saturating_sub(8)));
        s
    }
    fn seq(&self) -> u32 {
        u32::from_str_radix(&self[..8], 16).expect("hex")
    }
    fn set_seq(&mut self, seq: u32) {
        self.replace_range(..8, &format!("{seq:08x}"));
    }
}

impl Payload for Vec<f64> {
    fn make(size: usize, seq: u32) -> Self {
        let mut v = vec![0.5f64; (size / 8).max(1)];
        v[0] = f64::from(seq);
        v
    }
    fn seq(&self) -> u32 {
        self[0] as u32
    }
    fn set_seq(&mut self, seq: u32) {
        self[0] = f64::from(seq);
    }
}

/// A struct as users write them: a header and two large vectors.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Frame {
    seq: u32,
    label: String,
    pixels: Vec<u8>,
    weights: Vec<f64>,
}

impl Payload for Frame {
    fn make(size: usize, seq: u32) -> Self {
        Frame {
            seq,
            label: "frame".into(),
            pixels: vec![7u8; size / 2],
            weights: vec![0.25f64; size / 16],
        }
    }
    fn seq(&self) -> u32 {
        self.seq
    }
    fn set_seq(&mut self, seq: u32) {
        self.seq = seq;
    }
}

fn queue<M: Payload>(cfg: &Config, size: u64, kind: QueueKind) -> io::Result<()> {
    let ring = (4 * size as usize).max(64 * 1024).next_power_of_two();
    let make = || {
        Queue::<M>::builder()
            .ring_bytes(ring)
            .build()
            .map_err(other)
    };
    let (there, back) = (make()?, make()?);
    // One message is reused, as the Vec<u8> round trip reuses its buffer.
    let msg = RefCell::new(Some(M::make(size as usize, 0)));
    let batch: u32 = if size <= 1024 { 16 } else { 1 };
    let (samples, pin) = ping_pong(
        cfg,
        batch,
        |_, seq| {
            let mut m = msg.borrow_mut();
            let mut out = m.take().expect("message");
            out.set_seq(seq);
            there.put(out).expect("put");
            let got = back.get().expect("get");
            assert_eq!(got.seq(), seq, "echo mismatch");
            *m = Some(got);
        },
        |_| loop {
            let m: M = there.get().expect("get");
            let stop = m.seq() == STOP;
            back.put(m).expect("put");
            if stop {
                return;
            }
        },
    )?;
    let baseline = if size == 8 {
        vec![
            "ipc/spin/8".to_string(),
            "ipc/futex/8".into(),
            "ipc/py-queue/8".into(),
        ]
    } else {
        vec![
            format!("ipc/mp-pipe/{size}"),
            format!("ipc/unix-socket/{size}"),
            format!("ipc/py-queue/{size}"),
        ]
    };
    let baseline: Vec<&str> = baseline.iter().map(String::as_str).collect();
    RowBuilder::new(
        GROUP,
        &format!("{}/{size}", kind.key),
        "round trip",
        kind.imp,
    )
    .size(size)
    .round_trip()
    .baseline(&baseline)
    .note(format!(
        "two Queue<{}>, put + get each way, ring {ring} B; {pin}",
        kind.ty
    ))
    .stats(Unit::Us, Stats::per_op(&samples, batch.into(), Unit::Us))
    .emit();
    Ok(())
}

fn queue_stream(cfg: &Config) -> io::Result<()> {
    let n: u64 = cfg.pick(1_000_000, 200_000);
    let rounds = cfg.pick(20, 5);
    let q = Queue::<u64>::builder()
        .ring_bytes(1 << 20)
        .build()
        .map_err(other)?;
    let (samples, pin) = two_processes(0, |side| {
        let mut samples = Vec::new();
        for _ in 0..rounds {
            side.barrier();
            if side.is_parent() {
                let t = Instant::now();
                for i in 0..n {
                    assert_eq!(q.get().expect("get"), i, "stream out of order");
                }
                samples.push(t.elapsed());
            } else {
                for i in 0..n {
                    q.put(i).expect("put");
                }
            }
        }
        samples
    })?;
    RowBuilder::new(GROUP, "ipc/mp-queue-stream/8", "stream one-way", "mp Queue")
        .size(8)
        .baseline(&["ipc/ring-stream/8", "ipc/py-queue-stream/8"])
        .note(format!(
            "Queue<u64>, one producer, one consumer, 1 MiB ring, {n} messages per round; {pin}"
        ))
        .stats(
            Unit::MsgPerSec,
            Stats::rate(&samples, n as f64, Unit::MsgPerSec),
        )
        .emit();
    Ok(())
}

fn pipe_stream(cfg: &Config) -> io::Result<()> {
    let n: u64 = cfg.pick(1_000_000, 200_000);
    let rounds = cfg.pick(20, 5);
    let (rx, tx) = Pipe::builder()
        .duplex(false)
        .capacity(1 << 20)
        .build()
        .map_err(other)?;
    let (samples, pin) = two_processes(0, |side| {
        let mut samples = Vec::new();
        let mut buf = [0u8; 8];
        for _ in 0..rounds {
            side.barrier();
            if side.is_parent() {
                let t = Instant::now();
                for i in 0..n {
                    rx.recv_bytes_into(&mut buf).expect("recv");
                    assert_eq!(u64::from_ne_bytes(buf), i, "stream out of order");
                }
                samples.push(t.elapsed());
            } else {
                for i in 0..n {
                    tx.send_bytes(&i.to_ne_bytes()).expect("send");
                }
            }
        }
        samples
    })?;
    RowBuilder::new(GROUP, "ipc/mp-pipe-stream/8", "stream one-way", "mp Pipe")
        .size(8)
        .baseline(&["ipc/ring-stream/8", "ipc/unix-socket-stream/8"])
        .note(format!(
            "simplex Pipe, send_bytes + recv_bytes_into of 8 bytes, 1 MiB ring, {n} messages per round; {pin}"
        ))
        .stats(
            Unit::MsgPerSec,
            Stats::rate(&samples, n as f64, Unit::MsgPerSec),
        )
        .emit();
    Ok(())
}

fn pipe_bandwidth(cfg: &Config) -> io::Result<()> {
    let rounds = cfg.pick(8, 2);
    let ring = 4 << 20;
    let (rx, tx) = Pipe::builder()
        .duplex(false)
        .capacity(ring)
        .build()
        .map_err(other)?;
    let (samples, pin) = two_processes(0, |side| {
        let mut buf = vec![7u8; BIG];
        let mut samples = Vec::new();
        for _ in 0..rounds {
            side.barrier();
            if side.is_parent() {
                let t = Instant::now();
                let n = rx.recv_bytes_into(&mut buf).expect("recv");
                samples.push(t.elapsed());
                assert_eq!(n, BIG);
            } else {
                tx.send_bytes(&buf).expect("send");
            }
        }
        samples
    })?;
    RowBuilder::new(GROUP, "ipc/mp-pipe-bw/64M", "64 MiB transfer", "mp Pipe")
        .size(BIG as u64)
        .baseline(&[
            "ipc/memcpy/64M",
            "ipc/unix-socket-bw/64M",
            "ipc/py-pipe-bw/64M",
        ])
        .note(format!(
            "one send_bytes of 64 MiB, streamed through a {} MiB ring into recv_bytes_into; {pin}",
            ring >> 20
        ))
        .stats(Unit::GBps, Stats::rate(&samples, BIG as f64, Unit::GBps))
        .emit();
    Ok(())
}

/// A 64 MiB `SharedBuf` through a `Queue`: the sender fills a fresh buffer before the start
/// barrier, then puts it; the receiver's time runs from the barrier until `get` returns the
/// buffer mapped (it checks the first and last byte).
fn shared_buf_transfer(cfg: &Config) -> io::Result<()> {
    let rounds = cfg.pick(8, 2);
    let q = Queue::<SharedBuf>::new().map_err(other)?;
    let (samples, pin) = two_processes(0, |side| {
        let mut samples = Vec::new();
        for round in 0..rounds {
            if side.is_parent() {
                side.barrier();
                let t = Instant::now();
                let buf = q.get().expect("get");
                samples.push(t.elapsed());
                assert_eq!((buf.len(), buf[0], buf[BIG - 1]), (BIG, round as u8, 7));
            } else {
                let mut buf = SharedBuf::new(BIG).expect("SharedBuf");
                buf.fill(7);
                buf[0] = round as u8;
                side.barrier();
                q.put(buf).expect("put");
            }
        }
        samples
    })?;
    RowBuilder::new(
        GROUP,
        "ipc/mp-sharedbuf/64M",
        "64 MiB transfer",
        "mp SharedBuf by handle",
    )
    .size(BIG as u64)
    .baseline(&["ipc/mp-pipe-bw/64M", "ipc/memcpy/64M"])
    .note(format!(
        "a 64 MiB mp_shm::SharedBuf filled by the sender, put into a Queue and got: the \
             message carries its handle, the receiver maps the same pages; {pin}"
    ))
    .stats(Unit::GBps, Stats::rate(&samples, BIG as f64, Unit::GBps))
    .emit();
    Ok(())
}
