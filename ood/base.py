"""The benchmark contract: read a release folder, score a batch, summarise a run.

Order of calls (one benchmark object serves one model's class list at a time)::

    bench = get_benchmark("imagenet_a", restrict=True)
    index = bench.scan(root, class_list)        # reads the release, binds the class mapping
    correct, conf = bench.outcomes(logits, labels)   # per batch; needs scan() first
    results = bench.summarize(correct, conf, index)  # once, outcomes ordered by image index
    settings = bench.describe()                       # string/int settings for the result file

``scan`` is the only place a benchmark learns the model's classes: it stores the
wnid → output-index mapping (``bind``) together with whatever per-label tables
``outcomes`` needs. ``outcomes`` raises if called before ``scan``.

``class_list`` is the model's outputs as ImageNet-1k wnids in output order. A benchmark
maps its own classes to model outputs through wnids only; images whose class (or, for
mapped benchmarks, every mapped class) has no model output are excluded, counted in
``BenchmarkIndex.stats`` and logged. With a full 1k model nothing is excluded; the toy
study's handful of classes excludes most of every benchmark, by design.
"""
from __future__ import annotations

import abc
import json
import logging
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from PIL import Image

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
WNID_RE = re.compile(r"^n\d{8}$")


class IncompleteReleaseWarning(UserWarning):
    """A release folder has fewer images/sets than the benchmark's known size (strict=False)."""


@dataclass
class BenchmarkIndex:
    """What ``Benchmark.scan`` found.

    Attributes:
        paths: image files in a fixed order; row ``i`` of every array below is image ``i``.
        labels: (N,) int64; benchmark-specific meaning (a model output index for the
            single-label sets, an ObjectNet folder id, a video label-set id), always
            interpreted by the same benchmark's ``outcomes``.
        meta: per-image (N,) int64 arrays (ImageNet-C ``set_id``/``corruption``/``severity``,
            video ``pmset``/``is_anchor``).
        result_keys: the keys of ``summarize`` that are benchmark errors (the Figure-3 panels).
        stats: counts about the scan: ``found`` (images on disk that belong to the
            benchmark), ``kept``, ``excluded`` (no model output), ``excluded_classes``.
    """

    paths: list[Path]
    labels: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    result_keys: tuple[str, ...] = ()
    stats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        meta = {}
        for key, arr in self.meta.items():
            arr = np.asarray(arr, dtype=np.int64).reshape(-1)
            if len(arr) != len(self.paths):
                raise ValueError(f"meta[{key!r}] has {len(arr)} entries for {len(self.paths)} images")
            meta[key] = arr
        self.meta = meta

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class UnitOutcomes:
    """One result key's outcomes on its resampling units (for confidence intervals).

    ``correct[u, c]`` says whether unit ``u`` was scored right in column ``c``; the key's
    error is ``1 - mean over columns of (mean over the units valid in that column)``, exactly
    what ``summarize`` reports. Units are what a bootstrap resamples: images (one column),
    ImageNet-C's base images (one column per (corruption, severity) set), video anchors (one
    column: pm0 for the anchor, pm10 for its whole set). ``units`` names them, in row order,
    so that two runs' outcomes can be checked to be paired. ``valid`` is None when every
    entry counts (a complete release).
    """

    correct: np.ndarray  # bool (U, C)
    units: list[str]
    unit: str  # what a unit is: "image", "base image", "anchor"
    valid: np.ndarray | None = None  # bool (U, C)

    def __post_init__(self) -> None:
        self.correct = np.asarray(self.correct, dtype=bool)
        if self.correct.ndim == 1:
            self.correct = self.correct[:, None]
        if len(self.units) != self.correct.shape[0]:
            raise ValueError(f"{len(self.units)} unit names for {self.correct.shape[0]} rows")
        if self.valid is not None:
            self.valid = np.asarray(self.valid, dtype=bool).reshape(self.correct.shape)
            if self.valid.all():
                self.valid = None

    def error(self) -> float:
        """The key's error recomputed from the units (equal to ``summarize``'s)."""
        return outcome_error(self.correct, self.valid)


def outcome_error(correct: np.ndarray, valid: np.ndarray | None) -> float:
    """``1 - mean over columns of (mean over the valid units)``: a result key's error from its
    unit outcomes (``UnitOutcomes``, and the stored ones of ``results.outcomes``)."""
    if valid is None:
        return float(1.0 - correct.mean(axis=0).mean())
    per_column = (correct & valid).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    return float(1.0 - per_column[valid.any(axis=0)].mean())


