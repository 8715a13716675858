"""Write synthetic images in the ImageNet-21k and ImageNet-1k release layouts.

Writers are idempotent and atomic: images go to a sibling temp folder
(`<root>.tmp`), a `.complete` JSON marker holding the writer's arguments is
written last, and the temp folder is renamed to `root` only then. A killed run
leaves at most a stale `<root>.tmp`, which the next call deletes and redoes.
Concurrent writers to the same root are not supported (call from one rank).

Each image is drawn from its own generator, seeded by (seed, layout, split,
class position, image number), so an image's pixels do not depend on how many
other images are written or in which order (or by which worker process).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from synthetic.generator import GENERATOR_VERSION, NATURAL, ClassSpec, class_specs, render

MARKER = ".complete"
JPEG_QUALITY = 90
# Below this many images a worker pool costs more to start than it saves.
_POOL_MIN_IMAGES = 4000
_POOL_PROCESSES = 2

# Stream keys keep the layouts' and splits' draws independent for one seed.
_UPSTREAM, _DOWNSTREAM_TRAIN, _DOWNSTREAM_VAL, _VAL_NUMBERING = 21, 1, 2, 3


def _timm_info(name: str) -> list[str]:
    text = (resources.files("timm.data") / "_info" / name).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def upstream_wnids(n: int) -> list[str]:
    """`n` real ImageNet-21k wnids that are not ImageNet-1k classes.

    Candidates are timm's `imagenet21k_goog_synsets.txt` minus its
    `imagenet_synsets.txt`, in a fixed seeded shuffle, so the choice spreads
    over the whole hierarchy and `upstream_wnids(m) == upstream_wnids(n)[:m]`
    for m <= n. Raises ValueError if `n` exceeds the candidates (~20,800).
    """
    in_1k = set(_timm_info("imagenet_synsets.txt"))
    candidates = [w for w in dict.fromkeys(_timm_info("imagenet21k_goog_synsets.txt")) if w not in in_1k]
    if not 0 <= n <= len(candidates):
        raise ValueError(f"n={n} outside 0..{len(candidates)}")
    order = np.random.default_rng(21_841).permutation(len(candidates))
    return [candidates[i] for i in order[:n]]


# --------------------------------------------------------------------------- writing


def _write_images(jobs: list[tuple[str, ClassSpec, tuple[int, ...], int]]) -> None:
    """jobs: (path, spec, seed key, size); each image from its own generator."""
    for path, spec, key, size in jobs:
        render(spec, np.random.default_rng(key), size, NATURAL).save(path, "JPEG", quality=JPEG_QUALITY)


def _run(jobs: list[tuple[str, ClassSpec, tuple[int, ...], int]]) -> None:
    if len(jobs) < _POOL_MIN_IMAGES or (os.cpu_count() or 1) < 2:
        _write_images(jobs)
        return
    # Interleaved chunks balance the classes' costs across workers. "spawn":
    # the caller may hold threads (torch) that make fork unsafe.
    chunks = [jobs[i::64] for i in range(64)]
    with multiprocessing.get_context("spawn").Pool(_POOL_PROCESSES) as pool:
        pool.map(_write_images, chunks, chunksize=1)


def _write_atomically(root: Path, params: dict[str, Any], plan) -> Path:
    """Write a folder with `plan(tmp) -> jobs` unless `root` already holds it."""
    root = Path(root)
    marker = root / MARKER
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found == params:
            return root
        raise FileExistsError(
            f"{root} holds a synthetic folder written with other arguments "
            f"({ {k: v for k, v in found.items() if found.get(k) != params.get(k) and k != 'wnids'} }"
            f"{', other wnids' if found.get('wnids') != params['wnids'] else ''}); delete it or pick another root"
        )
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root} exists, is not empty and has no {MARKER} marker; refusing to overwrite")
    tmp = root.with_name(root.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a killed run
    tmp.mkdir(parents=True)
    _run(plan(tmp))
    # Last file written: its presence certifies every image before it.
    (tmp / MARKER).write_text(json.dumps(params, indent=1))
    if root.exists():
        root.rmdir()
    os.replace(tmp, root)
    return root


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def write_imagenet21k_folder(
    root: Path, wnids: Sequence[str], images_per_class: int, seed: int, size: int = 64
) -> Path:
    """Write `root/<wnid>/<wnid>_<n>.JPEG` for n = 0..images_per_class-1.

    Images are `size` x `size` JPEGs (quality 90) of the "upstream" family's
    classes (`class_specs(wnids, "upstream")`) under the NATURAL shift. Returns
    `root`. If `root` is already complete with the same arguments nothing is
    written; with other arguments, or if `root` is a non-empty folder without
    a marker, raises FileExistsError.
    """
    _check_counts(images_per_class=images_per_class)
    wnids = list(wnids)
    specs = class_specs(wnids, "upstream")
    params = {
        "layout": "imagenet21k", "wnids": wnids, "images_per_class": images_per_class,
        "seed": seed, "size": size, "generator_version": GENERATOR_VERSION,
        "n_images": len(wnids) * images_per_class,
    }

    def plan(tmp: Path) -> list:
        jobs = []
        for k, wnid in enumerate(wnids):
            (tmp / wnid).mkdir()
            jobs += [
                (str(tmp / wnid / f"{wnid}_{n}.JPEG"), specs[wnid], (seed, _UPSTREAM, k, n), size)
                for n in range(images_per_class)
            ]
        return jobs

    return _write_atomically(Path(root), params, plan)


def write_imagenet1k_folders(
    root: Path, wnids: Sequence[str], train_per_class: int, val_per_class: int, seed: int, size: int = 64
) -> Path:
    """Write the ImageNet-1k layout under `root`.

    - `root/train/<wnid>/<wnid>_<n>.JPEG`, n = 0..train_per_class-1;
    - `root/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG`: the running numbers
      1..len(wnids)*val_per_class are dealt to the val images in a seeded
      shuffle, as in the real release where the number says nothing about
      the class (labels come from the folder).

    Classes are the "downstream" family (`class_specs(wnids, "downstream")`),
    NATURAL shift, JPEG quality 90; train and val are independent draws.
    Returns `root`; idempotent and atomic as `write_imagenet21k_folder`.
    """
    _check_counts(train_per_class=train_per_class, val_per_class=val_per_class)
    wnids = list(wnids)
    specs = class_specs(wnids, "downstream")
    params = {
        "layout": "imagenet1k", "wnids": wnids, "train_per_class": train_per_class,
        "val_per_class": val_per_class, "seed": seed, "size": size,
        "generator_version": GENERATOR_VERSION,
        "n_images": len(wnids) * (train_per_class + val_per_class),
    }

    def plan(tmp: Path) -> list:
        numbers = 1 + np.random.default_rng((seed, _VAL_NUMBERING)).permutation(len(wnids) * val_per_class)
        jobs = []
        (tmp / "train").mkdir()
        (tmp / "val").mkdir()
        for k, wnid in enumerate(wnids):
            (tmp / "train" / wnid).mkdir()
            (tmp / "val" / wnid).mkdir()
            jobs += [
                (str(tmp / "train" / wnid / f"{wnid}_{n}.JPEG"), specs[wnid], (seed, _DOWNSTREAM_TRAIN, k, n), size)
                for n in range(train_per_class)
            ]
            jobs += [
                (
                    str(tmp / "val" / wnid / f"ILSVRC2012_val_{numbers[k * val_per_class + n]:08d}.JPEG"),
                    specs[wnid], (seed, _DOWNSTREAM_VAL, k, n), size,
                )
                for n in range(val_per_class)
            ]
        return jobs

    return _write_atomically(Path(root), params, plan)
