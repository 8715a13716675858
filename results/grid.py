"""Figure-3 arithmetic: relative error reductions over the (steps x data size) grid.

Pure Python (no numpy, no matplotlib): records in, rows out. The formula is the study
spec's §1::

    reduction(cell) = 100 * (err_ref - err_cell) / err_ref        # percent

- ``top`` panel, per model and benchmark: ``err_ref`` is that model's error at the grid's
  reference cell, the fewest steps AND the smallest data size of the grid's axes (the union
  over every record, all models, and over the expected steps and sizes when the caller knows
  them: a study's row that no result has is on the axes only then). The reference cell reads
  0.0, and cells can be negative (longer training on little data can hurt). When that cell
  has no result the panel is refused (no values, a note naming the cell) unless
  ``fallback_reference`` is asked for: then the next cell with a result in (steps, data size) order is the reference, and the
  note, the CSV (``ref_steps``, ``ref_data_size``), the figure and the report name it. A
  reference is never chosen silently: silently taking the next row would make a panel read as
  "relative to the smallest budget" when it is relative to another one.
- ``bottom`` panel, per benchmark and (steps, data_size) cell: ``err_ref`` is the smaller
  model's error and ``err_cell`` the larger model's at the same cell, model column
  ``"A->B"``. Each cell is its own reference, so a bottom panel cannot lack one: a cell
  missing for either model is just a missing cell (listed, no row).
- A study with a ``resolution`` axis (records carrying ``resolution``) gets both kinds of
  panel once per resolution value: references, pairs and cells never mix resolutions.

Rows carry a confidence interval (``ci_low``, ``ci_high``) only once `results.bootstrap.add_intervals`
has filled it from the records' per-example outcomes; this module never computes one.

Several records in one (model, steps, data_size) cell — different seeds — are averaged
(arithmetic mean of the errors, per benchmark, before the reduction is taken) and the count
is kept in `CellError.n`; averaging first matches how a figure of one number per cell is read
and keeps one noisy seed from producing a reduction of its own.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from results.schema import BENCHMARKS, ResultSchemaError, atomic_write_bytes, validate_record

# Always written, `ci_low`/`ci_high` included: empty where a row has no interval (no outcomes,
# unpaired cells, intervals turned off), so a reader finds the same columns in every grid.csv.
CSV_COLUMNS: tuple[str, ...] = ("panel", "model", "benchmark", "steps", "data_size", "reduction_pct", "ci_low", "ci_high")
# Appended to the CSV only when the records have a resolution axis, so the header of a plain
# study stays the documented six columns.
RESOLUTION_COLUMN = "resolution"
# Appended (after `resolution`) only when a top panel uses a fallback reference: then every row
# names the cell its reduction is relative to (a bottom row: the same cell, of the smaller model).
REFERENCE_COLUMNS: tuple[str, ...] = ("ref_steps", "ref_data_size")
PANELS: tuple[str, ...] = ("top", "bottom")
CellKey = tuple  # (model, steps, data_size, benchmark, resolution): a key of `GridResult.cells`


def reduction_pct(err_ref: float, err_cell: float) -> float:
    """Relative error reduction of `err_cell` w.r.t. `err_ref`, in percent.

    ``100 * (err_ref - err_cell) / err_ref``: positive when the cell is better than the
    reference, negative when worse (a cell with twice the reference's error reads -100).
    Returns ``nan`` when ``err_ref == 0``: a relative change from a perfect reference is
    undefined (0/0 if the cell is also perfect, -inf otherwise), and nan shows as a blank
    heat-map cell instead of an infinite colour. Non-finite inputs propagate as nan.
    """
    if err_ref == 0:
        return math.nan
    return 100.0 * (err_ref - err_cell) / err_ref


def pair_label(smaller: str, larger: str) -> str:
    """Model column of a bottom-panel row: ``"A->B"`` (A the smaller model)."""
    return f"{smaller}->{larger}"


@dataclass(frozen=True)
class CellError:
    """Seed-averaged error of one (model, steps, data_size, benchmark) cell."""

    mean: float
    n: int  # number of result records averaged (one per seed)
    seeds: tuple  # their seeds, None for unseeded runs


@dataclass(frozen=True)
class GridRow:
    """One CSV row. `model` is a model name (top) or ``"A->B"`` (bottom).

    `n_ref` / `n_cell`: how many records were averaged into the reference / the cell.
    `resolution`: the resolution-axis value of the panel (None without that axis).
    `ref_steps` / `ref_data_size`: the cell whose error is ``err_ref`` (top: the panel's
    reference; bottom: this same cell, of the smaller model).
    `ci_low` / `ci_high`: the bootstrap interval of `reduction_pct` (percent), None when there is
    none (`results.bootstrap.add_intervals` fills them; `build_grid` leaves them None).
    """

    panel: str
    model: str
    benchmark: str
    steps: int
    data_size: int
    reduction_pct: float
    n_ref: int = 1
    n_cell: int = 1
    resolution: int | None = None
    ref_steps: int | None = None
    ref_data_size: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None

    @property
    def key(self) -> tuple[str, str, str, int, int, int | None]:
        """``(panel, model, benchmark, steps, data_size, resolution)``, as in `GridResult.values`."""
        return self.panel, self.model, self.benchmark, self.steps, self.data_size, self.resolution

    def compared_cells(self) -> tuple[CellKey, CellKey]:
        """``(reference cell, cell)``: the `GridResult.cells` keys whose errors are ``err_ref`` and
        ``err_cell`` of this row (top: the panel's reference and the row's cell, of one model;
        bottom: the row's cell, of the smaller and of the larger model)."""
        if self.panel == "top":
            ref_model, model = self.model, self.model
        else:
            ref_model, _, model = self.model.partition("->")
        return ((ref_model, self.ref_steps, self.ref_data_size, self.benchmark, self.resolution),
                (model, self.steps, self.data_size, self.benchmark, self.resolution))

    @property
    def is_reference(self) -> bool:
        """True for a top panel's reference cell itself (reduction 0 by definition)."""
        return self.panel == "top" and (self.steps, self.data_size) == (self.ref_steps, self.ref_data_size)


@dataclass(frozen=True)
class MissingCell:
    """A grid cell with no value: no result for it (or, bottom, for one of the two models)."""

    panel: str
    model: str
    benchmark: str
    steps: int
    data_size: int
    reason: str
    resolution: int | None = None

    def __str__(self) -> str:
        return (
            f"{self.panel} panel {self.model}{at_resolution(self.resolution)}, {self.benchmark}: cell "
            f"(steps={self.steps}, data_size={self.data_size}) missing: {self.reason}"
        )


def cell_key(record: dict, benchmark: str) -> CellKey:
    """The `GridResult.cells` key a record's error on `benchmark` is averaged into."""
    return record["model"], record["steps"], record["data_size"], benchmark, record.get("resolution")


def at_resolution(resolution: int | None) -> str:
    """`` at resolution 384`` for messages and titles; empty without a resolution axis."""
    return "" if resolution is None else f" at resolution {resolution}"


@dataclass
class GridResult:
    """Everything the heat-maps and the report need.

    - `rows`: sorted by resolution, panel (top, bottom), model (size order; pairs in size
      order), benchmark (Figure-3 order), steps, data_size. Cells without a value have no row.
    - `missing`: every cell of the full grid (per panel and benchmark) with no row.
    - `messages`: one-line notes (missing reference cells, ordering fallbacks, duplicates ...).
    - `models`: smallest first; `pairs`: consecutive (smaller, larger) pairs of `models`.
    - `benchmarks`: the known benchmarks found in at least one record, Figure-3 order.
    - `steps`, `data_sizes`: the grid axes, ascending, the union over all records and models
      and the expected values (`expected_steps`, `expected_sizes`).
    - `expected_steps`, `expected_sizes`: the expected axes as given (ascending), None when
      not given (the axes then come from the records alone).
    - `resolutions`: values of the resolution axis, ascending; ``[None]`` without one.
    - `cells`: ``(model, steps, data_size, benchmark, resolution) -> CellError``.
    - `reference_cell`: ``(steps, data_size)``, the fewest steps and smallest data size of the
      axes (expected values included): every top panel's reference (None for an empty grid).
    - `references`: ``(model, benchmark, resolution) -> (steps, data_size)`` of the reference
      each top panel with values is built against: `reference_cell`, or with
      `fallback_reference` the next cell with a result (see `fallbacks`).
    - `refused`: ``(model, benchmark, resolution) -> reference_cell`` of each top panel left
      without values because that cell has no result (and no fallback was asked for, or no
      cell has a result).
    - `fallback_reference`: whether a missing reference may be replaced (the option given).
    - `intervals`: what the rows' ``ci_low``/``ci_high`` are (``95 % paired bootstrap, 1000
      resamples, seed 0``), None when no interval was computed.
    """

    rows: list[GridRow] = field(default_factory=list)
    missing: list[MissingCell] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    benchmarks: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    data_sizes: list[int] = field(default_factory=list)
    resolutions: list[int | None] = field(default_factory=lambda: [None])
    cells: dict[tuple[str, int, int, str, int | None], CellError] = field(default_factory=dict)
    references: dict[tuple[str, str, int | None], tuple[int, int]] = field(default_factory=dict)
    reference_cell: tuple[int, int] | None = None
    refused: dict[tuple[str, str, int | None], tuple[int, int]] = field(default_factory=dict)
    fallback_reference: bool = False
    expected_steps: list[int] | None = None
    expected_sizes: list[int] | None = None
    intervals: str | None = None

    @property
    def has_expected_axes(self) -> bool:
        """True when expected steps or sizes were given (the axes are not the records' alone)."""
        return self.expected_steps is not None or self.expected_sizes is not None

    def fallbacks(self) -> dict[tuple[str, str, int | None], tuple[int, int]]:
        """``(model, benchmark, resolution) -> (steps, data_size)`` of the top panels built
        against a fallback reference (a cell other than `reference_cell`)."""
        return {k: ref for k, ref in self.references.items() if ref != self.reference_cell}

    @property
    def has_resolution(self) -> bool:
        """True when the records have a resolution axis (the CSV then has a resolution column)."""
        return any(r is not None for r in self.resolutions)

    def panel_models(self) -> list[tuple[str, str, int | None]]:
        """``(panel, model column, resolution)`` of every panel, in figure order."""
        return [p for res in self.resolutions for p in
                [("top", m, res) for m in self.models] + [("bottom", pair_label(a, b), res) for a, b in self.pairs]]

    def value(self, panel: str, model: str, benchmark: str, steps: int, data_size: int,
              resolution: int | None = None) -> float | None:
        """Reduction of one cell, or None when the cell has no row."""
        return self.values().get((panel, model, benchmark, steps, data_size, resolution))

    def values(self) -> dict[tuple[str, str, str, int, int, int | None], float]:
        """``(panel, model, benchmark, steps, data_size, resolution) -> reduction_pct`` of every row."""
        return {r.key: r.reduction_pct for r in self.rows}

    def row_map(self) -> dict[tuple[str, str, str, int, int, int | None], GridRow]:
        """``(panel, model, benchmark, steps, data_size, resolution) -> GridRow`` of every row."""
        return {r.key: r for r in self.rows}

    def error(self, model: str, benchmark: str, steps: int, data_size: int, resolution: int | None = None) -> float | None:
        """Seed-averaged absolute error of one cell, or None when no record has it."""
        cell = self.cells.get((model, steps, data_size, benchmark, resolution))
        return None if cell is None else cell.mean


def _num_params(record: dict) -> float | None:
    for v in (record.get("num_params"), (record.get("metrics") or {}).get("num_params")):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0:
            return v
    return None


def order_models(
    records: Sequence[dict], model_order: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Models of `records`, smallest first, and one-line notes on how the order was decided.

    1. If every model's records carry ``num_params`` (top level, or ``metrics.num_params``):
       ascending parameter count (ties by name). A model whose records disagree uses the max.
    2. Else, if `model_order` is given: that order; models it does not name go last,
       alphabetically, with a note.
    3. Else alphabetical, with a note — alphabetical is a guess (``resnetv2_101x3`` sorts
       before ``resnetv2_50x1``), so the note says how to fix it.
    """
    models = sorted({r["model"] for r in records})
    notes: list[str] = []
    params: dict[str, set] = defaultdict(set)
    for r in records:
        n = _num_params(r)
        if n is not None:
            params[r["model"]].add(n)
    for m in models:
        if len(params.get(m, ())) > 1:
            notes.append(f"model {m}: records disagree on num_params {sorted(params[m])}; using the largest")

    if models and all(params.get(m) for m in models):
        by_params = sorted(models, key=lambda m: (max(params[m]), m))
        if model_order is not None:
            given = [m for m in model_order if m in models]
            if given != [m for m in by_params if m in given]:
                notes.append(
                    f"model_order {list(model_order)} disagrees with num_params; "
                    f"using num_params order {by_params}"
                )
        return by_params, notes

    if model_order is not None:
        ordered = [m for m in dict.fromkeys(model_order) if m in models]
        rest = [m for m in models if m not in ordered]
        if rest:
            notes.append(f"models {rest} are not in model_order; placed last, alphabetically")
        return ordered + rest, notes

    if len(models) > 1:
        notes.append(
            f"model size order unknown (no num_params in the records, no model_order): "
            f"using alphabetical order {models}; record num_params or pass model_order"
        )
    return models, notes


def _average_cells(
    records: Iterable[dict], benchmarks: Sequence[str]
) -> tuple[dict[tuple[str, int, int, str, int | None], CellError], list[str]]:
    errs: dict[tuple[str, int, int, str, int | None], list[float]] = defaultdict(list)
    seeds: dict[tuple[str, int, int, str, int | None], list] = defaultdict(list)
    known = set(benchmarks)
    for r in records:
        for b, e in r["errors"].items():
            if b in known:
                key = cell_key(r, b)
                errs[key].append(float(e))
                seeds[key].append(r["seed"])
    cells = {k: CellError(math.fsum(v) / len(v), len(v), tuple(seeds[k])) for k, v in errs.items()}
    notes = []
    reported = set()
    for (m, s, d, _b, res), sd in seeds.items():
        dup = sorted({x for x in sd if sd.count(x) > 1}, key=lambda x: (x is None, x or 0))
        if dup and (m, s, d, res) not in reported:
            reported.add((m, s, d, res))
            notes.append(
                f"cell model={m} steps={s} data_size={d}{at_resolution(res)}: seed(s) {dup} appear in "
                f"more than one result file; all of them are averaged"
            )
    return cells, notes


def _resolution_order(values: Iterable[int | None]) -> list[int | None]:
    # records without a resolution form their own group, listed first
    return sorted(set(values), key=lambda r: (r is not None, r or 0))


def _expected_axis(values: Sequence[int] | None, name: str) -> list[int] | None:
    if values is None:
        return None
    values = list(values)
    bad = [v for v in values if not isinstance(v, int) or isinstance(v, bool) or v < 1]
    if bad:
        raise ValueError(f"{name} must be positive integers (as the result records carry them), got {bad[0]!r}")
    return sorted(set(values))


def build_grid(
    records: Iterable[dict],
    *,
    model_order: Sequence[str] | None = None,
    benchmarks: Sequence[str] = BENCHMARKS,
    fallback_reference: bool = False,
    expected_steps: Sequence[int] | None = None,
    expected_sizes: Sequence[int] | None = None,
) -> GridResult:
    """Top and bottom Figure-3 panels from result records (as returned by `read_results`).

    Only keys in `benchmarks` (default: the eight Figure-3 keys) are used; other error keys
    are ignored. Records failing `validate_record` are skipped with a message. Axes are the
    union of steps and of data sizes over all records and over `expected_steps` /
    `expected_sizes` (a study's axes, positive ints as the records carry them; `ValueError`
    otherwise): an expected row or column that no result has is then on the grid, as missing
    cells, and can be the reference; without them the records cannot show such a row, and the
    next one would be the fewest-steps row. A cell of that full grid without a
    value is listed in `GridResult.missing` and has no row. Every top panel's reference is
    the axes' fewest-steps, smallest-size cell; a panel whose reference has no result gets a
    message and no rows (never an exception) or, with `fallback_reference`, is built against
    the next cell with a result in (steps, data_size) order, named in a message, in
    `GridResult.references` / `fallbacks()` and in every row's ``ref_steps``/``ref_data_size``.
    With more than two models,
    bottom panels compare each consecutive pair in size order (see `order_models`). Records
    with a ``resolution`` get their own panels per resolution value.
    """
    grid = GridResult(fallback_reference=fallback_reference,
                      expected_steps=_expected_axis(expected_steps, "expected_steps"),
                      expected_sizes=_expected_axis(expected_sizes, "expected_sizes"))
    valid = []
    for r in records:
        try:
            validate_record(r)
        except ResultSchemaError as e:
            name = r.get("run_name", "?") if isinstance(r, dict) else "?"
            grid.messages.append(f"skipped record {name}: {e}")
            continue
        valid.append(r)
    if not valid:
        grid.messages.append("no valid result records: the grid is empty")
        return grid

    grid.models, notes = order_models(valid, model_order)
    grid.messages += notes
    grid.pairs = list(zip(grid.models[:-1], grid.models[1:]))
    grid.steps = sorted({r["steps"] for r in valid} | set(grid.expected_steps or ()))
    grid.data_sizes = sorted({r["data_size"] for r in valid} | set(grid.expected_sizes or ()))
    grid.messages += _axis_notes(valid, "steps", grid.expected_steps, "row") + _axis_notes(
        valid, "data_size", grid.expected_sizes, "column")
    grid.reference_cell = (grid.steps[0], grid.data_sizes[0])
    grid.resolutions = _resolution_order(r.get("resolution") for r in valid)
    present = {b for r in valid for b in r["errors"]}
    grid.benchmarks = [b for b in benchmarks if b in present]
    absent = [b for b in benchmarks if b not in present]
    if absent:
        grid.messages.append(f"no result has benchmark(s) {', '.join(absent)}: their panels are left out")
    grid.cells, notes = _average_cells(valid, grid.benchmarks)
    grid.messages += notes
    if len(grid.models) == 1:
        grid.messages.append(f"only one model ({grid.models[0]}): no bottom panel")
    for res in grid.resolutions:
        _top_panels(grid, [r for r in valid if r.get("resolution") == res], res)
        _bottom_panels(grid, res)

    # Generation order is already this order; sorting makes the contract explicit.
    rank = {pm: i for i, pm in enumerate(grid.panel_models())}
    brank = {b: i for i, b in enumerate(benchmarks)}
    grid.rows.sort(key=lambda r: (rank[(r.panel, r.model, r.resolution)], brank[r.benchmark], r.steps, r.data_size))
    return grid


def _axis_notes(records: list[dict], key: str, expected: list[int] | None, line: str) -> list[str]:
    """Notes on expected values no record has (an empty row/column) and on record values that
    were not expected (results of another study definition, say): both are on the axes."""
    if expected is None:
        return []
    found = {r[key] for r in records}
    notes = [f"no result at {key}={v} (expected): that {line} of the grid is empty" for v in expected if v not in found]
    extra = sorted(found - set(expected))
    if extra:
        notes.append(f"results at {key} {extra} are not among the expected {key} values {expected}; "
                     f"they are on the grid's axes too")
    return notes


def _axes(grid: GridResult) -> list[tuple[int, int]]:
    return [(s, d) for s in grid.steps for d in grid.data_sizes]


def choose_reference(expected: tuple[int, int], present: Iterable[tuple[int, int]],
                     fallback: bool) -> tuple[int, int] | None:
    """The reference cell of a top panel: `expected` (the axes' fewest steps, smallest size) when
    it is among the `present` (steps, data_size) cells; else, if `fallback`, the first present cell
    in (steps, data_size) order (fewest steps first, then smallest size); else None (refused)."""
    present = set(present)
    if expected in present:
        return expected
    if fallback and present:
        return min(present)
    return None


def _cell_text(cell: tuple[int, int]) -> str:
    return f"(steps={cell[0]}, data_size={cell[1]})"


def _top_panels(grid: GridResult, records: list[dict], res: int | None) -> None:
    """Rows, references, missing cells and messages of every top panel at resolution `res`."""
    cells, at, expected = grid.cells, at_resolution(res), grid.reference_cell
    for m in grid.models:
        has_records = any(r["model"] == m for r in records)
        for b in grid.benchmarks:
            present = [(s, d) for s, d in _axes(grid) if (m, s, d, b, res) in cells]
            ref = choose_reference(expected, present, grid.fallback_reference)
            ref_cell = cells[(m, *ref, b, res)] if ref is not None else None
            where = f"top panel for model {m}{at}, benchmark {b}"
            if not has_records:
                grid.messages.append(f"{where}: no result at all; no top-panel values for it")
            elif ref is None:
                grid.refused[(m, b, res)] = expected
                hint = ("run that cell, or pass --fallback-reference to build the panel against the next cell with a result"
                        if present else f"{m} has no result for {b} in any cell")
                grid.messages.append(f"{where}: reference cell {_cell_text(expected)} missing; no top-panel values for it ({hint})")
            else:
                grid.references[(m, b, res)] = ref
                if ref != expected:
                    grid.messages.append(
                        f"{where}: reference cell {_cell_text(expected)} missing; fallback reference "
                        f"{_cell_text(ref)} used: this panel's reductions are relative to it"
                    )
                if ref_cell.mean == 0:
                    grid.messages.append(
                        f"top panel for model {m}{at}, benchmark {b}: reference error is 0, "
                        f"relative reductions are undefined (nan)"
                    )
            for s, d in _axes(grid):
                c = cells.get((m, s, d, b, res))
                if c is None:
                    grid.missing.append(MissingCell("top", m, b, s, d, f"no result for {m}", res))
                elif ref_cell is not None:
                    grid.rows.append(GridRow("top", m, b, s, d, reduction_pct(ref_cell.mean, c.mean), ref_cell.n, c.n,
                                             res, ref[0], ref[1]))


def _bottom_panels(grid: GridResult, res: int | None) -> None:
    """Rows, missing cells and messages of every bottom panel (consecutive model pairs) at `res`.

    A cell's reference is the smaller model at that same cell: a cell either model lacks is
    a missing cell (listed, no row), never a reason to compare other cells."""
    cells = grid.cells
    for a, bm in grid.pairs:
        label = pair_label(a, bm)
        for b in grid.benchmarks:
            zero_noted = False
            for s, d in _axes(grid):
                ca, cb = cells.get((a, s, d, b, res)), cells.get((bm, s, d, b, res))
                if ca is None or cb is None:
                    lacking = " and ".join(x for x, c in ((a, ca), (bm, cb)) if c is None)
                    grid.missing.append(MissingCell("bottom", label, b, s, d, f"no result for {lacking}", res))
                    continue
                if ca.mean == 0 and not zero_noted:
                    zero_noted = True
                    grid.messages.append(
                        f"bottom panel {label}{at_resolution(res)}, benchmark {b}: {a} has error 0 in some "
                        f"cells, relative reductions there are undefined (nan)"
                    )
                grid.rows.append(GridRow("bottom", label, b, s, d, reduction_pct(ca.mean, cb.mean), ca.n, cb.n, res, s, d))


def format_number(x: float | None) -> str:
    """A CSV number: rounded to 4 decimals, ``nan`` when undefined, empty for None, never ``-0.0000``."""
    if x is None:
        return ""
    if math.isnan(x):
        return "nan"
    r = round(x, 4)
    return f"{(r if r != 0 else 0.0):.4f}"  # no "-0.0000"


def grid_csv_text(grid: GridResult) -> str:
    """The CSV `write_grid_csv` writes, as a string (rows in `GridResult.rows` order)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    with_res, with_ref = grid.has_resolution, bool(grid.fallbacks())
    w.writerow(CSV_COLUMNS + ((RESOLUTION_COLUMN,) if with_res else ()) + (REFERENCE_COLUMNS if with_ref else ()))
    for r in grid.rows:
        res = ("" if r.resolution is None else r.resolution,) if with_res else ()
        ref = (r.ref_steps, r.ref_data_size) if with_ref else ()
        numbers = [format_number(x) for x in (r.reduction_pct, r.ci_low, r.ci_high)]
        w.writerow([r.panel, r.model, r.benchmark, r.steps, r.data_size, *numbers, *res, *ref])
    return buf.getvalue()


def write_grid_csv(grid: GridResult, path: Path) -> Path:
    """Write the grid atomically as CSV and return `path`.

    Header exactly ``panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high`` (plus
    a column ``resolution`` when the records have a resolution axis, then ``ref_steps,ref_data_size``
    when a top panel uses a fallback reference); one row per cell
    with a value, in `GridResult.rows` order (deterministic, see `build_grid`); reductions and
    their interval in percent rounded to 4 decimals (``nan`` for an undefined reduction; the
    interval empty where the row has none). Missing cells have no row.
    """
    return atomic_write_bytes(Path(path), grid_csv_text(grid).encode("utf-8"))
