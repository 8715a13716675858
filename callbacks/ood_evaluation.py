"""Evaluate the OOD suite at the end of a run, log it, and write the run's result file."""
from __future__ import annotations

import json
import platform
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics.classification import BinaryCalibrationError

from callbacks.indexed_outcomes import IndexedOutcomes
from ood.base import plain_argmax
from conversion.errors import InputError
from results.outcomes import write_outcomes
from results.schema import ResultSchemaError, validate_record, write_result


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def _top1(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain top-1 over every output, with the softmax confidence of the prediction."""
    predicted, confidence = plain_argmax(logits)
    return predicted == labels, confidence


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "lightning", "timm", "torchmetrics", "ffcv", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


# A run's axes in the HParams tab: a study cell's identity (``record``), or the model alone.
HPARAM_AXES = ("model", "data_size", "steps", "seed", "resolution")


class OODEvaluation(Callback):
    """At the end of ``fit`` (and of ``test``), evaluates every benchmark the datamodule serves.

    Contract with the datamodule: ``trainer.datamodule.ood_sets()`` returns
    :class:`datamodules.ood.EvaluationSet` objects (name, benchmark, index, loader, size).
    Every rank evaluates its own shard; outcomes are gathered by example index (each
    example counted once) and every rank computes the same summary.

    Logged to the trainer's logger (rank zero): ``ood/<key>/error`` for each result key
    (``imagenet_a``, ..., ``imagenet_vid_w``), ``ood/<diagnostic>`` for the rest (e.g.
    ``ood/imagenet_vid/pm0``), and ``ood/<benchmark>/ece`` (15-bin expected calibration error
    of the top-1 confidence). If the datamodule also serves ``clean_set()`` (its clean val set),
    its error is recorded as ``clean/error`` and handed to benchmarks that use it (ImageNet-C's
    relative mCE).

    Written (rank zero): always ``<log_dir>/ood_result.json``, the whole record, so a plain
    ``train.py fit``/``test`` keeps its result in its run folder. ``record`` says what the run
    is (a study cell's axes, e.g. ``{"model", "data_size", "steps", "seed", "resolution",
    "run_name"}``) and is merged into the record; ``model`` falls back to the module's
    ``backbone_name``. With ``result_file`` set, the record is also written there, validated
    per ``docs/results-schema.md`` (``results.schema.write_result``); a record that could not
    pass is refused at setup (``InputError``), before anything is trained or evaluated. Nothing
    of a study travels through the module or its checkpoints: whoever runs the stage (``python
    -m study``) passes both.
    """

    def __init__(self, result_file: str | None = None, record: dict | None = None, ece_bins: int = 15):
        self.result_file = Path(result_file) if result_file is not None else None
        self.record = dict(record or {})
        self.ece_bins = ece_bins
        self.last_record: dict | None = None
        self._fit_started: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.result_file is None:
            return
        # the record as it will be written, with a stand-in for the errors measured at the end
        probe = {**self._identity(pl_module), "errors": {"probe": 0.0}}
        try:
            if self.result_file.suffix != ".json":
                raise ResultSchemaError("must name a .json file")
            validate_record(probe)
        except ResultSchemaError as err:
            raise InputError(f"OODEvaluation result_file={self.result_file}: {err} (record: {self.record}); "
                             f"give the run's identity with --trainer.callbacks.init_args.record, or drop result_file") from None

    def _identity(self, pl_module) -> dict:
        """What the run is: ``record``, with ``model`` defaulting to the module's backbone."""
        return {**self.record, "model": self.record.get("model") or getattr(pl_module, "backbone_name", type(pl_module).__name__)}

    def on_fit_start(self, trainer, pl_module) -> None:
        self._fit_started = time.time()

    def on_fit_end(self, trainer, pl_module) -> None:
        self.evaluate(trainer, pl_module)

    def on_test_end(self, trainer, pl_module) -> None:
        self.evaluate(trainer, pl_module)

    @torch.inference_mode()
    def evaluate(self, trainer, pl_module) -> dict | None:
        sets = trainer.datamodule.ood_sets() if hasattr(trainer.datamodule, "ood_sets") else []
        if not sets:
            return None
        was_training = pl_module.training
        pl_module.eval()
        errors, metrics, settings, timings, units = {}, {}, {}, {}, {}
        clean = trainer.datamodule.clean_set() if hasattr(trainer.datamodule, "clean_set") else None
        clean_error = None
        if clean is not None:
            # the clean error of the same model: ImageNet-C's relative mCE needs it
            started = time.time()
            _, correct, confidence = self._outcomes(trainer, pl_module, clean.loader, clean.size, "clean", _top1)
            clean_error = float(1.0 - correct.float().mean())
            metrics["clean/error"] = clean_error
            metrics["clean/ece"] = self._ece(correct, confidence)
            timings["clean"] = {"seconds": round(time.time() - started, 3), "images": int(clean.size)}
        for s in sets:
            started = time.time()
            if clean_error is not None and hasattr(s.benchmark, "set_clean_error"):
                s.benchmark.set_clean_error(clean_error)
            _, correct, confidence = self._outcomes(trainer, pl_module, s.loader, s.size, s.name, s.benchmark.outcomes)
            summary = s.benchmark.summarize(correct.cpu().numpy(), confidence.cpu().numpy(), s.index)
            units.update(s.benchmark.unit_outcomes(correct.cpu().numpy(), s.index))  # what a bootstrap resamples
            for key, value in summary.items():
                (errors if key in s.index.result_keys else metrics)[key] = float(value)
            metrics[f"{s.name}/ece"] = self._ece(correct, confidence)
            settings[s.name] = s.settings
            timings[s.name] = {"seconds": round(time.time() - started, 3), "images": int(s.size)}
        if was_training:
            pl_module.train()
        if self._fit_started is not None:
            timings["fit"] = {"seconds": round(time.time() - self._fit_started, 3)}
        record = self._record(trainer, pl_module, errors, metrics, settings, timings)
        log_dir = Path(trainer.log_dir or ".")  # a broadcast under DDP: every rank must ask
        config = log_dir / "config.yaml"  # LightningCLI's resolved config of this run
        if config.is_file() and "config" not in record:
            import yaml

            record["config"] = yaml.safe_load(config.read_text())
        self.last_record = record
        if trainer.is_global_zero:
            self._log(trainer, errors, metrics)
            self._log_hparams(trainer, record, errors)
            self._write(log_dir, record, units)
        return record

    @staticmethod
    def _outcomes(trainer, pl_module, loader, size: int, name: str, score) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(indices, correct, confidence)`` over the whole set, one row per example, on every rank."""
        outcomes = IndexedOutcomes().to(pl_module.device)
        seen = 0
        for images, labels, index in loader:
            # a no-op when the loader already delivers on the device (FFCV's ToDevice on GPUs)
            images, labels = images.to(pl_module.device, non_blocking=True), labels.to(pl_module.device)
            with trainer.precision_plugin.forward_context():
                logits = pl_module(images)
            correct, confidence = score(logits.float(), labels)
            outcomes.update(index.to(pl_module.device), correct, confidence)
            seen += len(labels)
        if seen == 0:  # this rank's shard is empty; it still joins the gather below
            empty = torch.zeros(0, device=pl_module.device)
            outcomes.update(empty.long(), empty.bool(), empty)
        index, correct, confidence = outcomes.compute()  # collective: called on every rank
        if len(index) != size:
            raise RuntimeError(f"{name}: evaluated {len(index)} distinct examples of {size}; the loader lost or invented examples")
        return index, correct, confidence

    def _ece(self, correct: torch.Tensor, confidence: torch.Tensor) -> float:
        return float(BinaryCalibrationError(n_bins=self.ece_bins, norm="l1")(confidence.cpu(), correct.long().cpu()))

    def _record(self, trainer, pl_module, errors, metrics, settings, timings) -> dict:
        hparams = {k: v for k, v in dict(pl_module.hparams).items() if isinstance(v, (str, int, float, bool, list, dict, type(None)))}
        if getattr(pl_module, "effective_schedule", None):
            hparams["effective_schedule"] = dict(pl_module.effective_schedule)  # what the HyperRule resolved to
        return {
            **self._identity(pl_module),
            "num_params": int(sum(p.numel() for p in pl_module.parameters())),  # orders models in the grid's bottom panels
            "errors": errors,
            "metrics": metrics,
            "benchmark_settings": settings,
            "downstream": {"module": type(pl_module).__name__, "hparams": hparams, "global_step": trainer.global_step},
            "versions": _versions(),
            "git_commit": _git_commit(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "timings": timings,
        }

    @staticmethod
    def _log(trainer, errors, metrics) -> None:
        scalars = {f"ood/{k}/error": v for k, v in errors.items()}
        scalars.update({f"ood/{k}": v for k, v in metrics.items() if "/" in k and k.count("/") <= 2})
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
            logger.save()

    @staticmethod
    def _log_hparams(trainer, record: dict, errors: dict) -> None:
        """TensorBoard's HParams tab: the run's axes (what ``record`` says it is: model, data
        size, steps, seed, resolution) as hparams and its OOD errors as the metrics, so every
        run of a study under one log root shows as one sortable table. The configs turn off
        Lightning's placeholder ``hp_metric`` (``default_hp_metric: false``)."""
        from lightning.pytorch.loggers import TensorBoardLogger

        axes = {k: record[k] for k in HPARAM_AXES if record.get(k) is not None}
        metrics = {f"hparams/{k}": float(v) for k, v in errors.items()}
        if "clean/error" in record.get("metrics", {}):
            metrics["hparams/clean"] = float(record["metrics"]["clean/error"])
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.log_hyperparams(axes, metrics=metrics)
                logger.save()

    def _write(self, log_dir: Path, record, units) -> None:
        """Each result file with its outcomes sidecar (written first: a result never names a missing one)."""
        from conversion.files import atomic_write_json

        path = log_dir / "ood_result.json"
        record["outcomes"] = write_outcomes(path, units)
        atomic_write_json(path, json.loads(json.dumps(record, default=str)))
        rank_zero_info(f"OOD result written to {path}")
        if self.result_file is not None:
            filed = {**record, "outcomes": write_outcomes(self.result_file, units)}
            rank_zero_info(f"OOD result written to {write_result(self.result_file, filed)}")
