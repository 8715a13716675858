"""Run a study's cells on this machine: the pending ones (and, on request, the failed ones).

Each cell is one `study.cell_run.run_cell` (upstream → downstream → evaluation) inside
`attempt`, which marks it running, sends everything it prints to ``logs/<cell>.log``
(appended, one header per attempt) and marks it failed with the error if it raises. Done cells
(a valid result file) are skipped, so re-running the study resumes it; cells running elsewhere
are left alone. ``workers: 1`` runs the cells one after another in this process; more run in
that many spawned worker processes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import multiprocessing as mp
import os
import socket
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Iterator

from study.cell_run import global_rank, run_cell
from study.definition import Cell, StudyDefinition  # noqa: F401 - re-exported: `from study.runner import StudyDefinition`
from study.layout import CellPaths
from study.state import DONE, FAILED, RUNNING, CellStatus, cell_status, mark_done, mark_failed, mark_running

Execute = Callable[[StudyDefinition, Cell], object]


def cell_statuses(study: StudyDefinition) -> list[tuple[Cell, CellStatus]]:
    """Every cell of the study with its state, in the study's cell order."""
    return [(c, cell_status(CellPaths(Path(study.runs_dir), c.name))) for c in study.cells()]


def plan(study: StudyDefinition, retry_failed: bool = False) -> tuple[list[Cell], list[str], int]:
    """The cells to run now, one line for each cell left out that the user should know about,
    and how many cells are done."""
    to_run, notes, done = [], [], 0
    for cell, status in cell_statuses(study):
        if status.state == DONE:
            done += 1
            continue
        if status.state == RUNNING:
            notes.append(f"{cell.name}: running ({status.detail}); left alone")
        elif status.state == FAILED and not retry_failed:
            notes.append(f"{cell.name}: failed ({status.detail}); pass --retry-failed to run it again")
        else:
            to_run.append(cell)
    return to_run, notes, done


@contextlib.contextmanager
def _output_to(path: Path) -> Iterator[None]:
    """Send print()s and logging handlers that write to the console into `path` (appended)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    consoles = {id(sys.stdout), id(sys.stderr), id(sys.__stdout__), id(sys.__stderr__)}
    loggers = [logging.getLogger()] + [l for l in logging.root.manager.loggerDict.values() if isinstance(l, logging.Logger)]
    # Lightning's handlers hold the stream they were made with, so redirect_stderr alone misses them.
    handlers = [h for lg in loggers for h in lg.handlers
                if type(h) is logging.StreamHandler and id(h.stream) in consoles]
    with open(path, "a", buffering=1) as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        previous = [h.setStream(log) for h in handlers]
        try:
            yield
        finally:
            for h, stream in zip(handlers, previous):
                h.setStream(stream)


def _one_line(err: BaseException) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:500]


def attempt(study: StudyDefinition, cell: Cell, execute: Execute | None = None) -> str | None:
    """Run one cell with its state kept and its output in its log; return None or the error (one line).

    Ranks other than zero of a multi-process launch just run the cell (rank zero keeps the
    state and the log). A KeyboardInterrupt marks the cell failed and is raised again.
    `execute` defaults to `run_cell`.
    """
    execute = execute or run_cell
    if global_rank() != 0:
        execute(study, cell)
        return None
    paths = CellPaths(Path(study.runs_dir), cell.name)
    mark_running(paths)
    error = None
    with _output_to(paths.log):
        stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        print(f"===== {cell.name}: attempt started {stamp} on {socket.gethostname()} (pid {os.getpid()})", flush=True)
        try:
            execute(study, cell)
        except KeyboardInterrupt:
            mark_failed(paths, "interrupted (KeyboardInterrupt)")
            raise
        except BaseException as err:  # noqa: BLE001 - SystemExit from the CLI included: reported with the log path
            traceback.print_exc()
            error = _one_line(err)
    if error is None:
        mark_done(paths)
    else:
        mark_failed(paths, error)
    return error


def _pool_attempt(study: StudyDefinition, cell: Cell, threads: int) -> tuple[str, float, str | None]:
    import torch

    torch.set_num_threads(threads)  # workers share the cores instead of each taking all of them
    started = time.time()
    error = attempt(study, cell)
    return cell.name, time.time() - started, error


def run_study(study: StudyDefinition, *, retry_failed: bool = False, workers: int | None = None,
              execute: Execute | None = None, echo: Callable[[str], None] = print) -> list[str]:
    """Run every cell `plan` selects; return one line per failure (cell, error, log path).

    `workers` defaults to the study's ``workers``. With one worker the cells run here, one
    after another, through `execute` (default `run_cell`; tests pass a fake); with more, in
    spawned processes running `run_cell`, longest cells first so that the workers finish together.
    """
    workers = study.workers if workers is None else workers
    cells = study.cells()
    to_run, notes, done = plan(study, retry_failed)
    for note in notes:
        echo(note)
    echo(f"study {study.name}: {len(cells)} cells, {done} done, {len(to_run)} to run with {workers} worker(s)")
    failures: list[str] = []

    def report(k: int, name: str, seconds: float, error: str | None) -> None:
        log = CellPaths(Path(study.runs_dir), name).log
        status = "done" if error is None else f"FAILED ({error}); log: {log}"
        echo(f"[{k}/{len(to_run)}] {name}: {status} in {seconds:.0f}s")
        if error is not None:
            failures.append(f"{name}: {error}; log: {log}")

    if workers == 1:
        for k, cell in enumerate(to_run, 1):
            started = time.time()
            error = attempt(study, cell, execute)
            report(k, cell.name, time.time() - started, error)
        return failures
    if execute is not None:
        raise ValueError("a custom `execute` runs only with workers=1 (worker processes run run_cell)")
    to_run.sort(key=lambda c: (-c.steps * (3 if "x3" in c.model else 1), c.model, c.data_size))
    threads = max(1, (os.cpu_count() or 1) // workers)
    # spawned, non-daemonic workers: FFCV may start processes of its own inside them
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        jobs = [pool.submit(_pool_attempt, study, c, threads) for c in to_run]
        for k, job in enumerate(as_completed(jobs), 1):
            report(k, *job.result())
    return failures
