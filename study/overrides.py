"""What a cell changes in its two stage configs, as a YAML mapping stacked last.

A stage runs as ``train.py fit --config <stage config> [--config <extra> ...] --config
<cells/<cell>/<stage>.yaml>``; LightningCLI merges mappings key by key, so the cell's file
holds only what differs: the cell's axes, the seed, where logs and checkpoints go, the study's
per-model and per-resolution values, and, because
a later config *replaces* a list rather than merging it, the stage's whole callback list with
the output folders (and the grid report's axes and reference rule) set. Kept on disk, the file says exactly what the cell ran.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from study.definition import Cell, StudyConfigError, StudyDefinition, UpstreamRun
from study.layout import CellPaths, UnitPaths, UpstreamPaths


def nested(dotted: dict[str, Any]) -> dict:
    """``{"data.init_args.crop": 384}`` → ``{"data": {"init_args": {"crop": 384}}}``."""
    out: dict = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def merge(base: dict, extra: dict) -> dict:
    """Deep merge: mappings key by key, anything else replaced by `extra`'s value (as LightningCLI does)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _class_name(callback: dict) -> str:
    return str(callback.get("class_path", "")).rsplit(".", 1)[-1]


def stage_callbacks(config_paths: list[str]) -> tuple[list[dict], str]:
    """The callback list the stage would run with (the last config that sets one wins) and its file."""
    callbacks, source = [], ""
    for path in config_paths:
        if not Path(path).is_file():
            raise StudyConfigError(f"stage config {path} not found; create it or fix the study's *_config / *_extra_configs")
        config = yaml.safe_load(Path(path).read_text()) or {}
        found = (config.get("trainer") or {}).get("callbacks")
        if found is not None:
            if not isinstance(found, list) or not all(isinstance(c, dict) for c in found):
                raise StudyConfigError(f"{path}: trainer.callbacks must be a list of class_path/init_args mappings")
            callbacks, source = copy.deepcopy(found), path
    return callbacks, source


def _set_outputs(callbacks: list[dict], study: StudyDefinition, paths: UnitPaths, cell: Cell | None) -> dict[str, int]:
    """Point every callback that writes files at the unit's or study's folders: checkpoints in
    the unit's folder; the OOD evaluation's result at the cell's result file, with the cell's
    axes as what the run is (the study alone knows a cell); the grid report at the study's grid,
    with its axes (steps and data sizes, the integers the result files record) and
    ``fallback_reference``. Counts the callbacks by class."""
    seen: dict[str, int] = {}
    for cb in callbacks:
        name = _class_name(cb)
        seen[name] = seen.get(name, 0) + 1
        args = cb.setdefault("init_args", {})
        if name == "ModelCheckpoint":
            args["dirpath"] = str(paths.checkpoint_dir)
        elif name == "OODEvaluation" and cell is not None:
            args.pop("results_dir", None)
            args.update(result_file=str(CellPaths(Path(study.runs_dir), cell.name).result),
                        record={**cell.axes(), "run_name": cell.name})
        elif name == "GridReport":  # the grid `python -m study report` draws: the study's axes and reference rule
            args.update(results_dir=str(study.results_dir), out_dir=str(study.grid_dir), model_order=list(study.models),
                        steps=list(study.steps), data_sizes=list(study.data_sizes),
                        fallback_reference=study.fallback_reference)
    return seen


def _base(paths: UnitPaths, seed: int, callbacks: list[dict]) -> dict:
    return {
        "seed_everything": seed,
        "trainer": {
            "enable_progress_bar": False,  # the log is a file: progress bars only fill it
            "logger": {"init_args": {"save_dir": str(paths.tb_root), "name": paths.tb_name}},
            "callbacks": callbacks,
        },
    }


def upstream_overrides(study: StudyDefinition, run: UpstreamRun) -> dict:
    """The mapping written to ``upstream/<run>/upstream.yaml``: the run's model, data size, steps
    and seed, where its logs and checkpoints go, and what the study sets upstream for its model
    (and resolution, when that axis sets upstream values). `StudyConfigError` when the stage
    does not keep its last checkpoint (a ``ModelCheckpoint`` with ``save_last: true``): the
    cells start from it."""
    paths = UpstreamPaths(Path(study.runs_dir), run.name)
    configs = [study.stage_config("upstream", run.model), *study.extra_configs("upstream")]
    callbacks, source = stage_callbacks(configs)
    _set_outputs(callbacks, study, paths, None)
    keeps_last = any(_class_name(c) == "ModelCheckpoint" and c.get("init_args", {}).get("save_last") for c in callbacks)
    if not keeps_last:
        raise StudyConfigError(f"{source or configs[0]}: the upstream stage needs a lightning.pytorch.callbacks.ModelCheckpoint with save_last: true (the downstream stage starts from it)")
    out = _base(paths, run.seed, callbacks)
    out["trainer"]["max_steps"] = run.steps
    out["model"] = {"init_args": {"backbone": run.model}}
    out["data"] = {"init_args": {"subset_size": run.data_size}}
    return with_study_values(out, study, run.model, run.resolution, "upstream")


