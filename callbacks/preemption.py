"""A checkpoint when the run is told to stop (SIGTERM; SIGUSR1 outside SLURM), so that
``--ckpt_path last`` continues it exactly."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException


class PreemptionCheckpoint(L.Callback):
    """Saves ``last.ckpt`` when the trainer stops on SIGTERM, then lets the run end.

    Lightning turns SIGTERM (``scancel``, a spot reclaim, a scheduler's preemption, ``kill``)
    into a stop at the end of the current step on every rank (rank 0's flag is broadcast each
    step), but saves nothing; this callback saves then, from every rank (the save is collective:
    rank 0 writes), into the ``ModelCheckpoint``'s folder as ``last.ckpt``. The step has
    completed, the LR scheduler stepped, and the DataModule records the batch position, so
    ``train.py fit ... --ckpt_path last`` continues with the next batch. Without a
    ``ModelCheckpoint`` the file goes to ``trainer.default_root_dir``; its path is logged.

    SIGUSR1: on SLURM with auto-requeue, Lightning's own handler saves an HPC checkpoint and
    requeues (``scripts/slurm/train.sbatch``). Elsewhere (torchrun, a workstation) SIGUSR1 is
    made to act as SIGTERM here, so ``kill -USR1 PID`` also means "checkpoint and stop".
    """

    def __init__(self, sigusr1_stops: bool = True):
        self.sigusr1_stops = sigusr1_stops
        self.saved_path: str | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        environment = trainer._accelerator_connector.cluster_environment
        slurm_requeues = isinstance(environment, SLURMEnvironment) and environment.auto_requeue
        if self.sigusr1_stops and not slurm_requeues and signal.getsignal(signal.SIGUSR1) in (None, signal.SIG_DFL):
            signal.signal(signal.SIGUSR1, _as_sigterm)
            self._installed = True

    def on_fit_end(self, trainer, pl_module) -> None:
        self._restore_sigusr1()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._restore_sigusr1()
        if not isinstance(exception, SIGTERMException):
            return
        path = self.path(trainer)
        trainer.save_checkpoint(path)
        self.saved_path = str(path)
        if isinstance(trainer.checkpoint_callback, ModelCheckpoint):
            trainer.checkpoint_callback.last_model_path = str(path)
        rank_zero_info(f"stopped by a signal after step {trainer.global_step}: saved {path}; "
                       f"continue with the same command plus --ckpt_path last (or --ckpt_path {path})")

    @staticmethod
    def path(trainer) -> Path:
        """Where the stop checkpoint goes: ``<ModelCheckpoint dir>/last.ckpt`` (found by ``--ckpt_path last``)."""
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint) and callback.dirpath:
            return Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
        return Path(trainer.default_root_dir) / "last.ckpt"

    def _restore_sigusr1(self) -> None:
        if getattr(self, "_installed", False):
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            self._installed = False


def _as_sigterm(signum, frame) -> None:
    # during a fit Lightning's SIGTERM handler stops the run at the end of the step; outside one
    # (Lightning restores this handler at teardown) the default action ends the process
    os.kill(os.getpid(), signal.SIGTERM)
