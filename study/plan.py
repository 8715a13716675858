"""What a study costs before it runs: ``python -m study plan STUDY.yaml`` (docs/study.md).

Per upstream run and per cell: images processed (training, and evaluation forward passes),
epochs over the set it trains on, GPU-hours from the throughput table (``configs/throughput.yaml``:
training images/s per device by device, model and resolution, each number labelled with its
source) and wall-clock on a cluster shape (nodes x GPUs per node); totals, the wall-clock of the
whole study, and the GPU-hours that shared pre-training saves.

Every number of a unit is read where it already lives: which cells share an upstream run from
`StudyDefinition`; steps, global batch, resolution, devices, validation interval and benchmarks
from the stage configs stacked with the override file the runner writes (`study.overrides`); the
fine-tuning length from the HyperRule (`recipes.hyperrule`) and the training-set size from the
beton's manifest, as the training CLI reads them. Nothing here imports torch: the plan of the
paper's grid takes about a second on a laptop.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import yaml

from conversion.beton import read_manifest
from conversion.sources import RELEASES
from recipes import hyperrule
from study.definition import Cell, StudyConfigError, StudyDefinition, UpstreamRun
from study.overrides import downstream_overrides, merge, read_stage_config, upstream_overrides
from study.slurm import slurm_jobs

THROUGHPUT_CONFIG = "configs/throughput.yaml"
SOURCES = ("published", "measured", "derived")
_UNSET = object()


# ----------------------------------------------------------------------------- the throughput table

@dataclass(frozen=True)
class Rate:
    """Training images per second on one device, for one (device, model, resolution).

    ``source`` is ``published``, ``measured`` or ``derived``; ``note`` says from what (the
    reference, or the derivation with its numbers), so every printed GPU-hour can be traced."""

    img_per_s: float
    source: str
    note: str


@dataclass(frozen=True)
class ThroughputTable:
    """``configs/throughput.yaml``, validated when read (one-line `StudyConfigError` naming the file,
    the key and the fix).

    ``rate(device, model, resolution)``: a ``published``/``measured`` entry as written; a
    ``derived`` one from its ``from: MODEL@RES`` entry (published or measured, same device) scaled
    by forward GMACs, ``gmacs(r) = gmacs_at_224[model] x (r / 224)^2``. A combination the table
    lacks is refused, naming the device, model, resolution and the file to edit.
    ``eval_cost_fraction``: the cost of an evaluated (forward-only) image relative to a trained one.
    ``evaluation_images[benchmark]``: images one evaluation of that set forwards.
    """

    path: str
    eval_cost_fraction: float
    gmacs_at_224: dict[str, float]
    devices: dict[str, dict[str, dict[int, dict]]]
    evaluation_images: dict[str, int]

    @classmethod
    def from_yaml(cls, path: str | Path) -> "ThroughputTable":
        where = f"throughput table {path}"
        if not Path(path).is_file():
            raise StudyConfigError(f"{where} not found; pass --throughput PATH (the repository's is {THROUGHPUT_CONFIG})")
        try:
            raw = yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as err:
            raise StudyConfigError(f"{where}: not valid YAML ({' '.join(str(err).split())})") from None
        keys = {"eval_cost_fraction", "gmacs_at_224", "devices", "evaluation_images"}
        if not isinstance(raw, dict) or set(raw) != keys:
            got = ", ".join(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
            raise StudyConfigError(f"{where}: must hold exactly the keys {', '.join(sorted(keys))} (got {got}); see {THROUGHPUT_CONFIG}")
        fraction = raw["eval_cost_fraction"]
        if not _number(fraction) or not 0 < fraction <= 1:
            raise StudyConfigError(f"{where}: eval_cost_fraction must be a number in (0, 1], got {fraction!r} (forward only: ~1/3)")
        for key in ("gmacs_at_224", "evaluation_images"):
            value = raw[key]
            if not isinstance(value, dict) or not all(isinstance(k, str) and _number(v) and v >= 0 for k, v in value.items()):
                raise StudyConfigError(f"{where}: {key} must map names to non-negative numbers, got {value!r}")
        table = cls(str(path), float(fraction), dict(raw["gmacs_at_224"]), _devices(raw["devices"], where),
                    {k: int(v) for k, v in raw["evaluation_images"].items()})
        for device, models in table.devices.items():  # derived entries resolve now, not mid-plan
            for model, resolutions in models.items():
                for resolution in resolutions:
                    table.rate(device, model, resolution)
        return table

    def rate(self, device: str, model: str, resolution: int) -> Rate:
        entry = self._entry(device, model, resolution)
        if entry["source"] != "derived":
            return Rate(float(entry["img_per_s"]), entry["source"], entry["ref"])
        anchor_model, anchor_res = _parse_from(entry["from"], f"{self._key(device, model, resolution)}.from", self.path)
        anchor = self._entry(device, anchor_model, anchor_res, needed_by=self._key(device, model, resolution))
        if anchor["source"] == "derived":
            raise StudyConfigError(f"{self.path}: {self._key(device, model, resolution)} is derived from {entry['from']}, "
                                   f"itself derived; derive from a published or measured entry")
        g_anchor, g = self.gmacs(anchor_model, anchor_res), self.gmacs(model, resolution)
        return Rate(anchor["img_per_s"] * g_anchor / g, "derived",
                    f"{anchor_model}@{anchor_res} ({anchor['source']}, {anchor['img_per_s']:,.0f} img/s) x {g_anchor:.2f}/{g:.2f} GMACs")

    def gmacs(self, model: str, resolution: int) -> float:
        """Forward GMACs per image of `model` at `resolution` px (pixel-ratio scaling of the 224 px value)."""
        if model not in self.gmacs_at_224:
            raise StudyConfigError(f"{self.path}: gmacs_at_224 has no {model} (needed to derive its throughput); "
                                   f"add its forward GMACs at 224 px, with their source")
        return self.gmacs_at_224[model] * (resolution / 224) ** 2

    def eval_images(self, benchmark: str) -> int:
        if benchmark not in self.evaluation_images:
            raise StudyConfigError(f"{self.path}: evaluation_images has no {benchmark}; add the number of images "
                                   f"one evaluation of it forwards")
        return self.evaluation_images[benchmark]

    def _entry(self, device: str, model: str, resolution: int, needed_by: str | None = None) -> dict:
        if device not in self.devices:
            raise StudyConfigError(f"{self.path} has no device {device!r} (it has {', '.join(self.devices)}); "
                                   f"pass --device one of them or add {device} under devices")
        entry = self.devices[device].get(model, {}).get(resolution)
        if entry is None:
            why = f" (the source of {needed_by})" if needed_by else ""
            raise StudyConfigError(f"{self.path} has no throughput for {model} at {resolution} px on {device}{why}; "
                                   f"add devices.{device}.{model}.{resolution} to {self.path} "
                                   f"(published or measured img_per_s with its ref, or derived from a published entry)")
        return entry

    @staticmethod
    def _key(device: str, model: str, resolution: int) -> str:
        return f"devices.{device}.{model}.{resolution}"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_from(text: Any, key: str, path: str) -> tuple[str, int]:
    model, _, res = str(text).partition("@")
    if not model or not res.isdigit():
        raise StudyConfigError(f"{path}: {key} must read MODEL@RESOLUTION (e.g. resnet50@224), got {text!r}")
    return model, int(res)


def _devices(raw: Any, where: str) -> dict[str, dict[str, dict[int, dict]]]:
    """The ``devices`` mapping, each entry checked for its source's fields."""
    if not isinstance(raw, dict) or not raw:
        raise StudyConfigError(f"{where}: devices must map device names to models to resolutions to entries")
    for device, models in raw.items():
        if not isinstance(models, dict):
            raise StudyConfigError(f"{where}: devices.{device} must map model names to resolutions")
        for model, resolutions in models.items():
            if not isinstance(resolutions, dict) or not all(isinstance(r, int) and r > 0 for r in resolutions):
                raise StudyConfigError(f"{where}: devices.{device}.{model} must map resolutions (pixels, integers) to entries")
            for resolution, entry in resolutions.items():
                key = f"devices.{device}.{model}.{resolution}"
                source = entry.get("source") if isinstance(entry, dict) else None
                if source not in SOURCES:
                    raise StudyConfigError(f"{where}: {key}.source must be one of {', '.join(SOURCES)}, got {source!r}")
                if source == "derived":
                    _parse_from(entry.get("from"), f"{key}.from", where)
                elif not (_number(entry.get("img_per_s")) and entry["img_per_s"] > 0 and isinstance(entry.get("ref"), str) and entry["ref"]):
                    raise StudyConfigError(f"{where}: {key} ({source}) needs img_per_s (a positive number) and ref (where the number is from)")
    return raw