def downstream_overrides(study: StudyDefinition, cell: Cell) -> dict:
    """The mapping written to ``cells/<cell>/downstream.yaml``: the upstream run's final
    checkpoint, the seed, where logs, checkpoints and the result go (with the cell's axes), and
    what the study sets downstream. `StudyConfigError` without the OOD evaluation callback."""
    paths = CellPaths(Path(study.runs_dir), cell.name)
    configs = [study.stage_config("downstream", cell.model), *study.extra_configs("downstream")]
    callbacks, source = stage_callbacks(configs)
    seen = _set_outputs(callbacks, study, paths, cell)
    if not seen.get("OODEvaluation"):
        raise StudyConfigError(f"{source or configs[0]}: the downstream stage needs the callbacks.ood_evaluation.OODEvaluation callback (it writes the cell's result file)")
    out = _base(paths, cell.seed, callbacks)
    upstream = UpstreamPaths(Path(study.runs_dir), study.upstream_of(cell).name)
    out["model"] = {"init_args": {"upstream_checkpoint": str(upstream.checkpoint)}}
    return with_study_values(out, study, cell.model, cell.resolution, "downstream")


def stage_overrides(study: StudyDefinition, cell: Cell, stage: str) -> dict:
    """`upstream_overrides` of the cell's upstream run, or the cell's `downstream_overrides`."""
    if stage == "upstream":
        return upstream_overrides(study, study.upstream_of(cell))
    return downstream_overrides(study, cell)


def with_study_values(base: dict, study: StudyDefinition, model: str, resolution: int | None, stage: str) -> dict:
    """`base` with what the study file itself sets in `stage` for `model`'s cells at `resolution`,
    merged in this order (last wins): the downstream benchmark list (``benchmarks``), the model's
    ``model_overrides``, the resolution's values. ``with_study_values({}, ...)`` is the part of a
    cell's override file that comes from the study file rather than from the cell's axes."""
    out = base
    if stage == "downstream" and study.benchmarks is not None:
        out = merge(out, {"data": {"init_args": {"benchmarks": list(study.benchmarks)}}})
    out = merge(out, nested(study.model_overrides.get(model, {}).get(stage, {})))
    if resolution is not None:  # the axis value wins over the model's own overrides
        out = merge(out, nested(study.resolutions[resolution].get(stage, {})))
    return out


# ----------------------------------------------------------------- the benchmarks a study evaluates
#
# The downstream datamodule builds its OOD suite from two values of the stacked configs,
# ``data.init_args.benchmarks`` and ``data.init_args.benchmark_options``, only when fine-tuning
# starts: after pre-training. A disagreement between them (options for a benchmark the run does
# not evaluate, e.g. a study's shortened ``benchmarks`` under the generated ood_options.yaml), an
# unregistered name or an option the benchmark does not take would fail every cell there. The
# study checks them instead: their agreement when it is loaded (pure, no torch), names and
# options against the benchmark registry before cells run. The registry imports torch (~300 MB
# private memory, 1.5 s), so that part runs in a spawned child: `list` stays instant and the
# process coordinating the cells never holds torch (study/quickstart.py, `run` with workers).

_UNSET = object()


