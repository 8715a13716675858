"""A fixed global batch on any hardware: per-device batch x devices x accumulation."""
from __future__ import annotations

import lightning as L
import pytest

from lightning_modules.global_batch import split_global_batch
from tests.conftest import copy_beton


@pytest.mark.parametrize("global_batch,world,cap,expected", [
    (4096, 8, None, (512, 1)),
    (4096, 8, 128, (128, 4)),
    (4096, 32, 32, (32, 4)),
    (1024, 8, 100, (64, 2)),      # 128 per device does not fit 100: two micro-batches of 64
    (512, 1, 512, (512, 1)),
    (96, 2, 20, (16, 3)),         # 48 per device: 3 x 16 (not 2 x 24 > 20, not 4 x 12: fewest steps)
])
def test_split(global_batch, world, cap, expected):
    split = split_global_batch(global_batch, world, cap)
    assert (split.per_device, split.accumulation) == expected
    assert split.per_device * split.accumulation * world == global_batch
    assert cap is None or split.per_device <= cap


def test_a_global_batch_that_does_not_divide_is_refused():
    with pytest.raises(ValueError, match=r"data.global_batch=1000 does not divide over 24 devices .*multiple of 24"):
        split_global_batch(1000, 24)


def test_trainer_gets_the_accumulation_and_the_lr_follows_the_global_batch(tmp_path, colour_beton):
    from datamodules.upstream import UpstreamDataModule
    from lightning_modules.pretrain import PretrainModule

    beton = copy_beton(colour_beton, tmp_path)
    data = UpstreamDataModule(str(beton), subset_size=16, holdout=4, batch_size=999, global_batch=8, max_device_batch=2,
                              resolution=12, num_workers=1)
    model = PretrainModule("resnetv2_tiny_bit", num_classes=4, dataset_size=16, base_lr=0.256, warmup_steps=0)
    trainer = L.Trainer(max_steps=2, max_epochs=-1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                        val_check_interval=3, check_val_every_n_epoch=None)
    trainer.fit(model, datamodule=data)
    assert data.batch_size == 2 and trainer.accumulate_grad_batches == 4
    assert trainer.val_check_batch == 12  # "every 3 steps" = every 12 micro-batches of this split
    assert model.global_batch() == 8
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(0.256 * 8 / 256)
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 8  # 2 steps x 4 micro-batches
