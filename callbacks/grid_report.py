"""Rebuild the study's Figure-3 grid after each run and show it in TensorBoard."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch import Callback
from PIL import Image
from lightning.pytorch.utilities import rank_zero_info

from results.report import NoResultsError, ReportOutput, interval_summary, rebuild_report, reference_summary


def log_report(experiment, report: ReportOutput, step: int) -> None:
    """Log a rebuilt report to a TensorBoard ``SummaryWriter`` at `step`.

    Images tab: ``grid/<stem>`` for every figure (``top_<model>``, ``bottom_<A>-vs-<B>``,
    ``errors_<model>``, ``lines_<model>``, ``correlations_<method>``): the PNG the report wrote,
    pixel for pixel (what ``add_figure`` would log, without drawing every figure a second time).
    Text tab: ``grid/<stem>/table`` (the heat-map's numbers as Markdown tables, reductions with
    their interval as ``12.3 [4.1, 20.0]``; the correlation matrices), ``grid/csv`` (grid.csv)
    and ``grid/notes`` (missing cells, missing references, skipped files, rows without an interval).
    """
    for path in report.png_paths:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))  # (H, W, 3) uint8
        experiment.add_image(f"grid/{path.stem}", pixels, global_step=step, dataformats="HWC")
    for name, table in report.tables.items():
        experiment.add_text(f"grid/{name}/table", table, global_step=step)
    # four-space indent: Markdown shows the CSV verbatim instead of reflowing it
    csv_text = Path(report.csv_path).read_text()
    experiment.add_text("grid/csv", "    " + csv_text.replace("\n", "\n    "), global_step=step)
    notes = report.messages or ["every cell of the grid has a result"]
    experiment.add_text("grid/notes", "\n".join(f"- {m}" for m in notes), global_step=step)
    experiment.flush()


class GridReport(Callback):
    """After ``fit``/``test`` (and after :class:`OODEvaluation`, listed before it), rebuilds the
    grid from every result file in ``results_dir``.

    Writes ``<out_dir>/grid.csv``, ``errors.csv`` and every figure as PNG and SVG (see
    `results.report.rebuild_report`), and logs them to the trainer's TensorBoard logger (see
    `log_report`: Images tab ``grid/<figure>``, Text tab ``grid/<figure>/table``,
    ``grid/csv``, ``grid/notes``). ``model_order`` (smallest first) orders the bottom panels
    when the results carry no parameter count. ``fallback_reference``: build a top panel whose
    reference cell has no result against the next cell with one (named in the figure, the CSV
    and the notes) instead of leaving it empty (`results.grid.build_grid`). ``steps`` /
    ``data_sizes``: the study's upstream step counts and data sizes (as the result files record
    them), added to the results' axes so that a row or column no result has yet (every run of the
    fewest steps failed, say) is shown as missing and stays the reference; without them the axes
    are the results' alone. A study sets all three from its file (study/overrides.py).
    ``resamples`` (0: none) and ``bootstrap_seed``: the bootstrap of the confidence intervals and
    of the correlations' intervals (`results.bootstrap`, `results.correlations`). The
    reference cell each top panel used is printed after every rebuild. Runs on rank zero only and
    performs no collective call: it reads and writes files.
    """

    def __init__(self, results_dir: str = "runs/results", out_dir: str = "runs/grid", model_order: list[str] | None = None,
                 fallback_reference: bool = False, steps: list[int] | None = None, data_sizes: list[int] | None = None,
                 resamples: int = 1000, bootstrap_seed: int = 0):
        self.results_dir = Path(results_dir)
        self.out_dir = Path(out_dir)
        self.model_order = model_order
        self.fallback_reference = fallback_reference
        self.steps = steps
        self.data_sizes = data_sizes
        self.resamples = resamples
        self.bootstrap_seed = bootstrap_seed

    def on_fit_end(self, trainer, pl_module) -> None:
        self.rebuild(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self.rebuild(trainer)

    def rebuild(self, trainer) -> ReportOutput | None:
        if not trainer.is_global_zero or not self.results_dir.is_dir():
            return None
        try:
            report = rebuild_report(self.results_dir, self.out_dir, model_order=self.model_order,
                                    fallback_reference=self.fallback_reference, expected_steps=self.steps,
                                    expected_sizes=self.data_sizes, log_messages=False, resamples=self.resamples,
                                    bootstrap_seed=self.bootstrap_seed)
        except NoResultsError as err:  # e.g. a run that is not a study cell: nothing to draw yet
            rank_zero_info(f"grid: {err}")
            return None
        for message in [*report.messages, *reference_summary(report.grid), *interval_summary(report)]:
            rank_zero_info(f"grid: {message}")
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_figure"):
            log_report(experiment, report, trainer.global_step)
        return report