def read_stage_config(path: str) -> dict:
    """A stage config file as a mapping (``{}`` when empty); `StudyConfigError` (one line)
    when it is not valid YAML or not a mapping. The caller checks that the file exists."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise StudyConfigError(f"stage config {path}: not valid YAML ({' '.join(str(err).split())})") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise StudyConfigError(f"stage config {path}: top level must be a mapping of config keys (trainer, model, data, ...)")
    return config


def _data_arg(config: dict, key: str) -> Any:
    """``config["data"]["init_args"][key]``, or `_UNSET` when the config does not set it."""
    data = config.get("data")
    init_args = data.get("init_args") if isinstance(data, dict) else None
    return init_args.get(key, _UNSET) if isinstance(init_args, dict) else _UNSET


def stacked_value(layers: list[tuple[str, dict]], key: str) -> tuple[Any, str | None]:
    """``data.init_args.<key>`` once `layers` ((name, config) in stacking order) are stacked,
    and the name of the layer it comes from; ``(None, None)`` when no layer sets it.

    The last layer that sets the key wins *whole*: for a list (``benchmarks``) or a dict-typed
    argument (``benchmark_options``) LightningCLI replaces the earlier value rather than merging
    it (checked with ``train.py fit --print_config``).
    """
    value, source = None, None
    for name, config in layers:
        found = _data_arg(config, key)
        if found is not _UNSET:
            value, source = found, name
    return value, source


def _names(values) -> str:
    return ", ".join(map(str, values))


def benchmark_problem(layers: list[tuple[str, dict]], registry: dict[str, Any] | None = None, *,
                      require_benchmarks: bool = False, build=None) -> str | None:
    """What would stop the downstream stage stacked from `layers` from building its OOD suite,
    as one sentence naming the layer and the fix; None when nothing would.

    The run evaluates the stacked ``benchmarks`` (see `stacked_value`), a list of names.
    Without any (unset or empty) the datamodule builds no suite and ignores the options; with
    `require_benchmarks` that is a problem too (the cell would write no result file).
    ``benchmark_options`` must be a mapping of mappings naming only benchmarks the run
    evaluates (the OOD suite refuses any other). With a `registry` (name → class), every name
    must be registered and each benchmark's options accepted by `build(name, **options)`
    (default: instantiate the registry class; TypeError/ValueError count as refused); without
    one those checks are left out. Pure apart from `build`.
    """
    benchmarks, b_src = stacked_value(layers, "benchmarks")
    options, o_src = stacked_value(layers, "benchmark_options")
    if benchmarks is not None and (not isinstance(benchmarks, list) or not all(isinstance(b, str) for b in benchmarks)):
        return f"{b_src}: data.init_args.benchmarks must be a list of benchmark names, got {benchmarks!r}"
    if not benchmarks:
        if not require_benchmarks:
            return None
        said = f"{b_src} sets data.init_args.benchmarks to {benchmarks!r}" if b_src else "no stacked config sets data.init_args.benchmarks"
        return (f"the downstream stage evaluates no benchmark ({said}), so no cell would write a result; "
                f"set the study's benchmarks, e.g. [imagenet_a, imagenet_c]")
    unknown = [b for b in benchmarks if registry is not None and b not in registry]
    if unknown:
        return (f"{b_src} names benchmark(s) {_names(unknown)}, which are not registered; "
                f"registered: {_names(registry)} (ood/__init__.py)")
    if options is None:
        return None
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):  # the suite does **options[name]
        return f"{o_src}: data.init_args.benchmark_options must map benchmark names to option mappings, got {options!r}"
    unregistered = [n for n in options if registry is not None and n not in registry]
    if unregistered:
        return (f"{o_src} sets benchmark_options for {_names(unregistered)}, which are not registered benchmarks "
                f"(registered: {_names(registry)}); fix or remove them in {o_src}")
    extra = [n for n in options if n not in benchmarks]
    if extra:
        return (f"{o_src} sets benchmark_options for {_names(extra)}, which the run does not evaluate "
                f"(it evaluates {_names(benchmarks)}, set by {b_src}); every cell would fail when fine-tuning starts, "
                f"after pre-training: add them to the study's benchmarks or remove them from {o_src}")
    if registry is None:
        return None
    build = build or (lambda name, **kw: registry[name](**kw))
    for name, kwargs in options.items():
        try:
            build(name, **kwargs)
        except (TypeError, ValueError) as err:
            return f"{o_src}: benchmark_options.{name} is refused by the benchmark ({' '.join(str(err).split())}); fix it in {o_src}"
    return None


def _study_layer(study: StudyDefinition, model: str, resolution: int | None) -> tuple[str, dict]:
    """The downstream values a cell's override file takes from the study file, named by the
    study key that sets the benchmark values last (see `with_study_values`)."""
    name = "the study's benchmarks"
    if any(k.startswith("data.init_args.benchmark") for k in study.model_overrides.get(model, {}).get("downstream", {})):
        name = f"the study's model_overrides.{model}.downstream"
    if resolution is not None and any(k.startswith("data.init_args.benchmark") for k in study.resolutions[resolution].get("downstream", {})):
        name = f"the study's resolutions.{resolution}.downstream"
    return name, with_study_values({}, study, model, resolution, "downstream")


def missing_stage_configs(study: StudyDefinition) -> list[tuple[str, str]]:
    """``(study key, path)`` of every stacked extra config that does not exist (stage configs
    themselves are checked when the study is loaded)."""
    return [(f"{stage}_extra_configs", p) for stage in ("upstream", "downstream")
            for p in study.extra_configs(stage) if not Path(p).is_file()]


def check_benchmarks(study: StudyDefinition, *, require_files: bool = False, registry: dict[str, Any] | None = None) -> None:
    """Refuse (`StudyConfigError`, one line naming the study file, the config file, the
    benchmarks and the fix) a study whose downstream stage could not build its OOD suite, for any
    model and resolution of the study; see `benchmark_problem` (`registry`: also check names and
    options against it; `registry_problem` passes the real one).

    A stack with an extra config that does not exist yet (ood_options.yaml before the quickstart
    generates it) is skipped unless `require_files`, when it is refused: `list` and `report`
    work before the data exist, `run`, `slurm` and `cell` do not. `require_files` also refuses
    a downstream stage that evaluates no benchmark.
    """
    where = f"study config {study.source}"
    if registry is not None and study.benchmarks is not None:
        unknown = [b for b in study.benchmarks if b not in registry]
        if unknown:
            raise StudyConfigError(f"{where}: benchmarks names {_names(unknown)}, which are not registered; "
                                   f"registered: {_names(registry)} (ood/__init__.py)")
    missing = missing_stage_configs(study)
    if missing and require_files:
        key, path = missing[0]
        raise StudyConfigError(f"{where}: {key} {path} does not exist; create it before running (the generated "
                               f"ood_options.yaml is written by `make quickstart`'s data step) or remove it from {key}")
    if any(key == "downstream_extra_configs" for key, _ in missing):
        return  # the check runs again, with every file, before a cell runs
    files: dict[str, dict] = {}
    for path in {*(study.stage_config("downstream", m) for m in study.models), *study.extra_configs("downstream")}:
        try:
            files[path] = read_stage_config(path)
        except StudyConfigError as err:
            raise StudyConfigError(f"{where}: {err}") from None
    for model in study.models:
        for resolution in study.resolution_values:
            paths = [study.stage_config("downstream", model), *study.extra_configs("downstream")]
            layers = [(p, files[p]) for p in paths]
            problem = benchmark_problem([*layers, _study_layer(study, model, resolution)], registry,
                                        require_benchmarks=require_files)
            if problem is not None:
                raise StudyConfigError(f"{where}: {problem}")


def registry_problem(study: StudyDefinition) -> str | None:
    """`check_benchmarks` with every file required and the real registry (``ood``,
    which imports torch): the refusal's message, or None. Run in a child process by `check_registry`."""
    from ood import REGISTRY

    try:
        check_benchmarks(study, require_files=True, registry=REGISTRY)
    except StudyConfigError as err:
        return str(err)
    return None


