"""The OOD benchmark suite: release folders → cached betons → evaluation sets.

Each configured benchmark is read from its release folder as it unpacks (see
``datamodules/benchmarks/``), converted once to a beton under the cache folder (with the
per-image metadata its scoring needs), and served as sharded sequential loaders.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np

from datamodules.base import distributed_context, loader_device
from datamodules.beton import BetonSettings, write_beton
from datamodules.benchmarks import get_benchmark
from datamodules.ffcv_loaders import eval_loader
from datamodules.pipelines import eval_pipelines


@dataclass
class EvaluationSet:
    """One benchmark ready to evaluate: its scoring object, its scanned index and this rank's loader.

    ``loader`` yields ``(uint8 images, labels, row indices)``; ``benchmark.outcomes`` turns
    logits into per-example outcomes and ``benchmark.summarize`` turns all outcomes
    (ordered by row) into result keys → errors. ``size`` is the number of rows overall.
    """

    name: str
    benchmark: Any
    index: Any
    loader: Any
    size: int
    settings: dict = field(default_factory=dict)


class OODSuite:
    """The configured benchmarks of one run, bound to the model's class list.

    Args:
        root: folder holding the releases; benchmark ``b`` is read from ``root/<b.release_folder>``.
        names: registry names, evaluated in this order.
        class_list: the model's outputs as ImageNet wnids, in output order.
        resolution: eval side (squash resize, as BiT evaluates).
        options: per-benchmark constructor keyword arguments.
        cache: folder for the benchmark betons (default ``<root>/.betons``).
    """

    def __init__(self, root: str | Path | None, names: list[str], class_list: list[str], resolution: int,
                 options: dict[str, dict] | None = None, cache: str | Path | None = None):
        if root is None:
            raise ValueError("benchmarks are configured but data.ood_root is not set; point it at the folder holding the releases")
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"OOD root {self.root} does not exist; download the benchmarks there (or run `make quickstart` for the generated ones)")
        options = options or {}
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise ValueError(f"benchmark_options given for {unknown}, which are not in benchmarks={names}")
        self.benchmarks = {name: get_benchmark(name, **options.get(name, {})) for name in names}
        self.class_list = list(class_list)
        self.resolution = resolution
        self.cache = Path(cache) if cache is not None else self.root / ".betons"
        self._prepared: dict[str, tuple] = {}

    def release_path(self, name: str) -> Path:
        return self.root / self.benchmarks[name].release_folder

    def prepare(self, name: str) -> tuple[Any, Path]:
        """Scan the release and convert it to a beton once per process (and once on disk)."""
        if name not in self._prepared:
            bench = self.benchmarks[name]
            index = bench.scan(self.release_path(name), self.class_list)
            beton = self.cache / f"{name}.beton"
            write_beton(beton, index.paths, index.labels, classes=[], settings=BetonSettings(max_resolution=max(256, self.resolution)),
                        source=str(self.release_path(name).resolve()), meta=index.meta, preprocess=bench.preprocess,
                        extra={"benchmark": name, "class_list": self.class_list},
                        on_corrupt="abort",  # a benchmark with a missing image would be scored on a different set
                        overwrite=True)  # a cache: rebuilt when the release or the resolution changes
            self._prepared[name] = (index, beton)
        return self._prepared[name]

    def evaluation_sets(self, batch_size: int, num_workers: int, rank: int, world_size: int, device=None) -> list[EvaluationSet]:
        """This rank's loaders of every benchmark; ``device``: a CUDA device FFCV delivers batches to."""
        sets = []
        res = self.resolution
        for name, bench in self.benchmarks.items():
            index, beton = self.prepare(name)
            rows = np.arange(len(index.paths), dtype=np.uint32)
            loader = eval_loader(beton, rows, batch_size, lambda: eval_pipelines(res, device=device), f"eval:{res}:{device}",
                                 num_workers=num_workers, rank=rank, world_size=world_size)
            sets.append(EvaluationSet(name, bench, index, loader, len(rows), bench.describe()))
        return sets


@dataclass
class CleanSet:
    """A clean val set beside the suite: ``loader`` yields this rank's shard, ``size`` counts all rows."""

    loader: Any
    size: int


class OODDataModule(L.LightningDataModule):
    """The OOD suite plus a clean val set: evaluates a checkpoint or weight file without training.

    ``python train.py test --config configs/bit/evaluate_ood.yaml ...``: Lightning's test loop
    runs over ``val_beton`` (clean top-1, logged as ``val/top1``), then the OOD evaluation
    callback evaluates the suite and hands it the clean error (ImageNet-C's relative mCE).

    Args:
        val_beton: the clean val set (ImageNet-1k val, ``python -m datamodules.convert imagenet1k-val``).
        ood_root / benchmarks / benchmark_options / ood_cache: as in ``DownstreamDataModule``.
        resolution: eval side (squash resize, as BiT evaluates).
        class_list: the model's outputs as wnids in output order (default: the val beton's classes).
    """

    def __init__(self, val_beton: str, ood_root: str, benchmarks: list[str], resolution: int = 384, batch_size: int = 256,
                 class_list: list[str] | None = None, benchmark_options: dict[str, dict] | None = None,
                 ood_cache: str | None = None, num_workers: int = 2):
        super().__init__()
        self.save_hyperparameters()
        from datamodules.beton import read_manifest

        self.val_beton = Path(val_beton)
        manifest = read_manifest(self.val_beton, "python -m datamodules.convert imagenet1k-val SRC OUT.beton")
        self.class_list = list(class_list) if class_list is not None else list(manifest["classes"])
        self.num_val_examples = int(manifest["num_images"])
        self.ood = OODSuite(ood_root, benchmarks, self.class_list, resolution, benchmark_options, ood_cache)

    # the CLI links data.num_train_examples into every model; there is no training set here
    num_train_examples = None

    @property
    def num_classes(self) -> int:
        return len(self.class_list)

    def test_dataloader(self):
        rank, world = distributed_context(self.trainer)
        res, device = self.hparams.resolution, loader_device(self.trainer)
        return eval_loader(self.val_beton, np.arange(self.num_val_examples, dtype=np.uint32), self.hparams.batch_size,
                           lambda: eval_pipelines(res, device=device), f"eval:{res}:{device}", num_workers=self.hparams.num_workers,
                           rank=rank, world_size=world)

    val_dataloader = test_dataloader

    def clean_set(self) -> CleanSet:
        return CleanSet(self.test_dataloader(), self.num_val_examples)

    def ood_sets(self) -> list[EvaluationSet]:
        rank, world = distributed_context(self.trainer)
        return self.ood.evaluation_sets(self.hparams.batch_size, self.hparams.num_workers, rank, world, loader_device(self.trainer))
