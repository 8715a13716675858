"""What a cell changes in its two stage configs, as a YAML mapping stacked last.

A stage runs as ``train.py fit --config <stage config> [--config <extra> ...] --config
<cells/<cell>/<stage>.yaml>``; LightningCLI merges mappings key by key, so the cell's file
holds only what differs: the cell's axes, the seed, where logs and checkpoints go, the study's
per-model and per-resolution values, and, because
a later config *replaces* a list rather than merging it, the stage's whole callback list with
the output folders set. Kept on disk, the file says exactly what the cell ran.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from study.definition import Cell, StudyConfigError, StudyDefinition
from study.layout import CellPaths


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


def _set_outputs(callbacks: list[dict], stage: str, study: StudyDefinition, paths: CellPaths) -> dict[str, int]:
    """Point every callback that writes files at the cell's or study's folders; count them by class."""
    seen: dict[str, int] = {}
    for cb in callbacks:
        name = _class_name(cb)
        seen[name] = seen.get(name, 0) + 1
        args = cb.setdefault("init_args", {})
        if name == "ModelCheckpoint":
            args["dirpath"] = str(paths.checkpoint_dir(stage))
        elif name == "OODEvaluation":
            args["results_dir"] = str(study.results_dir)
        elif name == "GridReport":
            args.update(results_dir=str(study.results_dir), out_dir=str(study.grid_dir), model_order=list(study.models))
    return seen


def stage_overrides(study: StudyDefinition, cell: Cell, stage: str) -> dict:
    """The mapping written to ``cells/<cell>/<stage>.yaml`` (see the module docstring).

    Raises `StudyConfigError` when the stage cannot serve a study: an upstream stage must keep
    its last checkpoint (a ``ModelCheckpoint`` with ``save_last: true``), a downstream stage
    must write the result file (``callbacks.ood_evaluation.OODEvaluation``).
    """
    paths = CellPaths(Path(study.runs_dir), cell.name)
    configs = [study.stage_config(stage, cell.model), *study.extra_configs(stage)]
    callbacks, source = stage_callbacks(configs)
    seen = _set_outputs(callbacks, stage, study, paths)
    out: dict = {
        "seed_everything": cell.seed,
        "trainer": {
            "enable_progress_bar": False,  # the log is a file: progress bars only fill it
            "logger": {"init_args": {"save_dir": str(paths.tb_root), "name": paths.tb_name(stage)}},
            "callbacks": callbacks,
        },
    }
    if stage == "upstream":
        keeps_last = any(_class_name(c) == "ModelCheckpoint" and c.get("init_args", {}).get("save_last") for c in callbacks)
        if not keeps_last:
            raise StudyConfigError(f"{source or configs[0]}: the upstream stage needs a lightning.pytorch.callbacks.ModelCheckpoint with save_last: true (the downstream stage starts from it)")
        out["trainer"]["max_steps"] = cell.steps
        out["model"] = {"init_args": {"backbone": cell.model}}
        out["data"] = {"init_args": {"subset_size": cell.data_size}}
    else:
        if not seen.get("OODEvaluation"):
            raise StudyConfigError(f"{source or configs[0]}: the downstream stage needs the callbacks.ood_evaluation.OODEvaluation callback (it writes the cell's result file)")
        out["model"] = {"init_args": {"upstream_checkpoint": str(paths.upstream_checkpoint)}}
        if study.benchmarks is not None:
            out["data"] = {"init_args": {"benchmarks": list(study.benchmarks)}}
    out = merge(out, nested(study.model_overrides.get(cell.model, {}).get(stage, {})))
    if cell.resolution is not None:  # the axis value wins over the model's own overrides
        out = merge(out, nested(study.resolutions[cell.resolution].get(stage, {})))
    return out
