"""What training through Lightning costs per step over a plain PyTorch loop (same model, data, optimizer, steps).

(a) plain: a hand-written loop — normalise the uint8 batch as ``ImageClassifier.forward``
    does, cross-entropy, ``backward``, SGD with momentum and weight decay on weights only, the
    warmup + step-decay schedule stepped every step. Nothing logged.
(b) ``PretrainModule`` through ``lightning.Trainer`` set up as the stage configs run it:
    TensorBoardLogger, ``log_every_n_steps`` 20 (configs/miniature; configs/bit: 100),
    ModelCheckpoint(save_last, save_top_k=0, every_n_train_steps=5000) as configs/bit,
    ThroughputMonitor, no validation; the progress bar off as the study runner runs stages
    (``--progress-bar``: on, as a bare ``train.py fit``).
(c) as (b), with the module's two per-step ``self.log`` calls (``train/loss``, ``train/lr``)
    dropped: what they cost.

All start from the same weights and train on the same in-memory uint8 batches; the final
weights are compared, so the variants are shown to do the same work. Each repeat runs a, b, c
in a rotated order (after one unmeasured warm-up round). "Steps" runs from just before the
first batch is fetched to the end of the last step. Other jobs only ever add time, so the
ratio of each variant's best run is the headline; the median of the ratios within a repeat
and of the runs' median step times are printed beside it. "Fixed cost" is the rest of a run
(model, optimizer; the Trainer's construction, ``fit``'s set-up and teardown). Inside (b),
the time spent in the module's ``self.log`` calls and in the ThroughputMonitor's hooks is
also timed directly (per step: less noisy than the difference of two runs).
``--profile N`` then profiles one run of (b).

    .venv/bin/python -m perf.step_overhead [--backbone resnetv2_tiny_bit --steps 40 --batch 64 --resolution 32 --threads 1 --repeats 15]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import NamedTuple

import lightning as L
import torch
import torch.nn.functional as F

from callbacks.throughput import ThroughputMonitor
from lightning_modules.backbones import create_backbone
from lightning_modules.pretrain import PretrainModule
from recipes.schedules import decays_at_fractions, linear_scaled_lr, warmup_step_decay

NUM_CLASSES = 100  # the miniature's generated upstream set
WARMUP_STEPS = 10  # configs/miniature/pretrain.yaml


def make_batches(steps: int, batch: int, resolution: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``steps`` batches ``(uint8 images (B, 3, R, R), int64 labels (B,), int64 indices (B,))``, as the loaders yield them."""
    generator = torch.Generator().manual_seed(0)
    return [(torch.randint(0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8, generator=generator),
             torch.randint(0, NUM_CLASSES, (batch,), generator=generator), torch.arange(k * batch, (k + 1) * batch))
            for k in range(steps)]


class _InMemoryData(L.LightningDataModule):
    """The benchmark's batches as a datamodule (``batch_size`` is what ``PretrainModule`` reads for its lr)."""

    def __init__(self, batches: list):
        super().__init__()
        self.batches = batches
        self.batch_size = len(batches[0][0])

    def train_dataloader(self):
        return _Batches(self.batches)


class _Batches:
    """The list as one iterable (a bare list would be read as a list of dataloaders)."""

    def __init__(self, batches: list):
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        return iter(self.batches)


class _StepClock(L.Callback):
    """Times the steps: from the epoch's start (before the first fetch) to each batch's end."""

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start, self.ends = time.perf_counter(), []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


class QuietPretrainModule(PretrainModule):
    """``PretrainModule`` with its per-step ``train/*`` ``self.log`` calls dropped: what those calls cost (variant c)."""

    def log(self, name, value, *args, **kwargs):
        if not name.startswith("train/"):
            super().log(name, value, *args, **kwargs)


class Run(NamedTuple):
    whole_s: float  # from building the model to the end of the last step (Lightning: of fit)
    steps_s: float  # from before the first fetch to the end of the last step
    step_s: list[float]  # each step, end to end
    weights: dict


def _run(started: float, steps_start: float, ends: list[float], finished: float, weights: dict) -> Run:
    starts = [steps_start, *ends[:-1]]
    return Run(finished - started, ends[-1] - steps_start, [b - a for a, b in zip(starts, ends)], weights)


