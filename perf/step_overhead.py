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
``--ablate`` adds, each as (b) with one thing removed: (d) ``Trainer(barebones=True)`` with
    the module of (c) and no callback but the clock (Lightning's loop alone); (e) no
    ModelCheckpoint; (f) no logger; (g) no ThroughputMonitor.

All start from the same weights and train on the same in-memory uint8 batches; the final
weights are compared, so the variants are shown to do the same work. Each repeat runs the
variants in a rotated order (after one unmeasured warm-up round). "Steps" runs from just
before the first batch is fetched to the end of the last step. The headline is the median
over repeats of the ratio (variant / a) within a repeat; the ratio of each variant's best
run and of the runs' median step times are printed beside it. "Fixed cost" is the rest of a
run (model, optimizer; the Trainer's construction, ``fit``'s set-up and teardown). Inside
(b), the time spent in the module's ``self.log`` calls and in the ThroughputMonitor's hooks
is also timed directly (per step: less noisy than the difference of two runs).

Where (b)'s extra time goes:

``--segments R`` (after the repeats, or alone with ``--repeats 0``): R more runs each of (a)
    and (b), both timestamped at the same points of every step (batch start, training_step
    start and end, zero_grad, backward start and end, the optimizer's update start and end,
    batch end; in (b) through a callback's hooks, the module's ``training_step`` and
    ``on_before_optimizer_step`` and the optimizer's step post-hook), and the median
    microseconds of each segment of a step side by side: which part of Lightning's loop
    (between steps, around ``training_step``, around the backward, around the update) holds
    the extra. The instrumented (b) has one more callback than (b): its own hook calls count.
``--profile N``: one run each of (a) and (b) under cProfile: Python's own time per step
    grouped by where the code lives (Lightning's loops, its logger connector, its callbacks,
    torch.optim, this project, C functions) side by side, then (b)'s N costliest functions.
    cProfile's per-call cost inflates call-heavy Python (Lightning's) against C: read the
    grouping for where, ``--segments`` for how much.

    .venv/bin/python -m perf.step_overhead [--backbone resnetv2_tiny_bit --steps 40 --batch 64 --resolution 32 --threads 1 --repeats 15]
    .venv/bin/python -m perf.step_overhead --repeats 9 --ablate       # which setting removes what
    .venv/bin/python -m perf.step_overhead --repeats 0 --segments 9   # where the extra sits in a step
    .venv/bin/python -m perf.step_overhead --repeats 0 --profile 25   # which code, plain vs Lightning
"""
from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
import tempfile
import time
from typing import Callable, NamedTuple

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


# ---------------------------------------------------------------- timestamps within a step (--segments)

# The points every step is stamped at, in order; a segment runs from one point to the next
# (and "between steps" from one step's batch_end to the next step's batch_start).
MARKS = ("batch_start", "step_start", "step_end", "zero_grad", "backward_start", "backward_end", "update_start",
         "update_end", "batch_end")
SEGMENTS = {
    ("batch_end", "batch_start"): "between steps: fetch; Lightning: end-of-step bookkeeping (logger connector, "
                                  "validation and checkpoint checks, ModelCheckpoint's batch-end hook), batch to device",
    ("batch_start", "step_start"): "batch start -> training_step: Lightning's batch-start hooks, optimizer_step -> "
                                   "LightningOptimizer -> strategy -> precision plugin -> optimizer.step -> closure",
    ("step_start", "step_end"): "training_step: forward, loss (+ the module's finite check and logging-step bookkeeping)",
    ("step_end", "zero_grad"): "training_step -> zero_grad: Lightning processes the step's output",
    ("zero_grad", "backward_start"): "zero_grad (set_to_none) + Lightning's zero-grad and before-backward hooks",
    ("backward_start", "backward_end"): "backward",
    ("backward_end", "update_start"): "backward -> update: closure return, on_before_optimizer_step hooks "
                                      "(the module's train/* self.log on logging steps)",
    ("update_start", "update_end"): "the optimizer's update (SGD, momentum, weight decay)",
    ("update_end", "batch_end"): "update -> batch end: lr scheduler step; Lightning: progress counters, batch-end hooks",
}


class _Marks:
    """Timestamps ``(name, perf_counter())`` of the ``MARKS`` points, in the order they happen."""

    def __init__(self):
        self.events: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        self.events.append((name, time.perf_counter()))

    def segments(self, skip: int = 1) -> dict[tuple[str, str], list[float]]:
        """Seconds of each ``SEGMENTS`` key per step, the first ``skip`` steps left out."""
        steps, current = [], None
        for name, t in self.events:
            if name == "batch_start":
                current = {}
                steps.append(current)
            if current is not None:
                current[name] = t
        out = defaultdict(list)
        for k, step in enumerate(steps):
            if k < skip:
                continue
            for a, b in SEGMENTS:
                start = steps[k - 1].get(a) if a == "batch_end" else step.get(a)
                if start is not None and b in step:
                    out[a, b].append(step[b] - start)
        return out


class _SegmentMarks(L.Callback):
    """Stamps the points Lightning reaches through callback hooks (the module and optimizer stamp the rest)."""

    def __init__(self, marks: _Marks):
        self.marks = marks

    def on_train_batch_start(self, *args) -> None:
        self.marks.mark("batch_start")

    def on_before_zero_grad(self, *args) -> None:
        self.marks.mark("zero_grad")

    def on_before_backward(self, *args) -> None:
        self.marks.mark("backward_start")

    def on_after_backward(self, *args) -> None:
        self.marks.mark("backward_end")

    def on_train_batch_end(self, *args) -> None:
        self.marks.mark("batch_end")


def _stamped(module_cls: type[PretrainModule], marks: _Marks) -> type[PretrainModule]:
    """``module_cls`` stamping training_step's start and end, the end of its ``on_before_optimizer_step``
    (the update starts next) and the optimizer's step post-hook (the update's end)."""

    class Stamped(module_cls):
        def training_step(self, batch, batch_idx):
            marks.mark("step_start")
            loss = super().training_step(batch, batch_idx)
            marks.mark("step_end")
            return loss

        def on_before_optimizer_step(self, optimizer) -> None:
            super().on_before_optimizer_step(optimizer)
            marks.mark("update_start")

        def configure_optimizers(self):
            config = super().configure_optimizers()
            config["optimizer"].register_step_post_hook(lambda *_: marks.mark("update_end"))
            return config

    return Stamped


class _ProfileSteps(L.Callback):
    """Runs ``profiler`` over the training epoch only (not the Trainer's set-up and teardown)."""

    def __init__(self, profiler):
        self.profiler = profiler

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.profiler.enable()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.profiler.disable()

    def on_train_end(self, trainer, pl_module) -> None:
        self.profiler.disable()


# ---------------------------------------------------------------- the variants


def plain_run(backbone: str, init: dict, batches: list, marks: _Marks | None = None, profiler=None) -> Run:
    """The hand-written loop (a); ``marks``: stamp every step's ``MARKS``; ``profiler``: a cProfile over the steps."""
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
    ends = []

    def steps():  # a function of its own: cProfile sees only frames entered after it is enabled
        if marks is None:
            for images, labels, _ in batches:
                loss = F.cross_entropy(model((images.float() - mean) / std), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                ends.append(time.perf_counter())
            return
        mark = marks.mark  # the same loop, stamped where (b) is
        for images, labels, _ in batches:
            mark("batch_start")
            mark("step_start")
            loss = F.cross_entropy(model((images.float() - mean) / std), labels)
            mark("step_end")
            mark("zero_grad")
            optimizer.zero_grad(set_to_none=True)
            mark("backward_start")
            loss.backward()
            mark("backward_end")
            mark("update_start")
            optimizer.step()
            mark("update_end")
            scheduler.step()
            mark("batch_end")
            ends.append(time.perf_counter())

    if profiler is not None:
        profiler.enable()
    steps_start = time.perf_counter()
    steps()
    if profiler is not None:
        profiler.disable()
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


# What each Lightning setting removes from (b): "configured" is (b) itself.
SETTINGS = ("configured", "bare", "no_checkpoint", "no_logger", "no_monitor")


def lightning_run(backbone: str, init: dict, batches: list, log_dir: str, progress_bar: bool,
                  module_cls: type[PretrainModule] = PretrainModule, spent: dict[str, float] | None = None,
                  setting: str = "configured", marks: _Marks | None = None, profiler=None) -> Run:
    """``PretrainModule`` (or ``module_cls``) through the Trainer, set up as the stage configs (b, c)
    or with one thing removed (``setting``, see ``SETTINGS``; "bare": ``Trainer(barebones=True)``,
    which refuses ``self.log``: give it a module that logs nothing).

    ``spent``: if given, collects the seconds spent inside the module's ``self.log`` calls and
    the ThroughputMonitor's hooks (keys ``module self.log``, ``ThroughputMonitor``).
    ``marks``: stamp every step's ``MARKS``; ``profiler``: a cProfile run over the training epoch.
    """
    if setting not in SETTINGS:
        raise ValueError(f"setting {setting!r} is not one of {SETTINGS}")
    started = time.perf_counter()
    if marks is not None:
        module_cls = _stamped(module_cls, marks)
    module = module_cls(backbone=backbone, num_classes=NUM_CLASSES, dataset_size=len(batches) * len(batches[0][0]), warmup_steps=WARMUP_STEPS)
    module.model.load_state_dict(init)
    monitor = ThroughputMonitor()
    if spent is not None:
        _timed(module, "log", spent, "module self.log")
        for hook in ("on_train_epoch_start", "on_train_batch_start", "on_train_batch_end"):
            _timed(monitor, hook, spent, "ThroughputMonitor")
    clock = _StepClock()
    callbacks = []
    if setting not in ("bare", "no_checkpoint"):
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(save_last=True, save_top_k=0, every_n_train_steps=5000))
    if setting not in ("bare", "no_monitor"):
        callbacks.append(monitor)
    callbacks += [_SegmentMarks(marks)] if marks is not None else []
    callbacks += [_ProfileSteps(profiler)] if profiler is not None else []
    callbacks.append(clock)  # the clock last among ours, so that its end-of-step time includes the monitor's hook
    trainer_args = dict(accelerator="cpu", devices=1, max_epochs=-1, max_steps=len(batches), check_val_every_n_epoch=None,
                        val_check_interval=100000, default_root_dir=log_dir, callbacks=callbacks)
    if setting == "bare":
        trainer_args["barebones"] = True
    else:
        trainer_args.update(
            log_every_n_steps=20, enable_model_summary=False, num_sanity_val_steps=0, enable_progress_bar=progress_bar,
            logger=False if setting == "no_logger" else L.pytorch.loggers.TensorBoardLogger(log_dir, name="pretrain"),
            enable_checkpointing=setting != "no_checkpoint")
    trainer = L.Trainer(**trainer_args)
    trainer.fit(module, datamodule=_InMemoryData(batches))
    return _run(started, clock.start, clock.ends, time.perf_counter(), module.model.state_dict())


def _max_difference(a: dict, b: dict) -> float:
    return max((a[n] - b[n]).abs().max().item() for n in a if a[n].is_floating_point())


# ---------------------------------------------------------------- where the time goes


def segment_study(plain: Callable, lightning: Callable, runs: int) -> None:
    """``runs`` stamped runs each of (a) and (b), alternating; prints each segment's microseconds per step."""
    segments = {"a": defaultdict(list), "b": defaultdict(list)}
    for k in range(runs):
        for name in ("ab" if k % 2 == 0 else "ba"):
            stamps = _Marks()
            (plain if name == "a" else lightning)(stamps)
            for key, values in stamps.segments().items():
                segments[name][key].extend(values)
    med, mean = statistics.median, statistics.fmean
    print(f"\nper-step segments over {runs} stamped runs each (first step of each run left out), microseconds:")
    print("| segment | (a) plain, median | (b) Lightning, median | (b) - (a), medians | (b) - (a), means |")
    print("| --- | --- | --- | --- | --- |")
    totals = {"a": [0.0, 0.0], "b": [0.0, 0.0]}
    for key, label in SEGMENTS.items():
        a, b = segments["a"].get(key, [0.0]), segments["b"].get(key, [0.0])
        for name, values in (("a", a), ("b", b)):
            totals[name][0] += med(values)
            totals[name][1] += mean(values)
        print(f"| {label} | {med(a) * 1e6:.0f} | {med(b) * 1e6:.0f} | {(med(b) - med(a)) * 1e6:+.0f} | {(mean(b) - mean(a)) * 1e6:+.0f} |")
    print(f"| a step (sum of the segments) | {totals['a'][0] * 1e6:.0f} | {totals['b'][0] * 1e6:.0f} "
          f"| {(totals['b'][0] - totals['a'][0]) * 1e6:+.0f} | {(totals['b'][1] - totals['a'][1]) * 1e6:+.0f} |")
    print("(means include the logging steps, every 20th, where the module logs and TensorBoard writes; the stamping "
          "callback's own hook calls are in (b)'s figures)")


def _code_group(file: str, function: str) -> str:
    """Where a profiled function lives, for ``profile_study``'s grouping."""
    from pathlib import Path

    if file == "~":
        return "C functions: torch ops and autograd" if "torch" in function else "C functions: Python builtins"
    if file.startswith("<"):  # <string>, <frozen ...>
        return "other Python"
    path = file.replace("\\", "/")
    for marker, group in (
        ("lightning/pytorch/loops/", "Lightning: loops (fit, epoch, optimization, closure, fetcher)"),
        ("lightning/pytorch/trainer/connectors/logger_connector", "Lightning: logger connector, results"),
        ("lightning/pytorch/trainer/call.py", "Lightning: hook dispatch (trainer/call.py)"),
        ("lightning/pytorch/trainer/", "Lightning: trainer (other)"),
        ("lightning/pytorch/callbacks/", "Lightning: callbacks"),
        ("lightning/pytorch/core/", "Lightning: LightningModule, LightningOptimizer, hooks"),
        ("lightning/pytorch/profilers/", "Lightning: profiler contexts (PassThroughProfiler)"),
        ("lightning/pytorch/", "Lightning: strategies, plugins, utilities"),
        ("lightning/fabric/", "Lightning Fabric: utilities"),
        ("lightning_utilities/", "lightning_utilities (apply_to_collection)"),
        ("torch/optim/", "torch.optim (Python)"),
        ("torch/nn/", "torch.nn (Python)"),
        ("torch/utils/tensorboard", "TensorBoard writer"),
        ("tensorboard", "TensorBoard writer"),
        ("torchmetrics/", "torchmetrics"),
        ("timm/", "timm (Python)"),
        ("torch/", "torch (other Python)"),
    ):
        if marker in path:
            return group
    if "site-packages" in path:
        return "other Python"
    root = Path(__file__).resolve().parent.parent
    try:
        return f"this project: {Path(file).resolve().relative_to(root).parts[0]}/"
    except ValueError:
        return "other Python"


def profile_study(plain: Callable, lightning: Callable, steps: int, top: int) -> None:
    """cProfile over the steps of one run each of (a) and (b): own time per step by ``_code_group``, side by
    side, then (b)'s ``top`` costliest Python functions and the callers of ``apply_to_collection``."""
    import cProfile
    import pstats

    profiles = {}
    for name, run in (("a", plain), ("b", lightning)):
        profiler = cProfile.Profile()
        run(profiler)
        profiles[name] = pstats.Stats(profiler)
    groups = {name: defaultdict(float) for name in profiles}
    for name, stats in profiles.items():
        for (file, _, function), (_, _, own, _, _) in stats.stats.items():
            groups[name][_code_group(file, function)] += own
    print(f"\ncProfile, own time per step (ms) over one run each of {steps} steps (profiler overhead included):")
    print("| where | (a) plain | (b) Lightning | (b) - (a) |")
    print("| --- | --- | --- | --- |")
    for group in sorted(set(groups["a"]) | set(groups["b"]), key=lambda g: -(groups["b"][g] - groups["a"][g])):
        a, b = groups["a"][group] / steps * 1e3, groups["b"][group] / steps * 1e3
        print(f"| {group} | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    a, b = (sum(groups[n].values()) / steps * 1e3 for n in ("a", "b"))
    print(f"| all | {a:.2f} | {b:.2f} | {b - a:+.2f} |")
    own = {name: defaultdict(float) for name in profiles}
    for name, stats in profiles.items():
        for (file, _, function), (_, _, tt, _, _) in stats.stats.items():
            if file == "~":
                own[name][function] += tt
    extra = sorted(own["b"], key=lambda f: -(own["b"][f] - own["a"].get(f, 0.0)))[:top]
    print("\nC functions with the most extra own time in (b), ms per step: "
          + "; ".join(f"{f} {(own['b'][f] - own['a'].get(f, 0.0)) / steps * 1e3:+.3f}" for f in extra))
    stats = profiles["b"].sort_stats("tottime")
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
    parser.add_argument("--ablate", action="store_true", help="also (d) barebones, (e) no checkpoint, (f) no logger, (g) no monitor")
    parser.add_argument("--segments", type=int, metavar="R", default=0, help="then R stamped runs each of (a) and (b): a step's segments")
    parser.add_argument("--profile", type=int, metavar="N", default=0,
                        help="then cProfile one run each of (a) and (b): own time by code area, and (b)'s N costliest functions")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in create_backbone(args.backbone, NUM_CLASSES).state_dict().items()}
    batches = make_batches(args.steps, args.batch, args.resolution)
    spent = {"module self.log": 0.0, "ThroughputMonitor": 0.0}  # inside (b)'s measured runs

    def lightning(module_cls=PretrainModule, setting="configured", timed=False):
        return lambda b: lightning_run(args.backbone, init, b, log_dir, args.progress_bar, module_cls,
                                       spent=spent if timed else None, setting=setting)

    variants = {
        "a plain loop": lambda b: plain_run(args.backbone, init, b),
        "b Lightning, as configured": lightning(timed=True),
        "c Lightning, module's train/* logs dropped": lightning(QuietPretrainModule),
    }
    if args.ablate:
        variants.update({
            "d Lightning, barebones=True (c's module, no callbacks)": lightning(QuietPretrainModule, "bare"),
            "e (b) without ModelCheckpoint": lightning(setting="no_checkpoint"),
            "f (b) without a logger": lightning(setting="no_logger"),
            "g (b) without ThroughputMonitor": lightning(setting="no_monitor"),
        })
    names = list(variants)
    runs: dict[str, list[Run]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as log_dir:
        for run in variants.values():  # warm-up: allocator, lazy imports, TensorBoard's first writer
            run(batches[:20])
        spent.update(dict.fromkeys(spent, 0.0))
        for k in range(args.repeats):
            shift = k % len(names)
            for name in names[shift:] + names[:shift]:  # rotated, so that no variant always runs first
                runs[name].append(variants[name](batches))
            plain = runs[names[0]][-1]
            print(f"repeat {k + 1}: " + ", ".join(f"{name.split()[0]} {r[-1].steps_s:.2f} s" for name, r in runs.items())
                  + f"; max |final weight difference| vs a: {max(_max_difference(plain.weights, r[-1].weights) for r in runs.values()):.1e}", flush=True)
        if args.segments:
            segment_study(lambda marks: plain_run(args.backbone, init, batches, marks=marks),
                          lambda marks: lightning_run(args.backbone, init, batches, log_dir, args.progress_bar, marks=marks),
                          args.segments)
        if args.profile:
            profile_study(lambda profiler: plain_run(args.backbone, init, batches, profiler=profiler),
                          lambda profiler: lightning_run(args.backbone, init, batches, log_dir, args.progress_bar, profiler=profiler),
                          args.steps, args.profile)
    if not args.repeats:
        return

    med = statistics.median
    plain = runs[names[0]]
    print(f"\n{args.backbone}, batch {args.batch} at {args.resolution} px, {args.steps} steps, {args.threads} thread(s), "
          f"progress bar {'on' if args.progress_bar else 'off'}; {args.repeats} rotated repeats")
    print("| variant | median of ratios within a repeat (headline) | ratio of best runs | best run's steps "
          "| median step (median run) | ratio | extra per step | fixed cost around the steps |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    best_plain = min(p.steps_s for p in plain)
    for name, rs in runs.items():
        pairs = list(zip(rs, plain))
        best = min(r.steps_s for r in rs)
        print(f"| {name} | **{med(r.steps_s / p.steps_s for r, p in pairs):.3f}** | {best / best_plain:.3f} | {best:.2f} s "
              f"| {med(med(r.step_s) for r in rs) * 1e3:.1f} ms | {med(med(r.step_s) / med(p.step_s) for r, p in pairs):.3f} "
              f"| {med(med(r.step_s) - med(p.step_s) for r, p in pairs) * 1e3:+.1f} ms | {med(r.whole_s - r.steps_s for r in rs):.2f} s |")
    steps_b = args.repeats * args.steps
    print("\ninside (b), per step: " + ", ".join(f"{key} {seconds / steps_b * 1e3:.2f} ms" for key, seconds in spent.items()))


if __name__ == "__main__":
    main()