def relative_name(path: Path, parts: int) -> str:
    """The last ``parts`` components of ``path`` joined by "/" (a unit's name, release-relative)."""
    return "/".join(Path(path).parts[-parts:])


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; hidden files ignored."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def list_dirs(folder: Path) -> list[Path]:
    """Sub-folders of ``folder`` sorted by name; hidden ones ignored."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_json(path: Path, benchmark: str) -> Any:
    """Load a metadata file, failing with one line that names the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{benchmark}: metadata file {path} is missing; the release is incomplete (re-download it)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{benchmark}: metadata file {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def require_file(path: Path, benchmark: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{benchmark}: metadata file {path} is missing; the release is incomplete (re-download it)")
    return path


def require_keys(obj: Any, keys: Sequence[str], path: Path, benchmark: str) -> None:
    """Refuse a metadata object (JSON dict, CSV header) that lacks ``keys``, naming the file;
    a bare ``KeyError`` deep in a scan names neither the file nor the benchmark."""
    missing = [k for k in keys if not (isinstance(obj, (dict, list, tuple)) and k in obj)]
    if missing:
        raise ValueError(f"{benchmark}: metadata file {path} lacks {', '.join(map(repr, missing))}; "
                         f"is it the release's file, intact? (re-download it)")


class Benchmark(abc.ABC):
    """Base class of every OOD benchmark (see the module docstring for the call order).

    Subclasses set ``name`` (registry name), ``result_keys``, ``release_folder`` (the
    release's top folder relative to the OOD root, as it unpacks), ``layout`` (what lies
    directly inside it, for messages) and ``landmarks`` (see ``looks_like_release``) and
    implement ``_scan``, ``outcomes`` and ``summarize``.

    Args:
        strict: refuse an incomplete release with a one-line ``ValueError`` (default);
            ``False`` warns (``IncompleteReleaseWarning`` + log) and evaluates what is there.
        expected_size: override the release's known image count (the toy study's generated
            sets are small by design). ``None`` checks the published sizes.
    """

    name: ClassVar[str]
    result_keys: ClassVar[tuple[str, ...]]
    release_folder: str
    layout: ClassVar[str]  # e.g. "<wnid>/*.jpg": what a message says belongs inside release_folder
    landmarks: ClassVar[tuple[str, ...]]  # glob patterns relative to the release folder (see looks_like_release)

    def __init__(self, *, strict: bool = True, expected_size: int | None = None):
        if expected_size is not None and int(expected_size) < 0:
            raise ValueError(f"{self.name}: expected_size must be >= 0, got {expected_size}")
        self.strict = bool(strict)
        self.expected_size = None if expected_size is None else int(expected_size)
        self.class_list: tuple[str, ...] | None = None
        self._out_index: dict[str, int] = {}
        self._stats: dict[str, int] = {}
        self._device_cache: dict[Any, Any] = {}

    # ------------------------------------------------------------------ public contract
    def scan(self, root: str | Path, class_list: Sequence[str], *, strict: bool | None = None) -> BenchmarkIndex:
        """Read the release at ``root`` (the folder named ``release_folder``) for a model
        whose outputs are ``class_list`` (wnids in output order); binds the mapping."""
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{self.name}: release folder {root} not found; download the release and unpack it there")
        self.bind(class_list)
        strict = self.strict if strict is None else bool(strict)
        index = self._scan(root, strict)
        self._stats = dict(index.stats)
        if index.stats.get("excluded", 0):
            log.warning("%s: %d of %d images excluded (%d benchmark classes have no output in the model's %d classes)",
                        self.name, index.stats["excluded"], index.stats.get("found", len(index) + index.stats["excluded"]),
                        index.stats.get("excluded_classes", 0), len(self.class_list))
        if len(index) == 0:
            raise ValueError(f"{self.name}: no image under {root} belongs to a class the model has ({len(self.class_list)} classes); nothing to evaluate")
        return index

    def looks_like_release(self, folder: str | Path) -> bool:
        """Whether ``folder`` holds this release's top level: any of ``landmarks`` matches.

        Reads a few directory entries, never the images. Used to explain a refusal (a
        release unpacked one level too deep or too shallow), never to accept a release:
        only ``scan`` decides that. A partial download still looks like the release.
        """
        folder = Path(folder)
        return folder.is_dir() and any(next(folder.glob(pattern), None) is not None for pattern in self.landmarks)

    def bind(self, class_list: Sequence[str]) -> None:
        """Store the model's class list (wnids in output order). Called by ``scan``."""
        classes = tuple(str(c) for c in class_list)
        if not classes:
            raise ValueError(f"{self.name}: class_list is empty")
        if len(set(classes)) != len(classes):
            raise ValueError(f"{self.name}: class_list has duplicate wnids")
        self.class_list = classes
        self._out_index = {w: i for i, w in enumerate(classes)}
        self._device_cache = {}

    @abc.abstractmethod
    def outcomes(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch: logits (B, C) over the model's outputs, labels (B,) from the index.
        Returns (correct: bool (B,), confidence: float (B,) = probability of the prediction)."""

    @abc.abstractmethod
    def summarize(self, correct: np.ndarray, confidence: np.ndarray, index: BenchmarkIndex) -> dict[str, float]:
        """All outcomes, ordered by image index → result keys (errors in [0, 1]) + diagnostics.
        (Calibration error is computed from ``confidence`` by the evaluation callback.)"""

    def unit_outcomes(self, correct: np.ndarray, index: BenchmarkIndex) -> dict[str, UnitOutcomes]:
        """Per result key, the outcomes on the units a bootstrap resamples (``UnitOutcomes``);
        ``correct`` as for ``summarize``. Default: one unit per image, named by its last two
        path components (``<class folder>/<file>``)."""
        correct = np.asarray(correct, dtype=bool)
        units = [relative_name(p, 2) for p in index.paths]
        return {key: UnitOutcomes(correct, units, "image") for key in index.result_keys}

    def describe(self) -> dict[str, Any]:
        """Settings and scan counts that are not float results (strings, ints) for the result file."""
        return {"benchmark": self.name, "release_folder": self.release_folder, "strict": self.strict,
                "expected_size": self.expected_size, **self._settings(), **self._stats}

    def preprocess(self, image: Image.Image) -> Image.Image:
        """Applied to each decoded image before it is written to the beton. Identity here."""
        return image

    # ------------------------------------------------------------------ helpers
    def _settings(self) -> dict[str, Any]:
        return {}

    @abc.abstractmethod
    def _scan(self, root: Path, strict: bool) -> BenchmarkIndex:
        """Read the release under ``root``; ``self.class_list`` is bound."""

    def _require_bound(self) -> None:
        if self.class_list is None:
            raise RuntimeError(f"{self.name}: call scan(root, class_list) before outcomes(); it binds the model's classes")

    def _incomplete(self, message: str, strict: bool) -> None:
        """A release is smaller than it should be: refuse (strict) or warn loudly."""
        if strict:
            raise ValueError(f"{message}; re-download or pass strict=False")
        warnings.warn(f"{message}; evaluating what is there (strict=False)", IncompleteReleaseWarning, stacklevel=3)
        log.warning("%s; evaluating what is there (strict=False)", message)

    def _check_count(self, what: str, expected: int | None, found: int, root: Path, strict: bool) -> None:
        if expected is not None and found != expected:
            self._incomplete(f"{self.name}: expected {expected} {what}, found {found} under {root}", strict)

    def _on_device(self, key: str, build, device) -> Any:
        """Cache a tensor built from numpy tables per device (outcomes runs every batch)."""
        ck = (key, str(device))
        if ck not in self._device_cache:
            self._device_cache[ck] = build().to(device)
        return self._device_cache[ck]


def masked_argmax(logits: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax and softmax confidence of ``logits`` (B, C) restricted to ``allowed`` (C,) bool."""
    masked = logits.float().masked_fill(~allowed, -math.inf)
    probs = torch.softmax(masked, dim=1)
    conf, pred = probs.max(dim=1)
    return pred, conf


def plain_argmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    probs = torch.softmax(logits.float(), dim=1)
    conf, pred = probs.max(dim=1)
    return pred, conf


class SingleLabelBenchmark(Benchmark):
    """A folder-per-class benchmark whose label is the model output index of the image's wnid."""

    result_key: ClassVar[str]

    def _index_from_folders(self, root: Path, folders: list[tuple[str, Path]], strict: bool,
                            expected_images: int | None) -> BenchmarkIndex:
        """``folders``: (wnid, folder) pairs. Keeps the wnids the model has."""
        paths, labels = [], []
        found = excluded = 0
        excluded_classes = 0
        for wnid, folder in folders:
            images = list_images(folder)
            found += len(images)
            if wnid not in self._out_index:
                excluded += len(images)
                excluded_classes += 1
                continue
            paths.extend(images)
            labels.extend([self._out_index[wnid]] * len(images))
        self._check_count("images", expected_images, found, root, strict)
        return BenchmarkIndex(paths, np.asarray(labels, dtype=np.int64), {}, self.result_keys,
                              {"found": found, "kept": len(paths), "excluded": excluded, "excluded_classes": excluded_classes})

    def outcomes(self, logits, labels):
        self._require_bound()
        pred, conf = plain_argmax(logits)
        return pred == labels.to(pred.device).long(), conf

    def summarize(self, correct, confidence, index):
        correct = np.asarray(correct, dtype=bool)
        _check_lengths(self.name, correct, confidence, index)
        key = self.result_key
        return {key: float(1.0 - correct.mean()), f"{key}/n_images": float(correct.size)}


def _check_lengths(name: str, correct: np.ndarray, confidence: np.ndarray, index: BenchmarkIndex) -> None:
    if len(correct) != len(index) or len(confidence) != len(index):
        raise ValueError(f"{name}: summarize got {len(correct)} outcomes / {len(confidence)} confidences for {len(index)} images")
