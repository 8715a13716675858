"""One study cell through the real CLI, launched by the study runner (slow: it trains).

Uses the tiny stage configs of the session ``cell`` fixture and adds a resolution axis, so the
cell's name, its result file, the checkpoint annotation and the override files are all checked
against what LightningCLI really does with them.
"""
from __future__ import annotations

import json

import pytest
import torch

from study.definition import StudyDefinition
from study.layout import CellPaths
from study.runner import cell_statuses, run_study

pytestmark = pytest.mark.slow

CELL = "resnetv2_tiny_bit-size=40-steps=4-seed=0-res=28"


def test_runner_runs_a_real_cell_named_by_its_axes(cell, tmp_path):
    world, _, _, finetune_config = cell
    study = StudyDefinition.from_dict(dict(
        name="real", models=["resnetv2_tiny_bit"], data_sizes=[40], steps=[4], seeds=[0],
        resolutions={28: {"downstream": {"data.init_args.resize": 30, "data.init_args.crop": 28}}},
        upstream_config=str(world / "pre.yaml"), downstream_config=str(finetune_config),
        downstream_extra_configs=[str(world / "data/ood_options.yaml")], runs_dir=str(tmp_path / "runs")))
    lines: list[str] = []
    assert run_study(study, echo=lines.append) == [], (tmp_path / f"runs/logs/{CELL}.log").read_text()[-3000:]
    paths = CellPaths(tmp_path / "runs", CELL)
    assert sorted(p.name for p in (tmp_path / "runs/results").iterdir()) == [f"{CELL}.json"]
    record = json.loads(paths.result.read_text())
    assert record["resolution"] == 28 and record["run_name"] == CELL
    assert (record["model"], record["data_size"], record["steps"], record["seed"]) == ("resnetv2_tiny_bit", 40, 4, 0)
    assert record["config"]["downstream"]["data"]["init_args"]["crop"] == 28  # the axis reached the CLI
    assert record["config"]["upstream"]["trainer"]["max_steps"] == 4
    assert record["config"]["downstream"]["model"]["init_args"]["upstream_checkpoint"] == str(paths.upstream_checkpoint)
    assert record["seeds"]["upstream.seed_everything"] == 0 and "upstream.data.init_args.subset_seed" in record["seeds"]
    assert record["timings"]["upstream"]["seconds"] > 0 and record["git_commit"] and record["versions"]["torch"]
    assert torch.load(paths.upstream_checkpoint, weights_only=True)["study_cell"]["resolution"] == 28
    for stage in ("pretrain", "finetune"):
        assert len(list((tmp_path / f"runs/tb/{stage}/{CELL}").glob("run-*/config.yaml"))) == 1
    assert (tmp_path / f"runs/grid/top_resnetv2_tiny_bit-res=28.svg").exists()  # GridReport ran in the cell
    assert [s.state for _, s in cell_statuses(study)] == ["done"]
    lines.clear()
    assert run_study(study, echo=lines.append) == [] and "0 to run" in lines[-1]
