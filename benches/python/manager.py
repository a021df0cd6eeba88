"""Group manager: multiprocessing Manager start, dict set / get and list append round trips,
and dict get on a manager served over TCP, for `cargo xtask bench` (rows: see benches/README.md)."""

import multiprocessing as mp
from multiprocessing.managers import SyncManager

import _rows

GROUP = "manager"


def start_shutdown():
    m = mp.Manager()
    m.shutdown()


def op_rows(args, m):
    d, lst = m.dict(), m.list()
    counter = [0]

    def set_one():
        counter[0] += 1
        t = _rows.perf_ns()
        d[counter[0] % 64] = counter[0]
        return _rows.perf_ns() - t

    def get_one():
        counter[0] += 1
        t = _rows.perf_ns()
        d[counter[0] % 64]
        return _rows.perf_ns() - t

    def append_one():
        counter[0] += 1
        t = _rows.perf_ns()
        lst.append(counter[0])
        return _rows.perf_ns() - t

    for key, name, fn in (("set", "dict set", set_one), ("get", "dict get", get_one),
                          ("append", "list append", append_one)):
        for _ in range(100):
            fn()  # warm-up
        s = _rows.sample(args, fn)
        _rows.emit(GROUP, f"manager/py-{key}", name, "python Manager", "us", s,
                   baseline=[f"manager/raw-{key}"],
                   note="proxy call to the Manager server process (pickle over a unix socket)")


def tcp_get(args):
    m = SyncManager(address=("127.0.0.1", 0), authkey=b"mp-bench")
    m.start()
    try:
        d = m.dict()
        for i in range(64):
            d[i] = i
        counter = [0]

        def get_one():
            counter[0] += 1
            t = _rows.perf_ns()
            d[counter[0] % 64]
            return _rows.perf_ns() - t

        for _ in range(100):
            get_one()  # warm-up
        s = _rows.sample(args, get_one)
    finally:
        m.shutdown()
    _rows.emit(GROUP, "manager/py-tcp-get", "dict get, TCP", "python Manager", "us", s,
               baseline=["manager/py-get"],
               note="SyncManager(address=('127.0.0.1', 0), authkey=...).start(); dict proxy "
                    "get (pickle over TCP on the loopback)")


if __name__ == "__main__":
    args = _rows.parse_args(__doc__)
    s = _rows.sample(args, lambda: _rows.timed(start_shutdown), min_n=_rows.pick(args, 5, 2))
    _rows.emit(GROUP, "manager/py-start", "start + shutdown", "python Manager", "ms", s,
               baseline=["process/py-fork"], note="Manager() + shutdown(); default start method (fork)")
    with mp.Manager() as m:
        op_rows(args, m)
    tcp_get(args)
