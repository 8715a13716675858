"""A study as a YAML file: its axes, the two stage configs every cell runs, where it writes.

The file format is documented in docs/study.md; `configs/miniature/study.yaml` is the
miniature example and `configs/bit/study.yaml` the paper's grid. Loading validates every
value and refuses a bad one with a one-line `StudyConfigError` naming the file, the key and
the fix, before anything is run: that includes the agreement of the benchmark list and the
benchmark options of the stacked downstream configs (`check_benchmarks`); `check_runnable` adds
what only matters once cells run (every stacked config, a generated one included, exists; the
benchmark registry accepts every name and option).
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from results.schema import run_name

STAGES: tuple[str, ...] = ("upstream", "downstream")
# sbatch options the script writer sets itself: a study may not set them.
_RESERVED_SLURM = ("array", "output", "error")


class StudyConfigError(ValueError):
    """A study file is unusable; the message is one line naming the file, the value and the fix."""


@dataclass(frozen=True)
class Cell:
    """One cell of a study: upstream model, data size, steps, seed and (optional) resolution.

    `name` is the run name (`results.schema.run_name`): the stem of the cell's result file, log,
    run directory and TensorBoard runs, so everything about a cell is found from it.
    """

    model: str
    data_size: int
    steps: int
    seed: int
    resolution: int | None = None

    @property
    def name(self) -> str:
        return run_name(self.model, self.data_size, self.steps, self.seed, self.resolution)

    def axes(self) -> dict[str, Any]:
        """The cell's coordinates, as recorded in its result file (``resolution`` only if set)."""
        out = {"model": self.model, "data_size": self.data_size, "steps": self.steps, "seed": self.seed}
        if self.resolution is not None:
            out["resolution"] = self.resolution
        return out


@dataclass(frozen=True)
class UpstreamRun:
    """One pre-training run of a study: the upstream settings a group of cells shares.

    Two cells share an upstream run exactly when their resolved upstream stage settings are
    equal: model, data size, steps, seed (``seed_everything`` of both stages), and whatever an
    axis sets upstream (``resolution`` here only when the study's resolution values set
    upstream keys; otherwise every resolution fine-tunes from the same run). `name` follows
    the cells' naming (``<model>-size=<n>-steps=<s>-seed=<k>[-res=<r>]``).
    """

    model: str
    data_size: int
    steps: int
    seed: int
    resolution: int | None = None

    @property
    def name(self) -> str:
        return run_name(self.model, self.data_size, self.steps, self.seed, self.resolution)


