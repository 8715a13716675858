"""Rank correlations between benchmarks across a study's cells (the paper's section-3 question).

Does a cell that is better on one benchmark tend to be better on another, and on clean
ImageNet? Over the study's cells — one point per (model, steps, data_size[, resolution]),
seeds averaged exactly as the grid averages them — Spearman's rho and Kendall's tau-b between
every pair of benchmark errors and each benchmark with the clean ImageNet-1k error
(``metrics["clean/error"]``), each with a percentile bootstrap interval from resampling cells
with replacement. Pure numpy: ranks and tau-b are computed here (ties: average ranks; tau-b's
tie correction), vectorised over the bootstrap replicates.

A coefficient needs at least `MIN_CELLS` cells with both values and neither constant (a study
with fewer cells has no rows at all, one note); a replicate
in which it is undefined (all resampled values of one variable tied) is left out of the
interval, and when more than `MAX_UNDEFINED` of them are, the pair has no interval.
"""
from __future__ import annotations

import csv
import io
import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from results.bootstrap import digest64, percentile_interval
from results.grid import GridResult, format_number
from results.schema import atomic_write_bytes, display_name

CLEAN = "clean"  # the variable name of the clean ImageNet-1k error in correlations.csv
CLEAN_METRIC = "clean/error"
METHODS: tuple[str, ...] = ("spearman", "kendall")
CORRELATION_COLUMNS: tuple[str, ...] = ("method", "benchmark_a", "benchmark_b", "n_cells", "rho", "ci_low", "ci_high")
MIN_CELLS = 3  # two points are always perfectly (anti-)correlated
MAX_UNDEFINED = 0.05  # more undefined replicates than this: the interval would describe another population
CORRELATION_STREAM = 2  # random stream id beside results.bootstrap's unit (0) and seed (1) streams
_CHUNK_ELEMENTS = 1 << 21  # replicates x n x n pair comparisons per chunk


def variable_name(name: str) -> str:
    """Display name of a correlation variable: ``clean`` → ``ImageNet (clean)``, else the benchmark's."""
    return "ImageNet (clean)" if name == CLEAN else display_name(name)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties sharing their average rank: ``#smaller + (#equal + 1) / 2``."""
    x = np.asarray(x, dtype=np.float64)
    less = (x[..., None, :] < x[..., :, None]).sum(axis=-1)
    equal = (x[..., None, :] == x[..., :, None]).sum(axis=-1)
    return less + (equal + 1) / 2.0


def spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho along the last axis: Pearson's correlation of the average ranks (nan when
    either variable is constant)."""
    rx, ry = average_ranks(x), average_ranks(y)
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=-1) / den, np.nan)


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b along the last axis: ``(concordant - discordant) / sqrt((n0 - ties_x) *
    (n0 - ties_y))`` over the n0 = n(n-1)/2 pairs (nan when either variable is constant)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    sx = np.sign(x[..., :, None] - x[..., None, :])  # (..., n, n): each pair counted twice
    sy = np.sign(y[..., :, None] - y[..., None, :])
    s = (sx * sy).sum(axis=(-2, -1)) / 2  # concordant - discordant (a pair tied in either adds 0)
    untied_x = (sx != 0).sum(axis=(-2, -1)) / 2  # n0 - pairs tied in x
    untied_y = (sy != 0).sum(axis=(-2, -1)) / 2
    den = np.sqrt(untied_x * untied_y)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, s / den, np.nan)


COEFFICIENTS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"spearman": spearman, "kendall": kendall_tau_b}


@dataclass(frozen=True)
class Correlation:
    """One coefficient: `method` (``spearman`` or ``kendall``) between variables `a` and `b`
    (``clean`` or a benchmark key) over `n_cells` cells; `rho` is nan when undefined, `ci` the
    (low, high) bootstrap interval or None."""

    method: str
    a: str
    b: str
    n_cells: int
    rho: float
    ci: tuple[float, float] | None


@dataclass
class CorrelationResult:
    """Every coefficient (`rows`: per method, pairs in variable order), the `variables` (``clean``
    first when any cell has it, then the grid's benchmarks), the `cells` the points are, and
    one-line `messages` (pairs without a coefficient or an interval, and why); `intervals`
    describes the interval (None when no bootstrap was asked for)."""

    rows: list[Correlation] = field(default_factory=list)
    variables: list[str] = field(default_factory=list)
    cells: list[tuple] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    intervals: str | None = None

    def matrix(self, method: str) -> dict[tuple[str, str], Correlation]:
        """``(a, b) -> Correlation`` of one method, both orders."""
        out = {}
        for c in self.rows:
            if c.method == method:
                out[(c.a, c.b)] = out[(c.b, c.a)] = c
        return out


def cell_values(grid: GridResult, records: Sequence[dict]) -> tuple[list[tuple], list[str], np.ndarray]:
    """``(cells, variables, X)``: the study's (model, steps, data_size, resolution) cells (by
    resolution, model in size order, steps, size), the
    variables (``clean`` first when a record has ``metrics["clean/error"]``, then `grid.benchmarks`)
    and their seed-averaged values X (cells, variables), nan where a cell lacks one. Benchmarks are
    the grid's cell means; the clean error is averaged over the cell's records that have it."""
    rank = {m: i for i, m in enumerate(grid.models)}  # the grid's size order
    cells = sorted({k[:3] + (k[4],) for k in grid.cells}, key=lambda c: (c[3] is not None, c[3] or 0, rank[c[0]], c[1], c[2]))
    clean: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        v = (r.get("metrics") or {}).get(CLEAN_METRIC)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            clean[(r["model"], r["steps"], r["data_size"], r.get("resolution"))].append(float(v))
    variables = ([CLEAN] if any(c in clean for c in cells) else []) + list(grid.benchmarks)
    x = np.full((len(cells), len(variables)), np.nan)
    for i, c in enumerate(cells):
        for j, v in enumerate(variables):
            if v == CLEAN:
                if c in clean:
                    x[i, j] = math.fsum(clean[c]) / len(clean[c])
            elif (e := grid.cells.get((*c[:3], v, c[3]))) is not None:
                x[i, j] = e.mean
    return cells, variables, x


def _bootstrap(fn, x: np.ndarray, y: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(B,) coefficients of the cells resampled by `draws` (B, n), chunked: n x n per replicate."""
    n = len(x)
    out = np.empty(len(draws))
    chunk = max(1, _CHUNK_ELEMENTS // (n * n))
    for start in range(0, len(draws), chunk):
        idx = draws[start:start + chunk]
        out[start:start + len(idx)] = fn(x[idx], y[idx])
    return out


def _pair(a: str, b: str, xa: np.ndarray, xb: np.ndarray, resamples: int, seed: int,
          level: float) -> tuple[list[Correlation], list[str]]:
    """Both methods' coefficients of one pair over its cells (`xa`, `xb`), and notes."""
    n = len(xa)
    if n < MIN_CELLS:
        return ([Correlation(m, a, b, n, math.nan, None) for m in METHODS],
                [f"correlations: {a} vs {b}: {n} cell(s) with both, fewer than {MIN_CELLS}; no coefficient"])
    rhos = {m: float(COEFFICIENTS[m](xa, xb)) for m in METHODS}
    if any(math.isnan(r) for r in rhos.values()):  # a constant variable: undefined for both methods
        return ([Correlation(m, a, b, n, math.nan, None) for m in METHODS],
                [f"correlations: {a} vs {b}: one of them is the same in every cell; no coefficient"])
    rows, notes = [], []
    draws = (np.random.default_rng([seed, CORRELATION_STREAM, digest64(f"{a},{b}")]).integers(0, n, size=(resamples, n))
             if resamples else None)
    for m in METHODS:
        ci = None
        if draws is not None:
            reps = _bootstrap(COEFFICIENTS[m], xa, xb, draws)
            defined = reps[np.isfinite(reps)]
            if len(defined) >= (1 - MAX_UNDEFINED) * resamples:
                lo, hi = percentile_interval(defined, level)
                ci = (float(lo), float(hi))
            elif not notes:  # the same resamples are undefined for both methods: say it once
                notes.append(f"correlations: {a} vs {b}: {resamples - len(defined)} of {resamples} resamples have all "
                             f"values of one variable tied; no interval")
        rows.append(Correlation(m, a, b, n, rhos[m], ci))
    return rows, notes


def correlations(grid: GridResult, records: Sequence[dict], *, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> CorrelationResult:
    """Spearman and Kendall tau-b between every pair of `cell_values` variables, with
    `level` percentile intervals from `resamples` resamples of the pair's cells (0: none).

    Pair (a, b), in variable order, uses the cells that have both; its replicates come from
    ``default_rng([seed, 2, digest64("a,b")])``, the same draws for both methods (the two
    coefficients are computed on the same resampled cells) and whatever other variables exist.
    """
    cells, variables, x = cell_values(grid, records)
    out = CorrelationResult(variables=variables, cells=cells)
    if resamples:
        out.intervals = f"{100 * level:g} % bootstrap interval ({resamples} resamples of the cells, seed {seed})"
    if len(variables) < 2:
        out.messages.append(f"correlations: fewer than two variables ({', '.join(variables) or 'none'}): nothing to correlate")
        return out
    if len(cells) < MIN_CELLS:  # one line, not one per pair (a study's first cells)
        out.messages.append(f"correlations: {len(cells)} cell(s), fewer than {MIN_CELLS}: nothing to correlate yet")
        return out
    for i, j in itertools.combinations(range(len(variables)), 2):
        both = np.isfinite(x[:, i]) & np.isfinite(x[:, j])
        rows, notes = _pair(variables[i], variables[j], x[both, i], x[both, j], resamples, seed, level)
        out.rows += rows
        out.messages += notes
    out.rows.sort(key=lambda c: METHODS.index(c.method))  # stable: pairs stay in variable order
    return out


def correlations_csv_text(result: CorrelationResult) -> str:
    """``method,benchmark_a,benchmark_b,n_cells,rho,ci_low,ci_high``; one row per method and
    pair (Spearman first; pairs in variable order, ``clean`` first); coefficients rounded to 4
    decimals, ``nan`` when undefined, the interval empty when there is none."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CORRELATION_COLUMNS)
    for c in result.rows:
        lo, hi = c.ci if c.ci is not None else (None, None)
        w.writerow([c.method, c.a, c.b, c.n_cells, format_number(c.rho), format_number(lo), format_number(hi)])
    return buf.getvalue()


def write_correlations_csv(result: CorrelationResult, path: Path) -> Path:
    """Write `correlations_csv_text` atomically to `path`."""
    return atomic_write_bytes(Path(path), correlations_csv_text(result).encode("utf-8"))


def correlation_markdown(result: CorrelationResult) -> dict[str, str]:
    """Per method, under the figure's stem ``correlations_<method>``: the coefficient matrix as
    Markdown, ``0.83 [0.61, 0.95]`` per pair; empty without a pair."""
    if not result.rows:
        return {}
    out = {}
    names = [variable_name(v) for v in result.variables]
    for method in METHODS:
        m = result.matrix(method)
        lines = [f"**{method.capitalize()} rank correlation of the errors over {len(result.cells)} cells"
                 + (f"; [low, high]: {result.intervals}**" if result.intervals else "**"), "",
                 "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for a, name in zip(result.variables, names):
            row = [correlation_text(m[(a, b)]) if (a, b) in m else "" for b in result.variables]
            lines.append(f"| **{name}** | " + " | ".join(row) + " |")
        out[f"correlations_{method}"] = "\n".join(lines)
    return out


def correlation_text(c: Correlation, sep: str = " ") -> str:
    """``0.83 [0.61, 0.95]`` (`sep` between the coefficient and its interval), ``0.83`` without
    an interval, ``n/a`` when undefined."""
    if math.isnan(c.rho):
        return "n/a"
    text = f"{c.rho:.2f}"
    return text if c.ci is None else f"{text}{sep}[{c.ci[0]:.2f}, {c.ci[1]:.2f}]"