# ----------------------------------------------------------------------------- one unit's work and cost

@dataclass(frozen=True)
class UnitCost:
    """The work of one upstream run (``kind="upstream"``) or one cell (``kind="cell"``: fine-tuning
    plus evaluation; ``upstream`` names the run it starts from) and what it costs.

    ``train_images`` = steps x global batch; ``epochs`` = train_images / ``subset_images`` (the
    set it trains on). ``eval_images`` are forward passes (validation, final evaluation), each
    ``eval_cost_fraction`` of a trained image. ``gpu_hours`` = (train_images + fraction x
    eval_images) / ``img_per_s`` / 3600; ``wall_hours`` = gpu_hours / its devices (no
    multi-device scaling loss)."""

    kind: str
    name: str
    model: str
    upstream: str | None
    resolution: int
    nodes: int
    devices_per_node: int
    steps: int
    global_batch: int
    train_images: int
    subset_images: int
    eval_images: int
    eval_cost_fraction: float
    img_per_s: float
    throughput_source: str

    @property
    def devices(self) -> int:
        return self.nodes * self.devices_per_node

    @property
    def epochs(self) -> float:
        return self.train_images / self.subset_images

    @property
    def gpu_hours(self) -> float:
        return (self.train_images + self.eval_cost_fraction * self.eval_images) / self.img_per_s / 3600

    @property
    def wall_hours(self) -> float:
        return self.gpu_hours / self.devices

    def row(self) -> dict[str, Any]:
        """The unit as one CSV/JSON row (derived values included)."""
        return {**asdict(self), "devices": self.devices, "epochs": self.epochs, "gpu_hours": self.gpu_hours,
                "wall_hours": self.wall_hours}


