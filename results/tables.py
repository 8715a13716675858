"""The grid as tables: absolute errors as CSV, and every panel as Markdown (TensorBoard's Text tab).

Markdown tables follow the heat-maps' layout: training steps as rows, fewest at the bottom,
dataset sizes as columns; a missing cell is an empty table cell.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Callable

from results.figures import count_labels, figure_key
from results.grid import RESOLUTION_COLUMN, GridResult, GridRow, at_resolution
from results.schema import atomic_write_bytes, display_name

ERRORS_COLUMNS: tuple[str, ...] = ("model", "benchmark", "steps", "data_size", "error", "n_seeds")


def errors_csv_text(grid: GridResult) -> str:
    """Seed-averaged absolute error of every cell with a result: header ``model,benchmark,
    steps,data_size,error,n_seeds`` (+ ``resolution`` on a resolution axis), errors as
    fractions rounded to 6 decimals; rows by resolution, model (size order), benchmark
    (Figure-3 order), steps, data size."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    extra = (RESOLUTION_COLUMN,) if grid.has_resolution else ()
    w.writerow(ERRORS_COLUMNS + extra)
    for res in grid.resolutions:
        for m in grid.models:
            for b in grid.benchmarks:
                for s in grid.steps:
                    for d in grid.data_sizes:
                        c = grid.cells.get((m, s, d, b, res))
                        if c is not None:
                            tail = ("" if res is None else res,) if extra else ()
                            w.writerow([m, b, s, d, f"{c.mean:.6f}", c.n, *tail])
    return buf.getvalue()


def write_errors_csv(grid: GridResult, path: Path) -> Path:
    """Write `errors_csv_text` atomically to `path`."""
    return atomic_write_bytes(Path(path), errors_csv_text(grid).encode("utf-8"))


def _number(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.1f}"


def reduction_text(row: GridRow | None) -> str:
    """A reduction cell of a Markdown table: ``12.3 [4.1, 20.0]`` (percent, with its interval),
    ``12.3`` without an interval, ``n/a`` when undefined, empty for a missing cell."""
    if row is None:
        return ""
    if row.ci_low is None:
        return _number(row.reduction_pct)
    return f"{_number(row.reduction_pct)} [{row.ci_low:.1f}, {row.ci_high:.1f}]"


def _table(grid: GridResult, text: Callable[[int, int], str]) -> list[str]:
    sizes = count_labels(grid.data_sizes)
    lines = ["| steps \\ size | " + " | ".join(sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for s, label in reversed(list(zip(grid.steps, count_labels(grid.steps)))):  # fewest steps at the bottom
        lines.append(f"| **{label}** | " + " | ".join(text(s, d) for d in grid.data_sizes) + " |")
    return lines


def _panel_markdown(grid: GridResult, heading: str, text: Callable[[str, int, int], str],
                    notes: dict[str, str] | None = None) -> str:
    """`heading`, then per benchmark its name (with its note, if any) and its table of `text(b, s, d)`."""
    notes = notes or {}
    out = [f"**{heading}**", ""]
    for b in grid.benchmarks:
        name = f"*{display_name(b)}*" + (f" ({notes[b]})" if b in notes else "")
        out += [name, "", *_table(grid, lambda s, d, b=b: text(b, s, d)), ""]
    return "\n".join(out)


def _reference_notes(grid: GridResult, model: str, res: int | None) -> dict[str, str]:
    """Per benchmark of a top panel whose reference is not the grid's: the fallback used, or why it is empty."""
    notes, fallbacks = {}, grid.fallbacks()
    for b in grid.benchmarks:
        if (model, b, res) in fallbacks:
            s, d = fallbacks[(model, b, res)]
            notes[b] = f"vs. FALLBACK reference steps={s}, data_size={d}"
        elif (model, b, res) not in grid.references and grid.reference_cell is not None:
            s, d = grid.reference_cell
            notes[b] = f"no values: reference cell steps={s}, data_size={d} missing"
    return notes


def markdown_tables(grid: GridResult) -> dict[str, str]:
    """Markdown per figure: reductions (%) of each top/bottom panel under its heat-map's key,
    with their interval where the grid has one (``12.3 [4.1, 20.0]``), absolute errors (%) under
    ``errors_<model>``; empty when the grid has no benchmark."""
    if not grid.benchmarks:
        return {}
    rows = grid.row_map()
    out = {}
    for panel, model, res in grid.panel_models():
        if panel == "top":
            s0, d0 = grid.reference_cell
            what, notes = f"reduction (%) vs. the reference cell steps={s0}, data_size={d0}", _reference_notes(grid, model, res)
        else:
            what, notes = "reduction (%) from the smaller to the larger model, cell by cell", {}
        if grid.intervals is not None:
            what += f"; [low, high]: {grid.intervals} (none where the notes say why)"
        out[figure_key(panel, model, res)] = _panel_markdown(
            grid, f"{panel} panel {model}{at_resolution(res)}: {what}",
            lambda b, s, d, p=panel, m=model, r=res: reduction_text(rows.get((p, m, b, s, d, r))), notes)
    for res in grid.resolutions:
        for model in grid.models:
            out[figure_key("errors", model, res)] = _panel_markdown(
                grid, f"{model}{at_resolution(res)}: top-1 error (%)",
                lambda b, s, d, m=model, r=res: "" if (e := grid.error(m, b, s, d, r)) is None else _number(100 * e))
    return out
