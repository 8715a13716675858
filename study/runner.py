"""Run a study on this machine: upstream runs first, each once, then the cells that fine-tune from them.

Work comes in units: an upstream run (`study.definition.UpstreamRun`, shared by every cell
with its upstream settings) and a cell (fine-tuning + evaluation). A worker repeatedly claims
the next unit it may run (`study.claims`: atomic, so several ``study run`` processes or SLURM
tasks never run one twice), runs it inside `attempt` (state kept, output appended to the
unit's log), and releases it:

- an upstream run is runnable when a cell still to run needs it and it is pending or
  preempted (failed: with ``--retry-failed``);
- a cell is runnable when its upstream run is done and the cell is pending or preempted
  (failed: with ``--retry-failed``).

When nothing is runnable but some cell waits for an upstream run that another process is
running, the worker polls. A unit stopped by a signal (the training stage checkpoints at its
next step boundary and exits 143/138) is marked preempted and the worker stops taking new work:
the next plain ``run`` continues it. SIGTERM to ``study run`` is forwarded to its workers.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from study.cell_run import global_rank, run_downstream, run_upstream
from study.claims import Claim, try_claim
from study.definition import Cell, StudyDefinition, UpstreamRun  # noqa: F401 - re-exported: `from study.runner import StudyDefinition`
from study.layout import CellPaths, UnitPaths, UpstreamPaths
from study.state import (DONE, FAILED, PENDING, PREEMPTED, RUNNING, Status, cell_status, mark_done, mark_failed,
                         mark_preempted, mark_running, upstream_status)

POLL_S = 5.0  # how often a worker with nothing to claim looks again while others pre-train
STOP_CODES = {128 + signal.SIGTERM, 128 + signal.SIGUSR1}  # a training stage stopped by a signal


@dataclass(frozen=True)
class Unit:
    """One thing to run: an upstream run or a cell, with its paths."""

    kind: str  # "upstream" or "cell"
    target: UpstreamRun | Cell
    paths: UnitPaths

    @property
    def label(self) -> str:
        return f"upstream {self.target.name}" if self.kind == "upstream" else self.target.name


def upstream_statuses(study: StudyDefinition) -> list[tuple[UpstreamRun, Status]]:
    return [(r, upstream_status(UpstreamPaths(Path(study.runs_dir), r.name))) for r in study.upstream_runs()]


def cell_statuses(study: StudyDefinition) -> list[tuple[Cell, Status]]:
    """Every cell of the study with its state, in the study's cell order."""
    return [(c, cell_status(CellPaths(Path(study.runs_dir), c.name))) for c in study.cells()]


def _runnable(state: str, retry_failed: bool) -> bool:
    return state in (PENDING, PREEMPTED) or (state == FAILED and retry_failed)


def plan(study: StudyDefinition, retry_failed: bool = False) -> tuple[list[Unit], list[str], int]:
    """The units that may run now or once their upstream run finishes (upstream runs first,
    longest first), one line per unit left out that the user should know about, and how many
    cells are done."""
    ups = dict(upstream_statuses(study))
    # a run's cells share its verdict on its data (upstream_status read done.json and the manifests once)
    stale = {run: st.warning for run, st in ups.items()}
    upstream, cells, notes, done = [], [], [], 0
    needed: set[UpstreamRun] = set()
    for cell, status in cell_statuses(study):
        if status.state == DONE:
            done += 1
            continue
        if not _runnable(status.state, retry_failed):
            notes.append(f"{cell.name}: {status.state} ({status.detail})"
                         + ("; pass --retry-failed to run it again" if status.state == FAILED else "; left alone"))
            continue
        run = study.upstream_of(cell)
        up = ups[run]
        if stale.get(run) is not None:  # refused here, before any compute, rather than when the cell starts
            notes.append(f"{cell.name}: left alone: its upstream run {run.name} was {stale[run]}")
            continue
        if up.state == FAILED and not retry_failed:
            notes.append(f"{cell.name}: waits for upstream {run.name}, which failed ({up.detail}); pass --retry-failed")
            continue
        needed.add(run)
        cells.append(Unit("cell", cell, CellPaths(Path(study.runs_dir), cell.name)))
    for run, status in ups.items():
        if run in needed and _runnable(status.state, retry_failed):
            upstream.append(Unit("upstream", run, UpstreamPaths(Path(study.runs_dir), run.name)))
    upstream.sort(key=lambda u: -u.target.steps * (3 if "x3" in u.target.model else 1))
    return upstream + cells, notes, done


