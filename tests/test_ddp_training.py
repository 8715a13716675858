"""Training under DDP: 2 CPU ranks (gloo, Lightning's own launcher through ``train.py``) split
the data, reach the configured global batch by accumulation, and log what one process logs.

Both runs use ``data.global_batch: 8`` with ``max_device_batch: 2``: one process trains with
4 accumulated micro-batches of 2, two ranks with 2 each. The order is one global permutation
of which each rank takes a share, and crops/flips are seeded per image, so step k trains on
the same 8 augmented images either way; the BiT ResNetV2 has GroupNorm (no batch
statistics), so the steps themselves agree to float rounding.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import copy_beton
from tests.test_exact_resume import REPO, SIGNAL_AT

pytestmark = pytest.mark.slow
STEPS = 4  # 16 training rows / global batch 8: two epochs

RECORD_ROWS = '''
import json
from pathlib import Path

import lightning as L


class RecordRows(L.Callback):
    """Writes, per rank, the rows of every micro-batch with its optimizer step, and the batch arithmetic."""

    def __init__(self, out: str):
        self.out, self.rows = Path(out), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rows.append({"step": trainer.global_step, "epoch": trainer.current_epoch, "rows": batch[2].tolist()})

    def on_train_end(self, trainer, pl_module):
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / f"rank{trainer.global_rank}.json").write_text(json.dumps({
            "world": trainer.world_size, "accumulation": trainer.accumulate_grad_batches,
            "per_device": trainer.datamodule.batch_size, "micro_batches": self.rows}))
'''


def _command(config: dict, root: Path, *extra: str) -> list[str]:
    """The ``train.py fit`` command of one run in ``root`` (its config is written there)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"config-{len(list(root.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return [sys.executable, "train.py", "fit", "--config", str(path), *extra]


def _run_together(*commands: list[str], codes: tuple[int, ...] = (0,)) -> None:
    """Runs independent training processes side by side; each must exit with one of ``codes``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *{str(Path(c[4]).parent.parent) for c in commands}]),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    for proc, err, command in zip(procs, errors, commands):
        assert proc.returncode in codes, f"{' '.join(command)}\nexit {proc.returncode}\n{err[-3000:]}"


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]


def _config(root, beton) -> dict:
    config = yaml.safe_load((REPO / "configs/miniature/pretrain.yaml").read_text())
    config["data"]["init_args"].update(beton=str(beton), subset_size=16, holdout=4, global_batch=8, max_device_batch=2,
                                       resolution=12, eval_batch_size=2)
    config["model"]["init_args"]["warmup_steps"] = 1
    config["trainer"].update(max_steps=STEPS, log_every_n_steps=1, deterministic=True, enable_progress_bar=False,
                             check_val_every_n_epoch=1, val_check_interval=1.0)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(root / "tb")
    config["trainer"]["callbacks"] = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"dirpath": str(root / "ckpt"), "save_last": True, "save_top_k": 0}},
        {"class_path": "record_rows.RecordRows", "init_args": {"out": str(root / "rows")}},
    ]
    return config


def _scalars(root, tag) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (folder,) = {events.parent for events in (root / "tb").rglob("events.out.tfevents.*")}  # one run, resumed or not
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


def _steps(record: dict) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for micro in record["micro_batches"]:
        out.setdefault(micro["step"], []).extend(micro["rows"])
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, colour_beton):
    root = tmp_path_factory.mktemp("ddp_training")
    beton = copy_beton(colour_beton, root)
    (root / "record_rows.py").write_text(RECORD_ROWS)
    (root / "signal_at.py").write_text(SIGNAL_AT.replace("if not self.sent", "if trainer.global_rank == 1 and not self.sent"))
    ddp = ("--trainer.devices", "2", "--trainer.strategy", "ddp")
    cut = _config(root / "two_cut", beton)
    cut["trainer"]["callbacks"].append({"class_path": "callbacks.preemption.PreemptionCheckpoint"})
    stop = {"class_path": "signal_at.SignalAt", "init_args": {"step": 1, "hook": "on_train_batch_end"}}
    _run_together(
        _command(_config(root / "one", beton), root / "one", "--trainer.devices", "1"),
        _command(_config(root / "two", beton), root / "two", *ddp),
    )
    # SIGTERM to rank 1 only, after step 1: both ranks stop after that step, then resume on 2 ranks
    _run_together(_command({**cut, "trainer": {**cut["trainer"], "callbacks": cut["trainer"]["callbacks"] + [stop]}},
                           root / "two_cut", *ddp), codes=(143,))
    stopped = torch.load(root / "two_cut/ckpt/last.ckpt", weights_only=True, map_location="cpu")
    assert stopped["global_step"] == 1
    _run_together(_command(cut, root / "two_cut", *ddp, "--ckpt_path", "last"))
    one = json.loads((root / "one/rows/rank0.json").read_text())
    two = [json.loads((root / f"two/rows/rank{r}.json").read_text()) for r in range(2)]
    return root, one, two


def test_ranks_see_disjoint_data_adding_up_to_the_global_batch(runs):
    _, one, two = runs
    assert (one["world"], one["accumulation"], one["per_device"]) == (1, 4, 2)
    assert [(r["world"], r["accumulation"], r["per_device"]) for r in two] == [(2, 2, 2)] * 2
    steps = [_steps(r) for r in two]
    assert sorted(steps[0]) == sorted(steps[1]) == list(range(STEPS))
    for step in range(STEPS):
        assert len(steps[0][step]) == len(steps[1][step]) == 4  # 2 micro-batches of 2 per rank
        assert not set(steps[0][step]) & set(steps[1][step])  # disjoint: 8 images per step
    for epoch in range(2):
        rows = [m["rows"] for r in two for m in r["micro_batches"] if m["epoch"] == epoch]
        flat = [x for batch in rows for x in batch]
        assert len(flat) == len(set(flat)) == 16  # each training row once per epoch over both ranks


def test_two_ranks_train_on_the_global_batches_of_one_process(runs):
    _, one, two = runs
    single, ranks = _steps(one), [_steps(r) for r in two]
    for step in range(STEPS):
        assert sorted(single[step]) == sorted(ranks[0][step] + ranks[1][step])


def test_logged_metrics_and_weights_match_a_single_process(runs):
    root, _, _ = runs
    for tag in ("train/loss", "train/lr", "val/loss", "val/top1"):
        one, two = _scalars(root / "one", tag), _scalars(root / "two", tag)
        assert sorted(one) == sorted(two) and one, tag
        assert two == pytest.approx(one, rel=1e-5, abs=1e-6), tag
    a, b = _weights(root / "one/ckpt/last.ckpt"), _weights(root / "two/ckpt/last.ckpt")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=lambda m: f"{name}: {m}")


def test_a_signal_on_one_rank_stops_both_and_the_resumed_run_ends_the_same(runs):
    root, _, _ = runs
    for tag in ("train/loss", "train/lr", "val/loss", "val/top1"):
        whole, resumed = _scalars(root / "two", tag), _scalars(root / "two_cut", tag)
        assert resumed == whole, tag
    a, b = _weights(root / "two/ckpt/last.ckpt"), _weights(root / "two_cut/ckpt/last.ckpt")
    for name in a:
        assert torch.equal(a[name], b[name]), name
