"""ThroughputMonitor in a real (tiny) CPU fit, read back from the TensorBoard event files.

The data and the step each sleep a known time, so the expected images/s and data-wait share
are worked out from the sleeps: images/s can only fall below ``B / (fetch + step)`` (sleeps
never end early) and the wait share lies near ``fetch / (fetch + step)``.
"""
from __future__ import annotations

import resource
import time

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.throughput import DATA_WAIT_SHARE, IMAGES_PER_SEC, PEAK_CUDA, PEAK_RSS, ThroughputMonitor

BATCH = 4
VAL_SLEEP = 0.25  # counted as data wait, this alone would push a window's share above 0.9


class SlowBatches:
    """An epoch of ``n`` batches ``(uint8 images (B,3,8,8), labels, indices)``, each taking ``fetch_s`` to arrive."""

    def __init__(self, n: int, fetch_s: float):
        generator = torch.Generator().manual_seed(0)
        self.batches = [(torch.randint(0, 256, (BATCH, 3, 8, 8), dtype=torch.uint8, generator=generator),
                         torch.randint(0, 2, (BATCH,), generator=generator), torch.arange(k * BATCH, (k + 1) * BATCH))
                        for k in range(n)]
        self.fetch_s = fetch_s

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            time.sleep(self.fetch_s)
            yield batch


class SlowStep(L.LightningModule):
    """A linear classifier whose training step takes at least ``step_s`` and whose validation takes ``VAL_SLEEP``."""

    def __init__(self, step_s: float):
        super().__init__()
        self.step_s = step_s
        self.linear = torch.nn.Linear(3 * 8 * 8, 2)

    def training_step(self, batch, batch_idx):
        images, labels, _ = batch
        time.sleep(self.step_s)
        return F.cross_entropy(self.linear(images.float().flatten(1) / 255), labels)

    def validation_step(self, batch, batch_idx):
        time.sleep(VAL_SLEEP)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.fixture
def one_thread():
    # two intra-op threads on a shared 2-core machine stall each op by milliseconds: the sleeps must dominate
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _fit(tmp_path, fetch_s: float, step_s: float, monitor_every: int | None, trainer_every: int, bar: bool):
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_steps=10, val_check_interval=3, limit_val_batches=1, num_sanity_val_steps=0,
        log_every_n_steps=trainer_every, enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=bar,
        logger=L.pytorch.loggers.TensorBoardLogger(str(tmp_path), name="tb"), callbacks=[ThroughputMonitor(monitor_every)],
    )
    # 5 batches an epoch: the 10 steps cross an epoch boundary, and validation runs after batch 3 of each epoch
    trainer.fit(SlowStep(step_s), train_dataloaders=SlowBatches(5, fetch_s), val_dataloaders=SlowBatches(1, 0.0))
    events = EventAccumulator(trainer.logger.log_dir, size_guidance={"scalars": 0}).Reload()
    return trainer, {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize(
    "fetch_s, step_s, monitor_every, trainer_every, bar, steps, share_range",
    [
        (0.08, 0.005, 2, 50, True, [2, 4, 6, 8, 10], (0.45, 0.98)),  # data-bound: share ~0.9 (wide margin: loaded CI machines); the monitor's own interval
        (0.0, 0.03, None, 5, False, [5, 10], (0.0, 0.3)),          # compute-bound: share ~0; the trainer's interval
    ],
    ids=["data-bound", "compute-bound"],
)
def test_logged_throughput_matches_the_sleeps(tmp_path, one_thread, fetch_s, step_s, monitor_every, trainer_every, bar, steps, share_range):
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30
    trainer, scalars = _fit(tmp_path, fetch_s, step_s, monitor_every, trainer_every, bar)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 2**30

    assert PEAK_CUDA not in scalars  # on the CPU the memory figure is the host RSS, tagged as such
    for tag in (IMAGES_PER_SEC, DATA_WAIT_SHARE, PEAK_RSS):
        assert [e.step for e in scalars[tag]] == steps, tag

    ideal = BATCH / (fetch_s + step_s)
    for event in scalars[IMAGES_PER_SEC]:
        assert 0.35 * ideal < event.value <= ideal, (event.step, event.value, ideal)
    for event in scalars[DATA_WAIT_SHARE]:
        # validation (VAL_SLEEP) and the epoch boundary fall inside windows: neither may count as waiting
        assert share_range[0] <= event.value < share_range[1], (event.step, event.value)
    for event in scalars[PEAK_RSS]:
        assert rss_before <= event.value <= rss_after

    shown = trainer.progress_bar_metrics
    if bar:
        assert shown[IMAGES_PER_SEC] == pytest.approx(scalars[IMAGES_PER_SEC][-1].value, rel=1e-5)
        assert shown[DATA_WAIT_SHARE] == pytest.approx(scalars[DATA_WAIT_SHARE][-1].value, rel=1e-5, abs=1e-6)
    else:  # no bar, no self.log (it costs milliseconds)
        assert IMAGES_PER_SEC not in shown and DATA_WAIT_SHARE not in shown


def test_non_positive_interval_is_refused():
    with pytest.raises(ValueError, match="log_every_n_steps=0"):
        ThroughputMonitor(log_every_n_steps=0)
