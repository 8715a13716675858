"""Run one cell: upstream pre-training → downstream fine-tuning + OOD evaluation → result file.

Both stages go through the project's real CLI (``lightning_modules.cli.cli_main``) with the
cell's override file stacked last (`study.overrides`). Between the stages the upstream
checkpoint's ``study_cell`` gets the cell's ``run_name`` (and ``resolution``), which the
fine-tuning module hands to the OOD evaluation callback: so the result file is written under
the cell's own name even when two cells differ only in an axis the upstream run cannot know.
After fine-tuning, the result file is completed with what only the study knows (both stages'
resolved configs, every seed, stage timings, where the cell's files are) and rewritten
atomically.

Under multi-process launchers (SLURM ``srun``, one process per device) every rank calls
`run_cell`; only rank zero writes markers, the checkpoint annotation and the result.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from datamodules.files import atomic_write_json, atomic_write_text
from study.definition import Cell, StudyDefinition
from study.layout import CellPaths
from study.overrides import stage_overrides
from study.results import write_result

CliFn = Callable[[list[str]], Any]


def global_rank() -> int:
    """This process's rank in a multi-process run (torchrun's RANK, srun's SLURM_PROCID), else 0."""
    for var in ("RANK", "SLURM_PROCID"):
        if var in os.environ:
            return int(os.environ[var])
    return 0


def _default_cli(args: list[str]):
    from lightning_modules.cli import cli_main  # torch is imported only when a cell runs

    return cli_main(args)


def stage_args(study: StudyDefinition, cell: Cell, stage: str) -> list[str]:
    """``fit`` arguments of one stage: its config, the extra configs, then the cell's overrides."""
    paths = CellPaths(Path(study.runs_dir), cell.name)
    configs = [study.stage_config(stage, cell.model), *study.extra_configs(stage), str(paths.overrides(stage))]
    return ["fit", *(arg for c in configs for arg in ("--config", c))]


def write_overrides(study: StudyDefinition, cell: Cell) -> None:
    """Write both stages' override files (deterministic content, so every rank may write them)."""
    paths = CellPaths(Path(study.runs_dir), cell.name)
    for stage in ("upstream", "downstream"):
        text = f"# {cell.name}: what this cell changes in {study.stage_config(stage, cell.model)} (written by study/cell_run.py)\n"
        atomic_write_text(paths.overrides(stage), text + yaml.safe_dump(stage_overrides(study, cell, stage), sort_keys=False))


def annotate_checkpoint(path: Path, fields: dict[str, Any]) -> None:
    """Add `fields` to the checkpoint's ``study_cell`` entry (atomic replace; no-op if present)."""
    import torch

    from lightning_modules.safe_load import load_plain

    ckpt = load_plain(path)
    cell = dict(ckpt.get("study_cell") or {})
    if all(cell.get(k) == v for k, v in fields.items()):
        return
    ckpt["study_cell"] = {**cell, **fields}
    tmp = path.with_name(f".{path.name}.annotate.tmp")
    try:
        torch.save(ckpt, tmp)  # straight to disk: a paper-scale checkpoint should not sit in memory twice
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _log_dir(cli) -> str | None:
    logger = getattr(getattr(cli, "trainer", None), "logger", None)
    log_dir = getattr(logger, "log_dir", None)  # the logger's own path: no collective, unlike trainer.log_dir
    return str(log_dir) if log_dir else None


def _upstream(study: StudyDefinition, cell: Cell, cli: CliFn, rank0: bool) -> dict:
    """Pre-train (or reuse a finished upstream run of this cell); returns the upstream_done marker."""
    paths = CellPaths(Path(study.runs_dir), cell.name)
    ckpt = paths.upstream_checkpoint
    if paths.upstream_done.exists() and ckpt.exists():
        print(f"{cell.name}: upstream already finished, reusing {ckpt}", flush=True)
        return {**json.loads(paths.upstream_done.read_text()), "reused": True}
    args = stage_args(study, cell, "upstream")
    if ckpt.exists():  # an interrupted pre-training: continue from its last checkpoint
        print(f"{cell.name}: resuming pre-training from {ckpt}", flush=True)
        args += ["--ckpt_path", str(ckpt)]
    started = time.time()
    run = cli(args)
    if not ckpt.exists():
        raise RuntimeError(f"{cell.name}: pre-training finished but left no checkpoint at {ckpt}")
    marker = {"checkpoint": str(ckpt), "seconds": round(time.time() - started, 1), "log_dir": _log_dir(run),
              "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if rank0:
        annotate_checkpoint(ckpt, {"run_name": cell.name, **({"resolution": cell.resolution} if cell.resolution is not None else {})})
        atomic_write_json(paths.upstream_done, marker)
    return {**marker, "reused": False}


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
        raise RuntimeError(f"{cell.name}: fine-tuning finished but wrote no result file {paths.result} (is OODEvaluation's results_dir the study's?)")
    record = json.loads(paths.result.read_text())
    wrong = {k: (record.get(k), v) for k, v in cell.axes().items() if record.get(k) != v}
    if wrong:
        # out of the results folder: a file under the cell's name must describe the cell
        rejected = paths.cell_dir / "rejected_result.json"
        os.replace(paths.result, rejected)
        said = ", ".join(f"{k}={got!r} (cell: {want!r})" for k, (got, want) in wrong.items())
        raise RuntimeError(f"{cell.name}: the result file does not describe this cell ({said}); moved to {rejected}")
    configs = {stage: c for stage, c in (("upstream", _read_config(upstream.get("log_dir"))),
                                         ("downstream", _read_config(downstream_log_dir))) if c is not None}
    record["config"] = configs
    record["seeds"] = collect_seeds(configs)
    record["timings"] = {**(record.get("timings") or {}),
                         "upstream": {"seconds": upstream.get("seconds"), "reused": upstream.get("reused", False)},
                         "downstream": {"seconds": round(downstream_s, 1)}}
    record["study"] = {
        "name": study.name, "config": study.source, "cell": cell.name, "axes": cell.axes(),
        "log": str(paths.log), "cell_dir": str(paths.cell_dir), "upstream_checkpoint": str(paths.upstream_checkpoint),
        "tensorboard": {"upstream": upstream.get("log_dir"), "downstream": downstream_log_dir},
    }
    return write_result(paths.result, record)


def run_cell(study: StudyDefinition, cell: Cell, cli: CliFn | None = None) -> Path | None:
    """Run `cell` in this process; returns its result file (None on ranks other than zero).

    `cli` (default: the project's ``cli_main``) takes ``fit`` arguments and returns an object
    with ``trainer``; tests pass a fake. Raises on any failure, with the cell named.
    """
    cli = cli or _default_cli
    rank0 = global_rank() == 0
    write_overrides(study, cell)
    upstream = _upstream(study, cell, cli, rank0)
    started = time.time()
    # a fine-tuning stopped part-way (preempted, killed) continues from its last checkpoint;
    # with none yet, Lightning starts it from the upstream weights
    down = cli([*stage_args(study, cell, "downstream"), "--ckpt_path", "last"])
    seconds = time.time() - started
    if not rank0:
        return None
    return complete_result(study, cell, upstream, seconds, _log_dir(down))
