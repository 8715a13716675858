"""Wall time and peak memory of a command and all its child processes.

Memory is the sum of PSS (proportional set size: shared pages split among the processes
sharing them) over the whole process tree, sampled every 0.5 s — what the command costs the
machine, unlike per-process RSS which counts shared libraries once per process.

    .venv/bin/python -m perf.peak_memory -- .venv/bin/python -m study.quickstart
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def tree_pss_kib(root: int) -> int:
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            continue
        stack += _children(pid)
    return total


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    started = time.time()
    proc = subprocess.Popen(argv)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_pss_kib(proc.pid))
        time.sleep(0.5)
    wall = time.time() - started
    print(f"peak_memory: wall {wall / 60:.1f} min, peak PSS of the process tree {peak / 2**20:.2f} GiB, exit {proc.returncode}", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
