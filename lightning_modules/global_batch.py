"""A fixed global batch whatever the hardware: per-device batch and gradient accumulation derived from it."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BatchSplit:
    """How a global batch runs: ``per_device`` images per forward, ``accumulation`` forwards per step."""

    global_batch: int
    world_size: int
    per_device: int
    accumulation: int


def split_global_batch(global_batch: int, world_size: int, max_device_batch: int | None = None) -> BatchSplit:
    """``global_batch = world_size * accumulation * per_device`` with the fewest accumulation steps
    that keep ``per_device <= max_device_batch`` (the most one device holds in memory; None: no cap).

    Refuses, in one line naming the numbers, a global batch that does not divide over the
    devices: an lr scaled by ``global_batch / 256`` is only right if every step sees exactly
    that many images.
    """
    if global_batch <= 0 or world_size <= 0 or (max_device_batch is not None and max_device_batch <= 0):
        raise ValueError(f"global_batch={global_batch}, world size {world_size} and max_device_batch={max_device_batch} must be positive")
    if global_batch % world_size:
        raise ValueError(f"data.global_batch={global_batch} does not divide over {world_size} devices (devices x nodes); "
                         f"choose a multiple of {world_size}")
    share = global_batch // world_size
    # the smallest divisor of the share that brings a micro-batch under the cap (share itself always does)
    accumulation = next(a for a in range(math.ceil(share / (max_device_batch or share)), share + 1) if share % a == 0)
    return BatchSplit(global_batch, world_size, share // accumulation, accumulation)
