"""Run one unit of a study in this process: an upstream run (pre-training), or a cell
(fine-tuning from its upstream run's final checkpoint + OOD evaluation → result file).

Both go through the project's real CLI (``lightning_modules.cli.cli_main``) with the unit's
override file stacked last (`study.overrides`), and always with ``--ckpt_path last``: a unit
stopped part-way (preempted, killed) continues from its own last checkpoint; the first attempt
finds none and starts from the beginning. The study alone knows what a cell is: it tells the
fine-tuning stage where the result goes and the cell's axes through the override file; nothing
is written into a checkpoint. Before fine-tuning, the upstream run's final checkpoint is
checked to be of the budgeted step (never a stale or partial one). After fine-tuning, the
result file is completed with what only the study knows (both stages' resolved configs, every
seed, stage timings, where the files are) and rewritten atomically.

Under multi-process launchers (SLURM ``srun``, one process per device) every rank calls these;
only rank zero writes markers and the result.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from conversion.files import atomic_write_json, atomic_write_text
from study.data_identity import data_identity
from study.definition import Cell, StudyDefinition, UpstreamRun
from study.layout import CellPaths, UnitPaths, UpstreamPaths
from study.overrides import downstream_overrides, upstream_overrides
from study.state import stale_data
from results.outcomes import sidecar_path
from results.schema import write_result

CliFn = Callable[[list[str]], Any]


class UpstreamNotReady(RuntimeError):
    """A cell's upstream run has not finished (or its final checkpoint is not of its budget)."""


def global_rank() -> int:
    """This process's rank in a multi-process run (torchrun's RANK, srun's SLURM_PROCID), else 0."""
    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def _default_cli(args: list[str]):
    from lightning_modules.cli import cli_main  # torch is imported only when a unit runs

    return cli_main(args)


def _stage_args(study: StudyDefinition, stage: str, model: str, paths: UnitPaths, overrides: dict) -> list[str]:
    """Write the unit's override file (deterministic: every rank may) and return its ``fit`` arguments."""
    base = study.stage_config(stage, model)
    atomic_write_text(paths.overrides, f"# {paths.name}: what it changes in {base} (written by study/cell_run.py)\n"
                      + yaml.safe_dump(overrides, sort_keys=False))
    configs = [base, *study.extra_configs(stage), str(paths.overrides)]
    return ["fit", *(arg for c in configs for arg in ("--config", c)), "--ckpt_path", "last"]


def _log_dir(cli) -> str | None:
    logger = getattr(getattr(cli, "trainer", None), "logger", None)
    log_dir = getattr(logger, "log_dir", None)  # the logger's own path: no collective, unlike trainer.log_dir
    return str(log_dir) if log_dir else None


def checkpoint_step(path: Path) -> int:
    """The ``global_step`` a checkpoint was saved at (``lightning_modules.run_folder.checkpoint_step``)."""
    from lightning_modules.run_folder import checkpoint_step as step  # torch only when a unit runs

    return step(path)