@dataclass(frozen=True)
class Cluster:
    """What the study runs on: ``nodes`` nodes of ``gpus_per_node`` devices of kind ``device`` (a
    device of the throughput table). GPUs are counted as one pool (no fragmentation)."""

    nodes: int
    gpus_per_node: int
    device: str

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


def _get(config: dict, dotted: str, default: Any = None) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


class _Stacker:
    """A unit's stage config as LightningCLI would stack it: the stage config, the study's extra
    configs that exist, then the unit's override file (`study.overrides`), merged by
    `study.overrides.merge`. Files are read once per plan."""

    def __init__(self, study: StudyDefinition):
        self.study, self._files = study, {}

    def __call__(self, stage: str, model: str, override: dict) -> dict:
        config: dict = {}
        for path in [self.study.stage_config(stage, model), *self.study.extra_configs(stage)]:
            if path not in self._files:
                self._files[path] = read_stage_config(path)
            config = merge(config, self._files[path])
        return merge(config, override)


def _allocation(config: dict, where: str, gpus_per_node: int | None) -> tuple[int, int]:
    """``(nodes, devices per node)`` of a stage: ``trainer.num_nodes`` (Lightning's default 1) and
    ``trainer.devices`` (an integer, a list of ids, or all of a node's GPUs for ``auto``/-1)."""
    nodes = _get(config, "trainer.num_nodes", 1) or 1
    devices = _get(config, "trainer.devices", "auto")
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, (list, tuple)):
        devices = len(devices)
    elif not _positive_int(devices):  # "auto", -1: every GPU of the node
        if gpus_per_node is None:
            raise StudyConfigError(f"{where}: trainer.devices={devices!r} means every GPU of a node; pass --gpus-per-node N")
        devices = gpus_per_node
    if not _positive_int(nodes):
        raise StudyConfigError(f"{where}: trainer.num_nodes must be a positive integer, got {nodes!r}")
    return nodes, devices


