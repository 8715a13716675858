"""Downstream fine-tuning with the BiT HyperRule (spec §3)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from recipes import hyperrule
from lightning_modules.backbones import load_backbone_weights
from lightning_modules.classifier import ImageClassifier
from lightning_modules.mixup import mix_batch, mixup_loss
from lightning_modules.safe_load import load_plain
from recipes.schedules import warmup_step_decay


def read_upstream_checkpoint(path: str | Path) -> dict:
    """A pre-training checkpoint, loaded with ``weights_only=True`` (no code execution)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"upstream checkpoint {path} not found; run the pre-training config first (python train.py fit --config configs/...)")
    return load_plain(path)


def finetune_schedule(dataset_size: int, schedule_scale: float = 1.0, steps: int | None = None, warmup_steps: int | None = None,
                      decay_steps: list[int] | tuple[int, ...] | None = None) -> hyperrule.Schedule:
    """The HyperRule's schedule for ``dataset_size`` training images with every boundary scaled
    by ``schedule_scale``; ``steps``/``warmup_steps``/``decay_steps`` given explicitly win."""
    rule = hyperrule.schedule(dataset_size).scaled(schedule_scale)
    return hyperrule.Schedule(
        steps if steps is not None else rule.steps,
        warmup_steps if warmup_steps is not None else rule.warmup_steps,
        tuple(decay_steps) if decay_steps is not None else rule.decay_steps,
    )


class FinetuneModule(ImageClassifier):
    """Fine-tunes a pre-trained backbone on a downstream set by the BiT HyperRule.

    The starting point is ``upstream_checkpoint`` (a Lightning checkpoint of
    :class:`PretrainModule`; its backbone name comes with it) or ``weights``
    (a timm/BiT weight file from a local path), or nothing (training from scratch).
    The head is replaced by a zero-initialised ``num_classes``-way one.

    The HyperRule sets, from ``dataset_size`` (linked from the datamodule): steps, warmup,
    decay boundaries and the MixUp alpha; ``lr`` 0.003, momentum 0.9, no weight decay.
    Any of ``steps``/``warmup_steps``/``decay_steps``/``mixup_alpha`` given here overrides the
    rule. ``schedule_scale`` multiplies every boundary of the rule (the miniature study
    uses 0.1; leave 1.0 for real runs). The run's length is ``trainer.max_steps``: the CLI writes
    the schedule's steps there (``fit_steps``) when it is left at -1, before the Trainer is built;
    a Trainer built by hand must be given ``max_steps=module.schedule.steps``. The effective
    values (``effective_schedule``) go to the result file.
    """

    def __init__(
        self,
        num_classes: int,
        dataset_size: int,
        backbone: str | None = None,
        upstream_checkpoint: str | None = None,
        weights: str | None = None,
        lr: float = hyperrule.LR,
        momentum: float = hyperrule.MOMENTUM,
        steps: int | None = None,
        warmup_steps: int | None = None,
        decay_steps: list[int] | None = None,
        mixup_alpha: float | None = None,
        schedule_scale: float = 1.0,
        mixup_seed: int = 0,
        channels_last: bool = False,
        compile: bool = False,
    ):
        upstream = read_upstream_checkpoint(upstream_checkpoint) if upstream_checkpoint else None
        if upstream is not None:
            up_backbone = upstream["hyper_parameters"]["backbone"]
            if backbone is not None and backbone != up_backbone:
                raise ValueError(f"model.backbone={backbone!r} but {upstream_checkpoint} holds a {up_backbone!r}; drop model.backbone to take it from the checkpoint")
            backbone = up_backbone
        if backbone is None:
            raise ValueError("set model.backbone (a timm name) or model.upstream_checkpoint")
        if upstream is not None and weights is not None:
            raise ValueError("set model.upstream_checkpoint or model.weights, not both")
        super().__init__(backbone, num_classes, channels_last=channels_last, compile=compile)
        self.save_hyperparameters()
        self.hparams["backbone"] = backbone  # resolved from the upstream checkpoint: the checkpoint names its own model
        if upstream is not None:
            state = {k[len("model."):]: v for k, v in upstream["state_dict"].items() if k.startswith("model.")}
            own = self.model.state_dict()
            state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
            missing = [k for k in self.model.load_state_dict(state, strict=False).missing_keys if not k.startswith("head.")]
            if missing:
                raise ValueError(f"{upstream_checkpoint} does not match backbone {backbone!r}: missing {missing[:3]}")
        elif weights is not None:
            load_backbone_weights(self.model, weights)
        head = self.model.get_classifier()
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)

        self.schedule = finetune_schedule(dataset_size, schedule_scale, steps, warmup_steps, decay_steps)
        self.mixup_alpha = mixup_alpha if mixup_alpha is not None else hyperrule.mixup_alpha(dataset_size)
        self.mixup_generator = torch.Generator().manual_seed(mixup_seed)

    @staticmethod
    def fit_steps(init_args: Mapping, dataset_size: int) -> int:
        """Optimizer steps a fit of a module built from ``init_args`` runs on ``dataset_size``
        training images: what the CLI writes into ``trainer.max_steps`` (left at -1) before the
        Trainer exists. The same rule as ``self.schedule``, from the config alone."""
        return finetune_schedule(dataset_size, init_args.get("schedule_scale", 1.0), init_args.get("steps")).steps

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        if self.trainer.max_steps in (-1, None):
            raise ValueError(f"trainer.max_steps is unset: train.py sets it from the HyperRule ({self.schedule.steps} steps here); "
                             f"a Trainer built by hand needs max_steps=module.schedule.steps")
        # not in hparams: Lightning's CLI feeds a checkpoint's hparams back into __init__ (--ckpt_path)
        self.effective_schedule = {
            "steps": self.trainer.max_steps, "warmup_steps": self.schedule.warmup_steps,
            "decay_steps": list(self.schedule.decay_steps), "mixup_alpha": self.mixup_alpha,
        }

    def training_step(self, batch, batch_idx):
        images, labels, _ = batch
        if self.mixup_alpha > 0:
            mixed, perm, lam = mix_batch(images.float(), self.mixup_alpha, self.mixup_generator)
            loss = mixup_loss(self(mixed), labels, perm, lam)
        else:
            loss = F.cross_entropy(self(images), labels)
        self.check_finite(loss)
        self.log_training(loss, len(labels))
        return loss

    def configure_optimizers(self):
        s = self.schedule
        optimizer = torch.optim.SGD(self.model.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum, weight_decay=hyperrule.WEIGHT_DECAY)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_step_decay(step, 1.0, s.warmup_steps, s.decay_steps))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mixup_generator_state"] = self.mixup_generator.get_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "mixup_generator_state" in checkpoint:
            self.mixup_generator.set_state(checkpoint["mixup_generator_state"])
