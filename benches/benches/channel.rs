//! criterion benchmarks of mp-channel between two processes, with the raw
//! baselines measured in the same run: a cache-line spin ping-pong and a
//! futex ping-pong over shared memory, and an in-process memcpy.
//!
//! `cargo bench -p mp-benches --bench channel`
//!
//! Every benchmark forks its own echo/stream child (criterion runs on one
//! thread), which leaves when the parent drops its end.

use std::hint::black_box;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mp_channel::{Pipe, PipeEnd, Queue, WaitMode};
use mp_os::segment::Segment;
use mp_testkit::Child;

/// A forked child running `f`; mp-testkit kills and reaps it on drop.
fn spawn(f: impl FnOnce()) -> Child {
    mp_testkit::fork(|| {
        f();
        0
    })
}

/// Two words on separate cache lines of a shared segment.
fn words() -> (Segment, &'static AtomicU64, &'static AtomicU64) {
    let seg = Segment::anonymous("bench-pingpong", 4096).unwrap();
    // SAFETY: the segment is 4096 bytes, page aligned, zeroed, and kept
    // alive (returned) for as long as the references are used.
    let (a, b) = unsafe {
        (
            &*seg.as_ptr().cast::<AtomicU64>(),
            &*seg.as_ptr().add(128).cast::<AtomicU64>(),
        )
    };
    (seg, a, b)
}

