"""Group mpi: mpi4py.futures' MPIPoolExecutor with 2 spawned workers (start and teardown, a
trivial map of 100k items, a CPU-bound map), beside mp_mpi::Pool::spawn(2), for `cargo xtask
bench` (rows: see benches/README.md). Needs mpi4py (`pip install mpi4py`); without it the
script says so and emits nothing. The environment is `cargo xtask mpi`'s (loopback only)."""

import sys

import _rows

GROUP = "mpi"
ITEMS = 100_000
CPU_ITEM_S = 100e-6  # the same work per item as the pool group's CPU rows


def double(x):
    return x * 2 + 1


def burn(n):
    x = 1
    for i in range(n):
        x = (x * 6364136223846793005 + i) & 0xFFFFFFFFFFFFFFFF
        x ^= x >> 29
    return x


def calibrate():
    """Iterations of burn() that take about CPU_ITEM_S (best of 5 timings per step)."""
    n = 100
    for _ in range(4):
        best = min(_rows.timed(burn, n) for _ in range(5)) / 1e9
        n = max(1, int(n * CPU_ITEM_S / best))
    return n


def main():
    args = _rows.parse_args(__doc__)
    try:
        from mpi4py.futures import MPIPoolExecutor
    except ImportError as e:
        sys.exit(f"mpi4py is not installed ({e}): pip install mpi4py")

    def start_teardown():
        with MPIPoolExecutor(max_workers=2) as ex:
            ex.bootup(wait=True)

    start_teardown()  # the first one also initializes MPI
    s = _rows.sample(args, lambda: _rows.timed(start_teardown), min_n=_rows.pick(args, 3, 2),
                     max_n=50)
    _rows.emit(GROUP, "pool/py-mpi-start", "start + teardown, 2 workers",
               "mpi4py MPIPoolExecutor(2)", "ms", s, baseline=["pool/mpi-start"],
               note="MPIPoolExecutor(max_workers=2), bootup(wait=True), shutdown")

    items = list(range(ITEMS))
    with MPIPoolExecutor(max_workers=2) as ex:
        ex.bootup(wait=True)
        chunk = ITEMS // 8  # the same 8 chunks as the Rust rows' default

        def trivial():
            return list(ex.map(double, items, chunksize=chunk))

        trivial()  # warm-up
        s = _rows.sample(args, lambda: _rows.timed(trivial), min_n=3)
        _rows.emit(GROUP, "pool/py-mpi-map", "map trivial, 100k items",
                   "mpi4py MPIPoolExecutor(2)", "us", s, per=ITEMS,
                   baseline=["pool/mpi-map", "pool/py-map"],
                   note=f"map(x*2+1, chunksize={chunk}); {_rows.stats(s)[0] / 1e6:.1f} ms per map")

        n = _rows.pick(args, 4000, 1000)
        iters = calibrate()
        work = [iters] * n
        cs = max(1, n // 8)

        def cpu():
            return list(ex.map(burn, work, chunksize=cs))

        s = _rows.sample(args, lambda: _rows.timed(cpu), min_n=_rows.pick(args, 3, 2))
        _rows.emit(GROUP, "pool/py-mpi-cpu", f"map CPU-bound, {n} items",
                   "mpi4py MPIPoolExecutor(2)", "ms", s,
                   baseline=["pool/mpi-cpu", "pool/py-cpu"],
                   note=f"{n} items of ~{CPU_ITEM_S * 1e6:.0f} us of Python arithmetic "
                        f"({iters} iterations); map, chunksize={cs}")


if __name__ == "__main__":
    main()
