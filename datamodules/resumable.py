"""An FFCV training loader that resumes part-way through an epoch.

FFCV's ``Loader`` always starts an epoch at its first batch. A run resumed from a
checkpoint saved mid-epoch must instead see the rest of *that* epoch's order: the same
epoch and the batches after the last one trained on. The DataModule records the position
in the checkpoint (its ``state_dict``: the loader's epoch and the trainer's count of batches
trained in it) rather than a count of batches handed out, because Lightning fetches a batch
ahead: that count would be one too many at the moment a checkpoint is written. On restore,
Lightning loads the DataModule's state before it asks for the training loader.

The loader also implements ``state_dict``/``load_state_dict`` so that Lightning treats it as
resumable (it warns about non-resumable loaders when a mid-epoch checkpoint is restored);
its state records the epoch for inspection only.

Its random order is one global permutation per epoch, that of PyTorch's
``DistributedSampler`` (``torch.randperm`` seeded ``seed + epoch``, padded to a multiple of
the world size), of which rank ``r`` of ``W`` takes ``perm[r::W]``. FFCV's own RANDOM order
is that with ``distributed=True`` but another permutation (numpy's) in one process; here one
process takes the whole permutation. With per-device batch ``b``, accumulation ``A`` and
``G = W * A * b``, optimizer step ``k`` then trains on ``perm[k*G:(k+1)*G]`` on any number of
ranks: the same global batches on 1 GPU or 64. The seeded crops and flips
(``datamodules.seeded_augment``, told the epoch here) depend on the image and epoch only,
so the pixels are the same too.

FFCV's own ``Loader`` allocates every pipeline buffer afresh for each epoch (and the last
epoch's stay alive until its iterator is collected: twice the peak memory); with the short
epochs of small subsets (300 images at batch 64: a new epoch every 4 steps) that is a
reallocation and a thread start every few steps. This loader allocates them once and hands
the same buffers to every epoch, stopping the previous epoch's decoding thread first. Batch
slots continue across the epoch boundary, so FFCV's contract holds across epochs as within
one: a batch stays valid until ``batches_ahead + 1`` more have been requested.
"""
from __future__ import annotations

import numpy as np
import torch
from ffcv.loader import Loader, OrderOption
from ffcv.loader.epoch_iterator import EpochIterator
from ffcv.pipeline.compiler import Compiler
from ffcv.traversal_order.base import TraversalOrder


