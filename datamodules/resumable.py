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
"""
from __future__ import annotations

from ffcv.loader import Loader
from ffcv.loader.epoch_iterator import EpochIterator
from ffcv.pipeline.compiler import Compiler


class ResumableLoader(Loader):
    """FFCV ``Loader`` whose next epoch can start at batch ``start_batch`` (then back to 0).

    Same arguments as ``ffcv.loader.Loader``, plus ``start_batch``. Iterating yields the
    batches ``start_batch, start_batch + 1, ...`` of the epoch's order, exactly those an
    uninterrupted run would have yielded from that point; ``len()`` stays the full epoch.
    """

    def __init__(self, *args, start_batch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.start_batch = int(start_batch)
        self.current_epoch = self.next_epoch

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
        skip, self.start_batch = self.start_batch * self.batch_size, 0
        if self.code is None or self.recompile:
            self.generate_code()
        if skip >= len(selected):
            return iter(())
        return EpochIterator(self, selected[skip:])

    def state_dict(self) -> dict:
        return {"epoch": int(self.current_epoch)}

    def load_state_dict(self, state: dict) -> None:
        # the position is taken from the trainer's restored progress (see the module docstring)
        pass


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
