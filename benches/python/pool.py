"""Group pool: multiprocessing Pool(2) start and teardown, map of a trivial function (default
chunksize and chunksize=1), imap_unordered and a CPU-bound map, for `cargo xtask bench` (rows: see
benches/README.md)."""

import multiprocessing as mp
import time

import _rows

GROUP = "pool"
ITEMS = 100_000
IMAP_ITEMS = 10_000
CPU_ITEM_S = 100e-6  # same work per item as the rayon rows: about 100 us


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


def start_teardown():
    p = mp.Pool(2)
    p.close()
    p.join()


def main():
    args = _rows.parse_args(__doc__)
    s = _rows.sample(args, lambda: _rows.timed(start_teardown), min_n=_rows.pick(args, 10, 3))
    _rows.emit(GROUP, "pool/py-start", "start + teardown, 2 workers", "python Pool(2)", "ms", s,
               baseline=["pool/fork2"], note="Pool(2), close(), join(); default start method (fork)")

    items = list(range(ITEMS))
    name = "map trivial, 100k items"
    seq = _rows.sample(args, lambda: _rows.timed(lambda: list(map(double, items))), min_n=5)
    _rows.emit(GROUP, "pool/py-seq-trivial", name, "python sequential", "us", seq, per=ITEMS,
               baseline=["pool/seq-trivial"], note="list(map(lambda-free x*2+1, range(100k)))")
    with mp.Pool(2) as pool:
        pool.map(double, items)  # warm-up
        s = _rows.sample(args, lambda: _rows.timed(pool.map, double, items), min_n=3)
        _rows.emit(GROUP, "pool/py-map", name, "python Pool(2)", "us", s, per=ITEMS,
                   baseline=["pool/rayon-trivial", "pool/py-seq-trivial"],
                   note=f"Pool(2).map, default chunksize; {_rows.stats(s)[0] / 1e6:.1f} ms per map")
        n1 = _rows.pick(args, ITEMS, 10_000)
        few = items[:n1]
        s = _rows.sample(args, lambda: _rows.timed(pool.map, double, few, 1), min_n=1)
        _rows.emit(GROUP, "pool/py-map-chunk1", name, "python Pool(2) chunksize=1", "us", s,
                   per=n1, baseline=["pool/py-map", "ipc/futex/8"],
                   note=f"Pool(2).map(f, items, chunksize=1) over {n1} items, per item")

        nu = IMAP_ITEMS
        few = items[:nu]
        s = _rows.sample(args, lambda: _rows.timed(lambda: sum(pool.imap_unordered(double, few))),
                         min_n=1)
        _rows.emit(GROUP, "pool/py-imap-unordered", f"imap_unordered trivial, {nu // 1000}k items",
                   "python Pool(2)", "us", s, per=nu, baseline=["pool/py-map-chunk1"],
                   note=f"sum(Pool(2).imap_unordered(x*2+1, {nu} items)), default chunksize 1, "
                        "per item")

        n = _rows.pick(args, 4000, 1000)
        iters = calibrate()
        work = [iters] * n
        cpu_name = f"map CPU-bound, {n} items"
        what = (f"{n} items of ~{CPU_ITEM_S * 1e6:.0f} us of Python arithmetic each "
                f"({iters} iterations, calibrated like the rayon rows to the same time per item)")
        par = _rows.sample(args, lambda: _rows.timed(pool.map, burn, work), min_n=_rows.pick(args, 3, 2))
    seq = _rows.sample(args, lambda: _rows.timed(lambda: list(map(burn, work))),
                       min_n=_rows.pick(args, 3, 2))
    _rows.emit(GROUP, "pool/py-seq-cpu", cpu_name, "python sequential", "ms", seq,
               baseline=["pool/seq-cpu"], note=what)
    _rows.emit(GROUP, "pool/py-cpu", cpu_name, "python Pool(2)", "ms", par,
               baseline=["pool/rayon-cpu", "pool/py-seq-cpu"],
               note=what + "; Pool(2).map, default chunksize")


if __name__ == "__main__":
    main()
