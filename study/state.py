"""The state of a cell: pending, running, done or failed.

``done`` is decided by the result file alone (present and valid), so a result copied in from
elsewhere counts and nothing can say "done" without one. ``running`` and ``failed`` come from
a small marker, ``cells/<cell>/state.json``, written atomically by whoever runs the cell (a
local worker or a SLURM task). A ``running`` marker left by a process that is gone from this
host reads ``failed`` (interrupted); one from another host cannot be checked and reads
``running`` with its host and SLURM job, so the user can tell.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from datamodules.files import atomic_write_json
from study.layout import CellPaths
from study.results import ResultSchemaError, validate_record

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATES = (PENDING, RUNNING, DONE, FAILED)


@dataclass(frozen=True)
class CellStatus:
    """A cell's state and a one-line detail (the error and log path of a failed cell, the host
    and job of a running one, the result file of a done one)."""

    state: str
    detail: str = ""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _who() -> dict:
    who = {"host": socket.gethostname(), "pid": os.getpid()}
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        who["slurm_job"] = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_TASK_ID" in os.environ else job
    return who


def mark_running(paths: CellPaths) -> None:
    """Record that this process (host, pid, SLURM job if any) has started the cell."""
    atomic_write_json(paths.state, {"state": RUNNING, "started": _now(), "log": str(paths.log), **_who()})


def mark_failed(paths: CellPaths, error: str) -> None:
    """Record a failure: `error` is one line; the log path is kept for the report."""
    atomic_write_json(paths.state, {"state": FAILED, "finished": _now(), "error": error, "log": str(paths.log), **_who()})


def mark_done(paths: CellPaths) -> None:
    """Record a clean finish (the result file is what makes the cell done)."""
    atomic_write_json(paths.state, {"state": DONE, "finished": _now(), "result": str(paths.result), **_who()})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _result_problem(path: Path) -> str | None:
    """None when `path` is a valid result file, else what is wrong with it (one line)."""
    try:
        validate_record(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ResultSchemaError) as err:
        return " ".join(str(err).split())
    return None


def cell_status(paths: CellPaths) -> CellStatus:
    """The state of one cell (see the module docstring for the rules)."""
    if paths.result.exists():
        problem = _result_problem(paths.result)
        if problem is None:
            return CellStatus(DONE, str(paths.result))
        return CellStatus(FAILED, f"result file {paths.result} is invalid ({problem}); log: {paths.log}")
    try:
        marker = json.loads(paths.state.read_text())
    except (OSError, json.JSONDecodeError):
        return CellStatus(PENDING)
    where = f"{marker.get('host', '?')} pid {marker.get('pid', '?')}" + (f", SLURM job {marker['slurm_job']}" if "slurm_job" in marker else "")
    if marker.get("state") == RUNNING:
        pid = marker.get("pid")
        if marker.get("host") == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
            return CellStatus(FAILED, f"interrupted: {where} is gone; log: {paths.log}")
        return CellStatus(RUNNING, f"since {marker.get('started', '?')} on {where}; log: {paths.log}")
    if marker.get("state") == FAILED:
        return CellStatus(FAILED, f"{marker.get('error', 'unknown error')}; log: {paths.log}")
    # a "done" marker without a result file: the result was deleted, so the cell is to run again
    return CellStatus(PENDING)
