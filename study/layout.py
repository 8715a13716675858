"""Where everything about a cell lives, derived from the study's runs_dir and the cell's name.

::

    <runs_dir>/results/<cell>.json                   the result file (the source of truth)
    <runs_dir>/logs/<cell>.log                       everything the cell printed, every attempt
    <runs_dir>/cells/<cell>/state.json               running / failed marker (done = result file)
    <runs_dir>/cells/<cell>/{upstream,downstream}.yaml   the cell's overrides of the stage configs
    <runs_dir>/cells/<cell>/checkpoints/upstream/last.ckpt   the upstream checkpoint
    <runs_dir>/cells/<cell>/upstream_done.json       written once pre-training has finished
    <runs_dir>/tb/{pretrain,finetune}/<cell>/run-<hash>/     TensorBoard runs (+ config.yaml)
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# TensorBoard run prefix of each stage (the names the quickstart has always used).
TB_NAMES = {"upstream": "pretrain", "downstream": "finetune"}


@dataclass(frozen=True)
class CellPaths:
    """Every path of one cell. Pure: nothing is created or read."""

    runs_dir: Path
    name: str

    @property
    def cell_dir(self) -> Path:
        return Path(self.runs_dir) / "cells" / self.name

    @property
    def result(self) -> Path:
        return Path(self.runs_dir) / "results" / f"{self.name}.json"

    @property
    def log(self) -> Path:
        return Path(self.runs_dir) / "logs" / f"{self.name}.log"

    @property
    def state(self) -> Path:
        return self.cell_dir / "state.json"

    @property
    def upstream_done(self) -> Path:
        return self.cell_dir / "upstream_done.json"

    def overrides(self, stage: str) -> Path:
        return self.cell_dir / f"{stage}.yaml"

    def checkpoint_dir(self, stage: str) -> Path:
        return self.cell_dir / "checkpoints" / stage

    @property
    def upstream_checkpoint(self) -> Path:
        return self.checkpoint_dir("upstream") / "last.ckpt"

    @property
    def tb_root(self) -> Path:
        return Path(self.runs_dir) / "tb"

    def tb_name(self, stage: str) -> str:
        return f"{TB_NAMES[stage]}/{self.name}"
