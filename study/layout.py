"""Where everything about an upstream run and a cell lives, derived from the study's runs_dir
and their names.

::

    <runs_dir>/upstream/<run>/upstream.yaml           the run's overrides of the upstream stage config
    <runs_dir>/upstream/<run>/checkpoints/last.ckpt   its checkpoints (the final one: what cells start from)
    <runs_dir>/upstream/<run>/done.json               written once it has finished (checkpoint, step)
    <runs_dir>/upstream/<run>/{claim,state}.json      who runs it now; preempted / failed
    <runs_dir>/cells/<cell>/downstream.yaml           the cell's overrides of the downstream stage config
    <runs_dir>/cells/<cell>/checkpoints/downstream/   its fine-tuning checkpoints
    <runs_dir>/cells/<cell>/{claim,state}.json        who runs it now; preempted / failed
    <runs_dir>/results/<cell>.json                    the result file (the source of truth: done)
    <runs_dir>/logs/<cell>.log, logs/upstream-<run>.log   everything printed, every attempt
    <runs_dir>/tb/pretrain/<run>/run-<hash>/, tb/finetune/<cell>/run-<hash>/   TensorBoard runs (+ config.yaml)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# TensorBoard run prefix of each stage (the names the quickstart has always used).
TB_NAMES = {"upstream": "pretrain", "downstream": "finetune"}


@dataclass(frozen=True)
class UnitPaths:
    """The paths every unit of work (an upstream run or a cell) has. Pure: nothing is created or read."""

    runs_dir: Path
    name: str
    kind = "downstream"

    @property
    def unit_dir(self) -> Path:
        return Path(self.runs_dir) / ("upstream" if self.kind == "upstream" else "cells") / self.name

    @property
    def log(self) -> Path:
        prefix = "upstream-" if self.kind == "upstream" else ""
        return Path(self.runs_dir) / "logs" / f"{prefix}{self.name}.log"

    @property
    def state(self) -> Path:
        return self.unit_dir / "state.json"

    @property
    def claim(self) -> Path:
        return self.unit_dir / "claim.json"

    @property
    def overrides(self) -> Path:
        return self.unit_dir / f"{self.kind}.yaml"

    @property
    def checkpoint_dir(self) -> Path:
        return self.unit_dir / "checkpoints" if self.kind == "upstream" else self.unit_dir / "checkpoints" / "downstream"

    @property
    def tb_root(self) -> Path:
        return Path(self.runs_dir) / "tb"

    @property
    def tb_name(self) -> str:
        return f"{TB_NAMES[self.kind]}/{self.name}"


@dataclass(frozen=True)
class UpstreamPaths(UnitPaths):
    """One upstream run's paths."""

    kind = "upstream"

    @property
    def checkpoint(self) -> Path:
        return self.checkpoint_dir / "last.ckpt"

    @property
    def done(self) -> Path:
        return self.unit_dir / "done.json"


@dataclass(frozen=True)
class CellPaths(UnitPaths):
    """One cell's paths (its fine-tuning, evaluation and result)."""

    kind = "downstream"

    @property
    def cell_dir(self) -> Path:
        return self.unit_dir

    @property
    def result(self) -> Path:
        return Path(self.runs_dir) / "results" / f"{self.name}.json"
