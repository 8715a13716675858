"""Stop on a signal at the next step boundary with a checkpoint that resumes exactly."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

_STOP, _REQUEUE = 1, 2


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM or SIGUSR1: finish the current optimizer step, save ``last.ckpt``, stop.

    Why not Lightning's own handling: Lightning stops on SIGTERM wherever its loops next look
    (after a step, between validation batches, after the epoch-end hooks) and saves nothing;
    a checkpoint saved at the latter two resumes inexactly (a shortened epoch, a half-done
    validation). Its SLURM handler saves an HPC checkpoint from inside the signal handler,
    i.e. mid-step. So while training runs, this callback owns both signals: the handler only
    records the request; the stop happens at the start of the next optimizer step (after any
    validation and epoch-end hooks have completed), on every rank at once (the request is
    all-reduced there under DDP). The checkpoint is then one that Lightning restores exactly:
    ``train.py fit <same arguments> --ckpt_path last`` continues with the next batch (weights,
    optimizer, LR schedule, data position, MixUp state, logging step).

    Signals: SIGTERM (``scancel``, a preemption, ``kill``) stops. SIGUSR1 stops too, and under
    SLURM (``requeue_on_slurm``) first requeues the job (``scontrol requeue``), so
    ``#SBATCH --signal=SIGUSR1@90`` + ``--requeue`` continues a run past the time limit.
    The process exits with ``128 + signal`` (143 for SIGTERM, 138 for SIGUSR1).

    At the end of training ``last.ckpt`` is brought up to the final step if ModelCheckpoint's
    schedule left it older. The file is ``<ModelCheckpoint dirpath>/last.ckpt`` (``trainer.default_root_dir`` without
    a ModelCheckpoint), recorded as the ModelCheckpoint's last checkpoint before it is written,
    so the resumed run keeps updating the same ``last.ckpt``. A signal after the last training
    step is left to Lightning (the run finishes its evaluation).
    """

    def __init__(self, requeue_on_slurm: bool = True):
        self.requeue_on_slurm = requeue_on_slurm
        self.saved_path: str | None = None
        self._request = 0
        self._signum: int | None = None
        self._previous: dict[int, object] = {}
        self._saving = False
        self._last_saved_step: int | None = None

    # -- signals: recorded while training runs
    def on_train_start(self, trainer, pl_module) -> None:
        self._request, self._signum = 0, None
        for signum in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[signum] = signal.signal(signum, self._record)

    def _record(self, signum, frame) -> None:
        requeue = signum == signal.SIGUSR1 and self.requeue_on_slurm and SLURMEnvironment.detect()
        self._request = max(self._request, _REQUEUE if requeue else _STOP)
        self._signum = signum

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore_handlers()
        if self._last_saved_step != trainer.global_step:
            # ModelCheckpoint saves on its own schedule and may end a run with an older
            # last.ckpt; whatever starts from this run (fine-tuning, --ckpt_path last) needs the end
            self._save_last(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_handlers()

    def _restore_handlers(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}

    # -- the stop, at a step boundary
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if batch_idx % trainer.accumulate_grad_batches:
            return  # inside an accumulation window: the optimizer step is not complete
        request = self._agreed_request(trainer, pl_module)
        if not request:
            return
        self._saving = True
        try:
            path = self._save_last(trainer)
        finally:
            self._saving = False
        if request == _REQUEUE and trainer.is_global_zero:
            _requeue_slurm_job()
        rank_zero_info(f"stopped by a signal after step {trainer.global_step}: saved {path}; "
                       f"continue with the same command plus --ckpt_path last")
        raise SIGTERMException(128 + int(self._signum or signal.SIGTERM))

    def _save_last(self, trainer) -> Path:
        path = self.path(trainer)
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint):
            callback.last_model_path = str(path)  # before saving: the saved callback state names this file
        trainer.save_checkpoint(path)
        self.saved_path = str(path)
        return path

    def _agreed_request(self, trainer, pl_module) -> int:
        """The strongest request on any rank (one all-reduce per optimizer step under DDP)."""
        if trainer.world_size == 1:
            return self._request
        flag = torch.tensor([float(self._request)], device=pl_module.device)
        request = int(trainer.strategy.reduce(flag, reduce_op="max").item())
        if request and self._signum is None:
            self._signum = signal.SIGTERM
        return request

    # -- the checkpoint: a state Lightning restores exactly
    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._last_saved_step = trainer.global_step
        if not self._saving:
            return
        # Saved before the next batch runs, the loops still count that batch as fetched; make
        # the state the one saved right after the previous step, which Lightning resumes at
        # the next batch (its "restarted on last" case).
        loop = checkpoint["loops"]["fit_loop"]
        progress = loop["epoch_loop.batch_progress"]
        for counts in (progress["total"], progress["current"]):
            counts["ready"] = counts["started"]
        progress["is_last_batch"] = False
        if _validation_due_after_restore(trainer):
            # then Lightning replays the end of the previous step (skipping its validation, which
            # ran), counting that step's logging step once more: count it one less here
            loop["epoch_loop.state_dict"]["_batches_that_stepped"] -= 1

    @staticmethod
    def path(trainer) -> Path:
        """Where the stop checkpoint goes: ``<ModelCheckpoint dir>/last.ckpt`` (found by ``--ckpt_path last``)."""
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        return Path(trainer.default_root_dir) / "last.ckpt"


def _validation_due_after_restore(trainer) -> bool:
    """Whether Lightning, restoring the stop checkpoint, will find validation due before the next
    batch (its "restarted on last" case). Asked of Lightning's own rule with the loop counters
    as the checkpoint records them (the batch about to start not yet counted): the rule depends
    on the validation settings (interval, every n epochs, epoch ends) in ways not worth copying."""
    epoch_loop = trainer.fit_loop.epoch_loop
    progress = epoch_loop.batch_progress
    saved = (progress.total.ready, progress.current.ready, progress.is_last_batch)
    progress.total.ready, progress.current.ready, progress.is_last_batch = progress.total.started, progress.current.started, False
    try:
        return bool(epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
    finally:
        progress.total.ready, progress.current.ready, progress.is_last_batch = saved


def _requeue_slurm_job() -> None:
    """``scontrol requeue`` this job (an array task by its array id): it runs the same command again."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ["SLURM_JOB_ID"]
    result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
    if result.returncode:
        rank_zero_warn(f"scontrol requeue {job} failed ({result.returncode}): {result.stderr.strip()}; resubmit by hand")
    else:
        rank_zero_info(f"requeued SLURM job {job}")