def _global_batch(config: dict, world: int, where: str) -> int:
    """``data.init_args.global_batch``; without it, the per-device batch x devices x accumulation."""
    batch = _get(config, "data.init_args.global_batch")
    if _positive_int(batch):
        return batch
    per_device = _get(config, "data.init_args.batch_size")
    if not _positive_int(per_device):
        raise StudyConfigError(f"{where}: neither data.init_args.global_batch nor data.init_args.batch_size is a positive "
                               f"integer; set the batch one optimizer step sees")
    return per_device * world * int(_get(config, "trainer.accumulate_grad_batches", 1) or 1)


def _validations(config: dict, steps: int, epochs: float, where: str, notes: list[str]) -> int:
    """How often the stage validates: ``trainer.val_check_interval`` in optimizer steps (an int: the
    training CLI turns it into micro-batches) or in epochs (a float)."""
    interval = _get(config, "trainer.val_check_interval")
    if _positive_int(interval):
        return steps // interval
    if _number(interval) and interval > 0:
        return math.floor(epochs / interval)
    notes.append(f"{where}: trainer.val_check_interval={interval!r}: its validation passes are not counted")
    return 0


def _set_size(beton: Any, release: str, notes: list[str]) -> int:
    """Images of `beton` from its manifest (what the training CLI reads); when the beton is not on
    this machine, the `release`'s count (conversion/sources.py RELEASES), noted."""
    try:
        return int(read_manifest(Path(str(beton)))["num_images"])
    except (OSError, ValueError, KeyError) as err:
        count = RELEASES[release].images
        why = ("is not set" if beton is None else "is not on this machine" if isinstance(err, FileNotFoundError)
               else f"is unreadable ({' '.join(str(err).split())})")
        notes.append(f"beton {beton} {why}: planned with {RELEASES[release].note}'s {count:,} images "
                     f"(conversion/sources.py RELEASES[{release!r}])")
        return count


def upstream_work(study: StudyDefinition, run: UpstreamRun, stack: _Stacker, gpus_per_node: int | None,
                  notes: list[str]) -> dict[str, Any]:
    """The work of pre-training `run`, from its stacked upstream config: steps x global batch
    images at ``data.init_args.resolution``, over its subset; validation every
    ``val_check_interval`` steps on the ``holdout`` images."""
    config = stack("upstream", run.model, upstream_overrides(study, run))
    where = f"{study.stage_config('upstream', run.model)} (upstream run {run.name})"
    steps, resolution = _get(config, "trainer.max_steps"), _get(config, "data.init_args.resolution")
    if not _positive_int(steps) or not _positive_int(resolution):
        raise StudyConfigError(f"{where}: trainer.max_steps ({steps!r}) and data.init_args.resolution ({resolution!r}) "
                               f"must be positive integers")
    nodes, per_node = _allocation(config, where, gpus_per_node)
    batch = _global_batch(config, nodes * per_node, where)
    subset = _get(config, "data.init_args.subset_size")
    subset = subset if _positive_int(subset) else run.data_size
    holdout = _get(config, "data.init_args.holdout", 0) or 0
    validations = _validations(config, steps, steps * batch / subset, where, notes)
    return dict(kind="upstream", name=run.name, model=run.model, upstream=None, resolution=resolution, nodes=nodes,
                devices_per_node=per_node, steps=steps, global_batch=batch, train_images=steps * batch,
                subset_images=subset, eval_images=validations * int(holdout))


def finetune_steps(config: dict, train_size: int) -> int:
    """Fine-tuning length as the training CLI derives it: a positive ``trainer.max_steps`` is kept;
    otherwise ``model.init_args.steps``, else the HyperRule's steps for `train_size` images scaled by
    ``model.init_args.schedule_scale`` (FinetuneModule.fit_steps, which imports torch)."""
    configured = _get(config, "trainer.max_steps", -1)
    if _positive_int(configured):
        return configured
    init_args = _get(config, "model.init_args", {}) or {}
    if init_args.get("steps") is not None:
        return int(init_args["steps"])
    return hyperrule.schedule(train_size).scaled(float(init_args.get("schedule_scale", 1.0))).steps


