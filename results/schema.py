"""Result files: one JSON object per finished run (schema in docs/results-schema.md).

A result file is the only thing the grid reads, so every run of the study — whatever
trained it — must leave one. Writers go through `write_result` (validates, then writes
atomically); readers go through `read_results` (validates every file, skips and reports
bad ones instead of crashing, because a results folder is shared by many runs and one
killed run must not take the report down).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

from conversion.files import atomic_write_bytes

SCHEMA_VERSION = 1

# Result keys of the eight Figure-3 panels, in the figure's order. The `_w` keys are the
# worst-case video metrics: 1 - pm10 accuracy (anchor and all its neighbour frames correct).
BENCHMARKS: tuple[str, ...] = (
    "imagenet_a",
    "imagenet_c",
    "imagenet_v2",
    "objectnet",
    "imagenet_vid",
    "ytbb",
    "imagenet_vid_w",
    "ytbb_w",
)
DISPLAY_NAMES: dict[str, str] = {
    "imagenet_a": "ImageNet-A",
    "imagenet_c": "ImageNet-C",
    "imagenet_v2": "ImageNet-V2",
    "objectnet": "ObjectNet",
    "imagenet_vid": "ImageNet-Vid",
    "ytbb": "YouTube-BB",
    "imagenet_vid_w": "ImageNet-Vid-W",
    "ytbb_w": "YouTube-BB-W",
}

REQUIRED_FIELDS: tuple[str, ...] = ("model", "data_size", "steps", "seed", "errors")

log = logging.getLogger(__name__)


class ResultSchemaError(ValueError):
    """A record does not follow the result schema; the message is one line saying what is wrong."""


def display_name(benchmark: str) -> str:
    """Figure label of a benchmark key; unknown keys are returned unchanged."""
    return DISPLAY_NAMES.get(benchmark, benchmark)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """`text` with every run of characters outside ``[A-Za-z0-9_.-]`` replaced by ``_``.

    Used for file names built from model names (a timm name may contain ``/`` or ``:``).
    """
    out = _UNSAFE.sub("_", text).strip("._")
    return out or "_"


def run_name(model: str, data_size: int, steps: int, seed: int | None, resolution: int | None = None) -> str:
    """Filesystem-safe name of one run (= one result file), e.g.
    ``resnetv2_tiny_bit-size=2000-steps=400-seed=0`` (``...-seed=0-res=384`` on a study
    with a resolution axis).

    The fields identify a run of the study, so two different runs never share a name;
    ``seed=None`` (an unseeded run) is written ``seed=none``. The ``size=...-steps=...``
    part follows the run names of the paper's calibration follow-up.
    """
    seed_txt = "none" if seed is None else str(int(seed))
    name = f"{safe_name(model)}-size={int(data_size)}-steps={int(steps)}-seed={seed_txt}"
    return name if resolution is None else f"{name}-res={int(resolution)}"


def result_path(results_dir: Path, record: dict) -> Path:
    """Canonical location of `record`'s file: ``results_dir / (run_name + ".json")``.

    A rerun of the same run overwrites its earlier result, which is what one wants when a
    run is repeated after a fix.
    """
    name = record.get("run_name") or run_name(
        record["model"], record["data_size"], record["steps"], record.get("seed"), record.get("resolution")
    )
    return Path(results_dir) / f"{name}.json"


# ----------------------------------------------------------------------------- validation


def _is_int(x: Any) -> bool:
    # bool is an int subclass in Python, but `"steps": true` is a broken file, not step 1.
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_numeric_tree(value: Any, where: str) -> None:
    """`metrics` holds numbers, nulls, and nested objects/lists of them."""
    if value is None or _is_number(value):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ResultSchemaError(f"{where} has a non-string key {k!r}")
            _check_numeric_tree(v, f"{where}.{k}")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_numeric_tree(v, f"{where}[{i}]")
        return
    raise ResultSchemaError(f"{where} must be a number, null, object or list, got {type(value).__name__}")


def validate_record(record: Any) -> None:
    """Raise `ResultSchemaError` (one-line message) unless `record` follows the schema.

    Required: ``model`` non-empty str; ``data_size`` and ``steps`` positive ints;
    ``seed`` int or null; optional ``resolution`` positive int or null (a study's resolution axis); ``errors`` a non-empty object of benchmark key → finite float in
    [0, 1] (top-1 error as a fraction; unknown keys are allowed and kept). Optional fields are
    type-checked when present; unknown top-level fields are allowed so that later writers can
    add information without breaking older readers. ``schema_version``, when present, must be 1.
    """
    if not isinstance(record, dict):
        raise ResultSchemaError(f"top level must be a JSON object, got {type(record).__name__}")
    missing = [f for f in REQUIRED_FIELDS if f not in record]
    if missing:
        raise ResultSchemaError(f"missing required field(s): {', '.join(missing)}")

    version = record.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or not _is_int(version):
        raise ResultSchemaError(
            f"unsupported schema_version {version!r} (this reader knows {SCHEMA_VERSION})"
        )
    model = record["model"]
    if not isinstance(model, str) or not model.strip():
        raise ResultSchemaError(f"'model' must be a non-empty string, got {model!r}")
    for key in ("data_size", "steps"):
        v = record[key]
        if not _is_int(v) or v <= 0:
            raise ResultSchemaError(f"'{key}' must be a positive integer, got {v!r}")
    seed = record["seed"]
    if seed is not None and not _is_int(seed):
        raise ResultSchemaError(f"'seed' must be an integer or null, got {seed!r}")
    resolution = record.get("resolution")
    if resolution is not None and (not _is_int(resolution) or resolution <= 0):
        raise ResultSchemaError(f"'resolution' must be a positive integer or null, got {resolution!r}")

    errors = record["errors"]
    if not isinstance(errors, dict) or not errors:
        raise ResultSchemaError("'errors' must be a non-empty object of benchmark -> error")
    for key, err in errors.items():
        if not isinstance(key, str) or not key:
            raise ResultSchemaError(f"'errors' has an invalid key {key!r}")
        if not _is_number(err):
            raise ResultSchemaError(f"errors.{key} must be a number, got {err!r}")
        if not math.isfinite(err) or not 0.0 <= err <= 1.0:
            # Errors are fractions; 37.5 means someone wrote percent, nan means a failed eval.
            raise ResultSchemaError(f"errors.{key} = {err!r} is not a finite fraction in [0, 1]")

    for key in ("run_name", "created"):
        if key in record and not isinstance(record[key], str):
            raise ResultSchemaError(f"'{key}' must be a string, got {record[key]!r}")
    if "git_commit" in record and record["git_commit"] is not None and not isinstance(
        record["git_commit"], str
    ):
        raise ResultSchemaError(f"'git_commit' must be a string or null, got {record['git_commit']!r}")
    for key in ("config", "versions", "timings", "metrics"):
        if key in record and not isinstance(record[key], dict):
            raise ResultSchemaError(f"'{key}' must be an object, got {type(record[key]).__name__}")
    if "metrics" in record:
        _check_numeric_tree(record["metrics"], "metrics")
    if "outcomes" in record:
        ref = record["outcomes"]
        if not isinstance(ref, dict) or not isinstance(ref.get("file"), str) or not isinstance(ref.get("keys", {}), dict):
            raise ResultSchemaError("'outcomes' must be an object with a 'file' name and 'keys' (see results/outcomes.py)")
    if "num_params" in record and (not _is_int(record["num_params"]) or record["num_params"] <= 0):
        raise ResultSchemaError(f"'num_params' must be a positive integer, got {record['num_params']!r}")


# ----------------------------------------------------------------------------- writing


def _jsonable(value: Any) -> Any:
    """Copy of `value` that `json.dumps(allow_nan=False)` accepts.

    numpy/torch scalars and arrays become Python numbers/lists, tuples become lists, paths
    become strings, and non-finite floats become null because JSON has no NaN (a NaN calibration error means "undefined", which null says).
    Anything else unknown is left for `json` to reject with its own TypeError.
    """
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and type(value).__module__.split(".")[0] in ("numpy", "torch"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_result(path: Path, record: dict) -> Path:
    """Validate `record` and write it to `path` (must end in ``.json``) atomically; return `path`.

    Fills ``schema_version`` (1), ``run_name`` (from `run_name`) and ``created`` (UTC ISO 8601)
    when absent; `record` itself is not modified. Written with `atomic_write_bytes`, so a
    reader never sees half a file and many processes may write different files at once.
    Raises `ResultSchemaError` on an invalid record and `TypeError` on an unserialisable
    value; in both cases nothing is left behind.
    """
    path = Path(path)
    if path.suffix != ".json":
        # read_results only globs *.json: any other name would be silently invisible to the grid.
        raise ValueError(f"result files must end in .json, got {path}")
    if not isinstance(record, dict):
        raise ResultSchemaError(f"a result record must be a dict, got {type(record).__name__}")
    out = _jsonable(record)
    # `errors` is checked before _jsonable could turn a NaN error into null and hide the failure.
    if "errors" in record:
        validate_record({**out, "errors": _jsonable_errors(record["errors"])})
    else:
        validate_record(out)
    out.setdefault("schema_version", SCHEMA_VERSION)
    out.setdefault("run_name", run_name(out["model"], out["data_size"], out["steps"], out["seed"], out.get("resolution")))
    out.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    text = json.dumps(out, indent=2, sort_keys=False, allow_nan=False) + "\n"

    return atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable_errors(errors: Any) -> Any:
    # Same conversion as _jsonable but keeps non-finite floats so validation rejects them.
    if isinstance(errors, dict):
        return {
            k: (v.item() if type(v).__module__.split(".")[0] in ("numpy", "torch") else v)
            for k, v in errors.items()
        }
    return errors


# ----------------------------------------------------------------------------- reading


def _iter_json_files(folder: Path) -> Iterable[Path]:
    # Sorted so messages and record order are reproducible; hidden files are temp files.
    for p in sorted(folder.rglob("*.json")):
        if p.is_file() and not p.name.startswith("."):
            yield p


def read_results(folder: Path, *, warn: bool = True) -> tuple[list[dict], list[str]]:
    """Load and validate every ``*.json`` under `folder` (recursively, hidden files skipped).

    Returns ``(records, messages)``: the valid records in path order, and one line per
    skipped file of the form ``skipped <path>: <what is wrong>`` (unreadable, empty or
    half-written JSON, wrong types, errors outside [0, 1] or non-finite, ...). Never raises
    for a bad file; with ``warn=True`` each message is also logged as a warning on the
    ``results.schema`` logger. Raises `FileNotFoundError` if `folder` is not a directory.
    """
    files, messages = read_result_files(folder, warn=warn)
    return [record for _, record in files], messages


def read_result_files(folder: Path, *, warn: bool = True) -> tuple[list[tuple[Path, dict]], list[str]]:
    """`read_results` with each record's file: ``([(path, record), ...], messages)`` (what a
    reader of the files beside a result, e.g. its outcomes sidecar, needs)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"results folder {folder} does not exist or is not a directory")
    files: list[tuple[Path, dict]] = []
    messages: list[str] = []
    for p in _iter_json_files(folder):
        problem = None
        try:
            text = p.read_text(encoding="utf-8")
            if not text.strip():
                problem = "empty file (half-written?)"
            else:
                record = json.loads(text)
                validate_record(record)
        except (OSError, UnicodeDecodeError) as e:
            problem = f"unreadable: {e}"
        except json.JSONDecodeError as e:
            problem = f"not valid JSON (half-written?): {e}"
        except ResultSchemaError as e:
            problem = str(e)
        if problem is not None:
            msg = f"skipped {p}: {problem}"
            messages.append(msg)
            if warn:
                log.warning(msg)
            continue
        files.append((p, record))
    return files, messages
