"""Group process: multiprocessing Process start + join per start method, for
`cargo xtask bench` (rows: see benches/README.md)."""

import multiprocessing as mp

import _rows

GROUP = "process"
BASELINE = {"fork": "process/fork", "forkserver": "process/fork",
            "spawn": "process/posix-spawn"}


def noop():
    pass


def start_join(ctx):
    p = ctx.Process(target=noop)
    p.start()
    p.join()
    assert p.exitcode == 0


if __name__ == "__main__":
    args = _rows.parse_args(__doc__)
    for method in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(method)
        start_join(ctx)  # warm-up (starts the fork server)
        s = _rows.sample(args, lambda: _rows.timed(start_join, ctx),
                         min_n=_rows.pick(args, 10, 3))
        _rows.emit(GROUP, f"process/py-{method}", "start + join", f"python {method}", "ms", s,
                   baseline=[BASELINE[method]],
                   note=f"get_context({method!r}).Process(target=noop).start() + join()")
