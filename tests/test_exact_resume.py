"""A run stopped mid-epoch and resumed with ``--ckpt_path last`` ends where the uninterrupted
run ends: same weights, same logged losses (real ``train.py`` processes, real signals).

Each run is a fresh ``python train.py fit`` process on the CPU (deterministic settings); a
callback written next to the configs sends the signal from inside the run at a chosen step,
as a scheduler would from outside. 16 training rows, batch 4: 4 batches per epoch, so step 6
is the middle of the second epoch.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import copy_beton
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

REPO = Path(__file__).resolve().parents[1]
STEPS = 10

SIGNAL_AT_STEP = '''
import os, signal
import lightning as L


class SignalAtStep(L.Callback):
    """Sends ``signum`` to this process at the end of training step ``step``."""

    def __init__(self, step: int, signum: str = "SIGTERM"):
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signum))
'''


def _config(root: Path, stage: str, beton: Path) -> dict:
    if stage == "pretrain":
        config = yaml.safe_load((REPO / "configs/miniature/pretrain.yaml").read_text())
        config["data"]["init_args"].update(beton=str(beton), subset_size=16, holdout=4, batch_size=4, resolution=12)
        config["model"]["init_args"]["warmup_steps"] = 4
    else:
        config = yaml.safe_load((REPO / "configs/miniature/finetune.yaml").read_text())
        config["trainer"]["callbacks"] = [c for c in config["trainer"]["callbacks"] if "Throughput" in c["class_path"]]
        config["trainer"]["enable_checkpointing"] = True
        config["data"]["init_args"].update(train_beton=str(beton), val_beton=str(beton), batch_size=4, resize=16, crop=12,
                                           benchmarks=[], ood_root=None)
        config["model"]["init_args"].update(backbone="resnetv2_tiny_bit", steps=STEPS, warmup_steps=2, decay_steps=[5, 8],
                                            mixup_alpha=0.2, schedule_scale=1.0)
        config["data"]["init_args"]["num_workers"] = 1
    trainer = config["trainer"]
    trainer.update(max_steps=STEPS, log_every_n_steps=1, deterministic=True, enable_progress_bar=False)
    trainer["logger"]["init_args"]["save_dir"] = str(root / "tb")
    ours = ("ModelCheckpoint", "PreemptionCheckpoint")
    trainer["callbacks"] = [c for c in trainer["callbacks"] if not c["class_path"].endswith(ours)] + [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
         "init_args": {"dirpath": str(root / "ckpt"), "save_last": True, "save_top_k": -1, "every_n_train_steps": 2}},
        {"class_path": "callbacks.preemption.PreemptionCheckpoint"},
    ]
    return config


def _command(config: dict, root: Path, *extra: str, signal_at: tuple[int, str] | None = None) -> list[str]:
    """The ``train.py fit`` command of one run in ``root`` (its config is written there)."""
    config = yaml.safe_load(yaml.safe_dump(config))
    if signal_at:
        (root.parent / "signal_at_step.py").write_text(SIGNAL_AT_STEP)
        config["trainer"]["callbacks"].append({"class_path": "signal_at_step.SignalAtStep",
                                               "init_args": {"step": signal_at[0], "signum": signal_at[1]}})
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"config-{len(list(root.glob('config-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return [sys.executable, "train.py", "fit", "--config", str(path), *extra]


def _run_together(*commands: list[str]) -> None:
    """Runs independent training processes side by side (each takes one core), all must succeed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *{str(Path(c[4]).parent.parent) for c in commands}]),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in commands]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    for proc, err, command in zip(procs, errors, commands):
        assert proc.returncode == 0, f"{' '.join(command)}\n{err[-3000:]}"


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=True, map_location="cpu")["state_dict"]


def _losses(root: Path) -> dict[int, float]:
    """``train/loss`` by step, over every TensorBoard run under ``root`` (a resumed run writes its own)."""
    losses = {}
    for events in sorted((root / "tb").rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0})
        acc.Reload()
        if "train/loss" in acc.Tags()["scalars"]:
            losses.update({e.step: e.value for e in acc.Scalars("train/loss")})
    return losses


def _assert_same_run(resumed: Path, whole: Path, from_step: int) -> None:
    a, b = _weights(resumed / "ckpt/last.ckpt"), _weights(whole / "ckpt/last.ckpt")
    assert torch.load(resumed / "ckpt/last.ckpt", weights_only=True)["global_step"] == STEPS
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=lambda m: f"{name}: {m}")
    whole_losses, resumed_losses = _losses(whole), _losses(resumed)
    assert sorted(whole_losses) == list(range(STEPS))
    after = {s: v for s, v in resumed_losses.items() if s >= from_step}
    assert sorted(after) == list(range(from_step, STEPS))  # the resumed run logged every later step, once
    assert after == pytest.approx({s: whole_losses[s] for s in after}, rel=1e-6)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, colour_beton):
    """Every run of this module, in two waves of parallel processes.

    Pre-training: ``whole`` (uninterrupted, checkpoints every 2 steps: step 2 is mid-epoch 0),
    ``cut`` (SIGTERM at step 6, then ``--ckpt_path last``), ``periodic`` (from ``whole``'s
    step-2 checkpoint). Fine-tuning with MixUp, from scratch: ``ft_whole`` and ``ft_cut``
    (SIGUSR1 at step 5, then ``--ckpt_path last``).
    """
    root = tmp_path_factory.mktemp("resume")
    beton = copy_beton(colour_beton, root)
    pre, ft = (lambda name: _config(root / name, "pretrain", beton)), (lambda name: _config(root / name, "finetune", beton))
    _run_together(
        _command(pre("whole"), root / "whole"),
        _command(pre("cut"), root / "cut", signal_at=(6, "SIGTERM")),
        _command(ft("ft_whole"), root / "ft_whole"),
        _command(ft("ft_cut"), root / "ft_cut", signal_at=(5, "SIGUSR1")),  # not on SLURM: "checkpoint and stop"
    )
    stopped = {name: torch.load(root / name / "ckpt/last.ckpt", weights_only=True) for name in ("cut", "ft_cut")}
    (periodic,) = (root / "whole/ckpt").glob("*step=2.ckpt")
    _run_together(
        _command(pre("cut"), root / "cut", "--ckpt_path", "last"),
        _command(pre("periodic"), root / "periodic", "--ckpt_path", str(periodic)),
        _command(ft("ft_cut"), root / "ft_cut", "--ckpt_path", "last"),
    )
    return root, stopped


def test_pretraining_stopped_by_sigterm_mid_epoch_resumes_exactly(runs):
    root, stopped = runs
    assert stopped["cut"]["global_step"] == 6  # the stop checkpoint, written after step 6
    _assert_same_run(root / "cut", root / "whole", from_step=6)


def test_pretraining_resumed_from_a_periodic_checkpoint_ends_the_same(runs):
    root, _ = runs
    _assert_same_run(root / "periodic", root / "whole", from_step=2)


def test_finetuning_with_mixup_stopped_by_sigusr1_resumes_exactly(runs):
    root, stopped = runs
    assert stopped["ft_cut"]["global_step"] == 5
    assert "mixup_generator_state" in stopped["ft_cut"]
    _assert_same_run(root / "ft_cut", root / "ft_whole", from_step=5)
