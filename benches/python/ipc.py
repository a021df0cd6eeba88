"""Group ipc: multiprocessing Pipe and Queue round trips, a one-way Queue stream and a 64 MiB
message through a Pipe, for `cargo xtask bench` (rows: see benches/README.md)."""

import multiprocessing as mp
import time

import _rows

GROUP = "ipc"
SIZES = [8, 1024, 64 * 1024, 1024 * 1024]
BIG = 64 * 1024 * 1024


def pipe_echo(conn):
    while True:
        m = conn.recv()
        conn.send(m)
        if m is None:
            return


def queue_echo(qin, qout):
    while True:
        m = qin.get()
        qout.put(m)
        if m is None:
            return


def producer(q, n, start):
    msg = b"12345678"
    start.wait()
    for _ in range(n):
        q.put(msg)
    q.put(None)


def big_sender(conn):
    buf = bytes(BIG)
    while conn.recv() is not None:
        conn.send_bytes(buf)


def round_trips(args, send, recv, size):
    msg = b"x" * size
    end = time.perf_counter() + args.budget / 10
    while time.perf_counter() < end:  # warm-up
        send(msg)
        recv()

    def one():
        t = _rows.perf_ns()
        send(msg)
        recv()
        return _rows.perf_ns() - t

    return _rows.sample(args, one, min_n=20)


def pipe_rows(args):
    a, b = mp.Pipe()
    p = mp.Process(target=pipe_echo, args=(b,))
    p.start()
    for size in SIZES:
        s = round_trips(args, a.send, a.recv, size)
        _rows.emit(GROUP, f"ipc/py-pipe/{size}", "round trip", "python Pipe", "us", s,
                   size=size, round_trip=True, baseline=[f"ipc/unix-socket/{size}"],
                   note="duplex Pipe (socketpair), send/recv of a bytes object (pickled)")
    a.send(None)
    a.recv()
    p.join()


def queue_rows(args):
    qin, qout = mp.Queue(), mp.Queue()
    p = mp.Process(target=queue_echo, args=(qin, qout))
    p.start()
    for size in SIZES:
        s = round_trips(args, qin.put, qout.get, size)
        _rows.emit(GROUP, f"ipc/py-queue/{size}", "round trip", "python Queue", "us", s,
                   size=size, round_trip=True,
                   baseline=[f"ipc/unix-socket/{size}", f"ipc/py-pipe/{size}"],
                   note="two Queues, put/get of a bytes object (feeder thread, pipe, pickle)")
    qin.put(None)
    qout.get()
    p.join()


def stream_rows(args):
    n = _rows.pick(args, 200_000, 20_000)
    rounds = _rows.pick(args, 3, 1)
    rates = []
    for _ in range(rounds):
        q, start = mp.Queue(), mp.Event()
        p = mp.Process(target=producer, args=(q, n, start))
        p.start()
        t = _rows.perf_ns()
        start.set()
        got = 0
        while q.get() is not None:
            got += 1
        rates.append(got / ((_rows.perf_ns() - t) / 1e9))
        p.join()
    _rows.emit(GROUP, "ipc/py-queue-stream/8", "stream one-way", "python Queue", "msg/s",
               rates, size=8, rate=True,
               baseline=["ipc/unix-socket-stream/8", "ipc/ring-stream/8"],
               note=f"one producer process put()s {n} 8-byte bytes objects, main get()s them")


def bandwidth_rows(args):
    a, b = mp.Pipe()
    p = mp.Process(target=big_sender, args=(b,))
    p.start()
    a.send(1)
    a.recv_bytes()  # warm-up

    def one():
        t = _rows.perf_ns()
        a.send(1)
        data = a.recv_bytes()
        dt = _rows.perf_ns() - t
        assert len(data) == BIG
        return BIG / (dt / 1e9) / 1e9

    rates = _rows.sample(args, one, min_n=_rows.pick(args, 5, 2), max_n=50)
    a.send(None)
    p.join()
    _rows.emit(GROUP, "ipc/py-pipe-bw/64M", "64 MiB transfer", "python Pipe", "GB/s", rates,
               size=BIG, rate=True, baseline=["ipc/unix-socket-bw/64M", "ipc/memcpy/64M"],
               note="send_bytes of a 64 MiB bytes object, recv_bytes in the parent")


if __name__ == "__main__":
    args = _rows.parse_args(__doc__)
    pipe_rows(args)
    queue_rows(args)
    stream_rows(args)
    bandwidth_rows(args)
