"""Building FFCV loaders the way Lightning needs them (spec §5).

Lightning passes an FFCV ``Loader`` through untouched, so sharding is done here:

- training: one seeded permutation per epoch, of which each rank takes a strided share
  (``datamodules.resumable.GlobalPermutation``, DistributedSampler's order): the global
  batches are the same whatever the world size; the epoch counter is set from the trainer
  so a resumed run sees the order it would have seen;
- evaluation: ranks take strided, disjoint shards of the rows (``rows[rank::world]``),
  sequential and ``drop_last=False``. FFCV's distributed sampler would pad ranks with
  duplicates; strided shards never do, so every example is seen exactly once.

Compiling a loader's pipeline (numba) costs seconds, so evaluation loaders are cached per
process by their arguments: evaluating many checkpoints in one process builds each once.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

_EVAL_CACHE: dict[tuple, object] = {}


def eval_shard(rows: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Disjoint, exhaustive strided shard of ``rows`` for ``rank`` (no padding)."""
    return np.asarray(rows)[rank::world_size]


ORDERS = ("random", "quasi_random")


def train_loader(beton: Path, rows: np.ndarray, batch_size: int, pipelines: dict, *, num_workers: int, seed: int,
                 world_size: int, epoch: int, os_cache: bool, drop_last: bool = True, batches_ahead: int = 3,
                 order: str = "random", start_batch: int = 0, rank: int | None = None):
    """A shuffling FFCV loader over rank ``rank``'s share of ``rows`` (``world_size`` ranks).

    ``rank`` defaults to ``torch.distributed``'s rank when ``world_size > 1``.

    The epoch ``epoch`` starts at batch ``start_batch`` (a run resumed mid-epoch, see
    ``datamodules.resumable``); later epochs start at their first batch.

    ``num_workers`` is the number of decoding threads (numba) of this process. ``batches_ahead``
    batches are prepared ahead (memory: ``batches_ahead + 2`` batch buffers per pipeline stage).
    ``order="quasi_random"`` (FFCV's QUASI_RANDOM: shuffles within a few pages at a time) is for
    ``os_cache=False`` on data that does not fit in RAM; FFCV 1.0.2 has it for one process only.
    See ``docs/data-loading.md``.
    """
    from ffcv.loader import OrderOption

    from datamodules.resumable import ResumableLoader

    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    if order == "quasi_random" and world_size > 1:
        raise ValueError("order='quasi_random' is not available with world_size > 1 in FFCV 1.0.2 "
                         "(QuasiRandom raises NotImplementedError under distributed=True); use order='random'")
    if rank is None:
        import torch.distributed as dist

        rank = dist.get_rank() if world_size > 1 else 0
    loader = ResumableLoader(
        str(beton), batch_size=batch_size, num_workers=num_workers,
        order=OrderOption.QUASI_RANDOM if order == "quasi_random" else OrderOption.RANDOM,
        seed=seed, indices=rows, pipelines=pipelines, rank=rank, world_size=world_size,
        drop_last=drop_last, os_cache=os_cache, batches_ahead=batches_ahead, start_batch=start_batch,
    )
    loader.next_epoch = epoch
    return loader


def eval_loader(beton: Path, rows: np.ndarray, batch_size: int, pipelines_factory: Callable[[], dict], pipeline_key: str, *,
                num_workers: int, rank: int, world_size: int, os_cache: bool = True, batches_ahead: int = 3):
    """Sequential loader over this rank's shard of ``rows``; cached per process."""
    from ffcv.loader import Loader, OrderOption

    shard = eval_shard(rows, rank, world_size)
    key = (str(Path(beton).resolve()), Path(beton).stat().st_mtime_ns, batch_size, pipeline_key, num_workers,
           os_cache, batches_ahead, len(shard), hash(shard.tobytes()))
    if key not in _EVAL_CACHE:
        if len(shard) == 0:
            return []
        _EVAL_CACHE[key] = Loader(
            str(beton), batch_size=batch_size, num_workers=num_workers, order=OrderOption.SEQUENTIAL,
            distributed=False, indices=shard, pipelines=pipelines_factory(), drop_last=False, os_cache=os_cache,
            batches_ahead=batches_ahead,
        )
    return _EVAL_CACHE[key]
