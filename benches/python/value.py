"""Group value: a shared multiprocessing Value incremented under its lock by two processes,
for `cargo xtask bench` (rows: see benches/README.md)."""

import multiprocessing as mp

import _rows

GROUP = "value"
PER_PROCESS = 100_000


def bump(v, n):
    lock = v.get_lock()
    for _ in range(n):
        with lock:
            v.value += 1


def child(v, stop, start, done):
    while True:
        start.wait()
        if stop.value:
            return
        bump(v, PER_PROCESS)
        done.wait()


def main():
    args = _rows.parse_args(__doc__)
    v = mp.Value("q", 0)
    stop = mp.RawValue("b", 0)
    start, done = mp.Barrier(2), mp.Barrier(2)
    p = mp.Process(target=child, args=(v, stop, start, done))
    p.start()

    def one_round():
        v.value = 0
        start.wait()
        t = _rows.perf_ns()
        bump(v, PER_PROCESS)
        done.wait()
        ns = _rows.perf_ns() - t
        if v.value != 2 * PER_PROCESS:
            raise RuntimeError(f"lost increments: {v.value} != {2 * PER_PROCESS}")
        return ns

    try:
        s = _rows.sample(args, one_round, min_n=_rows.pick(args, 3, 1), max_n=100)
    finally:
        stop.value = 1
        start.wait(timeout=30)
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join()
    _rows.emit(GROUP, "value/py-incr-2proc", "2 processes x 100k locked increments",
               "python Value", "ns", s, per=2 * PER_PROCESS,
               note="`with v.get_lock(): v.value += 1` on one Value('q') from two processes "
                    "(fork), 100k each, per increment; final value checked")


if __name__ == "__main__":
    main()