def cell_work(study: StudyDefinition, cell: Cell, stack: _Stacker, table: ThroughputTable, gpus_per_node: int | None,
              notes: list[str]) -> dict[str, Any]:
    """The work of `cell`, from its stacked downstream config: the HyperRule's steps x global batch
    images at the crop; validation on the clean val set every ``val_check_interval`` steps; at the
    end the clean set and every benchmark once (OODEvaluation)."""
    config = stack("downstream", cell.model, downstream_overrides(study, cell))
    where = f"{study.stage_config('downstream', cell.model)} (cell {cell.name})"
    train_size = _set_size(_get(config, "data.init_args.train_beton"), "imagenet1k-train", notes)
    val_size = _set_size(_get(config, "data.init_args.val_beton"), "imagenet1k-val", notes)
    steps = finetune_steps(config, train_size)
    crop = _get(config, "data.init_args.crop")
    if crop is None:  # the datamodule asks the HyperRule, with the train beton's median image area
        variant = _get(config, "data.init_args.resolution_variant")
        try:
            crop = (hyperrule.resolution(hyperrule.SMALL_IMAGE_AREA) if variant is None
                    else hyperrule.resolution(hyperrule.SMALL_IMAGE_AREA, variant))[1]
        except ValueError as err:
            raise StudyConfigError(f"{where}: {err}") from None
        notes.append(f"fine-tuning crop {crop} px: the HyperRule's for images of at least 96x96 px "
                     f"(resolution_variant {variant or 'default'}; the beton's median area is read only at start-up)")
    nodes, per_node = _allocation(config, where, gpus_per_node)
    batch = _global_batch(config, nodes * per_node, where)
    benchmarks = _get(config, "data.init_args.benchmarks") or []
    if _get(config, "data.init_args.benchmark_options"):
        notes.append("benchmark_options are not applied to the evaluation sizes: full releases counted")
    validations = _validations(config, steps, steps * batch / train_size, where, notes)
    final = (val_size + sum(table.eval_images(b) for b in benchmarks)) if benchmarks else 0
    return dict(kind="cell", name=cell.name, model=cell.model, upstream=study.upstream_of(cell).name, resolution=int(crop),
                nodes=nodes, devices_per_node=per_node, steps=steps, global_batch=batch, train_images=steps * batch,
                subset_images=train_size, eval_images=validations * val_size + final)


# ----------------------------------------------------------------------------- the whole study

@dataclass(frozen=True)
class Job:
    """One array task for `makespan`: its duration, the GPUs it holds, its array job."""

    hours: float
    gpus: int
    array: str


def makespan(jobs: Sequence[Job], gpus: int, max_parallel: dict[str, int | None]) -> float:
    """Hours from the first start to the last end when `jobs` start in order on a pool of `gpus`,
    each as soon as enough GPUs are free and its array runs fewer than ``max_parallel[array]``
    tasks (None: no limit); a later job may start before an earlier one that does not fit yet (as
    SLURM backfills). Every job must fit the pool."""
    too_big = [j for j in jobs if j.gpus > gpus]
    if too_big:
        raise ValueError(f"a job holds {too_big[0].gpus} GPUs, more than the pool's {gpus}")
    pending, running, now = list(jobs), [], 0.0  # running: (end, job)
    while pending or running:
        for job in list(pending):
            busy = sum(j.gpus for _, j in running)
            in_array = sum(1 for _, j in running if j.array == job.array)
            limit = max_parallel.get(job.array)
            if busy + job.gpus <= gpus and (limit is None or in_array < limit):
                running.append((now + job.hours, job))
                pending.remove(job)
        now = min(end for end, _ in running)
        running = [(end, j) for end, j in running if end > now]
    return now


