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
from results.grid import RESOLUTION_COLUMN, GridResult, at_resolution
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


def _table(grid: GridResult, value: Callable[[int, int], float | None]) -> list[str]:
    sizes = count_labels(grid.data_sizes)
    lines = ["| steps \\ size | " + " | ".join(sizes) + " |", "|---" * (len(sizes) + 1) + "|"]
    for s, label in reversed(list(zip(grid.steps, count_labels(grid.steps)))):  # fewest steps at the bottom
        cells = []
        for d in grid.data_sizes:
            v = value(s, d)
            cells.append("" if v is None else ("n/a" if math.isnan(v) else f"{v:.1f}"))
        lines.append(f"| **{label}** | " + " | ".join(cells) + " |")
    return lines


def _panel_markdown(grid: GridResult, heading: str, value, notes: dict[str, str] | None = None) -> str:
    """`heading`, then per benchmark its name (with its note, if any) and its table."""
    notes = notes or {}
    out = [f"**{heading}**", ""]
    for b in grid.benchmarks:
        name = f"*{display_name(b)}*" + (f" ({notes[b]})" if b in notes else "")
        out += [name, "", *_table(grid, lambda s, d, b=b: value(b, s, d)), ""]
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
    absolute errors (%) under ``errors_<model>``; empty when the grid has no benchmark."""
    if not grid.benchmarks:
        return {}
    values = grid.values()
    out = {}
    for panel, model, res in grid.panel_models():
        if panel == "top":
            s0, d0 = grid.reference_cell
            what, notes = f"reduction (%) vs. the reference cell steps={s0}, data_size={d0}", _reference_notes(grid, model, res)
        else:
            what, notes = "reduction (%) from the smaller to the larger model, cell by cell", {}
        out[figure_key(panel, model, res)] = _panel_markdown(
            grid, f"{panel} panel {model}{at_resolution(res)}: {what}",
            lambda b, s, d, p=panel, m=model, r=res: values.get((p, m, b, s, d, r)), notes)
    for res in grid.resolutions:
        for model in grid.models:
            out[figure_key("errors", model, res)] = _panel_markdown(
                grid, f"{model}{at_resolution(res)}: top-1 error (%)",
                lambda b, s, d, m=model, r=res: None if (e := grid.error(m, b, s, d, r)) is None else 100 * e)
    return out
