"""Rebuild the Figure-3 grid from a folder of result files.

CLI::

    python -m results.report RESULTS_DIR [--out OUT_DIR] [--model-order A,B,...] [--fallback-reference]
                             [--steps N [N ...]] [--sizes N [N ...]] [--resamples B] [--bootstrap-seed S]

reads every ``*.json`` result under RESULTS_DIR and writes to OUT_DIR: ``grid.csv`` (the
reductions with their 95 % paired bootstrap interval where the results carry per-example
outcomes), ``errors.csv`` (absolute errors), ``correlations.csv`` (rank correlations between
benchmarks over the cells), and as PNG and SVG one heat-map per panel (``top_<model>``,
``bottom_<A>-vs-<B>``), one absolute-error heat-map and one error-vs-data-size line plot per
model (``errors_<model>``, ``lines_<model>``), and one correlation matrix per method
(``correlations_spearman``, ``correlations_kendall``). OUT_DIR defaults to
``grid`` beside RESULTS_DIR (``runs/results`` → ``runs/grid``). Outputs go to stdout; every
skipped file, missing reference cell and missing cell is one line on stderr. Exit status 0
whenever at least one valid result was read (missing cells are normal while a study is
running); 1 with a one-line error when RESULTS_DIR does not exist or holds no valid result.

Every top panel is relative to the grid's fewest-steps, smallest-size cell. A panel whose
reference cell has no result is refused (no values, a note) unless ``--fallback-reference``
is given: then it is built against the next cell with a result in (steps, size) order, and
stdout, the notes, grid.csv (``ref_steps``, ``ref_data_size``) and the figure's title say which.
stdout names, per top panel, the reference cell it used (or that it was refused).

The axes come from the result files, which cannot show a row or column that no result has
(every 112K-step run failed, say): the next row would then be the fewest steps. ``--steps`` and
``--sizes`` give the study's axes (``python -m study report STUDY.yaml`` passes them): they are
added to the axes, so such a row is missing cells and its cell stays the reference.

Intervals (`results.bootstrap`) and the correlations' intervals (`results.correlations`) use
``--resamples`` replicates (default 1000; 0: none) drawn from ``--bootstrap-seed`` (default 0):
the same results and seed give the same intervals. A row without an interval (no outcomes,
cells scored on different units) has empty ``ci_low``/``ci_high`` and a note saying why.

`rebuild_report` is the same thing as a function, for the grid-report callback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from results.bootstrap import BootstrapSettings, add_intervals
from results.correlations import CorrelationResult, correlation_markdown, correlations, write_correlations_csv
from results.figures import FORMATS, save_figures
from results.grid import GridResult, at_resolution, build_grid, write_grid_csv
from results.heatmaps import correlation_figures, error_figures, grid_figures
from results.lineplots import line_figures
from results.outcomes import OutcomesError, StoredOutcomes, read_outcomes
from results.schema import read_result_files
from results.tables import markdown_tables, write_errors_csv

log = logging.getLogger(__name__)

# Said whenever there is nothing to read, so the user knows what fills the folder.
PRODUCER_HINT = (
    "result files are written by the OOD evaluation callback (callbacks/ood_evaluation.py) "
    "at the end of each fine-tuning run; `python -m study.quickstart` runs the miniature study"
)


class NoResultsError(ValueError):
    """The results folder holds no valid result file (message is one line)."""


@dataclass
class ReportOutput:
    """What `rebuild_report` wrote and found.

    `figures` maps the file stem (``top_<model>``, ``bottom_<A>-vs-<B>``, ``errors_<model>``,
    ``lines_<model>``, ``correlations_<method>``) to its Figure, for ``SummaryWriter.add_figure``;
    `tables` maps the stems of the heat-maps to the same numbers as Markdown; `messages` are
    one-line notes (skipped files, missing reference cells, ordering fallbacks, rows without an
    interval, grouped missing cells, pairs without a correlation), in that order.
    """

    results_dir: Path
    out_dir: Path
    csv_path: Path
    png_paths: list[Path]
    figures: dict[str, Figure]
    messages: list[str]
    grid: GridResult
    n_results: int
    n_skipped: int = 0
    errors_csv_path: Path | None = None
    svg_paths: list[Path] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)
    correlations_csv_path: Path | None = None
    correlations: CorrelationResult | None = None


def default_out_dir(results_dir: Path) -> Path:
    """``grid`` beside `results_dir`: ``runs/results`` → ``runs/grid``."""
    return Path(results_dir).resolve().parent / "grid"


def missing_summary(grid: GridResult) -> list[str]:
    """`grid.missing` grouped into one line per (panel, model, steps, data_size)."""
    groups: dict[tuple, list] = defaultdict(list)
    for c in grid.missing:
        groups[(c.panel, c.model, c.steps, c.data_size)].append(c)
    lines = []
    for (panel, model, s, d), cells in groups.items():
        benches = [c.benchmark for c in cells]
        which = "all benchmarks" if set(benches) == set(grid.benchmarks) else ", ".join(benches)
        reasons = "; ".join(dict.fromkeys(c.reason for c in cells))
        lines.append(f"missing: {panel} panel {model}, cell (steps={s}, data_size={d}), {which}: {reasons}")
    return lines


def reference_summary(grid: GridResult) -> list[str]:
    """One line naming the top panels' reference cell and where the axes come from, then, per
    top panel in figure order, one line per reference it used, naming the benchmarks concerned
    (``all benchmarks`` when it is every one of several): the reference cell itself, a fallback
    reference, REFUSED (its reference cell has no result), or no result at all."""
    if grid.reference_cell is None:
        return []
    s0, d0 = grid.reference_cell
    if grid.has_expected_axes:
        source = "of the axes (the results' and the expected steps/sizes)"
    else:
        source = ("of the results (a row or column that no result has is not known here: "
                  "--steps/--sizes, or `python -m study report STUDY.yaml`, add the study's)")
    lines = [f"top panels: reference cell (steps={s0}, data_size={d0}), the fewest steps and smallest data size {source}"]
    fallbacks = grid.fallbacks()
    for res in grid.resolutions:
        for m in grid.models:
            groups: dict[object, list[str]] = defaultdict(list)
            for b in grid.benchmarks:
                if (m, b, res) in grid.refused:
                    groups["refused"].append(b)
                elif (m, b, res) in fallbacks:
                    groups[fallbacks[(m, b, res)]].append(b)
                elif (m, b, res) in grid.references:
                    groups["reference"].append(b)
                else:
                    groups["none"].append(b)
            for ref, benches in groups.items():
                names = "all benchmarks" if len(benches) > 1 and len(benches) == len(grid.benchmarks) else ", ".join(benches)
                which = f"top panel {m}{at_resolution(res)} ({names})"
                if ref == "reference":
                    lines.append(f"{which}: reference (steps={s0}, data_size={d0})")
                elif ref == "none":
                    lines.append(f"{which}: no result at all, no values")
                elif ref == "refused":
                    hint = "" if grid.fallback_reference else "; --fallback-reference builds it against the next cell with one"
                    lines.append(f"{which}: REFUSED, reference cell (steps={s0}, data_size={d0}) has no result{hint}")
                else:
                    lines.append(f"{which}: FALLBACK reference (steps={ref[0]}, data_size={ref[1]}), "
                                 f"because (steps={s0}, data_size={d0}) has no result")
    return lines


def rebuild_report(
    results_dir: Path,
    out_dir: Path | None = None,
    *,
    model_order: Sequence[str] | None = None,
    fallback_reference: bool = False,
    expected_steps: Sequence[int] | None = None,
    expected_sizes: Sequence[int] | None = None,
    log_messages: bool = True,
    resamples: int = 1000,
    bootstrap_seed: int = 0,
) -> ReportOutput:
    """Read `results_dir`, build the grid, write the CSVs and the figures (PNG and SVG) to `out_dir`.

    `out_dir` defaults to `default_out_dir(results_dir)`. `expected_steps` / `expected_sizes`
    (the study's axes) are added to the axes of the results, so a row or column that no result
    has is missing cells and its cell can still be the reference. A top panel whose reference cell has
    no result is refused unless `fallback_reference` (see `results.grid.build_grid`). Rows get a
    paired bootstrap interval from the records' outcome sidecars and the correlations a bootstrap
    interval over cells, both with `resamples` replicates from `bootstrap_seed` (0 resamples: none;
    `results.bootstrap`, `results.correlations`). Missing cells,
    missing and fallback reference cells are reported in `ReportOutput.messages`, never raised; with `log_messages` each
    message is also logged as a warning (logger ``results.report``). Raises `FileNotFoundError`
    if `results_dir` is not a directory and `NoResultsError` if it holds no valid result.
    Files are written atomically, so a reader (TensorBoard, a person) never sees half a PNG.
    """
    results_dir = Path(results_dir)
    out_dir = default_out_dir(results_dir) if out_dir is None else Path(out_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"results folder {results_dir} does not exist; {PRODUCER_HINT}")
    files, skipped = read_result_files(results_dir, warn=False)
    records = [record for _, record in files]
    if not records:
        extra = f" ({len(skipped)} file(s) skipped as invalid)" if skipped else ""
        raise NoResultsError(f"no valid result file in {results_dir}{extra}; {PRODUCER_HINT}")
    grid = build_grid(records, model_order=model_order, fallback_reference=fallback_reference,
                      expected_steps=expected_steps, expected_sizes=expected_sizes)
    outcomes = read_all_outcomes(files) if resamples and grid.rows else []
    add_intervals(grid, records, outcomes, BootstrapSettings(resamples, bootstrap_seed))
    corr = correlations(grid, records, resamples=resamples, seed=bootstrap_seed)
    messages = list(skipped) + grid.messages + missing_summary(grid) + corr.messages
    if log_messages:
        for m in messages:
            log.warning(m)
    csv_path = write_grid_csv(grid, out_dir / "grid.csv")
    errors_csv_path = write_errors_csv(grid, out_dir / "errors.csv")
    correlations_csv_path = write_correlations_csv(corr, out_dir / "correlations.csv")
    figures = {**grid_figures(grid), **error_figures(grid), **line_figures(grid), **correlation_figures(corr)}
    paths = save_figures(figures, out_dir, formats=FORMATS)
    return ReportOutput(
        results_dir=results_dir,
        out_dir=out_dir,
        csv_path=csv_path,
        png_paths=[p for p in paths if p.suffix == ".png"],
        svg_paths=[p for p in paths if p.suffix == ".svg"],
        errors_csv_path=errors_csv_path,
        tables={**markdown_tables(grid), **correlation_markdown(corr)},
        figures=figures,
        messages=messages,
        grid=grid,
        n_results=len(records),
        n_skipped=len(skipped),
        correlations_csv_path=correlations_csv_path,
        correlations=corr,
    )


def read_all_outcomes(files: Sequence[tuple[Path, dict]]) -> list[dict[str, StoredOutcomes] | str]:
    """Per ``(result file, record)`` (as `read_result_files` returns them), its outcomes
    (`results.outcomes.read_outcomes`) or the one-line reason it has none."""
    out: list[dict[str, StoredOutcomes] | str] = []
    for path, record in files:
        try:
            out.append(read_outcomes(path, record))
        except OutcomesError as err:
            out.append(str(err))
    return out


def interval_summary(out: ReportOutput) -> list[str]:
    """stdout lines on the intervals and the correlations: what they are, how many rows have one."""
    grid, lines = out.grid, []
    if grid.intervals is not None:
        n = sum(r.ci_low is not None for r in grid.rows)
        lines.append(f"confidence intervals ({grid.intervals}): {n} of {len(grid.rows)} rows"
                     + ("" if n == len(grid.rows) else "; the notes say why the others have none"))
    elif grid.rows:
        lines.append("confidence intervals: none (see the notes)")
    if out.correlations is not None and out.correlations.rows:
        c = out.correlations
        lines.append(f"correlations: Spearman and Kendall tau-b of {len(c.variables)} variables over {len(c.cells)} cells"
                     + (f" ({c.intervals})" if c.intervals else ""))
    return lines


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m results.report",
        description="Rebuild the Figure-3 grid (CSVs, heat-maps and line plots as PNG and SVG) from a folder of result files.",
    )
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR",
                   help="folder searched recursively for *.json result files")
    p.add_argument("--out", type=Path, default=None, metavar="OUT_DIR",
                   help="output folder (default: 'grid' beside RESULTS_DIR)")
    p.add_argument("--model-order", default=None, metavar="A,B,...",
                   help="models smallest first; used only when the results carry no num_params")
    p.add_argument("--fallback-reference", action="store_true",
                   help="build a top panel whose reference cell (fewest steps, smallest size) has no result against the "
                        "next cell with one, in (steps, size) order, named in the output; default: refuse the panel")
    p.add_argument("--steps", type=_positive, nargs="+", default=None, metavar="N",
                   help="the study's upstream step counts: added to the results' axes, so a row no result has "
                        "(all its runs failed) is shown as missing and can be the reference; default: the results' only")
    p.add_argument("--sizes", type=_positive, nargs="+", default=None, metavar="N",
                   help="the study's upstream data sizes (images, as the results record them), likewise")
    p.add_argument("--resamples", type=_non_negative, default=1000, metavar="B",
                   help="bootstrap replicates of the confidence intervals (grid.csv ci_low/ci_high, correlations); "
                        "0 turns intervals off (default: 1000)")
    p.add_argument("--bootstrap-seed", type=_non_negative, default=0, metavar="S",
                   help="seed of every bootstrap draw: the same results and seed give the same intervals (default: 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    order = [m.strip() for m in args.model_order.split(",") if m.strip()] if args.model_order else None
    try:
        out = rebuild_report(args.results_dir, args.out, model_order=order, fallback_reference=args.fallback_reference,
                             expected_steps=args.steps, expected_sizes=args.sizes, log_messages=False,
                             resamples=args.resamples, bootstrap_seed=args.bootstrap_seed)
    except (FileNotFoundError, NoResultsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for m in out.messages:
        print(m, file=sys.stderr)
    print(f"read {out.n_results} result file(s) from {out.results_dir} ({out.n_skipped} skipped)")
    for line in reference_summary(out.grid) + interval_summary(out):
        print(line)
    print(f"wrote {out.csv_path} ({len(out.grid.rows)} rows)")
    print(f"wrote {out.errors_csv_path}")
    print(f"wrote {out.correlations_csv_path}")
    for p in [*out.png_paths, *out.svg_paths]:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
