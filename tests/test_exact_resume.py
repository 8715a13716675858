"""A run stopped anywhere and rerun with ``--ckpt_path last`` ends as the uninterrupted run
ends: bitwise the same weights, optimizer state, logged losses and validation metrics.

Every run is a real ``python train.py fit --config configs/<shipped>.yaml`` process with only
data paths and sizes overridden on the command line (as a user would), in its own working
directory, so the shipped ModelCheckpoint / PreemptionCheckpoint settings and run folders
are what is tested. The signal is sent from inside the run by a callback appended with
``--trainer.callbacks+=`` (as a scheduler would send it from outside), at a chosen step and
hook: mid-step, during validation, in the epoch-end hooks; or SIGKILL after a periodic
checkpoint. Pre-training: 16 rows, batch 4 (4 batches an epoch), 12 steps, validation
every 4 steps on 2 batches, periodic checkpoints every 10 steps (the miniature config's).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import copy_beton

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STEPS = 12

SIGNAL_AT = '''
import os, signal
import lightning as L


class SignalAt(L.Callback):
    """Sends ``signum`` to this process from ``hook`` the first time ``global_step == step``."""

    def __init__(self, step: int, hook: str = "on_train_batch_end", signum: str = "SIGTERM"):
        self.step, self.signum, self.sent = step, signum, False
        setattr(self, hook, self._maybe_send)

    def _maybe_send(self, trainer, *args, **kwargs):
        if not self.sent and trainer.global_step == self.step and not trainer.sanity_checking:
            self.sent = True
            os.kill(os.getpid(), getattr(signal, self.signum))
'''

COMMON = ["--trainer.max_steps", str(STEPS), "--trainer.log_every_n_steps", "1", "--trainer.deterministic", "true",
          "--trainer.enable_progress_bar", "false"]


def pretrain_args(beton: Path) -> list[str]:
    return ["--config", str(REPO / "configs/miniature/pretrain.yaml"), *COMMON,
            "--data.init_args.beton", str(beton), "--data.init_args.subset_size", "16", "--data.init_args.holdout", "4",
            "--data.init_args.global_batch", "4", "--data.init_args.eval_batch_size", "2", "--data.init_args.resolution", "12",
            "--model.init_args.warmup_steps", "4", "--trainer.val_check_interval", "4"]


def finetune_args(beton: Path) -> list[str]:
    return ["--config", str(REPO / "configs/miniature/finetune.yaml"), *COMMON,
            "--data.init_args.train_beton", str(beton), "--data.init_args.val_beton", str(beton),
            "--data.init_args.global_batch", "4", "--data.init_args.resize", "16", "--data.init_args.crop", "12",
            "--data.init_args.benchmarks", "[]", "--data.init_args.ood_root", "null",
            "--model.init_args.backbone", "resnetv2_tiny_bit", "--model.init_args.steps", str(STEPS),
            "--model.init_args.warmup_steps", "2", "--model.init_args.decay_steps", "[5, 8]",
            "--model.init_args.mixup_alpha", "0.2", "--model.init_args.schedule_scale", "1.0"]


def bit_pretrain_args(beton: Path) -> list[str]:
    """The paper-scale R50x1 config, shrunk onto one CPU by overrides only."""
    return ["--config", str(REPO / "configs/bit/pretrain_r50x1.yaml"), *COMMON,
            "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
            "--trainer.precision", "32-true", "--trainer.val_check_interval", "4",
            "--model.init_args.backbone", "resnetv2_tiny_bit", "--model.init_args.channels_last", "false",
            "--model.init_args.warmup_steps", "4",
            "--data.init_args.beton", str(beton), "--data.init_args.subset_size", "16", "--data.init_args.holdout", "4",
            "--data.init_args.global_batch", "4", "--data.init_args.max_device_batch", "4",
            "--data.init_args.eval_batch_size", "2", "--data.init_args.resolution", "12", "--data.init_args.num_workers", "1"]


def _signal_args(step: int, hook: str, signum: str) -> list[str]:
    return ["--trainer.callbacks+=signal_at.SignalAt", "--trainer.callbacks.step", str(step),
            "--trainer.callbacks.hook", hook, "--trainer.callbacks.signum", signum]


class Run:
    """One training process in its own working directory (the configs' relative ``runs/`` land there)."""

    def __init__(self, cwd: Path, args: list[str], env: dict | None = None):
        self.cwd, self.args, self.env = cwd, args, env or {}
        cwd.mkdir(parents=True, exist_ok=True)

    def start(self, *extra: str) -> subprocess.Popen:
        env = {**os.environ, **self.env, "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(REPO), str(self.cwd.parent)])}
        command = [sys.executable, str(REPO / "train.py"), "fit", *self.args, *extra]
        return subprocess.Popen(command, cwd=self.cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def run_folder(self) -> Path:
        (folder,) = [p for p in (self.cwd / "runs").rglob("run-*") if p.is_dir()]  # the resumed run wrote into it too
        return folder


def _wait_all(started: list[tuple[subprocess.Popen, set[int]]]) -> None:
    for proc, codes in started:
        err = proc.communicate(timeout=900)[1]
        assert proc.returncode in codes, f"{' '.join(proc.args)}\nexit {proc.returncode}\n{err[-3000:]}"


def _state(run: Run) -> dict:
    folder = run.run_folder()
    ckpt = torch.load(folder / "checkpoints/last.ckpt", weights_only=True, map_location="cpu")
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]
               if tag.startswith(("train/loss", "train/lr", "val/"))}
    result = folder / "ood_result.json"
    return {"ckpt": ckpt, "scalars": scalars, "result": json.loads(result.read_text()) if result.exists() else None}


def _assert_bitwise_equal(resumed: Run, whole: Run) -> None:
    a, b = _state(resumed), _state(whole)
    assert a["ckpt"]["global_step"] == b["ckpt"]["global_step"] == STEPS
    assert a["ckpt"]["state_dict"].keys() == b["ckpt"]["state_dict"].keys()
    for name, tensor in b["ckpt"]["state_dict"].items():
        assert torch.equal(a["ckpt"]["state_dict"][name], tensor), name
    opt_a, opt_b = a["ckpt"]["optimizer_states"][0], b["ckpt"]["optimizer_states"][0]
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for key, state in opt_b["state"].items():
        assert torch.equal(opt_a["state"][key]["momentum_buffer"], state["momentum_buffer"]), key
    assert a["ckpt"]["lr_schedulers"] == b["ckpt"]["lr_schedulers"]
    assert sorted(b["scalars"]["train/loss"]) == list(range(STEPS))
    assert a["scalars"] == b["scalars"]  # every step's loss and lr, every validation, once, bitwise
    if b["result"] is not None:
        for key in ("errors", "clean", "metrics"):
            assert a["result"].get(key) == b["result"].get(key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, colour_beton):
    """Every run of the module, two processes at a time; returns the runs and the stop checkpoints."""
    root = tmp_path_factory.mktemp("resume")
    beton = copy_beton(colour_beton, root)
    (root / "signal_at.py").write_text(SIGNAL_AT)
    bin_dir = root / "bin"  # a stand-in scontrol: records the requeue it was asked for
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {root / 'scontrol.log'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_NODELIST": "localhost",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
             "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    pre, ft, bit = pretrain_args(beton), finetune_args(beton), bit_pretrain_args(beton)
    # validation on epoch ends, every second epoch: other restart paths in Lightning's loops
    epoch_val = [*pre, "--trainer.val_check_interval", "1.0", "--trainer.check_val_every_n_epoch", "2"]
    runs = {
        "whole": Run(root / "whole", pre),
        "mid_step": Run(root / "mid_step", pre),          # SIGTERM between backward and the optimizer step
        "epoch_end": Run(root / "epoch_end", pre),        # SIGTERM in the epoch-end hooks (after a validation)
        "validation": Run(root / "validation", pre),      # SIGTERM between two validation batches
        "slurm_usr1": Run(root / "slurm_usr1", pre, slurm),  # SIGUSR1 on SLURM: checkpoint, requeue, stop
        "killed": Run(root / "killed", pre),              # SIGKILL after the step-10 periodic checkpoint
        "ft_whole": Run(root / "ft_whole", ft),
        "ft_usr1": Run(root / "ft_usr1", ft),             # SIGUSR1 off SLURM, mid-epoch, MixUp state
        "ft_killed": Run(root / "ft_killed", ft),
        "ev_whole": Run(root / "ev_whole", epoch_val),
        "ev_no_val": Run(root / "ev_no_val", epoch_val),    # SIGTERM at the end of epoch 0 (no validation)
        "ev_val": Run(root / "ev_val", epoch_val),          # SIGTERM at the end of epoch 1 (after its validation)
        "bit_whole": Run(root / "bit_whole", bit),
        "bit_term": Run(root / "bit_term", bit),
    }
    first = [
        ("whole", [], {0}),
        ("mid_step", _signal_args(5, "on_before_optimizer_step", "SIGTERM"), {143}),
        ("epoch_end", _signal_args(4, "on_train_epoch_end", "SIGTERM"), {143}),
        ("validation", _signal_args(8, "on_validation_batch_end", "SIGTERM"), {143}),
        ("slurm_usr1", _signal_args(3, "on_train_batch_end", "SIGUSR1"), {138}),
        ("killed", _signal_args(11, "on_train_batch_end", "SIGKILL"), {-signal.SIGKILL}),
        ("ft_whole", [], {0}),
        ("ft_usr1", _signal_args(5, "on_train_batch_end", "SIGUSR1"), {138}),
        ("ft_killed", _signal_args(11, "on_train_batch_end", "SIGKILL"), {-signal.SIGKILL}),
        ("ev_whole", [], {0}),
        ("ev_no_val", _signal_args(4, "on_train_epoch_end", "SIGTERM"), {143}),
        ("ev_val", _signal_args(8, "on_train_epoch_end", "SIGTERM"), {143}),
        ("bit_whole", [], {0}),
        ("bit_term", _signal_args(6, "on_train_batch_end", "SIGTERM"), {143}),
    ]
    for i in range(0, len(first), 2):
        _wait_all([(runs[name].start(*extra), codes) for name, extra, codes in first[i:i + 2]])
    stopped = {name: torch.load(runs[name].run_folder() / "checkpoints/last.ckpt", weights_only=True, map_location="cpu")
               for name in runs if "whole" not in name}
    resumed = [name for name in runs if "whole" not in name]
    for i in range(0, len(resumed), 2):
        _wait_all([(runs[name].start("--ckpt_path", "last"), {0}) for name in resumed[i:i + 2]])
    return runs, stopped, root


@pytest.mark.parametrize("name, stop_step", [("mid_step", 6), ("epoch_end", 4), ("validation", 8), ("slurm_usr1", 3)])
def test_pretraining_stopped_by_a_signal_resumes_bitwise(runs, name, stop_step):
    runs, stopped, _ = runs
    # the stop waits for the step in flight, the validation or the epoch end to complete
    assert stopped[name]["global_step"] == stop_step
    _assert_bitwise_equal(runs[name], runs["whole"])


@pytest.mark.parametrize("name, stop_step", [("ev_no_val", 4), ("ev_val", 8)])
def test_epoch_end_validation_runs_resume_bitwise(runs, name, stop_step):
    runs, stopped, _ = runs
    assert stopped[name]["global_step"] == stop_step
    _assert_bitwise_equal(runs[name], runs["ev_whole"])
    assert len(_state(runs["ev_whole"])["scalars"]["val/loss"]) == 1  # epoch 1's validation, once


def test_slurm_sigusr1_requeues_the_job(runs):
    _, _, root = runs
    assert (root / "scontrol.log").read_text().split("\n")[0] == "requeue 4242"


def test_pretraining_killed_resumes_from_the_periodic_checkpoint(runs):
    runs, stopped, _ = runs
    assert stopped["killed"]["global_step"] == 10
    _assert_bitwise_equal(runs["killed"], runs["whole"])


@pytest.mark.parametrize("name, stop_step", [("ft_usr1", 5), ("ft_killed", 10)])
def test_finetuning_with_mixup_resumes_bitwise(runs, name, stop_step):
    runs, stopped, _ = runs
    assert stopped[name]["global_step"] == stop_step
    assert "mixup_generator_state" in stopped[name]
    _assert_bitwise_equal(runs[name], runs["ft_whole"])


def test_paper_config_resumes_bitwise(runs):
    runs, stopped, _ = runs
    assert stopped["bit_term"]["global_step"] == 6
    _assert_bitwise_equal(runs["bit_term"], runs["bit_whole"])


def test_resumed_run_keeps_updating_last_ckpt(runs):
    runs, _, _ = runs
    for name in ("mid_step", "ft_usr1", "killed"):
        names = sorted(p.name for p in (runs[name].run_folder() / "checkpoints").glob("last*.ckpt"))
        assert names == ["last.ckpt"], names