def run_upstream(study: StudyDefinition, run: UpstreamRun, cli: CliFn | None = None) -> dict:
    """Pre-train `run` (continuing its last checkpoint if any); returns its ``done.json`` marker.

    Raises when the run ends without a final checkpoint of ``run.steps``.
    """
    cli = cli or _default_cli
    paths = UpstreamPaths(Path(study.runs_dir), run.name)
    started = time.time()
    out = cli(_stage_args(study, "upstream", run.model, paths, upstream_overrides(study, run)))
    if not paths.checkpoint.exists():
        raise RuntimeError(f"upstream {run.name}: pre-training finished but left no checkpoint at {paths.checkpoint}")
    step = checkpoint_step(paths.checkpoint)
    if step != run.steps:
        raise RuntimeError(f"upstream {run.name}: its last checkpoint {paths.checkpoint} is of step {step}, not {run.steps}")
    log_dir = _log_dir(out)
    marker = {"checkpoint": str(paths.checkpoint), "step": step, "seconds": round(time.time() - started, 1),
              "log_dir": log_dir, "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "data": data_identity(_read_config(log_dir))}  # what it was trained on: checked before every reuse
    if global_rank() == 0:
        atomic_write_json(paths.done, marker)
    return marker


def ready_upstream(study: StudyDefinition, cell: Cell) -> dict:
    """The ``done.json`` of `cell`'s upstream run after checking its checkpoint is the budgeted
    step; `UpstreamNotReady` (one line) otherwise."""
    run = study.upstream_of(cell)
    paths = UpstreamPaths(Path(study.runs_dir), run.name)
    if not paths.done.exists() or not paths.checkpoint.exists():
        raise UpstreamNotReady(f"{cell.name}: its upstream run {run.name} has not finished (run it first: "
                               f"`python -m study upstream {study.source} {run.name}` or `python -m study run {study.source}`)")
    step = checkpoint_step(paths.checkpoint)
    if step != run.steps:
        raise UpstreamNotReady(f"{cell.name}: the final checkpoint of upstream run {run.name} ({paths.checkpoint}) is of step "
                               f"{step}, not its budget {run.steps}; delete {paths.done} and run the upstream run again")
    stale = stale_data(paths)
    if stale is not None:
        raise UpstreamNotReady(f"{cell.name}: upstream run {run.name} was {stale}")
    return json.loads(paths.done.read_text())


def run_downstream(study: StudyDefinition, cell: Cell, cli: CliFn | None = None) -> Path | None:
    """Fine-tune and evaluate `cell` from its finished upstream run; returns its result file
    (None on ranks other than zero). Raises on any failure, with the cell named."""
    cli = cli or _default_cli
    upstream = ready_upstream(study, cell)
    paths = CellPaths(Path(study.runs_dir), cell.name)
    started = time.time()
    down = cli(_stage_args(study, "downstream", cell.model, paths, downstream_overrides(study, cell)))
    if global_rank() != 0:
        return None
    return complete_result(study, cell, upstream, time.time() - started, _log_dir(down))


def run_cell(study: StudyDefinition, cell: Cell, cli: CliFn | None = None) -> Path | None:
    """The cell's upstream run (unless finished) then the cell, in this process (no claims:
    for callers that own both, e.g. one SLURM task per cell of a study without sharing)."""
    run = study.upstream_of(cell)
    if not UpstreamPaths(Path(study.runs_dir), run.name).done.exists():
        run_upstream(study, run, cli)
    return run_downstream(study, cell, cli)


def collect_seeds(configs: dict[str, Any]) -> dict[str, Any]:
    """Every ``*seed*`` value of the resolved configs, by dotted key (``downstream.model.init_args.mixup_seed``)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                if "seed" in str(k) and (v is None or isinstance(v, (int, bool))):
                    out[key] = v
                else:
                    walk(v, key)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{prefix}[{i}]")

    walk(configs, "")
    return out


def _read_config(log_dir: str | None) -> dict | None:
    path = Path(log_dir) / "config.yaml" if log_dir else None
    return yaml.safe_load(path.read_text()) if path is not None and path.is_file() else None


def complete_result(study: StudyDefinition, cell: Cell, upstream: dict, downstream_s: float, downstream_log_dir: str | None) -> Path:
    """Check the cell's result file against the cell and add what only the study knows."""
    paths = CellPaths(Path(study.runs_dir), cell.name)
    if not paths.result.exists():
        raise RuntimeError(f"{cell.name}: fine-tuning finished but wrote no result file {paths.result} (is OODEvaluation's result_file the cell's?)")
    record = json.loads(paths.result.read_text())
    wrong = {k: (record.get(k), v) for k, v in cell.axes().items() if record.get(k) != v}
    if wrong:
        # out of the results folder: a file under the cell's name must describe the cell
        rejected = paths.cell_dir / "rejected_result.json"
        os.replace(paths.result, rejected)
        sidecar = sidecar_path(paths.result)
        if sidecar.exists():  # its outcomes go with it (the rejected record names the file)
            os.replace(sidecar, paths.cell_dir / sidecar.name)
        said = ", ".join(f"{k}={got!r} (cell: {want!r})" for k, (got, want) in wrong.items())
        raise RuntimeError(f"{cell.name}: the result file does not describe this cell ({said}); moved to {rejected}")
    configs = {stage: c for stage, c in (("upstream", _read_config(upstream.get("log_dir"))),
                                         ("downstream", _read_config(downstream_log_dir))) if c is not None}
    run = study.upstream_of(cell)
    record["config"] = configs
    record["seeds"] = collect_seeds(configs)
    record["timings"] = {**(record.get("timings") or {}),
                         "upstream": {"seconds": upstream.get("seconds"), "run": run.name},
                         "downstream": {"seconds": round(downstream_s, 1)}}
    record["study"] = {
        "name": study.name, "config": study.source, "cell": cell.name, "axes": cell.axes(), "upstream_run": run.name,
        "log": str(paths.log), "cell_dir": str(paths.cell_dir), "upstream_checkpoint": upstream.get("checkpoint"),
        "upstream_data": upstream.get("data"),
        "tensorboard": {"upstream": upstream.get("log_dir"), "downstream": downstream_log_dir},
    }
    return write_result(paths.result, record)
