"""Rebuild the study's Figure-3 grid after each run and show it in TensorBoard."""
from __future__ import annotations

from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_info

from study.report import NoResultsError, rebuild_report


class GridReport(Callback):
    """After ``fit``/``test`` (and after :class:`OODEvaluation`, listed before it), rebuilds the
    relative-reduction grid from every result file in ``results_dir``.

    Writes ``<out_dir>/grid.csv`` and one PNG per panel, and logs each panel to TensorBoard
    as ``grid/<panel>`` (Images tab) and the CSV as text ``grid/csv`` (Text tab). Runs on
    rank zero only and performs no collective call: it reads and writes files.
    """

    def __init__(self, results_dir: str = "runs/results", out_dir: str = "runs/grid"):
        self.results_dir = Path(results_dir)
        self.out_dir = Path(out_dir)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.rebuild(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self.rebuild(trainer)

    def rebuild(self, trainer):
        if not trainer.is_global_zero or not self.results_dir.is_dir():
            return None
        try:
            report = rebuild_report(self.results_dir, self.out_dir, log_messages=False)
        except NoResultsError as err:  # e.g. a run that is not a study cell: nothing to draw yet
            rank_zero_info(f"grid: {err}")
            return None
        for message in report.messages:
            rank_zero_info(f"grid: {message}")
        experiment = getattr(trainer.logger, "experiment", None)
        if experiment is not None and hasattr(experiment, "add_figure"):
            for name, fig in report.figures.items():
                experiment.add_figure(f"grid/{name}", fig, global_step=trainer.global_step, close=True)
            if report.csv_path is not None and Path(report.csv_path).exists():
                table = Path(report.csv_path).read_text()
                experiment.add_text("grid/csv", "    " + table.replace("\n", "\n    "), global_step=trainer.global_step)
            experiment.flush()
        return report
