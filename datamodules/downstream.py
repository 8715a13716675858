"""Downstream (fine-tuning) data: ImageNet-1k-style train/val betons plus the OOD suite."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.base import BetonDataModule, distributed_context, loader_device
from conversion.beton import read_manifest
from datamodules.ffcv_loaders import eval_loader, train_loader
from datamodules.ood import CHECKED_STAGES, CleanSet, OODSuite
from datamodules.pipelines import eval_pipelines, hyperrule_train_pipelines
from recipes import hyperrule


class DownstreamDataModule(BetonDataModule):
    """Fine-tuning data with BiT's HyperRule resolution and the configured OOD benchmarks.

    Args:
        train_beton / val_beton: betons of the downstream train and val folders (same classes).
        global_batch / max_device_batch: the global training batch (default: the HyperRule's 512)
            and the most one device holds; ``train.py`` derives the per-device batch and the
            gradient accumulation from them and devices x nodes (see ``BetonDataModule``).
        batch_size: a per-device batch instead (quick runs, tests): when set, ``global_batch``
            is not applied (the CLI says so, unless the two agree).
        verify_sha256: hash both betons at start-up and refuse one whose bytes differ from its
            manifest's sha256 (a full read; the size is always checked).
        resize / crop: BiT train transform (squash to ``resize``, random ``crop``); eval squashes
            to ``crop``. ``None``: from the HyperRule by median image area and ``resolution_variant``
            ("paper": 448/384, "code": 512/480; images under 96x96 → 160/128).
        ood_root: folder holding the benchmark releases as they unpack.
        benchmarks: registry names to evaluate at the end of a run (``imagenet_a``, ...); their
            releases are scanned in ``setup``, so a bad one stops the run before it trains.
        benchmark_options: per-benchmark constructor options, e.g. ``{imagenet_a: {restrict: false}}``.
        ood_cache: where benchmark betons are cached (default ``<ood_root>/.betons``).
        ood_preprocessing: ``"ffcv"`` (default) or ``"testbed"``: where the benchmarks' squash to
            ``crop`` happens (``datamodules.ood.OODSuite``).
        allow_upsampling: train and evaluate even though a beton's storage cap
            (``--max-resolution``) shrank its images below ``crop``. Off by default: such a
            run is refused at start-up, since it would silently upsample every image (store
            ImageNet-1k at 512, ``conversion``'s default, for either HyperRule variant).
    """

    def __init__(
        self,
        train_beton: str,
        val_beton: str,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
        resize: int | None = None,
        crop: int | None = None,
        resolution_variant: str = "paper",
        order_seed: int = 0,
        ood_root: str | None = None,
        benchmarks: list[str] | None = None,
        benchmark_options: dict[str, dict] | None = None,
        ood_cache: str | None = None,
        num_workers: int = 2,
        os_cache: bool = True,
        global_batch: int | None = hyperrule.BATCH_SIZE,
        max_device_batch: int | None = None,
        verify_sha256: bool = False,
        allow_upsampling: bool = False,
        ood_preprocessing: str = "ffcv",
    ):
        super().__init__(batch_size, eval_batch_size, num_workers, os_cache, global_batch, max_device_batch, verify_sha256)
        self.save_hyperparameters()
        self.train_beton, self.val_beton = Path(train_beton), Path(val_beton)
        self.manifest = self._manifest(self.train_beton)
        val_manifest = self._manifest(self.val_beton)
        if val_manifest["classes"] != self.manifest["classes"]:
            raise ValueError(f"{self.val_beton} and {self.train_beton} have different class lists; convert both with the same classes")
        self.class_list: list[str] = self.manifest["classes"]
        self.num_train_examples: int = self.manifest["num_images"]
        self.num_val_examples: int = val_manifest["num_images"]
        if (resize is None) != (crop is None):
            raise ValueError("set both data.resize and data.crop, or neither (HyperRule default)")
        self.resize, self.crop = (resize, crop) if resize is not None else hyperrule.resolution(self._median_area(), resolution_variant)
        for beton, manifest in ((self.train_beton, self.manifest), (self.val_beton, val_manifest)):
            self._check_storage(beton, manifest, self.crop, allow_upsampling)
        self.ood = OODSuite(ood_root, benchmarks or [], self.class_list, self.crop, benchmark_options or {}, ood_cache,
                            ood_preprocessing) if benchmarks else None

    @classmethod
    def train_size(cls, init_args) -> int:
        """Training images of a module built from ``init_args``, from the train beton's manifest
        (a JSON read): what ``num_train_examples`` will be. The CLI derives the fine-tuning
        length (the HyperRule's steps) from it before anything is built."""
        return int(read_manifest(Path(init_args["train_beton"]), cls.make_hint)["num_images"])

    @property
    def num_classes(self) -> int:
        return len(self.class_list)

    def setup(self, stage: str) -> None:
        """Scan the configured OOD releases, then check the batch (``BetonDataModule``).

        For ``fit`` and ``test`` (the runs that end in an OOD evaluation) every release is
        scanned now, before the first training step: a missing, misplaced or partial one
        raises ``InputError`` (``OODSuite.check``) instead of failing after hours of training.
        The scan reads files only, so every DDP rank scans without communicating; the index
        is kept for the evaluation at the end.
        """
        self.check_inputs(stage)
        super().setup(stage)

    def check_inputs(self, stage: str) -> None:
        """The OOD releases' scan of ``setup``, also called by the CLI before the trainer starts
        (so a refused run leaves no run folder behind); the scans are cached."""
        if self.ood is not None and stage in CHECKED_STAGES:
            self.ood.check()

    def _median_area(self) -> float:
        from ffcv.reader import Reader

        meta = Reader(str(self.train_beton)).metadata["f0"]
        return float(np.median(meta["width"].astype(np.float64) * meta["height"]))

    def train_dataloader(self):
        rank, world = distributed_context(self.trainer)
        rows = np.arange(self.num_train_examples, dtype=np.uint32)
        return self._resumable(train_loader(
            self.train_beton, rows, self.batch_size, hyperrule_train_pipelines(
                self.resize, self.crop, seed=self.hparams.order_seed, device=loader_device(self.trainer)),
            num_workers=self.num_workers, seed=self.hparams.order_seed, rank=rank, world_size=world, epoch=0, os_cache=self.os_cache,
        ))

    def val_dataloader(self):
        rank, world = distributed_context(self.trainer)
        rows = np.arange(self.num_val_examples, dtype=np.uint32)
        crop, device = self.crop, loader_device(self.trainer)
        return eval_loader(self.val_beton, rows, self.eval_batch_size, lambda: eval_pipelines(crop, device=device), f"eval:{crop}:{device}",
                           num_workers=self.num_workers, rank=rank, world_size=world, os_cache=self.os_cache)

    test_dataloader = val_dataloader

    def clean_set(self) -> CleanSet:
        """The clean val set, for the OOD callback (ImageNet-C's relative mCE needs its error)."""
        return CleanSet(self.val_dataloader(), self.num_val_examples)

    def ood_sets(self):
        """The configured benchmarks as :class:`datamodules.ood.EvaluationSet` (empty without any)."""
        if self.ood is None:
            return []
        rank, world = distributed_context(self.trainer)
        return self.ood.evaluation_sets(self.eval_batch_size, self.num_workers, rank, world, loader_device(self.trainer))