def _claim_next(study: StudyDefinition, units: list[Unit], retry_failed: bool) -> tuple[Unit | None, Claim | None, bool]:
    """Claim the first unit that may run now; ``(unit, claim, others_pending)``: with no unit,
    whether some are left that wait on work elsewhere."""
    pending = False
    for unit in units:
        state = (upstream_status(unit.paths) if unit.kind == "upstream" else cell_status(unit.paths)).state
        if state == DONE:
            continue
        if unit.kind == "cell":
            up = upstream_status(UpstreamPaths(Path(study.runs_dir), study.upstream_of(unit.target).name)).state
            if up != DONE:
                pending = pending or up in (RUNNING, PENDING, PREEMPTED) or (up == FAILED and retry_failed)
                continue
        if state == RUNNING or not _runnable(state, retry_failed):
            pending = pending or state == RUNNING
            continue
        claim = try_claim(unit.paths.claim)
        if claim is None:
            pending = True
            continue
        # claimed: look again (it may have finished between the look and the claim)
        state = (upstream_status(unit.paths) if unit.kind == "upstream" else cell_status(unit.paths)).state
        if state == DONE:
            claim.release()
            continue
        return unit, claim, True
    return None, None, pending


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send print()s and console logging handlers into `path` (appended), and back afterwards."""
    path.parent.mkdir(parents=True, exist_ok=True)
    consoles = {id(sys.stdout), id(sys.stderr), id(sys.__stdout__), id(sys.__stderr__)}

    def handlers():
        loggers = [logging.getLogger()] + [lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
        return [h for lg in loggers for h in lg.handlers if type(h) is logging.StreamHandler]

    # Lightning's handlers hold the stream they were made with, so redirect_stderr alone misses them.
    console_handlers = [h for h in handlers() if id(h.stream) in consoles]
    console = sys.stderr
    with open(path, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        previous = [h.setStream(log) for h in console_handlers]
        try:
            yield
        finally:
            for h, stream in zip(console_handlers, previous):
                h.setStream(stream)
            # handlers made during the unit took the log as their stream: give them the console back
            for h in handlers():
                if h.stream is log:
                    h.setStream(console)


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:500]


def attempt(study: StudyDefinition, unit: Unit | Cell, execute: Callable | None = None) -> str | None:
    """Run one unit with its state kept and its output in its log.

    Returns None when it finished, ``"preempted"`` when a signal stopped it (it continues from
    its last checkpoint next time), else the error (one line). A KeyboardInterrupt marks it
    preempted and is raised again. Ranks other than zero of a multi-process launch just run it.
    `execute(study, target)` defaults to `run_upstream` / `run_downstream`.
    """
    if isinstance(unit, Cell):
        unit = Unit("cell", unit, CellPaths(Path(study.runs_dir), unit.name))
    execute = execute or (run_upstream if unit.kind == "upstream" else run_downstream)
    if global_rank() != 0:
        execute(study, unit.target)
        return None
    paths = unit.paths
    mark_running(paths)
    error = None
    with _output_to(paths.log):
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        print(f"===== {unit.label}: attempt started {stamp} on {socket.gethostname()} (pid {os.getpid()})", flush=True)
        try:
            execute(study, unit.target)
        except KeyboardInterrupt:
            mark_preempted(paths, "interrupted (KeyboardInterrupt)")
            raise
        except SystemExit as err:  # the CLI: a stop signal, or a one-line refusal
            if err.code in STOP_CODES:
                print(f"===== {unit.label}: stopped by signal {err.code - 128}; continues from its last checkpoint", flush=True)
                error = "preempted"
            else:
                traceback.print_exc()
                error = _one_line(err) if err.code not in (0, None) else None
        except BaseException as err:  # noqa: BLE001 - reported with the log path
            traceback.print_exc()
            error = _one_line(err)
    if error is None:
        mark_done(paths)
    elif error == "preempted":
        mark_preempted(paths, "stopped by a signal")
    else:
        mark_failed(paths, error)
    return error


class _StopFlag:
    """Set by SIGTERM/SIGUSR1 between units (a training stage handles them itself while it trains)."""

    def __init__(self):
        self.set = False

    def __call__(self, signum, frame) -> None:
        self.set = True


def work(study: StudyDefinition, retry_failed: bool = False, execute: Callable | None = None,
         report: Callable[[str, float, str | None], None] = lambda *a: None, poll_s: float | None = None) -> list[str]:
    """Claim and run units until none is left (or a stop); returns one line per failure."""
    units, _, _ = plan(study, retry_failed)
    stop = _StopFlag()
    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGUSR1)}
    failures: list[str] = []
    try:
        while not stop.set:
            unit, claim, pending = _claim_next(study, units, retry_failed)
            if unit is None:
                if not pending:
                    break
                time.sleep(POLL_S if poll_s is None else poll_s)
                continue
            started = time.time()
            try:
                error = attempt(study, unit, execute)
            finally:
                claim.release()
            report(unit.label, time.time() - started, error)
            units = [u for u in units if u != unit]  # each unit at most once per call
            if error == "preempted":
                break
            if error is not None:
                failures.append(f"{unit.label}: {error}; log: {unit.paths.log}")
                if unit.kind == "upstream":  # its cells cannot run in this call
                    units = [u for u in units if not (u.kind == "cell" and study.upstream_of(u.target) == unit.target)]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return failures


def _worker(study: StudyDefinition, retry_failed: bool, threads: int, queue) -> None:
    import torch

    torch.set_num_threads(threads)  # workers share the cores instead of each taking all of them
    failures = work(study, retry_failed, report=lambda *line: queue.put(("unit", line)))
    queue.put(("done", failures))


def run_study(study: StudyDefinition, *, retry_failed: bool = False, workers: int | None = None,
              execute: Callable | None = None, echo: Callable[[str], None] = print) -> list[str]:
    """Run every unit `plan` selects; return one line per failure (unit, error, log path).

    `workers` defaults to the study's ``workers``. With one worker the units run here through
    `execute` (default `run_upstream`/`run_downstream`; tests pass a fake); with more, in that
    many spawned processes, each claiming units until none is left.
    """
    workers = study.workers if workers is None else workers
    units, notes, done = plan(study, retry_failed)
    for note in notes:
        echo(note)
    n_up = sum(u.kind == "upstream" for u in units)
    echo(f"study {study.name}: {len(study.cells())} cells, {done} done, {len(units) - n_up} to run "
         f"from {n_up} upstream run(s) to pre-train, with {workers} worker(s)")
    count = [0]

    def report(label: str, seconds: float, error: str | None) -> None:
        count[0] += 1
        status = {None: "done", "preempted": "PREEMPTED (continues next run)"}.get(error, f"FAILED ({error})")
        echo(f"[{count[0]}/{len(units)}] {label}: {status} in {seconds:.0f}s")

    if workers == 1:
        return work(study, retry_failed, execute, report)
    if execute is not None:
        raise ValueError("a custom `execute` runs only with workers=1 (worker processes run the real stages)")
    ctx = mp.get_context("spawn")  # non-daemonic workers: FFCV may start processes of its own inside them
    queue = ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // workers)
    procs = [ctx.Process(target=_worker, args=(study, retry_failed, threads, queue)) for _ in range(workers)]
    for p in procs:
        p.start()

    def forward(signum, frame) -> None:  # stop the workers the way a scheduler would stop them
        for p in procs:
            if p.is_alive():
                os.kill(p.pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGUSR1)}
    failures, finished = [], 0
    try:
        while finished < len(procs):
            try:
                kind, payload = queue.get(timeout=1.0)
            except Exception:  # queue.Empty: check that the workers still live
                if not any(p.is_alive() for p in procs):
                    break
                continue
            if kind == "unit":
                report(*payload)
            else:
                failures.extend(payload)
                finished += 1
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for p in procs:
            p.join()
    return failures
