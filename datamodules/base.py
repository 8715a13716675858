"""Shared base of the project's DataModules: one beton per split, FFCV loaders in the hooks."""
from __future__ import annotations

from pathlib import Path

import lightning as L

from datamodules.beton import read_manifest


def distributed_context(trainer) -> tuple[int, int]:
    """``(rank, world_size)`` of the attached trainer, ``(0, 1)`` without one."""
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


class BetonDataModule(L.LightningDataModule):
    """Base for DataModules reading FFCV betons written by ``datamodules.convert``.

    Batches are ``(uint8 images (B,3,H,W), int64 labels (B,), int64 row indices (B,))``.
    ``batch_size`` is per device. Manifests are read at construction (cheap), so a missing
    beton fails at start-up with the path and the command that creates it.
    """

    make_hint = "python -m datamodules.convert folder SRC OUT.beton"

    def __init__(self, batch_size: int, eval_batch_size: int | None, num_workers: int, os_cache: bool):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.os_cache = os_cache

    def _manifest(self, beton: str | Path) -> dict:
        return read_manifest(Path(beton), self.make_hint)
