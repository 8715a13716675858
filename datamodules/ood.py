"""The OOD benchmark suite: release folders → cached betons → evaluation sets.

Each configured benchmark is read from its release folder as it unpacks (see
``ood/``), converted once to a beton under the cache folder (with the
per-image metadata its scoring needs), and served as sharded sequential loaders.

The releases are scanned (layout, metadata, counts; no image is decoded) when a run
starts, in the DataModules' ``setup``, so a release in the wrong place or a partial
download is refused with one ``InputError`` line before any training step; the index is
kept and the conversion at the end of the run reuses it.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
from PIL import Image

from datamodules.base import distributed_context, loader_device
from conversion.beton import BetonSettings, read_manifest, write_beton
from ood import Benchmark, BenchmarkIndex, get_benchmark
from ood.base import list_dirs
from conversion.errors import InputError
from datamodules.ffcv_loaders import eval_loader
from datamodules.pipelines import eval_pipelines

LAYOUTS_DOC = "docs/benchmarks-layouts.md"
# The stages whose run ends in an OOD evaluation (callbacks.ood_evaluation: on_fit_end, on_test_end):
# setup scans the releases for these, so a broken release stops the run before compute is spent.
CHECKED_STAGES = ("fit", "test")
PREPROCESSING = ("ffcv", "testbed")


def write_benchmark_beton(beton: Path, index: BenchmarkIndex, bench: Benchmark, preprocessing: str, resolution: int,
                          storage: BetonSettings, source: str, extra: dict) -> dict:
    """One benchmark's cached beton (run in a spawned process by ``OODSuite.prepare``)."""
    preprocess = bench.preprocess if preprocessing == "ffcv" else partial(_squash_bilinear, bench, resolution)
    return write_beton(beton, index.paths, index.labels, classes=[], settings=storage, source=source, meta=index.meta,
                       preprocess=preprocess, extra=extra,
                       on_corrupt="abort",  # a benchmark with a missing image would be scored on a different set
                       overwrite=True)  # a cache: a finished file of the same name holds the same rows