def plain_run(backbone: str, init: dict, batches: list) -> Run:
    """The hand-written loop (a)."""
    started = time.perf_counter()
    model = create_backbone(backbone, NUM_CLASSES)
    model.load_state_dict(init)
    model.train()
    mean = torch.full((1, 3, 1, 1), 0.5 * 255)
    std = torch.full((1, 3, 1, 1), 0.5 * 255)
    # PretrainModule's defaults (BiT-M, spec §2), written out: the final-weight comparison checks they agree
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    peak_lr = linear_scaled_lr(0.03, len(batches[0][0]), 256)
    optimizer = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}], lr=peak_lr, momentum=0.9)
    decays = decays_at_fractions(len(batches), (1 / 3, 2 / 3, 8 / 9))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_step_decay(step, 1.0, WARMUP_STEPS, decays))
    steps_start = time.perf_counter()
    ends = []
    for images, labels, _ in batches:
        loss = F.cross_entropy(model((images.float() - mean) / std), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        ends.append(time.perf_counter())
    return _run(started, steps_start, ends, ends[-1], model.state_dict())


def _timed(obj, name: str, spent: dict[str, float], key: str) -> None:
    """Adds the time spent in ``obj.name(...)`` calls to ``spent[key]`` (an instance attribute: the class is untouched)."""
    method = getattr(obj, name)

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - started

    setattr(obj, name, timed)


def lightning_run(backbone: str, init: dict, batches: list, log_dir: str, progress_bar: bool,
                  module_cls: type[PretrainModule] = PretrainModule, spent: dict[str, float] | None = None) -> Run:
    """``PretrainModule`` (or ``module_cls``) through the Trainer, set up as the stage configs (b, c).

    ``spent``: if given, collects the seconds spent inside the module's ``self.log`` calls and
    the ThroughputMonitor's hooks (keys ``module self.log``, ``ThroughputMonitor``).
    """
    started = time.perf_counter()
    module = module_cls(backbone=backbone, num_classes=NUM_CLASSES, dataset_size=len(batches) * len(batches[0][0]), warmup_steps=WARMUP_STEPS)
    module.model.load_state_dict(init)
    monitor = ThroughputMonitor()
    if spent is not None:
        _timed(module, "log", spent, "module self.log")
        for hook in ("on_train_epoch_start", "on_train_batch_start", "on_train_batch_end"):
            _timed(monitor, hook, spent, "ThroughputMonitor")
    clock = _StepClock()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=-1, max_steps=len(batches), check_val_every_n_epoch=None, val_check_interval=100000,
        log_every_n_steps=20, enable_model_summary=False, num_sanity_val_steps=0, enable_progress_bar=progress_bar,
        logger=L.pytorch.loggers.TensorBoardLogger(log_dir, name="pretrain"),
        # the clock last among ours, so that its end-of-step time includes the monitor's hook
        callbacks=[L.pytorch.callbacks.ModelCheckpoint(save_last=True, save_top_k=0, every_n_train_steps=5000), monitor, clock],
    )
    trainer.fit(module, datamodule=_InMemoryData(batches))
    return _run(started, clock.start, clock.ends, time.perf_counter(), module.model.state_dict())


def _max_difference(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a if a[n].is_floating_point())


def _profile(run, top: int) -> None:
    """The ``top`` Python functions by own time (torch's kernels left out) in one run, and who calls
    Lightning's ``apply_to_collection`` (the costliest of Lightning's own functions when measured)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(run)
    stats = pstats.Stats(profiler).sort_stats("tottime")
    stats.print_stats(r"\.py:", top)
    stats.print_callers(r"apply_func.py:\d+\(apply_to_collection\)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="resnetv2_tiny_bit", help="the miniature's models: resnetv2_tiny_bit, resnetv2_tinyx3_bit")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64, help="configs/miniature/pretrain.yaml: 64")
    parser.add_argument("--resolution", type=int, default=32, help="configs/miniature/pretrain.yaml: 32")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the study runner gives each of its 2 cells 1)")
    parser.add_argument("--repeats", type=int, default=15, help="short runs, many repeats: the machine's load drifts less within one")
    parser.add_argument("--progress-bar", action="store_true", help="TQDM bar on (a bare train.py fit); off: as the study runner")
    parser.add_argument("--profile", type=int, metavar="N", default=0, help="then profile one run of (b): its N costliest Python functions")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in create_backbone(args.backbone, NUM_CLASSES).state_dict().items()}
    batches = make_batches(args.steps, args.batch, args.resolution)
    variants = {
        "a plain loop": lambda b: plain_run(args.backbone, init, b),
        "b Lightning, as configured": lambda b: lightning_run(args.backbone, init, b, log_dir, args.progress_bar, spent=spent),
        "c Lightning, module's train/* logs dropped": lambda b: lightning_run(args.backbone, init, b, log_dir, args.progress_bar, QuietPretrainModule),
    }
    spent = {"module self.log": 0.0, "ThroughputMonitor": 0.0}  # inside (b)'s measured runs
    names = list(variants)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as log_dir:
        for run in variants.values():  # warm-up: allocator, lazy imports, TensorBoard's first writer
            run(batches[:20])
        spent.update(dict.fromkeys(spent, 0.0))
        for k in range(args.repeats):
            for name in names[k % 3:] + names[:k % 3]:  # rotated, so that no variant always runs first
                runs[name].append(variants[name](batches))
            plain = runs[names[0]][-1]
            print(f"repeat {k + 1}: " + ", ".join(f"{name.split()[0]} {r[-1].steps_s:.2f} s" for name, r in runs.items())
                  + f"; max |final weight difference| vs a: {max(_max_difference(plain.weights, r[-1].weights) for r in runs.values()):.1e}", flush=True)
        if args.profile:
            _profile(lambda: lightning_run(args.backbone, init, batches, log_dir, args.progress_bar), args.profile)

    med = statistics.median
    plain = runs[names[0]]
    print(f"\n{args.backbone}, batch {args.batch} at {args.resolution} px, {args.steps} steps, {args.threads} thread(s), "
          f"progress bar {'on' if args.progress_bar else 'off'}; {args.repeats} rotated repeats")
    print("| variant | best run's steps | ratio of best runs | median of ratios within a repeat | median step (median run) | ratio | extra per step | fixed cost around the steps |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    best_plain = min(p.steps_s for p in plain)
    for name, rs in runs.items():
        pairs = list(zip(rs, plain))
        best = min(r.steps_s for r in rs)
        print(f"| {name} | {best:.2f} s | {best / best_plain:.3f} | {med(r.steps_s / p.steps_s for r, p in pairs):.3f} "
              f"| {med(med(r.step_s) for r in rs) * 1e3:.1f} ms | {med(med(r.step_s) / med(p.step_s) for r, p in pairs):.3f} "
              f"| {med(med(r.step_s) - med(p.step_s) for r, p in pairs) * 1e3:+.1f} ms | {med(r.whole_s - r.steps_s for r in rs):.2f} s |")
    steps_b = args.repeats * args.steps
    print("\ninside (b), per step: " + ", ".join(f"{key} {seconds / steps_b * 1e3:.2f} ms" for key, seconds in spent.items()))

if __name__ == "__main__":
    main()