@dataclass
class StudyPlan:
    """The cost of a whole study on `cluster`: every upstream run (pre-trained once, however many
    cells share it) and every cell, the wall-clock of the two phases (every upstream run before
    any cell: the cell arrays depend on the upstream arrays), and `notes` (every assumption made).

    ``unshared_gpu_hours``: the cost if each cell pre-trained its own upstream run;
    ``saving_gpu_hours`` = that minus ``total_gpu_hours``."""

    study: str
    source: str
    throughput: str
    cluster: Cluster
    upstream: list[UnitCost]
    cells: list[UnitCost]
    rates: dict[tuple[str, int], Rate]
    upstream_wall_hours: float
    cells_wall_hours: float
    notes: list[str]

    @property
    def upstream_gpu_hours(self) -> float:
        return sum(u.gpu_hours for u in self.upstream)

    @property
    def cells_gpu_hours(self) -> float:
        return sum(c.gpu_hours for c in self.cells)

    @property
    def total_gpu_hours(self) -> float:
        return self.upstream_gpu_hours + self.cells_gpu_hours

    @property
    def unshared_gpu_hours(self) -> float:
        by_name = {u.name: u for u in self.upstream}
        return sum(by_name[c.upstream].gpu_hours for c in self.cells) + self.cells_gpu_hours

    @property
    def saving_gpu_hours(self) -> float:
        return self.unshared_gpu_hours - self.total_gpu_hours

    @property
    def wall_hours(self) -> float:
        return self.upstream_wall_hours + self.cells_wall_hours

    def totals(self) -> dict[str, float]:
        """Counts, GPU-hours, wall-clock hours and images of the whole study, by name."""
        return {"upstream_runs": len(self.upstream), "cells": len(self.cells),
                "upstream_gpu_hours": self.upstream_gpu_hours, "cells_gpu_hours": self.cells_gpu_hours,
                "total_gpu_hours": self.total_gpu_hours, "unshared_gpu_hours": self.unshared_gpu_hours,
                "saving_gpu_hours": self.saving_gpu_hours, "upstream_wall_hours": self.upstream_wall_hours,
                "cells_wall_hours": self.cells_wall_hours, "wall_hours": self.wall_hours,
                "train_images": sum(u.train_images for u in [*self.upstream, *self.cells]),
                "eval_images": sum(u.eval_images for u in [*self.upstream, *self.cells])}


def _slurm_int(study: StudyDefinition, key: str) -> int | None:
    """The largest value of an integer sbatch option over the study's models (None: not set)."""
    values = [study.slurm_options(m).get(key) for m in study.models]
    values = [int(v) for v in values if _positive_int(v) or (isinstance(v, str) and v.isdigit())]
    return max(values) if values else None


def plan_study(study: StudyDefinition, table: ThroughputTable, *, nodes: int | None = None,
               gpus_per_node: int | None = None, device: str | None = None) -> StudyPlan:
    """Cost every upstream run and cell of `study` on a cluster of `nodes` x `gpus_per_node`
    `device`s; each unset value comes from the study's ``slurm:`` section (its largest ``nodes``
    and ``gpus_per_node``) or, without one, from the units themselves (the smallest cluster that
    runs every unit); `device` defaults to the table's first."""
    notes: list[str] = []
    missing = {stage: [p for p in study.extra_configs(stage) if not Path(p).is_file()] for stage in ("upstream", "downstream")}
    for stage, paths in missing.items():
        notes += [f"{stage}_extra_configs {p} does not exist yet: planned without it" for p in paths]
    usable = replace(study, **{f"{s}_extra_configs": [p for p in study.extra_configs(s) if p not in missing[s]]
                               for s in ("upstream", "downstream")})
    stack = _Stacker(usable)
    given_gpus = gpus_per_node
    gpus_per_node = gpus_per_node or _slurm_int(study, "gpus_per_node")
    runs = usable.upstream_runs()
    ups = [upstream_work(usable, r, stack, gpus_per_node, notes) for r in runs]
    cells = [cell_work(usable, c, stack, table, gpus_per_node, notes) for c in usable.cells()]
    cluster = Cluster(nodes or _slurm_int(study, "nodes") or max(w["nodes"] for w in ups + cells),
                      gpus_per_node or max(w["devices_per_node"] for w in ups + cells),
                      device or next(iter(table.devices)))
    notes.append(_cluster_note(study, nodes, given_gpus, device, cluster))
    rates = {(w["model"], w["resolution"]): table.rate(cluster.device, w["model"], w["resolution"]) for w in ups + cells}

    def cost(work: dict[str, Any]) -> UnitCost:
        rate = rates[work["model"], work["resolution"]]
        return UnitCost(**work, eval_cost_fraction=table.eval_cost_fraction, img_per_s=rate.img_per_s,
                        throughput_source=rate.source)

    up_costs, cell_costs = [cost(w) for w in ups], [cost(w) for w in cells]
    for unit in up_costs + cell_costs:
        if unit.devices_per_node > cluster.gpus_per_node or unit.nodes > cluster.nodes:
            raise StudyConfigError(f"{unit.kind} {unit.name} runs on {unit.nodes} node(s) x {unit.devices_per_node} devices, more "
                                   f"than the cluster's {cluster.nodes} x {cluster.gpus_per_node}; pass --nodes / --gpus-per-node")
    upstream_wall = _phase_wall(usable, runs, up_costs, "upstream", cluster, longest_first=True)
    cells_wall = _phase_wall(usable, usable.cells(), cell_costs, "cells", cluster, longest_first=False)
    arrays = slurm_jobs(usable, usable.cells(), "cells")
    notes.append(f"{len(arrays)} SLURM array(s) per phase (one per distinct set of sbatch options); at once: "
                 + ", ".join(f"{stem} {o.get('max_parallel') or 'unlimited'}" for stem, o, _ in arrays)
                 + " (slurm max_parallel)")
    return StudyPlan(study.name, study.source, table.path, cluster, up_costs, cell_costs, rates, upstream_wall, cells_wall,
                     list(dict.fromkeys(notes)))


