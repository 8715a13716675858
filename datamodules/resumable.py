"""An FFCV training loader that resumes part-way through an epoch.

FFCV's ``Loader`` always starts an epoch at its first batch. A run resumed from a
checkpoint saved mid-epoch must instead see the rest of *that* epoch's order: the same
epoch (``next_epoch``, restored from the trainer's epoch) and the batches after the last
one trained on. The position comes from the trainer's own progress counter
(``fit_loop.epoch_loop.batch_progress.current.completed``, restored from the checkpoint)
rather than from a count kept here, because Lightning fetches a batch ahead: a count of
batches handed out would be one too many at the moment a checkpoint is written.

The loader also implements ``state_dict``/``load_state_dict`` so that Lightning treats it as
resumable (it warns about non-resumable loaders when a mid-epoch checkpoint is restored);
the state records the epoch for inspection only.
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


def resume_position(trainer) -> tuple[int, int]:
    """``(epoch, batches already trained in it)`` of the attached trainer; ``(0, 0)`` without one."""
    if trainer is None:
        return 0, 0
    done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
    return trainer.current_epoch, int(done)
