"""Training throughput, data-wait share and peak memory, to the loggers and the progress bar."""
from __future__ import annotations

import resource
import sys
import time

import torch
from lightning.pytorch import Callback

IMAGES_PER_SEC = "throughput/images_per_sec"
DATA_WAIT_SHARE = "throughput/data_wait_share"
PEAK_CUDA = "throughput/peak_cuda_allocated_gib"
PEAK_RSS = "throughput/peak_host_rss_gib"


def batch_images(batch) -> int:
    """Images in a batch ``(uint8 images (B, 3, H, W), labels (B,), indices (B,))``, or in a bare tensor."""
    images = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(images.shape[0])


def peak_memory_gib(device: torch.device) -> tuple[str, float]:
    """``(tag, GiB)``: the CUDA caching allocator's peak on a GPU, else this process's peak RSS.

    The RSS is the whole process's (``getrusage(RUSAGE_SELF)``: FFCV's threads included,
    DataLoader worker processes not), which is why it carries its own tag.
    """
    if device.type == "cuda":
        return PEAK_CUDA, torch.cuda.max_memory_allocated(device) / 2**30
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bytes_per_unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is KiB on Linux, bytes on macOS
    return PEAK_RSS, peak * bytes_per_unit / 2**30


class ThroughputMonitor(Callback):
    """Logs, every ``log_every_n_steps`` optimizer steps, what the training loop achieved on this device.

    Over the window since the previous log (training batches only; validation is left out):

    - ``throughput/images_per_sec``: images of this device's batches / wall seconds (per
      device: multiply by the world size for the global rate).
    - ``throughput/data_wait_share``: the share of the window spent between one batch's
      ``on_train_batch_end`` and the next ``on_train_batch_start``, in [0, 1]. That gap is
      fetching the next batch and copying it to the device, plus whatever else runs between
      steps (logger writes, a checkpoint save). Host time: on a GPU, queued kernels may still
      run during it, so it is an upper bound on the time the device sits idle. The monitor's
      own logging is left out of both.
    - peak memory since the process started, in GiB: ``throughput/peak_cuda_allocated_gib``
      (``torch.cuda.max_memory_allocated``) on a GPU, ``throughput/peak_host_rss_gib`` (this
      process's peak resident set) elsewhere.

    ``log_every_n_steps=None`` follows ``trainer.log_every_n_steps``. Values go to every logger
    of the trainer at ``trainer.global_step`` (loggers write on rank zero only); images/s and
    the wait share are also shown in the progress bar (``trainer.progress_bar_metrics``) when
    the trainer has one and ``prog_bar`` is true. Every rank measures its own device and no
    collective call is made; on a GPU the device is synchronised once per window so that the
    window's time includes its queued work.
    """

    def __init__(self, log_every_n_steps: int | None = None, prog_bar: bool = True):
        if log_every_n_steps is not None and log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps={log_every_n_steps}: give a positive number of steps, or null for trainer.log_every_n_steps")
        self.log_every_n_steps = log_every_n_steps
        self.prog_bar = prog_bar
        self._last_end: float | None = None  # perf_counter at the previous batch end; None: not inside an epoch
        self._last_logged_step = -1
        self._reset_window()

    def _reset_window(self) -> None:
        self._images = 0
        self._seconds = 0.0
        self._wait = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        self._reset_window()
        # a run resumed at a multiple of N must not log a one-batch window at once
        self._last_logged_step = trainer.global_step

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        # the epoch's iterator is made after this hook: its start-up is time spent waiting for data
        self._last_end = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        # validation between two training batches is neither step nor data time
        if self._last_end is not None:
            self._last_end = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._last_end is not None:
            self._wait += time.perf_counter() - self._last_end

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._last_end is None:
            return
        step = trainer.global_step
        every = self.log_every_n_steps or trainer.log_every_n_steps
        due = every > 0 and step % every == 0 and step != self._last_logged_step
        if due and pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        now = time.perf_counter()
        self._images += batch_images(batch)
        self._seconds += now - self._last_end
        self._last_end = now
        if due and self._seconds > 0:
            self._log(trainer, pl_module, step)
            # the monitor's own writing (the first one creates the event file) is not the next window's data wait
            self._last_end = time.perf_counter()

    def _log(self, trainer, pl_module, step: int) -> None:
        memory_tag, memory = peak_memory_gib(pl_module.device)
        metrics = {
            IMAGES_PER_SEC: self._images / self._seconds,
            DATA_WAIT_SHARE: self._wait / self._seconds,
            memory_tag: memory,
        }
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
        # without a bar (the study runner's stages) skip self.log: each call costs ~2 ms on a 2-core CPU
        if self.prog_bar and trainer.progress_bar_callback is not None:
            for tag in (IMAGES_PER_SEC, DATA_WAIT_SHARE):
                # a CPU tensor: reading it back for the bar never waits for the GPU
                pl_module.log(tag, torch.tensor(metrics[tag]), prog_bar=True, logger=False, on_step=True, on_epoch=False)
        self._last_logged_step = step
        self._reset_window()