def in_fresh_process(fn, **kwargs):
    """``fn(**kwargs)`` in a spawned process (nothing of this one's threads or locks inherited)."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, **kwargs).result()


def _finished(beton: Path) -> bool:
    """A finished conversion of this name (its manifest present, its size the recorded one)."""
    try:
        read_manifest(beton)
    except (OSError, ValueError):
        return False
    return True


def _squash_bilinear(bench: Benchmark, resolution: int, image: Image.Image) -> Image.Image:
    """imagenet-testbed's BiT transform at write time: the benchmark's own step, then
    ``Resize((resolution, resolution))`` with PIL's bilinear filter (torchvision 0.8's default)."""
    return bench.preprocess(image).convert("RGB").resize((resolution, resolution), Image.BILINEAR)


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

    ``check()`` scans every release (file reads only: no collective, so every DDP rank may
    call it) and refuses a missing, misplaced or partial one with one ``InputError`` line
    naming the benchmark, the folder, what is wrong and the fix. Each release is scanned
    once per suite; ``prepare`` and ``evaluation_sets`` reuse the index.

    Args:
        root: folder holding the releases; benchmark ``b`` is read from ``root/<b.release_folder>``.
        names: registry names, evaluated in this order.
        class_list: the model's outputs as ImageNet wnids, in output order.
        resolution: eval side (squash resize, as BiT evaluates).
        options: per-benchmark constructor keyword arguments.
        cache: folder for the benchmark betons (default ``<root>/.betons``). Each cached beton is
            named by what it holds (the scanned rows and labels, the class list, the storage and
            preprocessing), so runs with other classes, options or resolutions never read each
            other's betons, and a rerun reuses its own.
        preprocessing: where the squash to ``resolution`` happens.
            ``"ffcv"`` (default): images are stored with the longer side capped at
            ``max(256, resolution)`` and squashed by FFCV's decoder at load time (OpenCV's area
            interpolation). ``"testbed"``: as imagenet-testbed preprocesses BiT models, each image
            (after the benchmark's own step, e.g. ObjectNet's border crop) is squashed to
            ``resolution`` x ``resolution`` with PIL's bilinear filter when the beton is written,
            so FFCV's load-time resize is the identity. ``write_mode`` ``"raw"`` stores those
            pixels exactly (``resolution``² x 3 bytes an image); ``"jpg"`` (default) re-encodes
            them at ``jpeg_quality``.
    """

    def __init__(self, root: str | Path | None, names: list[str], class_list: list[str], resolution: int,
                 options: dict[str, dict] | None = None, cache: str | Path | None = None,
                 preprocessing: str = "ffcv", write_mode: str = "jpg", jpeg_quality: int = 90):
        if root is None:
            raise InputError("benchmarks are configured but data.ood_root is not set; point it at the folder holding the releases")
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"OOD root {self.root} (data.ood_root) does not exist; download the benchmarks there (or run `make quickstart` for the generated ones)")
        options = options or {}
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise InputError(f"benchmark_options given for {unknown}, which are not in benchmarks={names}")
        self.benchmarks = {name: _build_benchmark(name, options.get(name, {})) for name in names}
        self.class_list = list(class_list)
        self.resolution = resolution
        if preprocessing not in PREPROCESSING:
            raise InputError(f"OOD preprocessing {preprocessing!r} unknown; choose one of {', '.join(PREPROCESSING)}")
        if write_mode not in ("jpg", "raw"):
            raise InputError(f"OOD write mode {write_mode!r} unknown; choose jpg or raw")
        self.preprocessing = preprocessing
        cap = resolution if preprocessing == "testbed" else max(256, resolution)
        self.storage = BetonSettings(max_resolution=cap, jpeg_quality=int(jpeg_quality), write_mode=write_mode)
        self.cache = Path(cache) if cache is not None else self.root / ".betons"
        self._indexes: dict[str, BenchmarkIndex] = {}
        self._prepared: dict[str, tuple] = {}

    def release_path(self, name: str) -> Path:
        return self.root / self.benchmarks[name].release_folder

    def check(self) -> None:
        """Scan every release not scanned yet; raise one ``InputError`` if any is refused.

        The message is the first refusal, followed by the names of the other refused
        benchmarks, so one start-up reports every release that needs fixing.
        """
        refusals = []
        for name in self.benchmarks:
            try:
                self.scan(name)
            except InputError as err:
                refusals.append((name, err))
        if refusals:
            first = refusals[0][1]
            others = ", ".join(name for name, _ in refusals[1:])
            raise InputError(f"{first} (also refused: {others})" if others else str(first)) from first

    def scan(self, name: str) -> BenchmarkIndex:
        """The release's index (layout, metadata and counts read; no image decoded), once per suite.

        Raises ``InputError``: one line naming the benchmark and the folder, saying what is
        wrong (missing, unpacked a level too deep or too shallow, partial, malformed
        metadata) and how to fix it.
        """
        if name not in self._indexes:
            self._indexes[name] = self._scan(name)
        return self._indexes[name]

    def _scan(self, name: str) -> BenchmarkIndex:
        bench, path = self.benchmarks[name], self.release_path(name)
        try:
            return bench.scan(path, self.class_list)
        except (ValueError, OSError, KeyError, IndexError, TypeError) as err:
            # A misplaced release also fails inside scan, with a message about its symptom
            # ("found 0 images", "metadata file missing"): name the cause instead when there is one.
            raise InputError(misplaced_release(self.root, bench) or _refusal(bench, path, err)) from err

    def prepare(self, name: str) -> tuple[Any, Path]:
        """The scanned index and its beton, converted once per process (and once on disk).

        A missing beton is written in a fresh (spawned) process: FFCV's writer forks its
        workers, and a fork of this process, whose loader and torch threads may hold locks
        (an evaluation at the end of a run has them all), can deadlock in the child.
        """
        if name not in self._prepared:
            bench = self.benchmarks[name]
            index = self.scan(name)
            beton = self.cache / f"{name}-{self._cache_key(name, index)}.beton"
            if not _finished(beton):
                job = dict(beton=beton, index=index, bench=bench, preprocessing=self.preprocessing, resolution=self.resolution,
                           storage=self.storage, source=str(self.release_path(name).resolve()),
                           extra={"benchmark": name, "class_list": self.class_list, "preprocessing": self.preprocessing,
                                  "resolution": self.resolution, "settings": bench.describe()})
                in_fresh_process(write_benchmark_beton, **job)
            self._prepared[name] = (index, beton)
        return self._prepared[name]

    def _cache_key(self, name: str, index: BenchmarkIndex) -> str:
        """What a cached beton holds, hashed: rows (paths, labels, per-image metadata), the class
        list, the benchmark's settings, the storage and the preprocessing."""
        digest = hashlib.sha256()
        what = {"benchmark": name, "classes": self.class_list, "preprocessing": self.preprocessing,
                "resolution": self.resolution if self.preprocessing == "testbed" else None,
                "storage": asdict(self.storage), "release": str(self.release_path(name).resolve()),
                "settings": {k: v for k, v in self.benchmarks[name].describe().items() if k != "clean_error"}}
        digest.update(json.dumps(what, sort_keys=True, default=str).encode())
        digest.update("\0".join(str(p) for p in index.paths).encode())
        digest.update(np.ascontiguousarray(index.labels, dtype=np.int64).tobytes())
        for key in sorted(index.meta):
            digest.update(key.encode() + np.ascontiguousarray(index.meta[key], dtype=np.int64).tobytes())
        return digest.hexdigest()[:16]


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


def _build_benchmark(name: str, options: dict) -> Benchmark:
    """``get_benchmark`` with a bad name or option refused as an ``InputError`` (a config mistake)."""
    try:
        return get_benchmark(name, **options)
    except ValueError as err:  # an unknown name or a bad option value: the message names both
        raise InputError(_one_line(err)) from err
    except TypeError as err:  # an option the benchmark does not take
        raise InputError(f"{name}: benchmark_options {options} are not all options of this benchmark ({_one_line(err)})") from err


