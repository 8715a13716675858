"""Paired bootstrap intervals of the grid's reductions (docs/results-schema.md, "Confidence intervals").

One replicate, for every row of the grid at once:

1. **Test units.** Each unit set (one ``units_sha256``: ImageNet-A's images, ImageNet-C's base
   images with all 75 of their sets, a video benchmark's anchors) is resampled once with
   replacement, and that one draw weighs every record scored on the set: every model, cell and
   seed. Both cells of a reduction are therefore scored on the same resampled examples (paired),
   which is what makes a small difference between two cells measurable at all.
2. **Seeds.** A cell whose error averages k > 1 seeds draws k of its seeds with replacement and
   averages their errors on the resampled units. The grid averages seeds before the reduction, so
   the replicate does too; drawing seeds adds the run-to-run variance that resampling one shared
   test set cannot show (with one seed per cell the interval covers test-set noise only). A
   cell's draw is shared by every row it appears in: a top panel's reference row reads [0, 0].
3. **Reduction.** ``100 * (err_ref - err_cell) / err_ref`` of the replicate's two cell errors,
   the formula of `results.grid.reduction_pct`.

The interval is the percentile interval of the replicates (``numpy.quantile``, linear), at level
0.95 by default. A row gets one only when both of its cells have outcomes for the benchmark,
every seed of each cell and both cells were scored on the same units in the same order (equal
``units_sha256``: paired), and every replicate's reduction is defined; otherwise it has none and a
message says why. Nothing is filled in from a nearby cell.

Random streams depend on the seed and on what is drawn, not on what else is in the folder: a unit
set's draws come from ``default_rng([seed, 0, <first 64 bits of its units_sha256>])`` (`unit_rng`),
a cell's seed draws from ``default_rng([seed, 1, <64 bits of sha256(repr(cell key))>])``
(`seed_rng`), so adding a benchmark or a model does not move the other intervals.

Arithmetic: with complete outcomes a record's replicate error is linear in the unit weights,
``1 - (w @ correct_per_unit) / (U * C)``, so a chunk of replicates is one matrix product for all
records on a unit set. The weights and the per-unit correct counts are integers whose sums stay
below 2**24 for the paper's sets, so float32 products are exact (float64 is used otherwise).
Incomplete outcomes (a ``valid`` mask) take per-column weighted means, one product per record.
"""
from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from results.grid import CellKey, GridResult, GridRow, at_resolution, cell_key
from results.outcomes import StoredOutcomes
from results.schema import ResultSchemaError, validate_record

UNIT_STREAM, SEED_STREAM = 0, 1
# Replicates x units per chunk of weights: 4M entries keep a chunk's draws, counts and float
# weights under ~80 MB whatever B is (ImageNet-C: 83 replicates of 50,000 base images).
CHUNK_ELEMENTS = 1 << 22
_EXACT_FLOAT32 = 1 << 24  # integers below this add exactly in float32


@dataclass(frozen=True)
class BootstrapSettings:
    """How intervals are drawn: `resamples` replicates (0: no intervals at all), `seed` seeds
    every random stream (the same seed and results give the same intervals, bit for bit),
    `level` is the interval's coverage (0.95: the 2.5 % and 97.5 % percentiles)."""

    resamples: int = 1000
    seed: int = 0
    level: float = 0.95

    def __post_init__(self) -> None:
        if not isinstance(self.resamples, int) or self.resamples < 0:
            raise ValueError(f"resamples must be an integer >= 0, got {self.resamples!r}")
        if not 0 < self.level < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")

    def describe(self) -> str:
        """Short enough for a figure caption: ``95 % paired bootstrap, 1000 resamples, seed 0``."""
        return f"{100 * self.level:g} % paired bootstrap, {self.resamples} resamples, seed {self.seed}"


def digest64(text: str) -> int:
    """The first 64 bits of sha256(`text`): a random stream's key that does not depend on what
    else is drawn (Python's ``hash`` of a string changes with every process)."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def unit_rng(seed: int, units_sha256: str) -> np.random.Generator:
    """The generator of one unit set's draws (see `draw_units`)."""
    return np.random.default_rng([seed, UNIT_STREAM, int(units_sha256[:16], 16)])


def seed_rng(seed: int, cell: CellKey) -> np.random.Generator:
    """The generator of one cell's seed draws: ``integers(0, k, size=(B, k))``."""
    return np.random.default_rng([seed, SEED_STREAM, digest64(repr(tuple(cell)))])


def draw_units(rng: np.random.Generator, n: int, n_units: int) -> np.ndarray:
    """(n, n_units) int32 unit indices, n resamples with replacement. Consecutive calls continue
    one stream: chunks of 10 and 20 give the rows of one call of 30."""
    return rng.integers(0, n_units, size=(n, n_units), dtype=np.int32)


def unit_weights(indices: np.ndarray) -> np.ndarray:
    """Multiplicity of every unit in each resample: (n, U) int64 counts from (n, U) indices."""
    n, u = indices.shape
    flat = indices + (np.arange(n, dtype=np.int64) * u)[:, None]  # one bincount for all rows
    return np.bincount(flat.ravel(), minlength=n * u).reshape(n, u)