@dataclass
class StudyDefinition:
    """The axes of a study, the stage configs every cell runs, and where its outputs go.

    Cells are the product models x resolutions x data_sizes x steps x seeds, in that order
    (list the models smallest first: it is the bottom panels' order when results carry no
    parameter count). ``upstream_config``/``downstream_config`` are one path, or a mapping of
    every model to its path (models that need other hardware or batch sizes). ``resolutions``
    maps each value of the optional resolution axis to the
    config values it sets per stage, as dotted keys: ``{384: {"downstream":
    {"data.init_args.crop": 384}}}``; ``model_overrides`` does the same per model (``{model:
    {stage: {dotted key: value}}}``). ``benchmarks`` (datamodule names) replaces the downstream
    config's list when given. ``slurm`` holds sbatch options, with ``per_model`` overrides.
    ``fallback_reference``: whether a top panel whose reference cell (fewest steps, smallest
    size) has no result is built against the next cell with one (named) instead of refused; the
    cells' grid-report callbacks and ``python -m study report`` both use it, with the study's
    steps and data sizes as the grid's axes, so they draw the same grid.
    Outputs: ``runs_dir/{results,grid,cells,logs,tb,slurm}``.
    """

    models: list[str]
    data_sizes: list[int]
    steps: list[int]
    upstream_config: str | dict[str, str]
    downstream_config: str | dict[str, str]
    runs_dir: str
    name: str = "study"
    seeds: list[int] = field(default_factory=lambda: [0])
    resolutions: dict[int, dict[str, dict[str, Any]]] | None = None
    model_overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    upstream_extra_configs: list[str] = field(default_factory=list)
    downstream_extra_configs: list[str] = field(default_factory=list)
    benchmarks: list[str] | None = None
    workers: int = 1
    fallback_reference: bool = False
    slurm: dict[str, Any] = field(default_factory=dict)
    generate: dict = field(default_factory=dict)  # data of `make quickstart` (study/quickstart.py)
    source: str = "<dict>"  # the file it was read from, for messages

    @classmethod
    def from_yaml(cls, path: str | Path) -> "StudyDefinition":
        """Read and validate a study file; `StudyConfigError` (one line) on any bad value."""
        path = Path(path)
        if not path.is_file():
            raise StudyConfigError(f"study config {path} not found; pass a study YAML such as configs/miniature/study.yaml")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise StudyConfigError(f"study config {path}: not valid YAML ({' '.join(str(err).split())})") from None
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, source: str = "<dict>") -> "StudyDefinition":
        """Validate `raw` (a parsed study file) and build the definition."""
        where = f"study config {source}"
        if not isinstance(raw, dict):
            raise StudyConfigError(f"{where}: top level must be a mapping of keys (models, data_sizes, ...)")
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise StudyConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        missing = [k for k in ("models", "data_sizes", "steps", "upstream_config", "downstream_config", "runs_dir") if k not in raw]
        if missing:
            raise StudyConfigError(f"{where}: missing key(s) {', '.join(missing)}")
        study = cls(**raw, source=source)
        study._validate(where)
        return study

    def _validate(self, where: str) -> None:
        _check_list(self.models, "models", where, lambda v: isinstance(v, str) and v.strip() != "", "non-empty timm model names")
        _check_list(self.data_sizes, "data_sizes", where, _positive_int, "positive integers (upstream images)")
        _check_list(self.steps, "steps", where, _positive_int, "positive integers (upstream steps)")
        _check_list(self.seeds, "seeds", where, lambda v: _is_int(v) and v >= 0, "non-negative integers")
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name):
            raise StudyConfigError(f"{where}: name {self.name!r} must be letters, digits, '_', '.' or '-' (it names the SLURM job)")
        for key in ("upstream_config", "downstream_config"):
            value = getattr(self, key)
            if isinstance(value, dict):
                if set(value) != set(self.models):
                    raise StudyConfigError(f"{where}: {key} must name every model exactly ({', '.join(self.models)}), got {', '.join(map(str, value))}")
                paths = list(value.values())
            else:
                paths = [value]
            for path in paths:
                if not isinstance(path, str) or not Path(path).is_file():
                    raise StudyConfigError(f"{where}: {key} {path!r} is not a file; give the path of a stage config (relative to the repository root)")
        for key in ("upstream_extra_configs", "downstream_extra_configs"):
            value = getattr(self, key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise StudyConfigError(f"{where}: {key} must be a list of config paths, got {value!r}")
        if not isinstance(self.runs_dir, str) or not self.runs_dir:
            raise StudyConfigError(f"{where}: runs_dir must be a folder path, got {self.runs_dir!r}")
        if self.benchmarks is not None:
            _check_list(self.benchmarks, "benchmarks", where, lambda v: isinstance(v, str) and v != "", "benchmark names (e.g. imagenet_a)")
        if not _is_int(self.workers) or self.workers < 1:
            raise StudyConfigError(f"{where}: workers must be a positive integer, got {self.workers!r}")
        if not isinstance(self.fallback_reference, bool):
            raise StudyConfigError(f"{where}: fallback_reference must be true or false, got {self.fallback_reference!r}")
        self._validate_overrides(where)
        self._validate_slurm(where)
        self.check_benchmarks(require_files=False)
        from study.overrides import check_generated_paths  # study.overrides imports this module

        check_generated_paths(self)

    def check_benchmarks(self, *, require_files: bool = False) -> None:
        """Refuse a study whose fine-tuning could not build its OOD suite because the stacked
        downstream configs' benchmark options name a benchmark the run does not evaluate
        (study/overrides.py `check_benchmarks`). Run when the study is loaded, skipping a stack
        whose extra config does not exist yet; pure file reads (no torch)."""
        from study.overrides import check_benchmarks  # study.overrides imports this module

        check_benchmarks(self, require_files=require_files)

    def check_runnable(self) -> None:
        """What `run`, `slurm` and `cell` check before any cell runs: every stacked config
        exists (a generated one, such as ood_options.yaml, included); the benchmark check passes
        with all of them, the downstream stage evaluates at least one benchmark, and every name
        and option is accepted by the benchmark registry (checked in a child process, ~2 s, so
        this process never imports torch); each model's stages can serve a study
        (`study.overrides.stage_overrides`: the upstream checkpoint is kept, the result file is
        written). `StudyConfigError` (one line) otherwise."""
        from study.overrides import check_registry, stage_overrides

        self.check_benchmarks(require_files=True)
        for model in self.models:
            for resolution in self.resolution_values:
                cell = Cell(model, self.data_sizes[0], self.steps[0], self.seeds[0], resolution)
                for stage in STAGES:
                    try:
                        stage_overrides(self, cell, stage)
                    except StudyConfigError as err:
                        raise StudyConfigError(f"study config {self.source}: {err}") from None
        check_registry(self)

    def _validate_overrides(self, where: str) -> None:
        if not isinstance(self.model_overrides, dict) or set(self.model_overrides) - set(self.models):
            raise StudyConfigError(f"{where}: model_overrides must map models of the study to per-stage config values, got {self.model_overrides!r}")
        for model, stages in self.model_overrides.items():
            _check_stage_overrides(stages, f"model_overrides.{model}", where)
        if self.resolutions is None:
            return
        if not isinstance(self.resolutions, dict) or not self.resolutions:
            raise StudyConfigError(f"{where}: resolutions must map each resolution (int) to the config values it sets, e.g. {{384: {{downstream: {{data.init_args.crop: 384}}}}}}")
        for value, stages in self.resolutions.items():
            if not _positive_int(value):
                raise StudyConfigError(f"{where}: resolution {value!r} must be a positive integer (pixels)")
            _check_stage_overrides(stages, f"resolutions.{value}", where)

    def _validate_slurm(self, where: str) -> None:
        if not isinstance(self.slurm, dict):
            raise StudyConfigError(f"{where}: slurm must be a mapping of sbatch options, got {self.slurm!r}")
        per_model = self.slurm.get("per_model", {})
        if not isinstance(per_model, dict) or set(per_model) - set(self.models):
            raise StudyConfigError(f"{where}: slurm.per_model must map models of the study to sbatch options, got {per_model!r}")
        for model, options in per_model.items():
            if not isinstance(options, dict) or "per_model" in options:
                raise StudyConfigError(f"{where}: slurm.per_model.{model} must be a mapping of sbatch options")
            self._validate_slurm_options(options, f"{where}: slurm.per_model.{model}")
        self._validate_slurm_options({k: v for k, v in self.slurm.items() if k != "per_model"}, f"{where}: slurm")

    @staticmethod
    def _validate_slurm_options(options: dict, where: str) -> None:
        for key, value in options.items():
            if key == "setup":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise StudyConfigError(f"{where}.setup must be a list of shell lines, got {value!r}")
            elif key == "max_parallel":
                if not _positive_int(value):
                    raise StudyConfigError(f"{where}.max_parallel must be a positive integer, got {value!r}")
            elif not isinstance(key, str) or not re.fullmatch(r"[a-z][a-z_-]*", key) or key.replace("_", "-") in _RESERVED_SLURM:
                raise StudyConfigError(f"{where}.{key} is not an sbatch option this writer accepts (array, output and error are set by it)")
            elif not isinstance(value, (str, int)) or isinstance(value, bool) or "\n" in str(value):
                raise StudyConfigError(f"{where}.{key} must be one string or integer, got {value!r}")

    # ------------------------------------------------------------------ cells and places

    @property
    def resolution_values(self) -> list[int | None]:
        """Values of the resolution axis, ascending; ``[None]`` when the study has none."""
        return sorted(self.resolutions) if self.resolutions else [None]

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order (the order of `list` and of the SLURM array)."""
        grid = itertools.product(self.models, self.resolution_values, self.data_sizes, self.steps, self.seeds)
        return [Cell(m, d, s, k, r) for m, r, d, s, k in grid]

    def upstream_of(self, cell: Cell) -> UpstreamRun:
        """The upstream run `cell` fine-tunes from (shared by every cell with its upstream settings)."""
        sets_upstream = cell.resolution is not None and bool((self.resolutions or {}).get(cell.resolution, {}).get("upstream"))
        return UpstreamRun(cell.model, cell.data_size, cell.steps, cell.seed, cell.resolution if sets_upstream else None)

    def upstream_runs(self, cells: list[Cell] | None = None) -> list[UpstreamRun]:
        """The distinct upstream runs of `cells` (default: every cell), in cell order."""
        return list(dict.fromkeys(self.upstream_of(c) for c in (self.cells() if cells is None else cells)))

    def upstream_run(self, name: str) -> UpstreamRun:
        """The upstream run called `name`; `StudyConfigError` when there is none."""
        for run in self.upstream_runs():
            if run.name == name:
                return run
        raise StudyConfigError(f"study config {self.source}: no upstream run named {name!r}; `python -m study list {self.source}` lists them")

    def cell(self, name: str) -> Cell:
        """The cell called `name`; `StudyConfigError` naming the study when there is none."""
        for c in self.cells():
            if c.name == name:
                return c
        raise StudyConfigError(f"study config {self.source}: no cell named {name!r}; `python -m study list {self.source}` lists them")

    def stage_config(self, stage: str, model: str) -> str:
        """The base config of `stage` for `model`."""
        value = self.upstream_config if stage == "upstream" else self.downstream_config
        return value[model] if isinstance(value, dict) else value

    def slurm_options(self, model: str) -> dict[str, Any]:
        """sbatch options of `model`'s cells: the study's, then its ``per_model`` entry on top."""
        base = {k: v for k, v in self.slurm.items() if k != "per_model"}
        return {**base, **self.slurm.get("per_model", {}).get(model, {})}

    def extra_configs(self, stage: str) -> list[str]:
        return self.upstream_extra_configs if stage == "upstream" else self.downstream_extra_configs

    @property
    def results_dir(self) -> Path:
        return Path(self.runs_dir) / "results"

    @property
    def grid_dir(self) -> Path:
        return Path(self.runs_dir) / "grid"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(v: Any) -> bool:
    return _is_int(v) and v > 0


def _check_stage_overrides(stages: Any, key: str, where: str) -> None:
    if not isinstance(stages, dict) or not stages or set(stages) - set(STAGES):
        raise StudyConfigError(f"{where}: {key} must map 'upstream' and/or 'downstream' to dotted config keys, got {stages!r}")
    for stage, overrides in stages.items():
        if not isinstance(overrides, dict) or not overrides or not all(isinstance(k, str) and k for k in overrides):
            raise StudyConfigError(f"{where}: {key}.{stage} must map dotted config keys (e.g. data.init_args.crop) to values, got {overrides!r}")


def _check_list(values: Any, key: str, where: str, ok, what: str) -> None:
    if not isinstance(values, list) or not values:
        raise StudyConfigError(f"{where}: {key} must be a non-empty list of {what}, got {values!r}")
    bad = [v for v in values if not ok(v)]
    if bad:
        raise StudyConfigError(f"{where}: {key} must hold {what}; {bad[0]!r} is not one")
    if len(set(values)) != len(values):
        raise StudyConfigError(f"{where}: {key} lists a value twice: {values!r}")
