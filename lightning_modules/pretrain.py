"""Upstream pre-training (BiT-M recipe, spec §2) with steps as the unit."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from datamodules.multilabel import multi_hot
from lightning_modules.classifier import ImageClassifier
from recipes.schedules import decays_at_fractions, linear_scaled_lr, warmup_step_decay


class PretrainModule(ImageClassifier):
    """Pre-trains a backbone on the upstream set.

    SGD (momentum ``momentum``), lr ``base_lr * global_batch / lr_reference_batch`` where the
    global batch is per-device batch x devices x nodes x gradient accumulation, linear warmup
    over ``warmup_steps`` then x0.1 decays at ``decay_fractions`` of ``trainer.max_steps``;
    weight decay on weights only. ``loss``: ``softmax`` cross-entropy, or ``sigmoid`` (one-hot
    binary cross-entropy with the head bias initialised to ``sigmoid_bias_init``, big_vision's choice).
    Multi-label batches (labels ``(B, K)`` padded with -1, ``data.multi_label``) become multi-hot
    targets: sigmoid against them; softmax against their uniform distribution (1/k on each of
    an image's k classes; big_vision sums the k per-class terms instead, k times this).

    ``dataset_size`` (linked from the datamodule) is the number of upstream training images.
    """

    def __init__(
        self,
        backbone: str = "resnetv2_50x1_bit",
        num_classes: int = 21843,
        dataset_size: int | None = None,
        base_lr: float = 0.03,
        lr_reference_batch: int = 256,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        warmup_steps: int = 5000,
        decay_fractions: tuple[float, ...] = (1 / 3, 2 / 3, 8 / 9),  # BiT: 30, 60, 80 of 90 epochs
        loss: Literal["softmax", "sigmoid"] = "softmax",
        sigmoid_bias_init: float = -10.0,
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__(backbone, num_classes, channels_last=channels_last, compile=compile)
        self.save_hyperparameters()
        if loss == "sigmoid":
            torch.nn.init.constant_(self.model.get_classifier().bias, sigmoid_bias_init)

    def loss_fn(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if labels.ndim == 2:  # several labels per image
            targets = multi_hot(labels, logits.shape[1])
            if self.hparams.loss == "softmax":
                targets = targets / targets.sum(1, keepdim=True).clamp(min=1)
        else:
            targets = F.one_hot(labels, logits.shape[1]).float() if self.hparams.loss == "sigmoid" else None
        if self.hparams.loss == "sigmoid":
            # big_vision sums over classes and averages over the batch
            return F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(1).mean()
        return F.cross_entropy(logits, labels if targets is None else targets)

    def training_step(self, batch, batch_idx):
        images, labels, _ = batch
        loss = self.loss_fn(self(images), labels)
        self.check_finite(loss)
        self.log_training(loss, len(labels))
        return loss

    def global_batch(self) -> int:
        per_device = self.trainer.datamodule.batch_size
        return per_device * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def peak_lr(self) -> float:
        return linear_scaled_lr(self.hparams.base_lr, self.global_batch(), self.hparams.lr_reference_batch)

    def configure_optimizers(self):
        total = self.trainer.max_steps
        if total is None or total <= 0:
            raise ValueError("pre-training is step-based: set trainer.max_steps (e.g. 112000) and trainer.max_epochs: -1")
        hp = self.hparams
        decays = decays_at_fractions(total, hp.decay_fractions)
        optimizer = torch.optim.SGD(self.decay_groups(self.model, hp.weight_decay), lr=self.peak_lr(), momentum=hp.momentum)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_step_decay(step, 1.0, hp.warmup_steps, decays))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
