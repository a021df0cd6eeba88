"""Group lock: multiprocessing Lock and RLock acquire + release, uncontended, for
`cargo xtask bench` (rows: see benches/README.md)."""

import multiprocessing as mp

import _rows

GROUP = "lock"
BATCH = 1000


def batch(lock):
    acquire, release = lock.acquire, lock.release
    t = _rows.perf_ns()
    for _ in range(BATCH):
        acquire()
        release()
    return _rows.perf_ns() - t


if __name__ == "__main__":
    args = _rows.parse_args(__doc__)
    for kind in ("Lock", "RLock"):
        lock = getattr(mp, kind)()
        batch(lock)  # warm-up
        s = _rows.sample(args, lambda: batch(lock))
        _rows.emit(GROUP, f"lock/py-{kind.lower()}", "acquire + release, uncontended",
                   f"python {kind}", "ns", s, per=BATCH, baseline=["lock/cas"],
                   note=f"multiprocessing.{kind}(): acquire() + release() (POSIX semaphore); "
                        f"batches of {BATCH}")
