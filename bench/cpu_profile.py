"""Run ``python -m MODULE ARGS`` under cProfile with a CPU clock (used by ``bench.poll_fleet``).

``python -m bench.cpu_profile OUT.prof MODULE ARGS...`` is ``python -m cProfile -o OUT.prof -m
MODULE ARGS...`` except that time is the process's CPU time, not the wall clock: the collector
is CPU-bound, and on a shared machine wall-clock profiles charge other processes' time to
whatever function happened to be waiting. Read the result with ``python -m pstats OUT.prof``.
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m bench.cpu_profile OUT.prof MODULE [ARGS...]", file=sys.stderr)
        return 2
    out, module, *rest = argv
    sys.argv = [module, *rest]
    profiler = cProfile.Profile(time.process_time)
    code = 0
    try:
        profiler.runcall(runpy.run_module, module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        profiler.dump_stats(out)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
