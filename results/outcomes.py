"""Per-example outcomes of a result, in a sidecar file beside it (format in docs/results-schema.md).

A result file holds errors; confidence intervals need what each error was computed from. So
every result JSON ``<name>.json`` may reference ``<name>.outcomes.npz`` in its ``outcomes``
field: for each result key, a bit matrix ``correct[unit, column]`` on the units a bootstrap
resamples (images; ImageNet-C's base images x its 75 sets; video anchors), bit-packed, plus a
validity mask where a release was incomplete and a sha256 of the unit names, so that two
results can be checked to be paired (scored on the same units, in the same order).

The key's error is ``1 - mean over columns of (mean over valid units)``; ``read_outcomes``
refuses a sidecar whose recomputed error differs from the record's.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from conversion.files import atomic_write_bytes, sha256_file
from ood.base import outcome_error

OUTCOMES_FORMAT = "ood-scaling/outcomes/v1"
SUFFIX = ".outcomes.npz"


class OutcomesError(ValueError):
    """A sidecar is missing, of another format, changed since it was written, or does not match
    its record; the message is one line naming the file."""


@dataclass(frozen=True)
class StoredOutcomes:
    """One result key's outcomes as stored: ``correct`` bool (U, C), ``valid`` bool (U, C) or
    None (all valid), ``units_sha256`` (the unit names, for pairing), ``unit`` (what a unit is)."""

    correct: np.ndarray
    valid: np.ndarray | None
    units_sha256: str
    unit: str

    def unit_scores(self) -> np.ndarray:
        """Per unit, its mean correctness over the columns (complete outcomes only): the error
        of any resample of units is ``1 - mean of these over the resampled units``."""
        if self.valid is not None:
            raise ValueError("unit scores need complete outcomes (valid is None)")
        return self.correct.mean(axis=1)

    def error(self) -> float:
        return outcome_error(self.correct, self.valid)


def sidecar_path(result_file: Path) -> Path:
    """``runs/results/x.json`` → ``runs/results/x.outcomes.npz``."""
    result_file = Path(result_file)
    return result_file.with_name(result_file.stem + SUFFIX)


def units_digest(units) -> str:
    return hashlib.sha256("\n".join(units).encode()).hexdigest()


def write_outcomes(result_file: Path, outcomes: Mapping[str, object]) -> dict:
    """Write the sidecar of ``result_file`` atomically; returns the record's ``outcomes`` field.

    ``outcomes``: result key → ``ood.base.UnitOutcomes`` (``correct``, ``valid``, ``units``, ``unit``).
    """
    arrays: dict[str, np.ndarray] = {"format": np.array(OUTCOMES_FORMAT)}
    keys = {}
    for key, u in outcomes.items():
        correct = np.asarray(u.correct, dtype=bool)
        arrays[f"{key}/shape"] = np.asarray(correct.shape, dtype=np.int64)
        arrays[f"{key}/correct"] = np.packbits(correct.reshape(-1))
        if u.valid is not None:
            arrays[f"{key}/valid"] = np.packbits(np.asarray(u.valid, dtype=bool).reshape(-1))
        keys[key] = {"units": int(correct.shape[0]), "columns": int(correct.shape[1]), "unit": u.unit,
                     "units_sha256": units_digest(u.units), "complete": u.valid is None}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path = atomic_write_bytes(sidecar_path(result_file), buffer.getvalue())
    return {"file": path.name, "format": OUTCOMES_FORMAT, "sha256": sha256_file(path), "keys": keys}


def read_outcomes(result_file: Path, record: dict, *, tolerance: float = 1e-9) -> dict[str, StoredOutcomes]:
    """The outcomes ``record`` (read from ``result_file``) references, checked: the file exists
    beside it, has the recorded sha256 and format, and reproduces every error it covers."""
    ref = record.get("outcomes")
    if not isinstance(ref, dict) or "file" not in ref:
        raise OutcomesError(f"{result_file} has no per-example outcomes (written before they were recorded?); rerun its evaluation")
    path = Path(result_file).with_name(ref["file"])
    if not path.is_file():
        raise OutcomesError(f"{path}, the outcomes of {result_file}, is missing; copy it with the result file or rerun the evaluation")
    if ref.get("sha256") and sha256_file(path) != ref["sha256"]:
        raise OutcomesError(f"{path} differs from what {result_file} recorded (sha256); it was rewritten or damaged")
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != OUTCOMES_FORMAT:
                raise OutcomesError(f"{path} has format {str(data['format'])!r}; this reader knows {OUTCOMES_FORMAT}")
            out = {}
            for key, meta in ref.get("keys", {}).items():
                shape = tuple(int(x) for x in data[f"{key}/shape"])
                n = int(np.prod(shape))
                correct = np.unpackbits(data[f"{key}/correct"], count=n).astype(bool).reshape(shape)
                valid = (np.unpackbits(data[f"{key}/valid"], count=n).astype(bool).reshape(shape)
                         if f"{key}/valid" in data.files else None)
                out[key] = StoredOutcomes(correct, valid, meta["units_sha256"], meta.get("unit", "unit"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, OutcomesError):
            raise
        raise OutcomesError(f"{path} cannot be read ({type(err).__name__}: {err}); rerun the evaluation") from err
    for key, stored in out.items():
        recorded = record.get("errors", {}).get(key)
        if recorded is not None and abs(stored.error() - float(recorded)) > tolerance:
            raise OutcomesError(f"{path}: {key} outcomes give error {stored.error():.6f} but {result_file} records {recorded:.6f}")
    return out