def _cluster_note(study: StudyDefinition, nodes: int | None, gpus: int | None, device: str | None, cluster: Cluster) -> str:
    """Where each value of the cluster shape came from."""
    said = lambda flag, given, key: (f"{flag}" if given else f"the study's slurm {key}" if _slurm_int(study, key)  # noqa: E731
                                      else "the largest unit's")
    return (f"cluster: nodes from {said('--nodes', nodes, 'nodes')}, GPUs per node from "
            f"{said('--gpus-per-node', gpus, 'gpus_per_node')}, device from {'--device' if device else 'the table (its first)'}; "
            f"a unit holds its trainer.num_nodes x trainer.devices")


def _phase_wall(study: StudyDefinition, targets: list, costs: list[UnitCost], kind: str, cluster: Cluster,
                longest_first: bool) -> float:
    """Wall-clock of one phase: the units as the SLURM arrays `study.slurm.slurm_jobs` groups them
    (one per distinct set of sbatch options), each array throttled by its ``max_parallel``."""
    arrays = slurm_jobs(study, targets, kind)
    array_of = {t.name: stem for stem, _, members in arrays for t in members}
    limits = {stem: options.get("max_parallel") for stem, options, _ in arrays}
    jobs = [Job(c.wall_hours, c.devices, array_of[c.name]) for c in costs]
    if longest_first:  # `run` and `slurm` pre-train the longest upstream runs first
        jobs.sort(key=lambda j: -j.hours)
    return makespan(jobs, cluster.gpus, limits)


# ----------------------------------------------------------------------------- output

def _hours(h: float) -> str:
    return f"{h:,.1f} h" if h < 48 else f"{h:,.0f} h ({h / 24:,.1f} d)"


def _rate(img_per_s: float) -> str:
    return f"{img_per_s:,.0f}" if img_per_s >= 100 else f"{img_per_s:.1f}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = lambda r: "  ".join(str(x).ljust(w) if k == 1 else str(x).rjust(w) for k, (x, w) in enumerate(zip(r, widths)))  # noqa: E731
    return [fmt(headers), *(fmt(r) for r in rows)]


def _unit_row(k: int, u: UnitCost, extra: list[str]) -> list[str]:
    return [str(k), u.name, *extra, f"{u.nodes}x{u.devices_per_node}", str(u.resolution), f"{u.steps:,}", f"{u.global_batch:,}",
            f"{u.train_images:,}", f"{u.epochs:,.1f}", f"{u.eval_images:,}", _rate(u.img_per_s), f"{u.gpu_hours:,.1f}",
            _hours(u.wall_hours)]


