"""Group lock: multiprocessing Lock and RLock acquire + release, uncontended, and a lock handed
back and forth between two processes, for `cargo xtask bench` (rows: see benches/README.md)."""

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


HANDOFF_BATCH = 100


def handoff_child(a, b, stop):
    while True:
        a.acquire()
        if stop.value:
            b.release()
            return
        b.release()


def handoff(args):
    """Two locks, both held by the parent: the child waits for `a`, the parent for `b`; each
    release wakes the other process, so the hand-offs alternate between the processes."""
    a, b = mp.Lock(), mp.Lock()
    stop = mp.RawValue("b", 0)
    a.acquire()
    b.acquire()
    p = mp.Process(target=handoff_child, args=(a, b, stop))
    p.start()

    def rounds():
        t = _rows.perf_ns()
        for _ in range(HANDOFF_BATCH):
            a.release()
            b.acquire()
        return _rows.perf_ns() - t

    try:
        rounds()  # warm-up
        s = _rows.sample(args, rounds)
    finally:
        stop.value = 1
        a.release()
        b.acquire(timeout=30)
        p.join(30)
        if p.is_alive():
            p.kill()
            p.join()
    _rows.emit(GROUP, "lock/py-handoff-2proc", "hand-off between 2 processes", "python Lock", "us",
               s, per=2 * HANDOFF_BATCH, baseline=["lock/py-lock"],
               note="two Locks ping-pong: the parent releases a and acquires b, the child (fork) "
                    "acquires a and releases b; per hand-off (half a round), batches of "
                    f"{HANDOFF_BATCH} rounds")


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
    handoff(args)
