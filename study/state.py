"""The state of a unit of work (an upstream run or a cell): pending, running, preempted, done, failed.

- ``done``: a cell's valid result file (a result copied in counts; nothing says "done"
  without one); an upstream run's ``done.json`` beside its final checkpoint.
- ``running``: a live claim (`study.claims`): some process works on it now.
- ``preempted``: stopped by a signal (``state.json`` says so), or started by a process that is
  gone without saying why (killed, node lost). The next plain ``run`` continues it from its
  last checkpoint.
- ``failed``: raised an error (``state.json``, with the error and the log); rerun only with
  ``--retry-failed``. A cell whose result file is invalid is failed too.
- ``pending``: none of the above.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path

from conversion.files import atomic_write_json
from study.claims import describe, is_stale, read_claim, who
from study.data_identity import data_changes
from study.layout import CellPaths, UnitPaths, UpstreamPaths
from results.schema import ResultSchemaError, validate_record

PENDING, RUNNING, PREEMPTED, DONE, FAILED = "pending", "running", "preempted", "done", "failed"
STATES = (PENDING, RUNNING, PREEMPTED, DONE, FAILED)


@dataclass(frozen=True)
class Status:
    """A unit's state and a one-line detail (the error and log of a failed unit, the host and
    job of a running one, the result or checkpoint of a done one) and, for a done upstream run
    whose data changed since, why its cells will not use it (`stale_data`)."""

    state: str
    detail: str = ""
    warning: str | None = None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def mark(paths: UnitPaths, state: str, **fields) -> None:
    """Record `state` of the unit (with this process and the log path) in its ``state.json``."""
    atomic_write_json(paths.state, {"state": state, "at": _now(), "log": str(paths.log), **who(), **fields})


def mark_running(paths: UnitPaths) -> None:
    mark(paths, RUNNING)


def mark_failed(paths: UnitPaths, error: str) -> None:
    """`error` is one line; the log path is kept for `list`."""
    mark(paths, FAILED, error=error)


def mark_preempted(paths: UnitPaths, why: str) -> None:
    mark(paths, PREEMPTED, why=why)


def mark_done(paths: UnitPaths) -> None:
    mark(paths, DONE)


def _result_problem(path: Path) -> str | None:
    """None when `path` is a valid result file, else what is wrong with it (one line)."""
    try:
        validate_record(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ResultSchemaError) as err:
        return " ".join(str(err).split())
    return None


def _from_markers(paths: UnitPaths) -> Status:
    """The state of a unit that is not done: from its claim, then its ``state.json``."""
    holder = read_claim(paths.claim)
    if holder is not None and not is_stale(holder):
        return Status(RUNNING, f"on {describe(holder)} since {holder.get('claimed', '?')}; log: {paths.log}")
    try:
        marker = json.loads(paths.state.read_text())
    except (OSError, json.JSONDecodeError):
        return Status(PENDING)
    if marker.get("state") == FAILED:
        return Status(FAILED, f"{marker.get('error', 'unknown error')}; log: {paths.log}")
    if marker.get("state") == PREEMPTED:
        return Status(PREEMPTED, f"{marker.get('why', 'stopped')} at {marker.get('at', '?')}; continues from its last checkpoint")
    if marker.get("state") == RUNNING:  # started, and its claimant is gone without a word
        return Status(PREEMPTED, f"interrupted: {describe(marker)} is gone; continues from its last checkpoint")
    return Status(PENDING)  # "done" without a result: the result was deleted, so it runs again


def cell_status(paths: CellPaths) -> Status:
    """The state of one cell (see the module docstring)."""
    if paths.result.exists():
        problem = _result_problem(paths.result)
        if problem is None:
            return Status(DONE, str(paths.result))
        return Status(FAILED, f"result file {paths.result} is invalid ({problem}); log: {paths.log}")
    return _from_markers(paths)


def stale_data(paths: UpstreamPaths) -> str | None:
    """Why a finished upstream run's cells must not use it (its data changed since), or None."""
    try:
        recorded = json.loads(paths.done.read_text()).get("data")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    changes = data_changes(recorded)
    if not changes:
        return None
    return (f"pre-trained on other data than is there now ({'; '.join(changes)}): delete {paths.unit_dir} "
            f"to pre-train it again on the current data, or restore the data it was trained on")


def upstream_status(paths: UpstreamPaths) -> Status:
    """The state of one upstream run (done: ``done.json`` and its checkpoint exist; the detail
    says so when its data changed since, see `stale_data`)."""
    if paths.done.exists() and paths.checkpoint.exists():
        return Status(DONE, str(paths.checkpoint), warning=stale_data(paths))
    return _from_markers(paths)
