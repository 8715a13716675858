"""Learning-rate schedules as pure functions of the step (no torch)."""
from __future__ import annotations

from typing import Sequence


def warmup_step_decay(step: int, base_lr: float, warmup_steps: int, decay_steps: Sequence[int], factor: float = 0.1) -> float:
    """Linear warmup from 0 over ``warmup_steps``, then ``base_lr`` times ``factor`` per passed decay.

    Matches big_transfer's ``get_lr``: at ``step < warmup_steps`` the rate is
    ``base_lr * step / warmup_steps``; afterwards each boundary ``s`` with ``s < step`` multiplies by ``factor``.
    """
    if step < warmup_steps:
        return base_lr * step / warmup_steps
    lr = base_lr
    for boundary in decay_steps:
        if boundary < step:
            lr *= factor
    return lr


def decays_at_fractions(total_steps: int, fractions: Sequence[float]) -> list[int]:
    """Decay boundaries as fractions of the total (BiT-M decays at 30, 60, 80 of 90 epochs)."""
    return [int(round(total_steps * f)) for f in fractions]


def linear_scaled_lr(base_lr: float, global_batch: int, reference_batch: int = 256) -> float:
    """BiT's upstream rule: ``base_lr * global_batch / reference_batch``."""
    return base_lr * global_batch / reference_batch
