"""Which checkpoint to go back to when a run diverges.

A non-finite loss stops a run; the step before it may already have been saved with weights
that are finite but huge (a run drifting to ~1e28 before it overflows). A checkpoint is
*sane* when the training loss it recorded (``train_loss``, written by the modules on every
save) is finite and every floating-point weight is finite with ``|w| <= SANE_WEIGHT_BOUND``.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

# Trained BiT weights (weight-standardised convs, GroupNorm affines, heads) stay within a few
# units; 1e4 is far above any healthy run and far below a diverged one.
SANE_WEIGHT_BOUND = 1e4


class NonFiniteLossError(RuntimeError):
    """A training loss was NaN/Inf. The message (one line) names the step and the newest
    sane checkpoint in the run's checkpoint folder, or says there is none."""


def checkpoint_health(path: Path) -> tuple[int, bool, str]:
    """``(global_step, sane, why not)`` of one checkpoint file (memory-mapped, weights only)."""
    ckpt = torch.load(path, mmap=True, weights_only=True, map_location="cpu")
    step = int(ckpt.get("global_step", -1))
    loss = ckpt.get("train_loss")
    if loss is None or not math.isfinite(float(loss)):
        return step, False, f"training loss {loss}"
    for name, tensor in ckpt.get("state_dict", {}).items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and tensor.numel():
            biggest = tensor.detach().abs().max().item()
            if not math.isfinite(biggest) or biggest > SANE_WEIGHT_BOUND:
                return step, False, f"{name} reaches {biggest:.3g}"
    return step, True, ""


def last_sane_checkpoint(folder: Path | str | None) -> tuple[Path, int] | None:
    """The sane checkpoint with the highest step in ``folder`` (``*.ckpt``), or None."""
    if folder is None or not Path(folder).is_dir():
        return None
    found = []
    for path in Path(folder).glob("*.ckpt"):
        try:
            step, sane, _ = checkpoint_health(path)
        except Exception:  # unreadable (e.g. cut short): not a place to resume from
            continue
        if sane:
            found.append((step, path.stat().st_mtime, path))
    if not found:
        return None
    step, _, path = max(found)
    return path, step


def divergence_message(loss: float, step: int, folder: Path | str | None) -> str:
    """The one-line report of a non-finite loss at ``step``."""
    sane = last_sane_checkpoint(folder)
    if sane is None:
        where = f"no checkpoint with a finite loss and sane weights in {folder}" if folder else "no checkpoint folder"
        return f"non-finite loss {loss} at step {step}; {where}: restart with a lower learning rate or gradient clipping"
    path, at = sane
    return (f"non-finite loss {loss} at step {step}; last checkpoint with a finite loss and sane weights: {path} "
            f"(step {at}); resume from it with --ckpt_path {path} and a lower learning rate or gradient clipping")