class GlobalPermutation(TraversalOrder):
    """Rank ``rank``'s share of one seeded permutation per epoch (``DistributedSampler``'s)."""

    def __init__(self, loader: Loader, rank: int, world_size: int):
        super().__init__(loader)
        self.rank, self.world_size = rank, world_size

    def sample_order(self, epoch: int) -> np.ndarray:
        generator = torch.Generator()
        generator.manual_seed(int(self.seed or 0) + epoch)
        perm = torch.randperm(len(self.indices), generator=generator).numpy()
        padded = np.resize(perm, -(-len(perm) // self.world_size) * self.world_size)  # repeats the start, as the sampler pads
        return np.asarray(self.indices)[padded[self.rank::self.world_size]]


class ResumableLoader(Loader):
    """FFCV ``Loader`` whose next epoch can start at batch ``start_batch`` (then back to 0).

    Same arguments as ``ffcv.loader.Loader`` except ``distributed``, plus ``start_batch`` and
    ``rank``/``world_size``. The RANDOM order is ``GlobalPermutation`` (see the module doc);
    other orders are FFCV's, in one process. Iterating yields the batches ``start_batch,
    start_batch + 1, ...`` of the epoch's order, exactly those an uninterrupted run would
    have yielded from that point; ``len()`` stays the full epoch. Pipeline operations with
    a ``set_epoch`` method are told the epoch as it starts.
    """

    def __init__(self, *args, start_batch: int = 0, rank: int = 0, world_size: int = 1, **kwargs):
        # collected first: FFCV's Loader takes the decoders out of the pipeline lists
        self._epoch_aware = [op for spec in kwargs.get("pipelines", {}).values() for op in _operations(spec) if hasattr(op, "set_epoch")]
        super().__init__(*args, distributed=False, **kwargs)
        if kwargs.get("order") == OrderOption.RANDOM:
            # FFCV calls a TraversalOrder it is given as a class but only accepts instances: set it after
            self.traversal_order = GlobalPermutation(self, rank, world_size)
            self.first_traversal_order = self.next_traversal_order()  # what len() counts
        elif world_size > 1:
            raise ValueError(f"order {kwargs.get('order')} cannot be split over {world_size} ranks; use OrderOption.RANDOM")
        self.start_batch = int(start_batch)
        self.current_epoch = self.next_epoch
        self._buffers = None  # (batch size, slots) -> FFCV's allocations, made on the first epoch
        self._running: _BufferKeepingEpochIterator | None = None
        # FFCV's EpochIterator asks the graph for new buffers in its constructor; answering from
        # the first allocation is the one place to keep them without copying its constructor.
        self._allocate_fresh, self.graph.allocate_memory = self.graph.allocate_memory, self._kept_allocations

    def _kept_allocations(self, batch_size: int, slots: int):
        if self._buffers is None or self._buffers[0] != (batch_size, slots):
            self._buffers = ((batch_size, slots), self._allocate_fresh(batch_size, slots))
        return self._buffers[1]

    def __iter__(self):
        # Lazy: Lightning calls iter() once just to check a loader is iterable. FFCV's own
        # __iter__ would start reading an epoch there and advance the epoch counter, so the
        # first trained epoch would read the order of epoch 1 (and a resume would skip batches
        # of an epoch nobody trains). Nothing happens here until the first batch is asked for.
        return _LazyEpoch(self)

    def _start_epoch(self):
        # mirrors Loader.__iter__ (ffcv 1.0.2), with the first start_batch batches cut off
        Compiler.set_num_threads(self.num_workers)
        order = self.next_traversal_order()
        selected = order[:len(self) * self.batch_size]
        self.current_epoch, self.next_epoch = self.next_epoch, self.next_epoch + 1
        for op in self._epoch_aware:  # before any batch of the epoch is decoded
            op.set_epoch(self.current_epoch)
        skip, self.start_batch = self.start_batch * self.batch_size, 0
        if self.code is None or self.recompile:
            self.generate_code()
        if skip >= len(selected):
            return iter(())
        first_slot = self._stop_running()
        self._running = _BufferKeepingEpochIterator(self, selected[skip:], first_slot)
        return self._running

    def _stop_running(self) -> int:
        """Stop the previous epoch's thread (it must not write into the buffers the next epoch
        gets: an epoch left early keeps decoding until its queue is full) and return the slot
        after the last one it filled."""
        previous, self._running = self._running, None
        if previous is None:
            return 0
        previous.close()
        if previous.is_alive():
            previous.join()
        return previous.current_batch_slot

    def state_dict(self) -> dict:
        return {"epoch": int(self.current_epoch)}

    def load_state_dict(self, state: dict) -> None:
        # the position is taken from the trainer's restored progress (see the module docstring)
        pass


def _operations(spec) -> list:
    """The operations of one entry of a Loader's ``pipelines`` (a list, a PipelineSpec or None)."""
    from ffcv.pipeline import PipelineSpec

    if isinstance(spec, PipelineSpec):
        return [op for op in (spec.decoder, *spec.transforms) if op is not None]
    return list(spec or [])


class _BufferKeepingEpochIterator(EpochIterator):
    """FFCV's epoch iterator (on the loader's kept buffers) whose first batch goes to slot
    ``first_slot``: the slot after the previous epoch's last, so that batch stays valid."""

    def __init__(self, loader: ResumableLoader, order, first_slot: int):
        self._first_slot = first_slot
        super().__init__(loader, order)

    def start(self):
        # the constructor sets slot 0 and then starts the thread: set the slot in between
        self.current_batch_slot = self._first_slot
        super().start()


class _LazyEpoch:
    """The iterator of one epoch, started at its first ``next``."""

    def __init__(self, loader: ResumableLoader):
        self.loader, self.batches = loader, None

    def __iter__(self):
        return self

    def __next__(self):
        if self.batches is None:
            self.batches = iter(self.loader._start_epoch())
        return next(self.batches)


def training_position(trainer) -> dict:
    """What a checkpoint records about the training order: the trainer's epoch and how many
    of its batches were trained on (``batch_progress.current.processed``: at
    ``on_train_batch_end``, when checkpoints are written, the current batch counts; 0 once
    the epoch has ended)."""
    if trainer is None:
        return {}
    epochs = trainer.fit_loop.epoch_progress.current
    in_progress = epochs.started > epochs.completed
    batches = trainer.fit_loop.epoch_loop.batch_progress.current.processed if in_progress else 0
    return {"epoch": int(trainer.current_epoch), "batches": int(batches)}


def resume_position(trainer, saved: dict | None, batches_per_epoch: int) -> tuple[int, int]:
    """``(epoch, first batch)`` the next training epoch starts at.

    Without a saved position: the trainer's epoch from its first batch. With one: the saved
    epoch from the next untrained batch, or the following epoch from its start when every
    batch of the saved one was trained.
    """
    if not saved:
        return (trainer.current_epoch if trainer is not None else 0), 0
    if saved["batches"] >= batches_per_epoch:
        return saved["epoch"] + 1, 0
    return saved["epoch"], saved["batches"]
