"""A run resumed from a checkpoint sees the same training order it would have seen uninterrupted."""
from __future__ import annotations

import lightning as L
import torch

from datamodules.upstream import UpstreamDataModule
from tests.conftest import copy_beton


class OrderRecorder(L.LightningModule):
    """A one-parameter model that records, per epoch, the beton rows of every training batch."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen: dict[int, list[int]] = {}

    def training_step(self, batch, batch_idx):
        images, labels, index = batch
        self.seen.setdefault(self.current_epoch, []).extend(index.tolist())  # tolist copies: FFCV reuses its buffers
        return (self.weight * images.float().mean()).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def _fit(beton, root, max_epochs, ckpt_path=None, checkpoint_every=None):
    model = OrderRecorder()
    callbacks = [L.pytorch.callbacks.ModelCheckpoint(dirpath=root, every_n_train_steps=checkpoint_every, save_top_k=-1)] if checkpoint_every else []
    trainer = L.Trainer(max_epochs=max_epochs, default_root_dir=root, accelerator="cpu", logger=False, callbacks=callbacks,
                        enable_checkpointing=bool(checkpoint_every), enable_progress_bar=False, enable_model_summary=False)
    data = UpstreamDataModule(str(beton), subset_size=16, holdout=4, batch_size=4, resolution=12, order_seed=5, num_workers=1)
    trainer.fit(model, datamodule=data, ckpt_path=ckpt_path)
    return model.seen, trainer


def test_resumed_epochs_repeat_the_uninterrupted_order(tmp_path, colour_beton):
    beton = copy_beton(colour_beton, tmp_path)

    whole, _ = _fit(beton, tmp_path / "whole", max_epochs=3)
    first, trainer = _fit(beton, tmp_path / "cut", max_epochs=1)  # saved after the fit: an end-of-epoch checkpoint
    ckpt = tmp_path / "after_epoch_0.ckpt"
    trainer.save_checkpoint(ckpt)
    resumed, _ = _fit(beton, tmp_path / "cut", max_epochs=3, ckpt_path=str(ckpt))

    assert sorted(whole) == [0, 1, 2] and sorted(resumed) == [1, 2]
    assert first[0] == whole[0]
    assert whole[1] != whole[0]  # the order does change per epoch: the comparison below can fail
    assert resumed[1] == whole[1] and resumed[2] == whole[2]
    assert sorted(whole[1]) == sorted(whole[0])  # each epoch: every subset row once


def test_a_run_stopped_mid_epoch_resumes_with_the_next_batch(tmp_path, colour_beton):
    beton = copy_beton(colour_beton, tmp_path)

    # 4 batches per epoch; the checkpoint written at step 6 is two batches into epoch 1,
    # as a periodic or a SIGUSR1 checkpoint would be
    whole, _ = _fit(beton, tmp_path / "whole", max_epochs=2, checkpoint_every=6)
    (ckpt,) = (tmp_path / "whole").glob("*step=6.ckpt")
    resumed, _ = _fit(beton, tmp_path / "resumed", max_epochs=2, ckpt_path=str(ckpt))

    assert sorted(resumed) == [1]
    assert resumed[1] == whole[1][8:]  # the rest of epoch 1: nothing repeated, nothing skipped
