"""A NaN loss stops the run in one line naming the step and the newest checkpoint whose loss
was finite and whose weights are sane (not one that already held diverged weights)."""
from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules.upstream import UpstreamDataModule
from lightning_modules.cli import cli_main
from lightning_modules.divergence import NonFiniteLossError, checkpoint_health
from lightning_modules.pretrain import PretrainModule
from tests.conftest import copy_beton


class NaNAtStep(PretrainModule):
    """The real module, whose loss turns NaN at ``nan_step``; with ``blow_up_step`` its stem
    conv weights are scaled by 1e15 at the end of that step (weight standardisation keeps the loss
    finite: a run drifting towards divergence)."""

    def __init__(self, *args, nan_step: int = 3, blow_up_step: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.nan_step, self.blow_up_step = nan_step, blow_up_step

    def loss_fn(self, logits, labels):
        loss = super().loss_fn(logits, labels)
        return loss * torch.nan if self.global_step == self.nan_step else loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step == self.blow_up_step:
            with torch.no_grad():
                self.model.stem.conv.weight.mul_(1e15)


def _fit(tmp_path, beton, model, every: int = 2):
    data = UpstreamDataModule(str(beton), subset_size=16, holdout=4, batch_size=4, resolution=12, num_workers=1)
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=every, save_last=True, save_top_k=-1)
    trainer = L.Trainer(max_steps=8, max_epochs=-1, accelerator="cpu", logger=False, callbacks=[checkpoints],
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, datamodule=data)


def test_nan_loss_names_the_step_and_the_last_sane_checkpoint(tmp_path, colour_beton):
    beton = copy_beton(colour_beton, tmp_path)
    model = NaNAtStep("resnetv2_tiny_bit", num_classes=4, dataset_size=16, warmup_steps=0, nan_step=3)
    with pytest.raises(NonFiniteLossError, match=r"^non-finite loss nan at step 3; last checkpoint with a finite loss "
                                                 r"and sane weights: .*ckpt \(step 2\); resume from it with --ckpt_path"):
        _fit(tmp_path, beton, model)


def test_a_checkpoint_with_diverged_weights_is_not_named(tmp_path, colour_beton):
    beton = copy_beton(colour_beton, tmp_path)
    # weights blown up after step 3 (after the checkpoint callbacks ran); checkpoints at 2 and 4; NaN in step 6
    model = NaNAtStep("resnetv2_tiny_bit", num_classes=4, dataset_size=16, warmup_steps=0, nan_step=5, blow_up_step=3)
    with pytest.raises(NonFiniteLossError) as stop:
        _fit(tmp_path, beton, model)
    step4 = next(p for p in (tmp_path / "ckpt").glob("*step=4.ckpt"))
    assert checkpoint_health(step4)[1:] == (False, f"model.stem.conv.weight reaches {checkpoint_health(step4)[2].split()[-1]}")
    assert float(checkpoint_health(step4)[2].split()[-1]) > 1e10  # finite, but diverged
    assert "(step 2)" in str(stop.value) and "step=4" not in str(stop.value)


def test_no_sane_checkpoint_is_said(tmp_path, colour_beton):
    beton = copy_beton(colour_beton, tmp_path)
    model = NaNAtStep("resnetv2_tiny_bit", num_classes=4, dataset_size=16, warmup_steps=0, nan_step=1)
    with pytest.raises(NonFiniteLossError, match=r"at step 1; no checkpoint with a finite loss and sane weights in "):
        _fit(tmp_path, beton, model, every=5)


def test_the_cli_reports_divergence_in_one_line(tmp_path, colour_beton, monkeypatch):
    beton = copy_beton(colour_beton, tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(__import__("pathlib").Path(__file__).parents[1] / "configs/miniature/pretrain.yaml"),
            "--model.class_path", "tests.test_nonfinite.NaNAtStep", "--model.init_args.nan_step", "3",
            "--model.init_args.warmup_steps", "0", "--data.init_args.beton", str(beton),
            "--data.init_args.subset_size", "16", "--data.init_args.holdout", "4", "--data.init_args.global_batch", "4",
            "--data.init_args.resolution", "12", "--trainer.max_steps", "8", "--trainer.enable_progress_bar", "false"]
    with pytest.raises(SystemExit) as stop:
        cli_main(args)
    message = str(stop.value.code)
    assert message.startswith("error: non-finite loss nan at step 3; ") and "\n" not in message
