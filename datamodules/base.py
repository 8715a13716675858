"""Shared base of the project's DataModules: one beton per split, FFCV loaders in the hooks."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from datamodules.beton import read_manifest


def distributed_context(trainer) -> tuple[int, int]:
    """``(rank, world_size)`` of the attached trainer, ``(0, 1)`` without one."""
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


class BetonDataModule(L.LightningDataModule):
    """Base for DataModules reading FFCV betons written by ``datamodules.convert``.

    Batches are ``(uint8 images (B,3,H,W), int64 labels (B,), int64 row indices (B,))``.
    ``batch_size`` is per device. With ``global_batch`` set instead, the per-device batch and
    the trainer's gradient accumulation are derived from it at setup, from devices x nodes
    and the ``max_device_batch`` memory cap (``lightning_modules.global_batch``), so a config
    means the same optimisation on 8 GPUs or 32. Manifests are read at construction (cheap),
    so a missing beton fails at start-up with the path and the command that creates it.
    """

    make_hint = "python -m datamodules.convert folder SRC OUT.beton"

    def __init__(self, batch_size: int, eval_batch_size: int | None, num_workers: int, os_cache: bool,
                 global_batch: int | None = None, max_device_batch: int | None = None):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.os_cache = os_cache
        self.global_batch, self.max_device_batch = global_batch, max_device_batch

    def setup(self, stage: str) -> None:
        if self.global_batch is None or self.trainer is None:
            return
        from lightning_modules.global_batch import split_global_batch

        split = split_global_batch(self.global_batch, self.trainer.world_size, self.max_device_batch)
        self.batch_size = split.per_device
        # every rank derives the same split from the same numbers: no communication needed
        self.trainer.accumulate_grad_batches = split.accumulation
        rank_zero_info(f"global batch {split.global_batch} = {split.world_size} device(s) x {split.accumulation} "
                       f"accumulation step(s) x {split.per_device} per device")

    def _manifest(self, beton: str | Path) -> dict:
        return read_manifest(Path(beton), self.make_hint)
