"""Run the cells of a study: upstream pre-training → downstream fine-tuning + OOD evaluation.

A cell is one (model, upstream data size, upstream steps, seed). Each cell runs the two
stage configs through the project's real CLI (``lightning_modules.cli.cli_main``), in
worker processes, with every stage's output in ``<runs_dir>/logs/<cell>.log``. A cell
whose result file exists is skipped, so an interrupted study resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from study.results import run_name


@dataclass(frozen=True)
class Cell:
    """One cell of the grid; ``name`` is its run name (and result file stem)."""

    model: str
    data_size: int
    steps: int
    seed: int

    @property
    def name(self) -> str:
        return run_name(self.model, self.data_size, self.steps, self.seed)


@dataclass
class StudyDefinition:
    """The axes of a study and the two stage configs every cell runs (see configs/miniature/study.yaml)."""

    models: list[str]
    data_sizes: list[int]
    steps: list[int]
    upstream_config: str
    downstream_config: str
    runs_dir: str
    downstream_extra_configs: list[str] = field(default_factory=list)
    seed: int = 0
    workers: int = 1
    generate: dict = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "StudyDefinition":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"study definition {path} not found")
        return cls(**yaml.safe_load(path.read_text()))

    def cells(self) -> list[Cell]:
        return [Cell(m, n, s, self.seed) for m in self.models for n in self.data_sizes for s in self.steps]

    @property
    def results_dir(self) -> Path:
        return Path(self.runs_dir) / "results"

    def is_done(self, cell: Cell) -> bool:
        return (self.results_dir / f"{cell.name}.json").exists()


def _cli(args: list[str]):
    from lightning_modules.cli import cli_main

    return cli_main(args)


def run_cell(study: StudyDefinition, cell: Cell) -> Path:
    """Pre-train then fine-tune + evaluate one cell in this process; returns its result file."""
    common = ["--seed_everything", str(cell.seed), "--trainer.enable_progress_bar", "false"]
    up = _cli(["fit", "--config", study.upstream_config, *common,
               "--model.init_args.backbone", cell.model,
               "--data.init_args.subset_size", str(cell.data_size),
               "--trainer.max_steps", str(cell.steps),
               "--trainer.logger.init_args.name", f"pretrain/{cell.name}"])
    checkpoint = up.trainer.checkpoint_callback.last_model_path
    if not checkpoint or not Path(checkpoint).exists():
        raise RuntimeError(f"{cell.name}: pre-training left no checkpoint")
    extra = [arg for path in study.downstream_extra_configs for arg in ("--config", path)]
    _cli(["fit", "--config", study.downstream_config, *extra, *common,
          "--model.init_args.upstream_checkpoint", checkpoint,
          "--trainer.logger.init_args.name", f"finetune/{cell.name}"])
    result = study.results_dir / f"{cell.name}.json"
    if not result.exists():
        raise RuntimeError(f"{cell.name}: fine-tuning finished but wrote no result file {result}")
    return result


def _worker(study: StudyDefinition, cell: Cell, threads: int) -> tuple[str, float, str | None]:
    import torch

    torch.set_num_threads(threads)
    log_path = Path(study.runs_dir) / "logs" / f"{cell.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log_path, "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            run_cell(study, cell)
            error = None
        except BaseException as err:  # noqa: BLE001 - reported to the parent with the log path
            traceback.print_exc()
            error = f"{type(err).__name__}: {err}"
    return cell.name, time.time() - started, error


def run_study(study: StudyDefinition) -> list[str]:
    """Run every pending cell, ``study.workers`` at a time; returns the failures (one line each)."""
    pending = [c for c in study.cells() if not study.is_done(c)]
    done = len(study.cells()) - len(pending)
    print(f"study: {len(study.cells())} cells, {done} already done, {len(pending)} to run with {study.workers} worker(s)", flush=True)
    # longest cells first, so the two workers finish together
    pending.sort(key=lambda c: (-c.steps * (3 if "x3" in c.model else 1), c.model, c.data_size))
    threads = max(1, (os.cpu_count() or 1) // max(1, study.workers))
    failures = []
    # ProcessPoolExecutor's workers are not daemonic, so FFCV's writer may start processes in them
    with ProcessPoolExecutor(study.workers, mp_context=mp.get_context("spawn")) as pool:
        jobs = [pool.submit(_worker, study, c, threads) for c in pending]
        for k, job in enumerate(as_completed(jobs), 1):
            name, seconds, error = job.result()
            status = "done" if error is None else f"FAILED ({error}); log: {Path(study.runs_dir) / 'logs' / (name + '.log')}"
            print(f"[{done + k}/{len(study.cells())}] {name}: {status} in {seconds:.0f}s", flush=True)
            if error is not None:
                failures.append(f"{name}: {error}")
    return failures


if __name__ == "__main__":
    failures = run_study(StudyDefinition.from_yaml(sys.argv[1] if len(sys.argv) > 1 else "configs/miniature/study.yaml"))
    sys.exit(1 if failures else 0)
