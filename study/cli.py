"""``python -m study {list,plan,run,slurm,report,upstream,cell} STUDY.yaml``: a study from the command line.

- ``list``     every upstream run and every cell with its state (pending, running, preempted,
               done, failed) and, for a failed one, the error and its log path.
- ``plan``     what the study costs: per upstream run and per cell, images, epochs, GPU-hours
               (``configs/throughput.yaml``) and wall-clock on a cluster shape (``--nodes``,
               ``--gpus-per-node``, ``--device``; defaults from the study's ``slurm:``), totals and
               the saving of shared pre-training; ``--csv``/``--json`` for machines. No torch.
- ``run``      run what is left here: each upstream run once (shared by every cell with its
               upstream settings), then the cells from their upstream runs; preempted units
               continue from their last checkpoints, failed ones rerun with ``--retry-failed``.
               Several ``run`` processes may work on one study at once (claims). SIGTERM stops
               it after the running stage has checkpointed. Exit 1 if a unit failed.
- ``slurm``    write ``<runs_dir>/slurm/<name>-upstream.sbatch`` (one task per upstream run to
               pre-train) and ``<name>-cells.sbatch`` (one task per cell, after the upstream
               array succeeded), and print the ``sbatch`` lines (nothing is submitted).
- ``report``   rebuild ``<runs_dir>/grid`` from the result files (see ``python -m results.report``)
               on the study's axes (its steps and data sizes: a row no result has is still
               shown, and still the reference), with the study's ``fallback_reference``;
               ``--fallback-reference`` turns the fallback on for this report.
- ``upstream`` pre-train one named upstream run in this process (what an upstream task runs).
- ``cell``     fine-tune and evaluate one named cell in this process from its finished upstream
               run (what a cell task runs).

Paths in the study file are relative to the repository root: run from there. Loading the study
checks it, the benchmark list against the stacked benchmark options included; ``run``, ``slurm``,
``upstream`` and ``cell`` also require every stacked config to exist
(`StudyDefinition.check_runnable`). A refusal is one ``error:`` line on stderr, exit 2.
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
    from study.runner import cell_statuses, upstream_statuses

    for title, rows in (("upstream runs", upstream_statuses(study)), ("cells", cell_statuses(study))):
        width = max(len(u.name) for u, _ in rows)
        print(f"{title}:")
        for k, (unit, status) in enumerate(rows):
            detail = f"  {status.detail}" if status.state in ("running", "failed", "preempted") else ""
            detail += f"  WARNING: {status.warning}" if status.warning else ""
            print(f"{k:>3}  {status.state:<9}  {unit.name:<{width}}{detail}".rstrip())
        counts = Counter(s.state for _, s in rows)
        print(f"{len(rows)} {title}: " + ", ".join(f"{counts[s]} {s}" for s in STATES))
    return 0


def _plan(study: StudyDefinition, args) -> int:
    from study.plan import THROUGHPUT_CONFIG, ThroughputTable, plan_study, render, write_csv, write_json

    plan = plan_study(study, ThroughputTable.from_yaml(args.throughput or THROUGHPUT_CONFIG), nodes=args.nodes,
                      gpus_per_node=args.gpus_per_node, device=args.device)
    print(render(plan))
    if args.csv:
        write_csv(plan, args.csv)
        print(f"wrote {args.csv}")
    if args.json:
        write_json(plan, args.json)
        print(f"wrote {args.json}")
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
    units, notes, done = plan(study, args.retry_failed)
    for note in notes:
        print(note, file=sys.stderr)
    upstream = [u.target for u in units if u.kind == "upstream"]
    cells = [u.target for u in units if u.kind == "cell"]
    if not cells:
        print(f"nothing to submit: {done} of {len(study.cells())} cells done, the rest running or failed")
        return 0
    where = dict(config_path=Path(args.config).resolve(), repo_root=Path.cwd())
    up_scripts = write_slurm_scripts(study, upstream, kind="upstream", **where) if upstream else []
    cell_scripts = write_slurm_scripts(study, cells, kind="cells", **where)
    print(f"{len(upstream)} upstream run(s) to pre-train, {len(cells)} cell(s) to run, {done} done (skipped)")
    for path, n in up_scripts:
        print(f"wrote {path}: {n} array task(s), one per upstream run")
    for path, n in cell_scripts:
        print(f"wrote {path}: {n} array task(s), one per cell")
    for k, (path, _) in enumerate(up_scripts):
        print(f"up{k}=$(sbatch --parsable {shlex.quote(str(path))})")
    dependency = f" --dependency=afterok:{':'.join(f'$up{k}' for k in range(len(up_scripts)))}" if up_scripts else ""
    for path, _ in cell_scripts:
        print(f"sbatch{dependency} {shlex.quote(str(path))}")
    return 0


def _report(study: StudyDefinition, args) -> int:
    from results import report

    # the study's axes and reference rule: the grid its cells' GridReport callbacks draw (study/overrides.py)
    fallback = ["--fallback-reference"] if study.fallback_reference or getattr(args, "fallback_reference", False) else []
    # `run` ends with this report too, with the report's defaults
    bootstrap = ["--resamples", str(getattr(args, "resamples", 1000)), "--bootstrap-seed", str(getattr(args, "bootstrap_seed", 0))]
    return report.main([str(study.results_dir), "--out", str(study.grid_dir), "--model-order", ",".join(study.models),
                        "--steps", *map(str, study.steps), "--sizes", *map(str, study.data_sizes), *fallback, *bootstrap])


def _one_unit(study: StudyDefinition, kind: str, name: str) -> int:
    """Run one upstream run or cell here, under its claim; exit 0 when it is (or was) done,
    3 when another process holds it, 143 when a signal stopped it (it continues next time)."""
    from study.claims import try_claim
    from study.layout import CellPaths, UpstreamPaths
    from study.runner import Unit, attempt
    from study.state import DONE, cell_status, upstream_status

    if kind == "upstream":
        target = study.upstream_run(name)
        unit = Unit("upstream", target, UpstreamPaths(Path(study.runs_dir), target.name))
        status = upstream_status
    else:
        target = study.cell(name)
        unit = Unit("cell", target, CellPaths(Path(study.runs_dir), target.name))
        status = cell_status
    if status(unit.paths).state == DONE:
        print(f"{unit.label}: already done, nothing to run")
        return 0
    study.check_runnable()
    claim = try_claim(unit.paths.claim)
    if claim is None:
        print(f"{unit.label}: another process runs it now (`python -m study list {study.source}`)", file=sys.stderr)
        return 3
    try:
        error = attempt(study, unit)
    finally:
        claim.release()
    if error == "preempted":
        print(f"{unit.label}: stopped by a signal; it continues from its last checkpoint when run again", file=sys.stderr)
        return 143
    if error is not None:
        print(f"{unit.label}: FAILED ({error}); log: {unit.paths.log}", file=sys.stderr)
        return 1
    return 0


def _cell(study: StudyDefinition, args) -> int:
    return _one_unit(study, "cell", args.name)


def _upstream(study: StudyDefinition, args) -> int:
    return _one_unit(study, "upstream", args.name)


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


COMMANDS = {"list": _list, "plan": _plan, "run": _run, "slurm": _slurm, "report": _report, "upstream": _upstream, "cell": _cell}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study", description="Define, run and report a study (docs/study.md).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {"list": "list the upstream runs and cells with their states",
             "plan": "print what the study costs: images, epochs, GPU-hours and wall-clock per upstream run and cell",
             "run": "run what is left here: upstream runs once each, then the cells",
             "slurm": "write SLURM array jobs (upstream runs, then cells) and print the sbatch lines",
             "report": "rebuild the grid (CSV, heat-maps, line plots) from the result files",
             "upstream": "pre-train one upstream run in this process (what an upstream SLURM task runs)",
             "cell": "fine-tune and evaluate one cell in this process from its finished upstream run (a cell task)"}
    for name, text in helps.items():
        s = sub.add_parser(name, help=text, description=text)
        s.add_argument("config", metavar="STUDY.yaml", help="study definition, e.g. configs/miniature/study.yaml")
        if name in ("cell", "upstream"):
            s.add_argument("name", metavar=name.upper(), help=f"{name} name as `list` prints it")
        if name in ("run", "slurm"):
            s.add_argument("--retry-failed", action="store_true", help="also run upstream runs and cells that failed before")
        if name == "report":
            s.add_argument("--fallback-reference", action="store_true",
                           help="build a top panel whose reference cell has no result against the next cell with one "
                                "(named in the output); default: the study's fallback_reference (false: leave the panel "
                                "empty, with a note)")
            s.add_argument("--resamples", type=int, default=1000, help="bootstrap replicates of each interval (0: none)")
            s.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap's draws")
        if name == "plan":
            s.add_argument("--throughput", default=None, help="throughput table (default configs/throughput.yaml)")
            s.add_argument("--device", default=None, help="device of the throughput table (default: its first)")
            s.add_argument("--nodes", type=_positive, default=None,
                           help="nodes of the cluster (default: the study's largest slurm nodes, else the largest unit's)")
            s.add_argument("--gpus-per-node", type=_positive, default=None,
                           help="GPUs per node (default: the study's slurm gpus_per_node, else the largest unit's devices)")
            s.add_argument("--csv", metavar="PATH", default=None, help="also write one row per unit to PATH")
            s.add_argument("--json", metavar="PATH", default=None, help="also write the whole plan (units, totals, assumptions) to PATH")
        if name == "run":
            s.add_argument("--workers", type=_positive, default=None,
                           help="units at a time (default: the study's `workers`; 1 runs them one after another, in this process)")
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