def check_registry(study: StudyDefinition) -> None:
    """`registry_problem` in a spawned child process (about 2 s), so that this process never
    imports torch; raises its `StudyConfigError`."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        problem = pool.submit(registry_problem, study).result()
    if problem is not None:
        raise StudyConfigError(problem)


# ----------------------------------------------------------------- generated data, read where it is written

def data_path_values(init_args: dict) -> dict[str, str]:
    """The data-location values of a stage's ``data.init_args``: ``*beton`` and ``*root`` paths."""
    return {k: v for k, v in init_args.items() if isinstance(v, str) and v and (k.endswith("beton") or k.endswith("root"))}


def stage_data_values(study: StudyDefinition, stage: str, model: str, resolution: int | None = None,
                      files: dict[str, dict] | None = None) -> dict[str, str]:
    """The data locations (`data_path_values`) `model`'s `stage` reads: its stacked configs that
    exist, then what the study file sets. ``files`` caches parsed configs across calls."""
    files = {} if files is None else files
    config: dict = {}
    for path in [study.stage_config(stage, model), *study.extra_configs(stage)]:
        if path not in files:
            files[path] = read_stage_config(path) if Path(path).is_file() else {}
        config = merge(config, files[path])
    layered = with_study_values(config, study, model, resolution, stage)
    return data_path_values(((layered.get("data") or {}).get("init_args")) or {})


def check_generated_paths(study: StudyDefinition) -> None:
    """Refuse (`StudyConfigError`, one line) a study that generates its data (``generate.root``)
    but whose stages, for some model, read betons or an OOD root from elsewhere: its runs would
    train and score on another study's data (e.g. a replicate with a new generator seed that
    still reads the original's betons). Pure file reads; extra configs not yet written are skipped."""
    root = (study.generate or {}).get("root")
    if not root:
        return
    root_path = Path(root).resolve()
    files: dict[str, dict] = {}
    for stage in ("upstream", "downstream"):
        for model in study.models:
            for resolution in study.resolution_values:
                for key, value in stage_data_values(study, stage, model, resolution, files).items():
                    if not Path(value).resolve().is_relative_to(root_path):
                        raise StudyConfigError(
                            f"study config {study.source}: generates its data under {root} but the {stage} stage of {model} "
                            f"reads data.init_args.{key}={value}; point it under {root} (model_overrides, an extra config, "
                            f"or `python -m study.quickstart --seed N`, which moves every path with the seed)")
