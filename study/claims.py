"""Who runs a unit of work now: an atomic claim file per upstream run or cell.

A claim is ``claim.json`` created with ``O_CREAT | O_EXCL`` (one winner, also on NFS v3+ and
Lustre), holding the claimant's host, pid, SLURM job and start time. While the claimant works,
a daemon thread touches the file every ``HEARTBEAT_S`` seconds. A claim is *stale* when its
process is gone from this host, or when its heartbeat is older than ``STALE_AFTER_S`` (a
claimant on another host that was killed, e.g. a node lost). A stale claim is taken over by
renaming it aside first (only one process can rename a given file) and checking that what
was renamed is the claim judged stale; so two runners, or two SLURM tasks, never run the same
unit at once, and a unit whose runner died is run again.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0  # 20 missed heartbeats: a live but swapping claimant is not taken over


def who() -> dict:
    """This process: host, pid and SLURM job (``<array job>_<task>`` for an array task)."""
    out = {"host": socket.gethostname(), "pid": os.getpid()}
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        out["slurm_job"] = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_TASK_ID" in os.environ else job
    return out


def describe(holder: dict) -> str:
    """``host pid N, SLURM job J`` of a claim's holder."""
    return f"{holder.get('host', '?')} pid {holder.get('pid', '?')}" + (f", SLURM job {holder['slurm_job']}" if "slurm_job" in holder else "")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def read_claim(path: Path) -> dict | None:
    """The holder recorded in the claim file, None without one (or while it is being written)."""
    try:
        holder = json.loads(Path(path).read_text())
        holder["heartbeat"] = Path(path).stat().st_mtime
        return holder
    except (OSError, ValueError):
        return None


def is_stale(holder: dict, now: float | None = None) -> bool:
    """A claim whose process is gone from this host, or whose heartbeat stopped."""
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
        if holder["pid"] == os.getpid():
            return False
        return not _pid_alive(holder["pid"])
    return (now or time.time()) - holder.get("heartbeat", 0) > STALE_AFTER_S


class Claim:
    """A held claim: keeps its heartbeat until `release` (also a context manager)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"claim {self.path.parent.name}")
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        holder = read_claim(self.path)
        if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(path: Path) -> Claim | None:
    """Claim the unit whose claim file is `path`; None if someone else holds a live claim."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):  # a stale claim is moved aside once, then the create is tried again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_claim(path)
            if holder is None or not is_stale(holder) or not _move_aside(path, holder):
                return None
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({**who(), "claimed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}, f)
        return Claim(path)
    return None


def _move_aside(path: Path, judged: dict) -> bool:
    """Rename the stale claim `judged` out of the way; False if another process got there first
    (or renamed a fresh claim, which is then put back)."""
    aside = path.with_name(f".{path.name}.stale-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True  # someone else moved it: just try to create
    moved = read_claim(aside) or {}
    if (moved.get("host"), moved.get("pid"), moved.get("claimed")) != (judged.get("host"), judged.get("pid"), judged.get("claimed")):
        try:
            os.link(aside, path)  # a fresh claim was renamed by mistake: back, unless yet another exists
        except FileExistsError:
            pass
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True
