"""Nested, seeded subsets of a beton, stored as index files beside it.

One seeded permutation of the beton's rows decides everything: the first ``holdout``
rows of it are the held-out validation split, and a training subset of size ``n`` is the
next ``n`` rows. Hence a larger subset always contains every index of a smaller one
(1M ⊂ 5M ⊂ full), whenever each was first requested, and no image is copied.

With ``balanced=True`` the permutation interleaves classes round-robin (each class's own
order seeded), so every prefix is as class-balanced as the data allows.

Index files: ``<beton stem>.subsets/seed=<seed>-<uniform|balanced>-holdout=<k>/{val.npy,
size=<n>.npy, manifest.json}``; the manifest records seed, sizes and per-class counts.
Indices are ``uint32`` sorted ascending (FFCV reads sequentially faster; order is the
loader's job): 13M of them cost 52 MB.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from conversion.files import atomic_write_json


def seeded_order(labels: np.ndarray, seed: int, balanced: bool = False) -> np.ndarray:
    """The permutation of ``range(len(labels))`` that defines holdout and every subset."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    if not balanced:
        return rng.permutation(n).astype(np.int64)
    labels = np.asarray(labels)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    class_rank = rng.permutation(len(classes))[inverse]  # a seeded order of the classes
    # rank of each item inside its own class, in a seeded order: group a shuffle by class
    shuffled = rng.permutation(n)
    by_class = shuffled[np.argsort(inverse[shuffled], kind="stable")]
    within = np.empty(n, dtype=np.int64)
    within[by_class] = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    # round-robin: every class's first item (in class order), then every class's second, ...
    return np.argsort(within * len(classes) + class_rank, kind="stable").astype(np.int64)


def split_indices(labels: np.ndarray, size: int | None, seed: int, holdout: int = 0, balanced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(train, val)`` row indices: ``val`` the first ``holdout`` of the order, ``train`` the next ``size`` (None: all the rest)."""
    n = len(labels)
    if holdout < 0 or holdout >= n:
        raise ValueError(f"holdout={holdout} must be in [0, {n}) for a dataset of {n} images")
    available = n - holdout
    if size is not None and not 0 < size <= available:
        raise ValueError(f"subset size {size} is not in [1, {available}] (dataset of {n} images, {holdout} held out)")
    order = seeded_order(labels, seed, balanced)
    stop = n if size is None else holdout + size
    return np.sort(order[holdout:stop]).astype(np.uint32), np.sort(order[:holdout]).astype(np.uint32)


def subset_dir(beton: Path, seed: int, holdout: int, balanced: bool) -> Path:
    beton = Path(beton)
    mode = "balanced" if balanced else "uniform"
    return beton.with_name(f"{beton.stem}.subsets") / f"seed={seed}-{mode}-holdout={holdout}"


_SUFFIXES = {"K": 1_000, "M": 1_000_000}


def parse_size(size: int | str | None) -> int | None:
    """A subset size from a config or CLI: ``1000000``, ``"1M"``, ``"500K"``; ``None``/``"full"`` = everything."""
    if size is None or isinstance(size, int):
        return size
    text = str(size).strip().upper().replace(",", "").replace("_", "")
    if text in ("FULL", "ALL", "NONE"):
        return None
    try:
        if text[-1:] in _SUFFIXES:
            return int(round(float(text[:-1]) * _SUFFIXES[text[-1]]))
        return int(text)
    except ValueError:
        raise ValueError(f"subset size {size!r} is not a number like 1000000, 1M, 500K or 'full'") from None


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def load_or_create_subset(beton: Path, labels: np.ndarray, classes: list[str], size: int | None, seed: int, holdout: int, balanced: bool) -> tuple[np.ndarray, np.ndarray]:
    """Index files for (train subset, holdout), created on first use, read afterwards.

    Safe when several ranks or cells create the same subset at once: every writer computes
    the same arrays and renames complete files into place. Each size has its own small
    manifest (``size=<n>.json``: seed, holdout, mode, per-class counts); ``manifest.json``
    gathers them.
    """
    folder = subset_dir(beton, seed, holdout, balanced)
    name = "full" if size is None else f"size={size}"
    train_file, val_file = folder / f"{name}.npy", folder / "val.npy"
    if train_file.exists() and val_file.exists():
        return np.load(train_file), np.load(val_file)
    train, val = split_indices(labels, size, seed, holdout, balanced)
    folder.mkdir(parents=True, exist_ok=True)
    _save_atomic(val_file, val)
    _save_atomic(train_file, train)
    counts = np.bincount(labels[train.astype(np.int64)], minlength=len(classes))
    atomic_write_json(folder / f"{name}.json", {
        "beton": Path(beton).name, "seed": seed, "balanced": balanced, "holdout": holdout, "size": int(len(train)),
        "per_class_counts": {c: int(k) for c, k in zip(classes, counts)},
    })
    atomic_write_json(folder / "manifest.json", {
        "beton": Path(beton).name, "seed": seed, "balanced": balanced, "holdout": holdout,
        "subsets": {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.name != "manifest.json"},
    })
    return train, val


def write_subsets(beton: Path, sizes: list[int | None], seed: int, holdout: int, balanced: bool) -> Path:
    """Create the index files of several sizes at once (``python -m conversion subsets``)."""
    from conversion.beton import beton_labels, read_manifest

    classes = read_manifest(beton)["classes"]
    labels = beton_labels(Path(beton))
    for size in sorted(sizes, key=lambda s: float("inf") if s is None else s):
        load_or_create_subset(beton, labels, classes, size, seed, holdout, balanced)
    return subset_dir(beton, seed, holdout, balanced)