fn baselines(c: &mut Criterion) {
    let mut g = c.benchmark_group("baseline");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    // Raw cache-line spin ping-pong.
    {
        let (_seg, ping, pong) = words();
        let child = spawn(|| {
            let mut last = 0;
            loop {
                let v = ping.load(Ordering::Acquire);
                if v == u64::MAX {
                    return;
                }
                if v != last {
                    last = v;
                    pong.store(v, Ordering::Release);
                }
                std::hint::spin_loop();
            }
        });
        let mut i = 0u64;
        g.bench_function("spin_pingpong_rtt", |b| {
            b.iter(|| {
                i += 1;
                ping.store(i, Ordering::Release);
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
            })
        });
        ping.store(u64::MAX, Ordering::Release);
        drop(child);
    }
    // Raw futex ping-pong (always wake, always sleep).
    {
        let seg = Segment::anonymous("bench-futex", 4096).unwrap();
        // SAFETY: as in `words`.
        let (ping, pong) = unsafe {
            (
                &*seg.as_ptr().cast::<AtomicU32>(),
                &*seg.as_ptr().add(128).cast::<AtomicU32>(),
            )
        };
        let never = mp_os::time::Deadline::never();
        let child = spawn(|| {
            let mut last = 0;
            loop {
                let v = ping.load(Ordering::Acquire);
                if v == u32::MAX {
                    return;
                }
                if v == last {
                    mp_os::futex::wait(ping, last, never);
                    continue;
                }
                last = v;
                pong.store(v, Ordering::Release);
                mp_os::futex::wake(pong, 1);
            }
        });
        let mut i = 0u32;
        g.bench_function("futex_pingpong_rtt", |b| {
            b.iter(|| {
                i += 1;
                ping.store(i, Ordering::Release);
                mp_os::futex::wake(ping, 1);
                loop {
                    let v = pong.load(Ordering::Acquire);
                    if v == i {
                        break;
                    }
                    mp_os::futex::wait(pong, v, never);
                }
            })
        });
        ping.store(u32::MAX, Ordering::Release);
        mp_os::futex::wake(ping, 1);
        drop(child);
    }
    // memcpy of 64 MiB (the bandwidth reference for big messages).
    {
        let src = vec![1u8; 64 << 20];
        let mut dst = vec![0u8; 64 << 20];
        g.throughput(Throughput::Bytes(64 << 20));
        g.bench_function("memcpy_64MiB", |b| {
            b.iter(|| dst.copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

fn echo_child(end: PipeEnd) -> Child {
    spawn(move || {
        let mut buf = vec![0u8; 1 << 20];
        while let Ok(n) = end.recv_bytes_into(&mut buf) {
            if end.send_bytes(&buf[..n]).is_err() {
                return;
            }
        }
    })
}

fn pipe_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipe_rtt");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for (name, mode) in [
        ("default", WaitMode::Adaptive),
        ("nospin", WaitMode::NoSpin),
        ("busypoll", WaitMode::BusyPoll),
    ] {
        let (a, b) = Pipe::builder().wait_mode(mode).build().unwrap();
        let child = echo_child(b);
        let msg = [7u8; 8];
        let mut buf = [0u8; 64];
        g.bench_function(BenchmarkId::new("bytes_8B", name), |bn| {
            bn.iter(|| {
                a.send_bytes(&msg).unwrap();
                a.recv_bytes_into(&mut buf).unwrap()
            })
        });
        drop(a);
        drop(child);
    }
    // Typed u64 (postcard) in default mode.
    {
        let (a, b) = pipe().unwrap();
        let child = spawn(move || {
            while let Ok(v) = b.recv::<u64>() {
                if b.send(&v).is_err() {
                    return;
                }
            }
        });
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("u64", "default"), |bn| {
            bn.iter(|| {
                i += 1;
                a.send(&i).unwrap();
                a.recv::<u64>().unwrap()
            })
        });
        drop(a);
        drop(child);
    }
    // Payload sizes (default mode).
    for size in [1usize << 10, 64 << 10] {
        let (a, b) = pipe().unwrap();
        let child = echo_child(b);
        let msg = vec![3u8; size];
        let mut buf = vec![0u8; size];
        g.throughput(Throughput::Bytes(size as u64 * 2));
        g.bench_function(BenchmarkId::new("bytes", size), |bn| {
            bn.iter(|| {
                a.send_bytes(&msg).unwrap();
                a.recv_bytes_into(&mut buf).unwrap()
            })
        });
        drop(a);
        drop(child);
    }
    g.finish();
}

fn pipe() -> Result<(PipeEnd, PipeEnd), mp_channel::Error> {
    mp_channel::pipe()
}

fn queue_round_trip(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue_rtt");
    g.sample_size(20).measurement_time(Duration::from_secs(3));
    for (name, mode) in [
        ("default", WaitMode::Adaptive),
        ("nospin", WaitMode::NoSpin),
        ("busypoll", WaitMode::BusyPoll),
    ] {
        let req = Queue::<u64>::builder().wait_mode(mode).build().unwrap();
        let rep = Queue::<u64>::builder().wait_mode(mode).build().unwrap();
        let (req2, rep2) = (req.clone(), rep.clone());
        // The child stops on u64::MAX (queues never look abandoned while
        // this process holds handles).
        let child = spawn(move || {
            while let Ok(v) = req2.get() {
                if v == u64::MAX || rep2.put(v).is_err() {
                    return;
                }
            }
        });
        let mut i = 0u64;
        g.bench_function(BenchmarkId::new("u64", name), |bn| {
            bn.iter(|| {
                i += 1;
                req.put(i).unwrap();
                rep.get().unwrap()
            })
        });
        req.put(u64::MAX).unwrap();
        drop(child);
    }
    g.finish();
}

/// A child that streams on request: it receives a count n on `ctl`, then
/// sends n values (or n messages of `size` bytes) on `data`.
fn streamer(ctl: PipeEnd, data: PipeEnd, size: usize) -> Child {
    spawn(move || {
        let payload = vec![5u8; size];
        while let Ok(n) = ctl.recv::<u64>() {
            for i in 0..n {
                let r = if size == 0 {
                    data.send(&i)
                } else {
                    data.send_bytes(&payload)
                };
                if r.is_err() {
                    return;
                }
            }
        }
    })
}

fn stream(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    // One-way u64 stream, one producer one consumer.
    {
        let (ctl_a, ctl_b) = pipe().unwrap();
        let (rx, tx) = Pipe::builder()
            .duplex(false)
            .capacity(1 << 20)
            .build()
            .unwrap();
        let child = streamer(ctl_b, tx, 0);
        const N: u64 = 100_000;
        g.throughput(Throughput::Elements(N));
        g.bench_function("u64_pipe", |bn| {
            bn.iter(|| {
                ctl_a.send(&N).unwrap();
                let mut s = 0u64;
                for _ in 0..N {
                    s = s.wrapping_add(rx.recv::<u64>().unwrap());
                }
                s
            })
        });
        drop(ctl_a);
        drop(rx);
        drop(child);
    }
    // 64 MiB messages (bytes path).
    for ring in [1usize << 20, 8 << 20] {
        let (ctl_a, ctl_b) = pipe().unwrap();
        let (rx, tx) = Pipe::builder()
            .duplex(false)
            .capacity(ring)
            .build()
            .unwrap();
        let child = streamer(ctl_b, tx, 64 << 20);
        let mut buf = vec![0u8; 64 << 20];
        g.throughput(Throughput::Bytes(64 << 20));
        g.bench_function(BenchmarkId::new("bytes_64MiB_ring", ring >> 20), |bn| {
            bn.iter_custom(|iters| {
                ctl_a.send(&iters).unwrap();
                let t = Instant::now();
                for _ in 0..iters {
                    rx.recv_bytes_into(&mut buf).unwrap();
                }
                t.elapsed()
            })
        });
        drop(ctl_a);
        drop(rx);
        drop(child);
    }
    g.finish();
}

criterion_group!(
    benches,
    baselines,
    pipe_round_trip,
    queue_round_trip,
    stream
);
criterion_main!(benches);
