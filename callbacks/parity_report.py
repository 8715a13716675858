"""ParityReport: after an evaluation, our numbers beside imagenet-testbed's published ones."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from callbacks.ood_evaluation import OODEvaluation
from conversion.files import atomic_write_text
from results.parity import DEFAULT_TOLERANCE, compare, format_table, published_model, rows_csv


class ParityReport(L.Callback):
    """Prints the parity table (``results.parity``) when the run's ``OODEvaluation`` has
    evaluated, and writes it as ``parity.csv`` in the run folder.

    Contract: list it after ``OODEvaluation`` (it reads that callback's record of the same
    hook). ``model`` names the published model (``BiT-M-R50x1``, ``BiT-M-R101x3``); ``None``
    takes it from the backbone's timm name and says so when there is none to compare with.
    Rows more than ``tolerance`` points of top-1 away are flagged; nothing fails.
    """

    def __init__(self, model: str | None = None, tolerance: float = DEFAULT_TOLERANCE):
        self.model = model
        self.tolerance = float(tolerance)
        self.table: str | None = None

    def on_test_end(self, trainer, pl_module) -> None:
        self.report(trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.report(trainer, pl_module)

    def report(self, trainer, pl_module) -> str | None:
        log_dir = Path(trainer.log_dir or ".")  # a collective under DDP: asked on every rank
        records = [c.last_record for c in trainer.callbacks if isinstance(c, OODEvaluation) and c.last_record is not None]
        if not records:
            rank_zero_info("ParityReport: no OOD evaluation ran before it (list it after OODEvaluation); nothing to compare")
            return None
        record = records[-1]
        model = self.model or published_model(record.get("model"))
        if model is None:
            rank_zero_info(f"ParityReport: {record.get('model')!r} has no published numbers; set the callback's model to compare anyway")
            return None
        rows = compare(record, model)
        self.table = format_table(rows, model, self.tolerance)
        if trainer.is_global_zero:
            print(self.table, flush=True)
            atomic_write_text(log_dir / "parity.csv", rows_csv(rows, model))
        return self.table
