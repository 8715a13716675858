"""Shared LightningModule base: a timm backbone fed uint8 batches, with eval metrics."""
from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from lightning_modules.backbones import create_backbone
from lightning_modules.divergence import NonFiniteLossError, divergence_message


class ImageClassifier(L.LightningModule):
    """A timm backbone (by name) that takes the datamodules' batches as they arrive.

    Contract: batches are ``(uint8 images (B,3,H,W), int64 labels (B,), int64 indices (B,))``;
    ``forward`` scales to [0, 1] and normalises with ``mean``/``std`` on the device (BiT:
    0.5/0.5, i.e. pixels in [-1, 1]) and returns logits ``(B, num_classes)``. ``channels_last``
    (GPUs) keeps activations NHWC; ``compile`` runs the backbone through ``torch.compile``
    (in place, so checkpoints keep the eager parameter names).
    Validation logs ``val/loss`` and ``val/top1`` (a torchmetrics object, synced across ranks).
    """

    def __init__(self, backbone: str, num_classes: int, mean: tuple[float, float, float] = (0.5, 0.5, 0.5),
                 std: tuple[float, float, float] = (0.5, 0.5, 0.5), channels_last: bool = False, compile: bool = False):
        super().__init__()
        self.backbone_name = backbone
        self.model = create_backbone(backbone, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255, persistent=False)
        self.channels_last = channels_last
        self.compile_backbone = compile
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.val_top1 = MulticlassAccuracy(num_classes, average="micro")
        self._micro_losses: list[torch.Tensor] = []

    def configure_model(self) -> None:
        # in place (nn.Module.compile): parameter names, hence checkpoints, stay those of the eager model
        if self.compile_backbone and not getattr(self, "_compiled", False):
            self.model.compile()
            self._compiled = True

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float() - self.mean) / self.std  # (B, 3, H, W) normalised
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop on a NaN/Inf loss, naming the step and the newest sane checkpoint
        (``lightning_modules.divergence``); remember a finite one for the next checkpoint."""
        value = loss.item()
        if not math.isfinite(value):
            folder = getattr(self.trainer.checkpoint_callback, "dirpath", None)
            raise NonFiniteLossError(divergence_message(value, self.global_step, folder))
        self._last_train_loss = value

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the loss of the step the checkpoint follows: lightning_modules.divergence reads it
        checkpoint["train_loss"] = getattr(self, "_last_train_loss", None)

    def log_training(self, loss: torch.Tensor, batch_size: int) -> None:
        """``train/loss`` and ``train/lr``, on the steps the logger writes only.

        ``train/loss`` is the optimizer step's loss: the mean over its accumulated
        micro-batches and over ranks (``sync_dist``: one all-reduce per logging step, on every
        rank), so it is the same number on 1 device or 64 for the same global batch. The
        micro-batch losses of a logging step are kept here and logged from
        ``on_before_optimizer_step``, which runs once per optimizer step, after its last
        micro-batch. Each ``self.log`` costs ~1.5 ms of Lightning bookkeeping; calling it every
        step when only every ``log_every_n_steps``-th value is written cost ~5% of a small
        model's step time (perf/step_overhead.py).
        """
        every = self.trainer.log_every_n_steps or 1
        # the logger writes after optimizer step n when n % every == 0; global_step counts the
        # steps taken so far, so this micro-batch belongs to step global_step + 1
        if (self.global_step + 1) % every:
            return
        self._micro_losses.append(loss.detach())
        self._micro_batch_size = batch_size

    def on_before_optimizer_step(self, optimizer) -> None:
        if not self._micro_losses:
            return
        step_loss = torch.stack(self._micro_losses).mean()
        self._micro_losses = []
        batch_size = self._micro_batch_size
        self.log("train/loss", step_loss, prog_bar=True, batch_size=batch_size, sync_dist=self.trainer.world_size > 1)
        self.log("train/lr", optimizer.param_groups[0]["lr"], batch_size=batch_size)

    def validation_step(self, batch, batch_idx):
        images, labels, _ = batch
        logits = self(images)
        self.val_top1.update(logits, labels)
        self.log("val/loss", F.cross_entropy(logits, labels), sync_dist=True, batch_size=len(labels))
        self.log("val/top1", self.val_top1, batch_size=len(labels))

    def test_step(self, batch, batch_idx):
        self.validation_step(batch, batch_idx)

    @staticmethod
    def decay_groups(module: torch.nn.Module, weight_decay: float) -> list[dict]:
        """Weight decay on weights only: parameters with ``ndim <= 1`` (biases, norms) get none."""
        decay = [p for p in module.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in module.parameters() if p.requires_grad and p.ndim <= 1]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