def percentile_interval(samples: np.ndarray, level: float) -> np.ndarray:
    """(2, ...) lower and upper percentile of `samples` along axis 0 (linear interpolation)."""
    alpha = (1 - level) / 2
    return np.quantile(samples, [alpha, 1 - alpha], axis=0)


def replicate_errors(outcomes: Sequence[StoredOutcomes], rng: np.random.Generator, resamples: int,
                     chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """(resamples, len(outcomes)) errors of each of `outcomes` (all on one unit set, the same U
    rows) under the same `resamples` draws of units from `rng` (`draw_units`, in chunks).

    Complete outcomes: ``1 - sum_u w_u * correct_u / (U * C)``. Incomplete ones: ``1 - mean over
    columns of (sum_u w_u * correct_uc * valid_uc / sum_u w_u * valid_uc)``, over the columns that
    have a valid unit, and in a replicate only those whose valid units were drawn at all."""
    n_units = outcomes[0].correct.shape[0]
    widest = max(o.correct.shape[1] for o in outcomes)
    dtype = np.float32 if n_units * widest < _EXACT_FLOAT32 else np.float64
    complete = [i for i, o in enumerate(outcomes) if o.valid is None]
    incomplete = [i for i, o in enumerate(outcomes) if o.valid is not None]
    per_unit = np.stack([outcomes[i].correct.sum(axis=1) for i in complete], axis=1).astype(dtype) if complete else None
    totals = np.array([n_units * outcomes[i].correct.shape[1] for i in complete], dtype=np.float64)
    # per incomplete record: [correct & valid | valid] (U, 2C), bool until a chunk needs it as floats
    masked = {i: np.concatenate([outcomes[i].correct & outcomes[i].valid, outcomes[i].valid], axis=1) for i in incomplete}
    out = np.empty((resamples, len(outcomes)), dtype=np.float64)
    chunk = max(1, chunk_elements // n_units)
    for start in range(0, resamples, chunk):
        n = min(chunk, resamples - start)
        w = unit_weights(draw_units(rng, n, n_units)).astype(dtype)  # (n, U)
        if complete:
            out[start:start + n, complete] = 1.0 - (w @ per_unit).astype(np.float64) / totals
        for i in incomplete:
            o = outcomes[i]
            c = o.correct.shape[1]
            sums = (w @ masked[i].astype(dtype)).astype(np.float64)  # (n, 2C)
            num, den = sums[:, :c], sums[:, c:]
            used = (den > 0) & o.valid.any(axis=0)  # a column none of whose valid units was drawn drops out
            ratio = np.divide(num, den, out=np.zeros_like(num), where=used)
            out[start:start + n, i] = 1.0 - ratio.sum(axis=1) / used.sum(axis=1)
    return out


def _cell_text(cell: CellKey) -> str:
    model, steps, size, _benchmark, res = cell
    return f"{model} (steps={steps}, data_size={size}{at_resolution(res)})"


@dataclass
class _Cell:
    members: list[int]  # record indices (its seeds)
    units: str | None = None  # units_sha256 shared by every member
    unit: str = "unit"
    problem: str | None = None


def _resolve_cell(cell: CellKey, members: list[int], records: Sequence[dict],
                  outcomes: Sequence[Mapping[str, StoredOutcomes] | str]) -> _Cell:
    """Check that every seed of `cell` has outcomes for its benchmark, reproducing its error, on one unit set."""
    bench, where = cell[3], _cell_text(cell)
    found = _Cell(members)
    shas = set()
    for i in members:
        run = records[i].get("run_name", "?")
        got = outcomes[i]
        if isinstance(got, str):
            found.problem = f"{where} has no usable per-example outcomes: {got}"
            return found
        if bench not in got:
            found.problem = f"the outcomes of {run} have no {bench} entry"
            return found
        stored = got[bench]
        recorded = float(records[i]["errors"][bench])
        if abs(stored.error() - recorded) > 1e-9:
            found.problem = f"the {bench} outcomes of {run} give error {stored.error():.6f}, the record {recorded:.6f}"
            return found
        shas.add(stored.units_sha256)
        found.unit = stored.unit
    if len(shas) > 1:
        found.problem = f"the seeds of {where} were scored on different {bench} {found.unit}s (units_sha256 differ)"
    else:
        found.units = shas.pop()
    return found


def _cell_members(grid: GridResult, records: Sequence[dict]) -> dict[CellKey, list[int]]:
    """Record indices averaged into each cell of `grid`, as `build_grid` averaged them."""
    members: dict[CellKey, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        try:
            validate_record(r)
        except ResultSchemaError:
            continue  # build_grid skipped it too
        for b in r["errors"]:
            if cell_key(r, b) in grid.cells:
                members[cell_key(r, b)].append(i)
    return members


def add_intervals(grid: GridResult, records: Sequence[dict], outcomes: Sequence[Mapping[str, StoredOutcomes] | str],
                  settings: BootstrapSettings = BootstrapSettings(), *, chunk_elements: int = CHUNK_ELEMENTS) -> None:
    """Fill every row's ``ci_low``/``ci_high`` of `grid` (built from `records`) in place.

    `outcomes[i]` belongs to `records[i]`: result key → `StoredOutcomes` (`results.outcomes.
    read_outcomes`), or a one-line reason why the record has none. Sets `grid.intervals` to the
    settings' description and appends to `grid.messages` one line per reason rows lack an
    interval (naming the rows' panels), or a single line when no record has outcomes at all or
    `settings.resamples` is 0. Never raises for missing or unpaired outcomes.
    """
    if settings.resamples == 0:
        grid.messages.append("no confidence intervals: resamples is 0")
        return
    if not grid.rows:
        return
    if outcomes and all(isinstance(o, str) for o in outcomes):
        grid.messages.append(f"no confidence intervals: none of the {len(outcomes)} result(s) has usable per-example "
                             f"outcomes (first: {outcomes[0]})")
        return
    grid.intervals = settings.describe()
    members = _cell_members(grid, records)
    needed = {c for r in grid.rows for c in r.compared_cells()}
    cells = {c: _resolve_cell(c, members[c], records, outcomes) for c in sorted(needed, key=repr)}
    samples = _cell_samples(cells, outcomes, settings, chunk_elements)

    reasons: dict[str, list] = defaultdict(list)  # why a row has no interval -> the rows
    todo = []  # rows whose two cells are paired and have replicate errors
    for r in grid.rows:
        problem = _row_problem(r, cells)
        if problem is None:
            todo.append(r)
        else:
            reasons[problem].append(r)
    intervals: dict = {}
    if todo:
        ref = np.stack([samples[r.compared_cells()[0]] for r in todo], axis=1)  # (B, rows)
        cell = np.stack([samples[r.compared_cells()[1]] for r in todo], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            reductions = 100.0 * (ref - cell) / ref
        finite = np.isfinite(reductions).all(axis=0)
        bounds = percentile_interval(np.where(finite, reductions, 0.0), settings.level)
        for j, r in enumerate(todo):
            if finite[j]:
                intervals[r.key] = (float(bounds[0, j]), float(bounds[1, j]))
            else:
                reasons["the reference error is 0 in some resamples (reduction undefined there)"].append(r)
    grid.rows = [replace(r, ci_low=intervals[r.key][0], ci_high=intervals[r.key][1]) if r.key in intervals else r
                 for r in grid.rows]
    for reason, rows in reasons.items():
        panels = ", ".join(dict.fromkeys(f"{r.panel} {r.model}{at_resolution(r.resolution)}" for r in rows))
        grid.messages.append(f"no interval for {len(rows)} row(s) of {panels}: {reason}")


def _row_problem(row: GridRow, cells: dict[CellKey, _Cell]) -> str | None:
    """Why `row` can have no interval (its cells' problem, unpaired cells, an undefined
    reduction), or None."""
    ref_key, of_cell = row.compared_cells()
    ref, cell = cells[ref_key], cells[of_cell]
    if ref.problem or cell.problem:
        return ref.problem or cell.problem
    if ref.units != cell.units:
        return (f"{_cell_text(ref_key)} and {_cell_text(of_cell)} were scored on different {row.benchmark} "
                f"{cell.unit}s (units_sha256 differ): not paired")
    if math.isnan(row.reduction_pct):
        return "the reduction is undefined (reference error 0)"
    return None


def _cell_samples(cells: dict[CellKey, _Cell], outcomes: Sequence, settings: BootstrapSettings,
                  chunk_elements: int) -> dict[CellKey, np.ndarray]:
    """(B,) replicate errors of every cell without a problem: its seeds' errors under the shared
    unit draws of its unit set, seeds resampled with replacement and averaged."""
    by_units: dict[str, list[tuple[int, str]]] = defaultdict(list)  # units_sha256 -> (record, benchmark)
    for key, c in cells.items():
        if c.problem is None:
            by_units[c.units] += [(i, key[3]) for i in c.members]
    member_errors: dict[tuple[int, str], np.ndarray] = {}
    for sha, group in sorted(by_units.items()):
        group = list(dict.fromkeys(group))
        errors = replicate_errors([outcomes[i][b] for i, b in group], unit_rng(settings.seed, sha), settings.resamples,
                                  chunk_elements)
        member_errors.update({m: errors[:, j] for j, m in enumerate(group)})
    out = {}
    rows = np.arange(settings.resamples)[:, None]
    for key, c in cells.items():
        if c.problem is not None:
            continue
        seeds = np.stack([member_errors[(i, key[3])] for i in c.members], axis=1)  # (B, k)
        k = seeds.shape[1]
        if k == 1:
            out[key] = seeds[:, 0]
        else:
            draw = seed_rng(settings.seed, key).integers(0, k, size=(settings.resamples, k))
            out[key] = seeds[rows, draw].mean(axis=1)
    return out
