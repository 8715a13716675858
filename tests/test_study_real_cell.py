"""A study through the real CLI, launched by the study runner (slow: it trains).

Uses the tiny stage configs of the session ``cell`` fixture with a resolution axis of two
values that set only the fine-tuning stage: the two cells share one upstream run, which is
pre-trained once. A SIGTERM during that pre-training stops the runner; a plain ``run`` then
continues it and finishes both cells with the results of an uninterrupted study.
"""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from results.outcomes import read_outcomes
from study.definition import StudyDefinition
from study.layout import CellPaths, UpstreamPaths
from study.runner import cell_statuses, run_study, upstream_statuses

pytestmark = pytest.mark.slow

UPSTREAM = "resnetv2_tiny_bit-size=40-steps=4-seed=0"
CELLS = [f"{UPSTREAM}-res=28", f"{UPSTREAM}-res=32"]

SIGNAL_AT = '''
import os, signal
import lightning as L


class SignalAt(L.Callback):
    """SIGTERM to this process after training step ``step`` (as a scheduler's preemption)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)
'''


def _study(world, finetune_config, runs, extra) -> StudyDefinition:
    return StudyDefinition.from_dict(dict(
        name="real", models=["resnetv2_tiny_bit"], data_sizes=[40], steps=[4], seeds=[0],
        resolutions={r: {"downstream": {"data.init_args.resize": r + 2, "data.init_args.crop": r}} for r in (28, 32)},
        upstream_config=str(world / "pre.yaml"), downstream_config=str(finetune_config),
        upstream_extra_configs=[str(extra)], downstream_extra_configs=[str(world / "data/ood_options.yaml")],
        runs_dir=str(runs)))


def _callbacks(world, signal_step: int | None) -> dict:
    callbacks = yaml.safe_load((world / "pre.yaml").read_text())["trainer"]["callbacks"]
    if signal_step is not None:
        callbacks = callbacks + [{"class_path": "signal_at.SignalAt", "init_args": {"step": signal_step}}]
    return {"trainer": {"callbacks": callbacks}}


@pytest.fixture(scope="module")
def studies(cell, tmp_path_factory):
    """An uninterrupted study, and one whose pre-training was stopped by SIGTERM and rerun."""
    world, _, _, finetune_config = cell
    root = tmp_path_factory.mktemp("real_study")
    (root / "signal_at.py").write_text(SIGNAL_AT)
    monkey = pytest.MonkeyPatch()
    monkey.syspath_prepend(str(root))
    try:
        plain = root / "plain.yaml"
        plain.write_text(yaml.safe_dump(_callbacks(world, None)))
        whole = _study(world, finetune_config, root / "whole", plain)
        lines = {"whole": [], "stopped": [], "resumed": []}
        assert run_study(whole, echo=lines["whole"].append) == [], lines
        extra = root / "stopped.yaml"  # the same path, rewritten: a signal during the first run only
        extra.write_text(yaml.safe_dump(_callbacks(world, 2)))
        cut = _study(world, finetune_config, root / "cut", extra)
        assert run_study(cut, echo=lines["stopped"].append) == []
        stopped_states = ([s.state for _, s in upstream_statuses(cut)], [s.state for _, s in cell_statuses(cut)])
        stop_step = torch.load(UpstreamPaths(root / "cut", UPSTREAM).checkpoint, weights_only=True)["global_step"]
        extra.write_text(yaml.safe_dump(_callbacks(world, None)))
        assert run_study(cut, echo=lines["resumed"].append) == [], lines
    finally:
        monkey.undo()
    return root, whole, cut, lines, stopped_states, stop_step


def test_two_resolutions_share_one_pretraining(studies):
    root, whole, _, lines, _, _ = studies
    runs = root / "whole"
    assert "2 to run from 1 upstream run(s) to pre-train" in lines["whole"][0]
    assert [l.split(": ")[0].split("] ")[1] for l in lines["whole"][1:]] == [f"upstream {UPSTREAM}", *CELLS]
    assert len(list((runs / "tb/pretrain").iterdir())) == 1  # one TensorBoard pre-training run
    assert sorted(p.name for p in (runs / "results").glob("*.json")) == [f"{c}.json" for c in CELLS]
    assert sorted(p.name for p in (runs / "results").glob("*.outcomes.npz")) == [f"{c}.outcomes.npz" for c in CELLS]
    up = UpstreamPaths(runs, UPSTREAM)
    for name, res in zip(CELLS, (28, 32)):
        record = json.loads(CellPaths(runs, name).result.read_text())
        assert record["resolution"] == res and record["run_name"] == name
        assert (record["model"], record["data_size"], record["steps"], record["seed"]) == ("resnetv2_tiny_bit", 40, 4, 0)
        assert record["config"]["downstream"]["data"]["init_args"]["crop"] == res  # the axis reached the CLI
        assert record["config"]["downstream"]["model"]["init_args"]["upstream_checkpoint"] == str(up.checkpoint)
        assert record["config"]["upstream"]["trainer"]["max_steps"] == 4
        assert record["seeds"]["upstream.seed_everything"] == 0 and record["git_commit"] and record["versions"]["torch"]
        assert record["study"]["upstream_run"] == UPSTREAM
        # the launcher's rewrite keeps the outcomes sidecar paired with the file
        assert set(read_outcomes(CellPaths(runs, name).result, record)) == set(record["errors"])
    checkpoint = torch.load(up.checkpoint, weights_only=True)
    assert checkpoint["global_step"] == 4 and "study_cell" not in checkpoint  # the study knows the cell, not the weights
    assert (runs / "grid/top_resnetv2_tiny_bit-res=32.svg").exists()  # GridReport ran in the cells
    assert [s.state for _, s in cell_statuses(whole)] == ["done", "done"]
    lines = []
    assert run_study(whole, echo=lines.append) == [] and "0 to run from 0 upstream run(s)" in lines[-1]


def test_sigterm_during_pretraining_stops_the_runner_and_a_plain_run_finishes_it(studies):
    root, whole, cut, lines, stopped_states, stop_step = studies
    assert stopped_states == (["preempted"], ["pending", "pending"])  # no cell started on a partial upstream run
    assert stop_step == 2 and lines["stopped"][-1].endswith("PREEMPTED (continues next run) in " + lines["stopped"][-1].split(" in ")[-1])
    assert "2 to run from 1 upstream run(s) to pre-train" in lines["resumed"][0]  # no --retry-failed needed
    assert len(list((root / "cut/tb/pretrain").iterdir())) == 1  # continued in the same TensorBoard run
    for name in CELLS:
        a = json.loads(CellPaths(root / "cut", name).result.read_text())
        b = json.loads(CellPaths(root / "whole", name).result.read_text())
        assert a["errors"] == b["errors"] and a["metrics"] == b["metrics"]
    a = torch.load(UpstreamPaths(root / "cut", UPSTREAM).checkpoint, weights_only=True)["state_dict"]
    b = torch.load(UpstreamPaths(root / "whole", UPSTREAM).checkpoint, weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in b)
