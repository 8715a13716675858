"""Checkpoints written whole or not at all, on the file system they live on."""
from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from conversion.files import atomic_file


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves go to a hidden temp file beside the target, fsynced,
    then renamed over it (``conversion.files.atomic_file``): a run killed while saving leaves
    the previous ``last.ckpt`` intact.

    Lightning's own save serialises the whole checkpoint into memory and moves a temp file
    from the system temp folder; with checkpoints on a shared file system that move is a copy,
    and a kill during the copy leaves a truncated ``last.ckpt`` that ``--ckpt_path last`` then
    cannot load. Here the bytes stream straight to disk (no second in-memory copy of a
    multi-GB checkpoint) on the target's own file system, where the rename is atomic.
    Local paths only; remote URLs (``s3://``) keep Lightning's behaviour.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if "://" in str(path) or storage_options is not None:
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_file(path) as f:
            torch.save(checkpoint, f)
