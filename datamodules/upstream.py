"""Upstream (pre-training) data: one beton, a held-out split and nested seeded subsets."""
from __future__ import annotations

from pathlib import Path

from datamodules.base import BetonDataModule, distributed_context, loader_device
from conversion.beton import beton_labels
from datamodules.ffcv_loaders import eval_loader, train_loader
from datamodules.multilabel import multi_label_pipeline
from datamodules.pipelines import eval_pipelines, inception_train_pipelines
from conversion.subsets import load_or_create_subset, parse_size


class UpstreamDataModule(BetonDataModule):
    """Serves a nested, seeded subset of one upstream beton (ImageNet-21k or the generated stand-in).

    Args:
        beton: the full upstream set, written by ``python -m conversion imagenet21k``.
        subset_size: training images to use: a count or a name like ``"1M"``/``"500K"`` (``None``
            or ``"full"``: all but the held-out split). Subsets of
            the same ``subset_seed``/``balanced``/``holdout`` are nested: 1M ⊂ 5M ⊂ full.
        subset_seed: seed of the permutation that defines the holdout and every subset.
        balanced: draw subsets class-balanced instead of uniformly.
        holdout: images held out (before subsets are drawn) for upstream validation.
        batch_size: per-device training batch; or leave it unset and give ``global_batch``.
        verify_sha256: hash the beton at start-up and refuse one whose bytes differ from its
            manifest's sha256 (a full read; the size is always checked).
        global_batch / max_device_batch: a fixed global batch instead; ``train.py`` derives the
            per-device batch and gradient accumulation from devices x nodes (see ``BetonDataModule``).
        resolution: training/eval crop side (Inception crop + flip for training).
        order_seed: seed of the training order (one permutation per epoch, shared by the ranks)
            and of the crops and flips (drawn per image from it, the epoch and the row).
        multi_label: train on every label of each image (a beton converted with ``--multi-label``):
            batches then carry ``(B, max_labels)`` labels padded with -1; validation keeps the first.
        allow_upsampling: train even though the beton's storage cap (``--max-resolution``) shrank
            its images below ``resolution``; refused at start-up by default (see ``DownstreamDataModule``).
    """

    def __init__(
        self,
        beton: str,
        subset_size: int | str | None = None,
        subset_seed: int = 0,
        balanced: bool = False,
        holdout: int = 0,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        resolution: int = 224,
        min_crop_scale: float = 0.08,
        order_seed: int = 0,
        num_workers: int = 2,
        os_cache: bool = True,
        global_batch: int | None = None,
        max_device_batch: int | None = None,
        verify_sha256: bool = False,
        multi_label: bool = False,
        allow_upsampling: bool = False,
    ):
        super().__init__(batch_size, eval_batch_size, num_workers, os_cache, global_batch, max_device_batch, verify_sha256)
        self.save_hyperparameters()
        subset_size = self.subset_size = parse_size(subset_size)
        self.beton = Path(beton)
        self.manifest = self._manifest(self.beton)
        self._check_storage(self.beton, self.manifest, resolution, allow_upsampling)
        self.class_list: list[str] = self.manifest["classes"]
        self._has_label_sets = "labels" in self.manifest.get("fields", [])
        if multi_label and not self._has_label_sets:
            raise ValueError(f"data.multi_label=true but {self.beton} holds one label per image (no 'labels' field); "
                             f"convert it with --multi-label, or set data.multi_label: false")
        available = self.manifest["num_images"] - holdout
        self.num_train_examples = available if subset_size is None else subset_size
        if subset_size is not None and not 0 < subset_size <= available:
            raise ValueError(f"data.subset_size={subset_size} but {self.beton} has {available} images after holding out {holdout}")
        self._rows = None

    @property
    def num_classes(self) -> int:
        return len(self.class_list)

    def rows(self):
        """``(train rows, held-out rows)`` of the beton, from the subset index files."""
        if self._rows is None:
            labels = beton_labels(self.beton)
            hp = self.hparams
            self._rows = load_or_create_subset(self.beton, labels, self.class_list, self.subset_size, hp.subset_seed, hp.holdout, hp.balanced)
        return self._rows

    def train_dataloader(self):
        rank, world = distributed_context(self.trainer)
        train_rows, _ = self.rows()
        device = loader_device(self.trainer)
        pipelines = inception_train_pipelines(self.hparams.resolution, self.hparams.min_crop_scale, seed=self.hparams.order_seed,
                                              device=device)
        if self.hparams.multi_label:
            pipelines["label"] = multi_label_pipeline(device)  # labels (B, max_labels), -1 padded
        return self._resumable(train_loader(
            self.beton, train_rows, self.batch_size, self._without_label_sets(pipelines),
            num_workers=self.num_workers, seed=self.hparams.order_seed, rank=rank, world_size=world, epoch=0, os_cache=self.os_cache,
        ))

    def val_dataloader(self):
        _, val_rows = self.rows()
        if len(val_rows) == 0:
            return []
        rank, world = distributed_context(self.trainer)
        res, device = self.hparams.resolution, loader_device(self.trainer)
        # validation scores the first label of each image (``label``), multi-label beton or not
        return eval_loader(self.beton, val_rows, self.eval_batch_size, lambda: self._without_label_sets(eval_pipelines(res, device=device)),
                           f"eval:{res}:{device}",
                           num_workers=self.num_workers, rank=rank, world_size=world, os_cache=self.os_cache)

    def _without_label_sets(self, pipelines: dict) -> dict:
        # FFCV decodes every field it is not told to skip: a multi-label beton's ``labels``
        # would become a fourth output (it is read through the ``label`` output instead)
        return {**pipelines, "labels": None} if self._has_label_sets else pipelines
