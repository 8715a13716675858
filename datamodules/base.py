"""Shared base of the project's DataModules: one beton per split, FFCV loaders in the hooks."""
from __future__ import annotations

from pathlib import Path

import lightning as L

from conversion.beton import DEFAULT_HINT, check_beton_sha256, check_storage_resolution, read_manifest
from conversion.errors import InputError
from datamodules.resumable import resume_position, training_position


def distributed_context(trainer) -> tuple[int, int]:
    """``(rank, world_size)`` of the attached trainer, ``(0, 1)`` without one."""
    if trainer is None:
        return 0, 1
    return trainer.global_rank, trainer.world_size


def loader_device(trainer):
    """The CUDA device FFCV should deliver batches to (its ``ToDevice``), or None on the CPU."""
    if trainer is None:
        return None
    device = trainer.strategy.root_device
    return device if device.type == "cuda" else None


class BetonDataModule(L.LightningDataModule):
    """Base for DataModules reading FFCV betons written by ``conversion.convert``.

    Batches are ``(uint8 images (B,3,H,W), int64 labels (B,), int64 row indices (B,))``.
    ``batch_size`` is per device. ``global_batch`` / ``max_device_batch`` state the batch a
    config means whatever the hardware: ``train.py`` (``lightning_modules.cli``) derives the
    per-device ``batch_size`` and the trainer's gradient accumulation from them and devices x
    nodes before anything is built (and counts an integer ``trainer.val_check_interval`` in
    optimizer steps); the DataModule itself only reads ``batch_size``. Manifests are read at
    construction (cheap), so a missing beton, or one whose size differs from its manifest's (a
    truncated copy), fails at start-up with the path and the fix
    (:class:`conversion.errors.InputError`).
    ``verify_sha256`` also hashes every beton at construction and refuses one whose bytes differ
    from the manifest's ``sha256`` (a full read of each file). It runs at construction rather
    than in ``setup`` because Lightning creates the logger's run folder before ``setup``: a
    refusal there would leave a half-made run behind.
    """

    make_hint = DEFAULT_HINT

    def __init__(self, batch_size: int | None, eval_batch_size: int | None, num_workers: int, os_cache: bool,
                 global_batch: int | None = None, max_device_batch: int | None = None, verify_sha256: bool = False):
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.os_cache = os_cache
        self.global_batch, self.max_device_batch = global_batch, max_device_batch
        self.verify_sha256 = verify_sha256

    def setup(self, stage: str) -> None:
        if self.batch_size is None:
            raise InputError(f"data.batch_size is unset: train.py derives it from data.global_batch={self.global_batch} "
                             f"and the devices; a DataModule built by hand needs batch_size (per device)")

    # -- exact resume: the training order's position travels in the checkpoint (datamodules.resumable)
    _saved_position: dict | None = None

    def state_dict(self) -> dict:
        return training_position(self.trainer)

    def load_state_dict(self, state: dict) -> None:
        self._saved_position = dict(state) or None

    def _resumable(self, loader):
        """Point a fresh training loader at the epoch and batch the run continues from (a saved
        position is used once; without one, the trainer's epoch from its first batch)."""
        loader.next_epoch, loader.start_batch = resume_position(self.trainer, self._saved_position, len(loader))
        self._saved_position = None
        return loader

    def _manifest(self, beton: str | Path) -> dict:
        """``beton``'s manifest; refuses a missing or truncated beton, and with ``verify_sha256``
        one whose bytes differ from those converted."""
        manifest = read_manifest(Path(beton), self.make_hint)
        if self.verify_sha256:
            check_beton_sha256(Path(beton), manifest, self.make_hint)
        return manifest

    def _check_storage(self, beton: str | Path, manifest: dict, crop: int, allow_upsampling: bool) -> None:
        """Refuse a beton stored below the run's ``crop`` (``conversion.beton.check_storage_resolution``)
        unless ``allow_upsampling``; at construction, before anything is spent."""
        if not allow_upsampling:
            check_storage_resolution(Path(beton), manifest, crop, self.make_hint, "data.init_args.allow_upsampling")
