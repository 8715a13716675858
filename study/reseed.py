"""A study's replicate under another seed: every seed changed at once, every output moved.

A replicate must differ from the original in its random draws only, and share nothing with it
on disk: `reseeded` takes a parsed study file that generates its data (``generate:``) and
returns the study file of the replicate under seed ``N``:

- the generator seed (``generate.seed``): new upstream, downstream and OOD images of the same classes;
- the nested subsets' seed (``data.init_args.subset_seed`` of every model's upstream stage);
- the training seed (``seeds: [N]``, i.e. ``seed_everything`` of both stages);
- the generated data under ``<generate.root>-seedN``, and every stage path that pointed under
  the original root (betons, the OOD root, stacked extra configs such as ``ood_options.yaml``)
  moved there with it;
- the runs under ``<runs_dir>-seedN``, the name ``<name>-seedN``.

The original must read its data where it generates it (`study.overrides.check_generated_paths`),
so that no path is left pointing at the original's data.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from study.definition import StudyConfigError, StudyDefinition


def _moved(value: str, old_root: str, new_root: str) -> str | None:
    """`value` under `new_root` if it lies under `old_root` (as written, or resolved), else None."""
    path, old = Path(value), Path(old_root)
    for p, o in ((path, old), (path.resolve(), old.resolve())):
        if p.is_relative_to(o):
            return str(Path(new_root) / p.relative_to(o))
    return None


def reseeded(raw: dict[str, Any], seed: int, source: str = "<dict>") -> dict[str, Any]:
    """The study file of `raw`'s replicate under `seed` (see the module docstring).

    `StudyConfigError` (one line) for a negative seed or a study without ``generate.root``.
    """
    from study.overrides import stage_data_values

    if not isinstance(seed, int) or seed < 0:
        raise StudyConfigError(f"--seed must be a non-negative integer, got {seed!r}")
    original = StudyDefinition.from_dict(raw, source=source)
    old_root = (original.generate or {}).get("root")
    if not old_root:
        raise StudyConfigError(f"study config {source}: --seed needs a study that generates its data (a generate.root); "
                               f"for real data, copy the study file and change its seeds")
    new_root = f"{old_root}-seed{seed}"
    out = copy.deepcopy(raw)
    out["name"] = f"{original.name}-seed{seed}"
    out["runs_dir"] = f"{original.runs_dir}-seed{seed}"
    out["seeds"] = [seed]
    out["generate"] = {**out["generate"], "seed": seed, "root": new_root}
    for key in ("upstream_extra_configs", "downstream_extra_configs"):
        out[key] = [_moved(p, old_root, new_root) or p for p in getattr(original, key)]
    overrides = copy.deepcopy(out.get("model_overrides") or {})
    files: dict[str, dict] = {}
    for model in original.models:
        per_model = overrides.setdefault(model, {})
        for stage in ("upstream", "downstream"):
            values = per_model.setdefault(stage, {})
            for key, value in stage_data_values(original, stage, model, None, files).items():
                moved = _moved(value, old_root, new_root)
                if moved is not None:
                    values[f"data.init_args.{key}"] = moved
        per_model["upstream"]["data.init_args.subset_seed"] = seed
    out["model_overrides"] = overrides
    return out
