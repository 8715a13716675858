"""``python -m study {list,run,slurm,report,cell} STUDY.yaml``: a study from the command line.

- ``list``   every cell with its state (pending, running, done, failed) and, for a failed
             cell, the error and its log path.
- ``run``    run the pending cells here (``--retry-failed`` also reruns failed ones); done
             cells are skipped, so running it again resumes the study. Exit 1 if a cell failed.
- ``slurm``  write ``<runs_dir>/slurm/<name>.sbatch``, an array job with one task per cell to
             run, and print the ``sbatch`` line (nothing is submitted).
- ``report`` rebuild ``<runs_dir>/grid`` from the result files (see ``python -m study.report``)
             on the study's axes (its steps and data sizes: a row no result has is still
             shown, and still the reference), with the study's ``fallback_reference``;
             ``--fallback-reference`` turns the fallback on for this report.
- ``cell``   run one named cell in this process: what each SLURM array task runs.

Paths in the study file are relative to the repository root: run from there. Loading the study
checks it, the benchmark list against the stacked benchmark options included; ``run``, ``slurm``
and ``cell`` also require every stacked config to exist (`StudyDefinition.check_runnable`). A
refusal is one ``error:`` line on stderr, exit 2, before any cell runs.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Sequence

from study.definition import StudyConfigError, StudyDefinition
from study.state import STATES


def _list(study: StudyDefinition, args) -> int:
    from study.runner import cell_statuses

    rows = cell_statuses(study)
    width = max(len(c.name) for c, _ in rows)
    for k, (cell, status) in enumerate(rows):
        detail = f"  {status.detail}" if status.state in ("running", "failed") else ""
        print(f"{k:>3}  {status.state:<7}  {cell.name:<{width}}{detail}".rstrip())
    counts = Counter(s.state for _, s in rows)
    print(f"{len(rows)} cells: " + ", ".join(f"{counts[s]} {s}" for s in STATES))
    return 0


def _run(study: StudyDefinition, args) -> int:
    from study.runner import run_study

    study.check_runnable()  # a missing or disagreeing config is refused here, not in every cell
    failures = run_study(study, retry_failed=args.retry_failed, workers=args.workers)
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    if study.results_dir.is_dir():
        _report(study, args)  # the grid as far as it goes, failures or not
    return 1 if failures else 0


def _slurm(study: StudyDefinition, args) -> int:
    from study.runner import plan
    from study.slurm import write_slurm_scripts

    study.check_runnable()  # the tasks would run on the cluster with these configs
    cells, notes, done = plan(study, args.retry_failed)
    for note in notes:
        print(note, file=sys.stderr)
    if not cells:
        print(f"nothing to submit: {done} of {len(study.cells())} cells done, the rest running or failed")
        return 0
    scripts = write_slurm_scripts(study, cells, config_path=Path(args.config).resolve(), repo_root=Path.cwd())
    print(f"{len(cells)} cell(s) to run, {done} done (skipped)")
    for path, n in scripts:
        print(f"wrote {path}: {n} array task(s), one per cell")
    for path, _ in scripts:
        print(f"sbatch {shlex.quote(str(path))}")
    return 0


def _report(study: StudyDefinition, args) -> int:
    from study import report

    # the study's axes and reference rule: the grid its cells' GridReport callbacks draw (study/overrides.py)
    fallback = ["--fallback-reference"] if study.fallback_reference or getattr(args, "fallback_reference", False) else []
    return report.main([str(study.results_dir), "--out", str(study.grid_dir), "--model-order", ",".join(study.models),
                        "--steps", *map(str, study.steps), "--sizes", *map(str, study.data_sizes), *fallback])


def _cell(study: StudyDefinition, args) -> int:
    from study.layout import CellPaths
    from study.runner import attempt
    from study.state import DONE, cell_status

    cell = study.cell(args.name)
    if cell_status(CellPaths(Path(study.runs_dir), cell.name)).state == DONE:
        print(f"{cell.name}: already done, nothing to run")
        return 0
    study.check_runnable()
    error = attempt(study, cell)
    if error is not None:
        print(f"{cell.name}: FAILED ({error}); log: {CellPaths(Path(study.runs_dir), cell.name).log}", file=sys.stderr)
        return 1
    return 0


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


COMMANDS = {"list": _list, "run": _run, "slurm": _slurm, "report": _report, "cell": _cell}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study", description="Define, run and report a study (docs/study.md).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {"list": "list the cells and their state", "run": "run the pending cells here, one after another",
             "slurm": "write a SLURM array job for the pending cells and print the sbatch line",
             "report": "rebuild the grid (CSV, heat-maps, line plots) from the result files",
             "cell": "run one cell in this process (what a SLURM task runs)"}
    for name, text in helps.items():
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("config", metavar="STUDY.yaml", help="study definition, e.g. configs/miniature/study.yaml")
        if name == "cell":
            s.add_argument("name", metavar="CELL", help="cell name as `list` prints it")
        if name in ("run", "slurm"):
            s.add_argument("--retry-failed", action="store_true", help="also run cells that failed before")
        if name == "report":
            s.add_argument("--fallback-reference", action="store_true",
                           help="build a top panel whose reference cell has no result against the next cell with one "
                                "(named in the output); default: the study's fallback_reference (false: leave the panel "
                                "empty, with a note)")
        if name == "run":
            s.add_argument("--workers", type=_positive, default=None,
                           help="cells at a time (default: the study's `workers`; 1 runs them one after another, in this process)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status. A bad study file is one ``error:`` line, exit 2."""
    args = _parser().parse_args(argv)
    try:
        study = StudyDefinition.from_yaml(args.config)
        return COMMANDS[args.command](study, args)
    except StudyConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
