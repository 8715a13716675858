"""A NaN loss stops the run with the step and the last good checkpoint named."""
from __future__ import annotations

import lightning as L
import pytest
import torch

from datamodules.upstream import UpstreamDataModule
from lightning_modules.classifier import NonFiniteLossError
from lightning_modules.pretrain import PretrainModule
from tests.conftest import copy_beton


class NaNAtStep(PretrainModule):
    """The real module, whose loss turns NaN at one step (as a diverging run's would)."""

    def loss_fn(self, logits, labels):
        loss = super().loss_fn(logits, labels)
        return loss * torch.nan if self.global_step == 3 else loss


def test_nan_loss_names_the_step_and_the_last_checkpoint(tmp_path, colour_beton):
    beton = copy_beton(colour_beton, tmp_path)
    data = UpstreamDataModule(str(beton), subset_size=16, holdout=4, batch_size=4, resolution=12, num_workers=1)
    model = NaNAtStep("resnetv2_tiny_bit", num_classes=4, dataset_size=16, warmup_steps=0)
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_last=True)
    trainer = L.Trainer(max_steps=6, max_epochs=-1, accelerator="cpu", logger=False, callbacks=[checkpoints],
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss nan at step 3; last good checkpoint: .*last\.ckpt"):
        trainer.fit(model, datamodule=data)
    assert torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["global_step"] == 2