def misplaced_release(root: Path, bench: Benchmark) -> str | None:
    """Why ``root/<bench.release_folder>`` does not hold the release, or None if it looks like it does.

    Reads directory entries only. Recognises a missing folder, a release unpacked one level
    too deep (the folder holds one sub-folder that looks like the release) or too shallow
    (an ancestor of the folder, or the folder's trailing part directly under ``root``,
    looks like the release), and a folder holding something else. A release that looks
    right (even a partial one) is None: ``scan``'s own message then says what is missing.
    """
    path = root / bench.release_folder
    expected = f"expected {path}/{bench.layout}; see {LAYOUTS_DOC}"
    if path.exists() and not path.is_dir():
        return f"{bench.name}: {path} is a file, not the release folder; unpack the release there ({expected})"
    if path.is_dir():
        if bench.looks_like_release(path):
            return None
        inner = [d for d in list_dirs(path) if bench.looks_like_release(d)]
        if len(inner) == 1:
            return (f"{bench.name}: the release in {path} is unpacked one level too deep, in {inner[0]}; "
                    f"move the contents of {inner[0]} up into {path} ({expected})")
        return f"{bench.name}: {path} does not hold the {bench.name} release; unpack the release there ({expected})"
    for shallow in _shallower(root, bench.release_folder):
        if bench.looks_like_release(shallow):
            move = f"move {shallow} to {path}" if shallow.name == path.name else f"move the release's files from {shallow} into {path}"
            return (f"{bench.name}: release folder {path} does not exist, but {shallow} holds the release "
                    f"(unpacked too shallow); {move} ({expected})")
    return f"{bench.name}: release folder {path} does not exist; download the release and unpack it there ({expected})"


def _shallower(root: Path, release_folder: str) -> list[Path]:
    """Where a release unpacked too shallow lands: the ancestors of its folder up to ``root``
    (a/b → a, root) and its trailing parts directly under ``root`` (a/b → root/b)."""
    parts = Path(release_folder).parts
    ancestors = [root.joinpath(*parts[:i]) for i in range(len(parts) - 1, -1, -1)]
    trailing = [root.joinpath(*parts[i:]) for i in range(1, len(parts))]
    return trailing + ancestors


def _refusal(bench: Benchmark, path: Path, err: BaseException) -> str:
    """One line from a scan's exception: the benchmark's own message when it wrote one
    (they start with the benchmark's name), else the exception with the folder and a hint."""
    message = _one_line(err)
    if isinstance(err, (ValueError, OSError)) and message.startswith(f"{bench.name}:"):
        return message
    return (f"{bench.name}: could not read the release in {path} ({type(err).__name__}: {message}); "
            f"is it an intact copy of the release? re-download it ({LAYOUTS_DOC})")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).splitlines()).strip()


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
        val_beton: the clean val set (ImageNet-1k val, ``python -m conversion imagenet1k-val``).
        ood_root / benchmarks / benchmark_options / ood_cache: as in ``DownstreamDataModule``.
        resolution: eval side (squash resize, as BiT evaluates).
        class_list: the model's outputs as wnids in output order (default: the val beton's classes).
        allow_upsampling: evaluate even though the val beton's storage cap is below ``resolution``
            (refused by default, see ``DownstreamDataModule``).
        preprocessing / write_mode / jpeg_quality: how the benchmark betons are made (``OODSuite``);
            ``preprocessing: testbed`` reproduces imagenet-testbed's BiT transform
            (configs/bit/parity_*.yaml, docs/ood-parity.md). The clean val set keeps its beton.
    """

    def __init__(self, val_beton: str, ood_root: str, benchmarks: list[str], resolution: int = 384, batch_size: int = 256,
                 class_list: list[str] | None = None, benchmark_options: dict[str, dict] | None = None,
                 ood_cache: str | None = None, num_workers: int = 2, allow_upsampling: bool = False,
                 preprocessing: str = "ffcv", write_mode: str = "jpg", jpeg_quality: int = 90):
        super().__init__()
        self.save_hyperparameters()
        from conversion.beton import check_storage_resolution, read_manifest

        self.val_beton = Path(val_beton)
        hint = "python -m conversion imagenet1k-val SRC OUT.beton"
        manifest = read_manifest(self.val_beton, hint)
        if not allow_upsampling:
            check_storage_resolution(self.val_beton, manifest, resolution, hint, "data.init_args.allow_upsampling")
        self.class_list = list(class_list) if class_list is not None else list(manifest["classes"])
        self.num_val_examples = int(manifest["num_images"])
        self.ood = OODSuite(ood_root, benchmarks, self.class_list, resolution, benchmark_options, ood_cache,
                            preprocessing, write_mode, jpeg_quality)

    # the CLI links data.num_train_examples into every model; there is no training set here
    num_train_examples = None

    def check_inputs(self, stage: str) -> None:
        """Scan every configured release before the run evaluates anything (``OODSuite.check``):
        a missing, misplaced or partial one raises ``InputError``. File reads only: every
        DDP rank scans, none waits for another. The CLI calls this before the trainer starts
        (nothing written yet); ``setup`` again (the scans are cached)."""
        if stage in CHECKED_STAGES:
            self.ood.check()

    def setup(self, stage: str) -> None:
        self.check_inputs(stage)

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
