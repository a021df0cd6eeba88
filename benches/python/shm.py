"""Group shm: a named 1 MiB SharedMemory created, attached by name, closed and unlinked, for
`cargo xtask bench` (rows: see benches/README.md)."""

import os
from multiprocessing import shared_memory

import _rows

GROUP = "shm"
SIZE = 1 << 20


def main():
    args = _rows.parse_args(__doc__)
    prefix = f"mp-bench-py-{os.getpid()}"
    seq = [0]

    def one():
        seq[0] += 1
        name = f"{prefix}-{seq[0]}"
        t = _rows.perf_ns()
        a = shared_memory.SharedMemory(name=name, create=True, size=SIZE)
        try:
            b = shared_memory.SharedMemory(name=name)
            b.close()
            a.close()
        finally:
            a.unlink()
        return _rows.perf_ns() - t

    for _ in range(20):
        one()  # warm-up (starts the resource tracker)
    s = _rows.sample(args, one)
    _rows.emit(GROUP, "shm/py-1m", "create + attach + close + unlink", "python SharedMemory",
               "us", s, size=SIZE, baseline=["shm/raw-1m"],
               note="SharedMemory(name, create=True, size=1 MiB), SharedMemory(name), "
                    "close() x2, unlink(); registered with the resource tracker")


if __name__ == "__main__":
    main()