def render(plan: StudyPlan) -> str:
    """The plan as text: cluster, throughput used, one table per phase, totals, assumptions."""
    c = plan.cluster
    cols = ["nodes x dev", "res", "steps", "batch", "train images", "epochs", "eval images", "img/s/dev", "GPU-h", "wall-clock"]
    index = {u.name: k for k, u in enumerate(plan.upstream)}
    lines = [f"plan of study {plan.study} ({plan.source}): {len(plan.upstream)} upstream run(s), {len(plan.cells)} cell(s)",
             f"cluster: {c.nodes} node(s) x {c.gpus_per_node} {c.device} = {c.gpus} GPUs",
             f"throughput ({plan.throughput}, training images/s per {c.device}):"]
    lines += [f"  {model}@{res}: {_rate(r.img_per_s)}  {r.source}: {r.note}" for (model, res), r in sorted(plan.rates.items())]
    lines += ["", "upstream runs (each pre-trained once; epochs over its subset):"]
    lines += ["  " + s for s in _table(["#", "upstream run", *cols], [_unit_row(k, u, []) for k, u in enumerate(plan.upstream)])]
    lines += ["", "cells (fine-tuning + evaluation, from upstream run #; epochs over the fine-tuning set):"]
    lines += ["  " + s for s in _table(["#", "cell", "up #", *cols],
                                       [_unit_row(k, u, [str(index[u.upstream])]) for k, u in enumerate(plan.cells)])]
    t = plan.totals()
    share = 100 * plan.saving_gpu_hours / plan.unshared_gpu_hours if plan.unshared_gpu_hours else 0.0
    lines += ["", "totals:",
              f"  pre-training   {t['upstream_gpu_hours']:>12,.1f} GPU-h   wall-clock {_hours(plan.upstream_wall_hours)}",
              f"  cells          {t['cells_gpu_hours']:>12,.1f} GPU-h   wall-clock {_hours(plan.cells_wall_hours)}",
              f"  study          {t['total_gpu_hours']:>12,.1f} GPU-h   wall-clock {_hours(plan.wall_hours)}   "
              f"({t['train_images']:,} images trained, {t['eval_images']:,} evaluated)",
              f"  shared pre-training saves {plan.saving_gpu_hours:,.1f} GPU-h ({share:.1f} %): "
              f"{len(plan.cells)} cells from {len(plan.upstream)} upstream runs; "
              f"{plan.unshared_gpu_hours:,.1f} GPU-h if each cell pre-trained its own",
              "", "assumptions:"]
    lines += [f"  - {n}" for n in assumptions(plan)]
    return "\n".join(lines)


def assumptions(plan: StudyPlan) -> list[str]:
    """What the numbers rest on, beyond the study's own files (printed and in the JSON)."""
    fraction = plan.upstream[0].eval_cost_fraction if plan.upstream else None
    return [
        f"throughput: {plan.throughput}; derived entries are FLOPs-scaled from a published one and optimistic for "
        f"BiT's GroupNorm + Weight Standardization (see the file); replace them with measured ones",
        f"an evaluated image (forward only) costs {fraction} of a trained one (eval_cost_fraction)",
        "a unit's wall-clock = its GPU-hours / its devices (no multi-device scaling loss, no data-loading stall)",
        "every upstream run finishes before any cell starts (the cell arrays depend on the upstream arrays); "
        "upstream runs longest first, cells in study order; each array at most its slurm max_parallel tasks "
        "(none set: only the cluster limits); GPUs counted as one pool; no queueing, failures or preemption",
        "every unit is costed, done or not",
        *plan.notes,
    ]


def write_csv(plan: StudyPlan, path: str | Path) -> None:
    """One row per unit (upstream runs, then cells), every `UnitCost.row` field."""
    rows = [u.row() for u in [*plan.upstream, *plan.cells]]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    Path(path).write_text(out.getvalue())


def to_json(plan: StudyPlan) -> dict[str, Any]:
    """The plan as a JSON-ready mapping: study, cluster, rates, units, totals, assumptions."""
    return {"study": plan.study, "source": plan.source, "throughput_table": plan.throughput, "cluster": asdict(plan.cluster),
            "rates": [{"model": m, "resolution": r, **asdict(rate)} for (m, r), rate in sorted(plan.rates.items())],
            "upstream": [u.row() for u in plan.upstream], "cells": [c.row() for c in plan.cells],
            "totals": plan.totals(), "assumptions": assumptions(plan)}


def write_json(plan: StudyPlan, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_json(plan), indent=2) + "\n")
