"""Figure 3's shape as three tested criteria, each with a 95 % paired-bootstrap interval.

For the larger model of a study (most parameters), with ``S-``/``S+`` its fewest/most steps and
``N-``/``N+`` its smallest/largest upstream size, ``r(S, N)`` the top-panel reduction of cell
``(S, N)`` against ``(S-, N-)`` and ``b(S, N)`` the bottom-panel reduction of the larger model
over the smaller one, in points (``100 (e_ref - e) / e_ref``):

- **(a)** data helps at the longest budget: ``r(S+, N+) - r(S+, N-)``
  (error falls from the smallest to the largest subset);
- **(b)** the interaction: ``[r(S+, N+) - r(S-, N+)] - [r(S+, N-) - r(S-, N-)]``
  (going from the shortest to the longest budget lowers error more on the largest subset);
- **(c)** the bottom panel: ``b(S+, N+) - b(S+, N-)``
  (at the longest budget the larger model's advantage is greater at the largest subset).

A criterion *holds* on a benchmark key when its whole interval lies above 0. The interval
resamples the key's test units (images; anchors for the video sets; base images for
ImageNet-C) with the draws shared by all six cells (`results.bootstrap.replicate_errors`,
seeded per unit set as the report's intervals are), so every criterion is a paired
difference. A cell with several seeds averages its seeds' errors in each replicate; the seed
spread is not resampled here (the grid's intervals do that).

``python -m results.criteria RESULTS_DIR`` prints the table and writes ``criteria.csv``;
``make fidelity`` does it after the grid (docs/fidelity.md).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from conversion.files import atomic_write_text
from results.bootstrap import BootstrapSettings, percentile_interval, replicate_errors, unit_rng
from results.grid import order_models
from results.outcomes import OutcomesError, StoredOutcomes, read_outcomes
from results.schema import read_result_files

CRITERIA = ("a", "b", "c")
COLUMNS = ["key", "units", "criterion", "points", "ci_low", "ci_high", "holds",
           "err_longest_smallest", "err_longest_largest", "gain_largest", "gain_smallest", "bottom_smallest", "bottom_largest"]


class CriteriaError(ValueError):
    """The results cannot answer the criteria (a corner cell or its outcomes missing); one line."""


@dataclass(frozen=True)
class CriterionRow:
    """One criterion on one benchmark key: its value in points, its interval, whether it holds
    (interval above 0), and the Figure-3 quantities it is made of (errors, gains, bottom-panel
    reductions) for the reader."""

    key: str
    units: int
    criterion: str
    points: float
    ci_low: float
    ci_high: float
    err_longest_smallest: float
    err_longest_largest: float
    gain_largest: float  # r(S+, N+) - r(S-, N+)
    gain_smallest: float  # r(S+, N-)
    bottom_smallest: float  # b(S+, N-)
    bottom_largest: float  # b(S+, N+)

    @property
    def holds(self) -> bool:
        return self.ci_low > 0


def _red(ref: np.ndarray, cell: np.ndarray) -> np.ndarray:
    return 100.0 * (ref - cell) / ref


def criteria_values(e: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """(a), (b), (c) and their parts from the corner errors ``e`` (arrays of replicates, or scalars).

    Keys of ``e``: ``L--``, ``L-+``, ``L+-``, ``L++`` (larger model at (steps, size) = fewest/most)
    and ``s+-``, ``s++`` (smaller model at the most steps).
    """
    ref = e["L--"]
    r = {cell: _red(ref, e[f"L{cell}"]) for cell in ("-+", "+-", "++")}
    bottom_small, bottom_large = _red(e["s+-"], e["L+-"]), _red(e["s++"], e["L++"])
    gain_large, gain_small = r["++"] - r["-+"], r["+-"]
    return {"a": r["++"] - r["+-"], "b": gain_large - gain_small, "c": bottom_large - bottom_small,
            "gain_largest": gain_large, "gain_smallest": gain_small,
            "bottom_smallest": bottom_small, "bottom_largest": bottom_large}


def _corner_records(files: list[tuple[Path, dict]]) -> tuple[dict[str, list[tuple[Path, dict]]], str, str, list[str]]:
    records = [r for _, r in files]
    resolutions = sorted({str(r.get("resolution")) for r in records})
    if len(resolutions) > 1:
        raise CriteriaError(f"criteria compare one grid; the results hold resolutions {resolutions} (pass one resolution's results)")
    models, notes = order_models(records)
    if len(models) < 2:
        raise CriteriaError(f"criteria need two models; the results hold {models}")
    small, large = models[0], models[-1]
    mine = [r for r in records if r["model"] == large]
    steps = sorted({r["steps"] for r in mine})
    sizes = sorted({r["data_size"] for r in mine})
    if len(steps) < 2 or len(sizes) < 2:
        raise CriteriaError(f"criteria need two step budgets and two data sizes for {large}; found steps {steps}, sizes {sizes}")
    corner = {"-": 0, "+": -1}
    want = {f"L{a}{b}": (large, steps[corner[a]], sizes[corner[b]]) for a in "-+" for b in "-+"}
    want.update({f"s+{b}": (small, steps[-1], sizes[corner[b]]) for b in "-+"})
    cells = {}
    for name, (model, s, n) in want.items():
        found = [(p, r) for p, r in files if (r["model"], r["steps"], r["data_size"]) == (model, s, n)]
        if not found:
            raise CriteriaError(f"no result for {model} at steps={s}, data_size={n}: the criteria need every corner cell")
        cells[name] = found
    return cells, small, large, notes


def figure3_criteria(results_dir: Path, settings: BootstrapSettings = BootstrapSettings(2000)) -> tuple[list[CriterionRow], list[str]]:
    """The criteria rows for every benchmark key all six corner cells have outcomes for, and notes."""
    files, messages = read_result_files(Path(results_dir), warn=False)
    cells, small, large, notes = _corner_records(files)
    outcomes: dict[str, list[dict[str, StoredOutcomes]]] = {}
    for name, members in cells.items():
        try:
            outcomes[name] = [read_outcomes(p, r) for p, r in members]
        except OutcomesError as err:
            raise CriteriaError(str(err)) from None
    keys = sorted(set.intersection(*(set(o) for members in outcomes.values() for o in members)))
    rows: list[CriterionRow] = []
    names = list(cells)
    for key in keys:
        stored = [o[key] for name in names for o in outcomes[name]]
        if len({s.units_sha256 for s in stored}) != 1:
            notes.append(f"{key}: the corner cells were scored on different units; not paired, left out")
            continue
        owner = [name for name in names for _ in outcomes[name]]
        draws = replicate_errors(stored, unit_rng(settings.seed, stored[0].units_sha256), settings.resamples)
        point = np.array([s.error() for s in stored])

        def per_cell(values: np.ndarray) -> dict[str, np.ndarray]:
            return {n: values[..., [i for i, o in enumerate(owner) if o == n]].mean(axis=-1) for n in names}

        values, samples = criteria_values(per_cell(point)), criteria_values(per_cell(draws))
        e = per_cell(point)
        for c in CRITERIA:
            low, high = percentile_interval(samples[c], settings.level)
            rows.append(CriterionRow(key, stored[0].correct.shape[0], c, float(values[c]), float(low), float(high),
                                     float(e["L+-"]), float(e["L++"]), float(values["gain_largest"]), float(values["gain_smallest"]),
                                     float(values["bottom_smallest"]), float(values["bottom_largest"])))
    notes.insert(0, f"larger model {large}, smaller {small}; {settings.describe()}")
    return rows, notes + list(messages)


def criteria_csv_text(rows: Sequence[CriterionRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.key, r.units, r.criterion, f"{r.points:.3f}", f"{r.ci_low:.3f}", f"{r.ci_high:.3f}", int(r.holds),
                         f"{r.err_longest_smallest:.5f}", f"{r.err_longest_largest:.5f}", f"{r.gain_largest:.3f}",
                         f"{r.gain_smallest:.3f}", f"{r.bottom_smallest:.3f}", f"{r.bottom_largest:.3f}"])
    return out.getvalue()


def criteria_table(rows: Sequence[CriterionRow]) -> str:
    """A Markdown table, one line per key, and a closing count of the keys each criterion holds on."""
    by_key: dict[str, dict[str, CriterionRow]] = {}
    for r in rows:
        by_key.setdefault(r.key, {})[r.criterion] = r
    lines = ["| key | units | err at longest: smallest → largest | (a) pts [CI] | Δ shortest→longest: largest / smallest "
             "| (b) pts [CI] | bottom at longest: smallest / largest | (c) pts [CI] |",
             "| --- | ---: | --- | --- | --- | --- | --- | --- |"]

    def cell(r: CriterionRow) -> str:
        return f"{r.points:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}] {'**yes**' if r.holds else 'no'}"

    for key, c in by_key.items():
        a = c["a"]
        lines.append(f"| {key} | {a.units} | {a.err_longest_smallest:.3f} → {a.err_longest_largest:.3f} | {cell(a)} "
                     f"| {a.gain_largest:+.1f} / {a.gain_smallest:+.1f} | {cell(c['b'])} "
                     f"| {a.bottom_smallest:+.1f} / {a.bottom_largest:+.1f} | {cell(c['c'])} |")
    held = {c: [k for k, v in by_key.items() if v[c].holds] for c in CRITERIA}
    lines.append("")
    lines.append("Held: " + ", ".join(f"({c}) on {len(held[c])} of {len(by_key)} keys" for c in CRITERIA))
    return "\n".join(lines)


def write_criteria(results_dir: Path, out_csv: Path, settings: BootstrapSettings = BootstrapSettings(2000)) -> tuple[str, list[str]]:
    """Compute, write ``out_csv`` atomically, return (the Markdown table, notes)."""
    rows, notes = figure3_criteria(results_dir, settings)
    atomic_write_text(Path(out_csv), criteria_csv_text(rows))
    return criteria_table(rows), notes


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m results.criteria", description=__doc__.split("\n")[0])
    p.add_argument("results_dir", type=Path, help="a study's results folder, e.g. runs/fidelity/results")
    p.add_argument("--csv", type=Path, default=None, help="where criteria.csv goes (default: RESULTS_DIR/../grid/criteria.csv)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap replicates (default 2000)")
    p.add_argument("--bootstrap-seed", type=int, default=0, help="seed of the bootstrap's draws")
    args = p.parse_args(argv)
    out = args.csv or args.results_dir.parent / "grid" / "criteria.csv"
    try:
        table, notes = write_criteria(args.results_dir, out, BootstrapSettings(args.resamples, args.bootstrap_seed))
    except (CriteriaError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"note: {note}")
    print(table)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
