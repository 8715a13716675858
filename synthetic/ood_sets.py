"""Write the miniature study's OOD suite: every benchmark in its release layout.

``write_ood_suite`` renders, for the study's real ImageNet wnids, one folder per benchmark
exactly as that benchmark's release unpacks (file names, folder nesting, metadata and
mapping files with the real names and JSON shapes, restricted to the classes used), so
that ``ood`` reads them with the same code as the real downloads. Each
set carries a distribution shift of its own kind:

- ImageNet-C: the downstream *validation* images, corrupted with corrupt-tta (a maintained
  port of Hendrycks' corruption code) at the 15 benchmark corruptions x 5 severities, after
  the release's protocol: resize, centre-crop, corrupt, save as JPEG (quality 85, as
  Hendrycks' ``make_imagenet_c.py``). The release resizes to 256 and crops 224; here the
  shorter side goes to ``round(size * 256 / 224)`` and the crop is ``size``, the same
  ratio at the toy resolution.
- ImageNet-V2: a fresh sample from ``V2_SHIFT`` (a mild re-collection) in numeric
  class-index folders, for all three variants (different seeds).
- ImageNet-A: ``HARD_SHIFT`` images that a cheap reference classifier gets wrong (ridge
  regression on 8x8 pixels, fit on the downstream *train* folder): adversarial filtering,
  as ImageNet-A filtered against a ResNet-50. Only the wnids among ImageNet-A's 200.
- ObjectNet: ``OBJECTNET_SHIFT`` (unusual pose, viewpoint, background), PNG, with a red
  border of ``OBJECTNET_BORDER_PX`` added around each image (the release's border, which
  the loader crops), plus one non-overlapping class folder, as the release has 200.
- ImageNet-Vid-Robust / YouTube-BB-Robust: ``render_sequence`` frame sets under
  ``VIDEO_SHIFT`` (scenes as hard as ImageNet-V2's); the anchor and
  its +-``neighbours`` frames, with the releases' metadata (pm-sets, labels, class maps,
  YTBB review annotations, a few neighbours marked dissimilar).

Class specs come from ``class_specs(wnids, "downstream")``, position by position: pass the
same ``wnids`` list, in the same order, as to the downstream folder writer.

Deterministic from ``seed``. Atomic: the suite is written to a temporary sibling folder and
renamed into place; a completion marker with the parameters makes a second call with the
same parameters a no-op.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from ood.class_lists import imagenet1k_wnids, imagenet_a_wnids, wnid_lemmas
from ood.imagenet_a import ImageNetA
from ood.imagenet_c import ImageNetC
from ood.make_imagenet_c import write_imagenet_c
from ood.imagenet_v2 import VARIANT_FOLDERS
from ood.objectnet import ObjectNet
from ood.video_robust import ImageNetVidRobust, YTBBRobust
from synthetic.generator import (GENERATOR_VERSION, HARD_SHIFT, OBJECTNET_SHIFT, V2_SHIFT, VIDEO_SHIFT,
                                 class_specs, render, render_sequence)

SUITE_FORMAT = "ood-scaling/ood-suite/v1"
MARKER = ".ood_suite_complete.json"
OBJECTNET_BORDER_PX = 2  # the loader's default crop (objectnet.py): the generated border is what it removes
IMAGE_QUALITY = 95

# ---------------------------------------------------------------- real class correspondences
# ObjectNet entries of objectnet_to_imagenet_1k.json used here: folder, ObjectNet label,
# ImageNet-1k indices in the order the entry lists them (label strings are timm's lemmas,
# the same strings as imagenet_to_label_2012_v2). The multi-class ones are quoted in
# published loaders; the single-class ones are the obvious same-name entries.
_OBJECTNET_ENTRIES: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("alarm_clock", "Alarm clock", (409, 530)),  # "analog clock; digital clock"
    ("banana", "Banana", (954,)),
    ("bicycle", "Bicycle", (671, 444)),  # "mountain bike, ...; bicycle-built-for-two, ..."
    ("candle", "Candle", (470,)),
    ("chair", "Chair", (423, 559, 765)),  # "barber chair; folding chair; rocking chair, rocker"
    ("lemon", "Lemon", (951,)),
    ("toaster", "Toaster", (859,)),
    ("umbrella", "Umbrella", (879,)),
)
_OBJECTNET_DISTRACTOR = ("air_freshener", "Air freshener")  # an ObjectNet class with no ImageNet entry

# ImageNet-Vid-Robust: class index, VID synset, name, ImageNet-1k indices (imagenet-testbed's
# rev_class_idx_map.json; VID synsets are the ILSVRC2015 VID class synsets).
_VID_CLASSES: tuple[tuple[int, str, str, tuple[int, ...]], ...] = (
    (0, "n02691156", "airplane", (404,)),
    (1, "n02419796", "antelope", (351, 352, 353)),
    (2, "n02131653", "bear", (294, 295, 296, 297)),
    (3, "n02834778", "bicycle", (444, 671)),
    (4, "n01503061", "bird", (*range(7, 25), *range(80, 101), *range(127, 147))),
    (5, "n02924116", "bus", (654, 779, 874)),
    (6, "n02958343", "car", (407, 436, 468, 511, 609, 627, 656, 661, 751, 817)),
    (7, "n02402425", "cattle", (345,)),
    (8, "n02084071", "dog", tuple(range(151, 269))),
    (9, "n02121808", "domestic_cat", (281, 282, 283, 284, 285)),
    (10, "n02503517", "elephant", (385, 386)),
    (11, "n02118333", "fox", (277, 278, 279, 280)),
    (12, "n02510455", "giant_panda", (388,)),
    (13, "n02342885", "hamster", (333,)),
    (14, "n02374451", "horse", (339,)),
    (15, "n02129165", "lion", (291,)),
    (16, "n01674464", "lizard", tuple(range(38, 49))),
    (17, "n02484322", "monkey", tuple(range(370, 383))),
    (18, "n03790512", "motorcycle", (665,)),
    (19, "n02324045", "rabbit", (330, 332)),
    (20, "n02509815", "red_panda", (387,)),
    (21, "n02411705", "sheep", (348,)),
    (22, "n01726692", "snake", tuple(range(52, 69))),
    (23, "n02355227", "squirrel", (335,)),
    (24, "n02129604", "tiger", (292,)),
    (25, "n04468005", "train", (466,)),
    (26, "n01662784", "turtle", (33, 34, 35, 36, 37)),
    (27, "n04530566", "watercraft", (403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 913, 914)),
    (28, "n02062744", "whale", (147, 148)),
    (29, "n02391049", "zebra", (340,)),
)

# YouTube-BB-Robust: class index, name, ImageNet-1k indices. The names/indices follow
# YT-BB's class list with 22 = none, 23 = car (the testbed swaps the CSV's 22/23); the
# ImageNet mapping file was not available: for the classes shared with ImageNet-Vid the
# Vid mapping is reused, the others are the obvious counterparts. Unverified.
_YTBB_CLASSES: tuple[tuple[int, str, tuple[int, ...]], ...] = (
    (1, "bird", _VID_CLASSES[4][3]),
    (2, "bicycle", (444, 671)),
    (3, "boat", _VID_CLASSES[27][3]),
    (4, "bus", (654, 779, 874)),
    (5, "bear", (294, 295, 296, 297)),
    (7, "cat", (281, 282, 283, 284, 285)),
    (10, "horse", (339,)),
    (11, "motorcycle", (665,)),
    (13, "airplane", (404,)),
    (15, "train", (466,)),
    (17, "zebra", (340,)),
    (19, "dog", tuple(range(151, 269))),
    (20, "elephant", (385, 386)),
    (21, "umbrella", (879,)),
    (23, "car", _VID_CLASSES[6][3]),
)
_YTBB_CSV_SWAP = {22: 23, 23: 22}


def _seed(seed: int, *keys: str | int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *[zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]])


def _hex(*parts: object, n: int = 40) -> str:
    return hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:n]


def _save(img: Image.Image, path: Path, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.convert("RGB").save(path, **kwargs)


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n")


def _class_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def _ytbb_plan(wnids: Sequence[str]) -> list[tuple[int, str, list[str]]]:
    """YTBB classes with at least one study class: (index, name, [study wnids])."""
    k1 = imagenet1k_wnids()
    return [(i, name, [k1[x] for x in idx if k1[x] in wnids]) for i, name, idx in _YTBB_CLASSES
            if any(k1[x] in wnids for x in idx)]


def _vid_plan(wnids: Sequence[str]) -> list[tuple[int, str, str, list[str]]]:
    k1 = imagenet1k_wnids()
    return [(i, vw, name, [k1[x] for x in idx if k1[x] in wnids]) for i, vw, name, idx in _VID_CLASSES
            if any(k1[x] in wnids for x in idx)]


def _objectnet_plan(wnids: Sequence[str]) -> list[tuple[str, str, list[str], list[str]]]:
    """(folder, label, [all mapped wnids], [mapped study wnids]) for entries touching the study."""
    k1 = imagenet1k_wnids()
    plan = []
    for folder, label, idx in _OBJECTNET_ENTRIES:
        mapped = [k1[x] for x in idx]
        used = [w for w in mapped if w in wnids]
        if used:
            plan.append((folder, label, mapped, used))
    return plan


def _ytbb_valid_offsets(neighbours: int) -> list[int]:
    """Offsets whose neighbour is annotated 'similar'; |offset| % 4 == 0 is marked dissimilar."""
    return [o for o in range(-neighbours, neighbours + 1) if o != 0 and abs(o) % 4 != 0]


def expected_sizes(wnids: Sequence[str], *, per_class: int = 4, c_per_class: int = 2, videos_per_class: int = 1,
                   neighbours: int = 10) -> dict[str, int]:
    """The ``expected_size`` each benchmark should be given for a suite written with these
    arguments (ImageNet-C: per set; video sets: frames)."""
    wnids = list(wnids)
    a = set(imagenet_a_wnids())
    return {
        "imagenet_a": per_class * sum(w in a for w in wnids),
        "imagenet_c": c_per_class * len(wnids),
        "imagenet_v2": per_class * len(wnids),
        "objectnet": per_class * len(_objectnet_plan(wnids)),
        "imagenet_vid_robust": videos_per_class * len(_vid_plan(wnids)) * (2 * neighbours + 1),
        "ytbb_robust": videos_per_class * len(_ytbb_plan(wnids)) * (1 + len(_ytbb_valid_offsets(neighbours))),
    }


def suite_paths(root: Path) -> dict[str, Path]:
    """Registry name → release folder under ``root`` (V2: the matched-frequency variant)."""
    root = Path(root)
    return {
        "imagenet_a": root / ImageNetA.release_folder,
        "imagenet_c": root / ImageNetC.release_folder,
        "imagenet_v2": root / VARIANT_FOLDERS["matched-frequency"],
        "objectnet": root / ObjectNet.release_folder,
        "imagenet_vid_robust": root / ImageNetVidRobust.release_folder,
        "ytbb_robust": root / YTBBRobust.release_folder,
    }


def write_ood_suite(root: Path, downstream_root: Path, wnids: Sequence[str], seed: int, size: int = 64,
                    per_class: int = 4, *, c_per_class: int = 2, videos_per_class: int = 1, neighbours: int = 10,
                    hard_pool: int = 24) -> dict[str, Path]:
    """Write every benchmark's release layout under ``root`` (which the suite owns).

    Args:
        root: the OOD root; benchmark ``b`` lands in ``root / b.release_folder``.
        downstream_root: the downstream ImageNet-1k-layout folder (``train/<wnid>/``,
            ``val/<wnid>/``) written from the same ``wnids``: ImageNet-C corrupts its val
            images, ImageNet-A's reference classifier is fit on its train images.
        wnids: the study's classes, same list and order as the downstream writer's.
        seed: everything is deterministic from it.
        size: image side in pixels (ObjectNet images get the border on top).
        per_class: images per class for ImageNet-A, each ImageNet-V2 variant and ObjectNet.
        c_per_class: downstream val images per class corrupted for ImageNet-C (first by name).
        videos_per_class: pm-sets per video class (ImageNet-Vid-Robust and YTBB-Robust).
        neighbours: frames on each side of an anchor (the releases use 10).
        hard_pool: HARD_SHIFT candidates rendered per class for ImageNet-A's filtering.

    Returns registry name → release folder (see ``suite_paths``); ``expected_sizes`` gives
    the matching ``expected_size`` per benchmark.
    """
    root, downstream_root = Path(root), Path(downstream_root)
    wnids = [str(w) for w in wnids]
    params = {"format": SUITE_FORMAT, "generator_version": GENERATOR_VERSION, "wnids": wnids, "seed": int(seed),
              "size": int(size), "per_class": int(per_class), "c_per_class": int(c_per_class),
              "videos_per_class": int(videos_per_class), "neighbours": int(neighbours), "hard_pool": int(hard_pool),
              "downstream_root": str(downstream_root.resolve())}
    marker = root / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == params:
                return suite_paths(root)
        except json.JSONDecodeError:
            pass
    known = set(imagenet1k_wnids())
    unknown = [w for w in wnids if w not in known]
    if unknown:
        raise ValueError(f"wnids {unknown[:5]} are not ImageNet-1k classes; the benchmarks map through ImageNet-1k")
    for split in ("train", "val"):
        missing = [w for w in wnids if not (downstream_root / split / w).is_dir()]
        if missing:
            raise FileNotFoundError(f"downstream folder {downstream_root / split} lacks classes {missing[:5]}; write the downstream set first")
    if per_class < 1 or c_per_class < 1 or videos_per_class < 1 or neighbours < 1:
        raise ValueError("per_class, c_per_class, videos_per_class and neighbours must be >= 1")

    specs = class_specs(wnids, "downstream")
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _write_imagenet_c(tmp / ImageNetC.release_folder, downstream_root, wnids, seed, size, c_per_class)
        _write_imagenet_v2(tmp, wnids, specs, seed, size, per_class)
        _write_imagenet_a(tmp / ImageNetA.release_folder, downstream_root, wnids, specs, seed, size, per_class, hard_pool)
        _write_objectnet(tmp / ObjectNet.release_folder, wnids, seed, size, per_class)
        _write_vid_robust(tmp / ImageNetVidRobust.release_folder, wnids, specs, seed, size, videos_per_class, neighbours)
        _write_ytbb_robust(tmp / YTBBRobust.release_folder, wnids, specs, seed, size, videos_per_class, neighbours)
        (tmp / MARKER).write_text(json.dumps(params, indent=1) + "\n")
        if root.exists():
            old = root.parent / f".{root.name}.old-{os.getpid()}"
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            root.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return suite_paths(root)


# ---------------------------------------------------------------- ImageNet-C
def _write_imagenet_c(out: Path, downstream: Path, wnids: list[str], seed: int, size: int, c_per_class: int) -> None:
    # the release's protocol at the toy resolution: crop ``size``, shorter side size*256/224
    # two processes: the images are seeded one by one, so the bytes do not depend on the count
    write_imagenet_c(downstream / "val", out, classes=wnids, per_class=c_per_class, seed=seed, crop=size,
                     workers=min(2, os.cpu_count() or 1))


# ---------------------------------------------------------------- ImageNet-V2
def _write_imagenet_v2(tmp: Path, wnids: list[str], specs, seed: int, size: int, per_class: int) -> None:
    index = {w: i for i, w in enumerate(imagenet1k_wnids())}
    for variant, folder in VARIANT_FOLDERS.items():
        for wnid in wnids:
            rng = _seed(seed, "imagenet_v2", variant, wnid)
            for i in range(per_class):
                img = render(specs[wnid], rng, size, V2_SHIFT)
                _save(img, tmp / folder / str(index[wnid]) / f"{_hex(seed, variant, wnid, i)}.jpeg",
                      format="JPEG", quality=IMAGE_QUALITY)


# ---------------------------------------------------------------- ImageNet-A
def _features(img: Image.Image) -> np.ndarray:
    """8x8 RGB thumbnail, in [0, 1]: what the cheap reference classifier sees."""
    return np.asarray(img.convert("RGB").resize((8, 8), Image.BILINEAR), dtype=np.float64).reshape(-1) / 255.0


class RidgeReference:
    """One-vs-rest ridge regression on 8x8 thumbnails (closed form, deterministic)."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, n_classes: int, l2: float = 1.0):
        self.mean = features.mean(axis=0)
        self.std = features.std(axis=0) + 1e-6
        x = np.hstack([(features - self.mean) / self.std, np.ones((len(features), 1))])
        y = np.eye(n_classes)[labels]
        self.w = np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), x.T @ y)

    def scores(self, features: np.ndarray) -> np.ndarray:
        x = np.hstack([(features - self.mean) / self.std, np.ones((len(features), 1))])
        return x @ self.w


def _write_imagenet_a(out: Path, downstream: Path, wnids: list[str], specs, seed: int, size: int,
                      per_class: int, hard_pool: int) -> None:
    feats, labels = [], []
    for k, wnid in enumerate(wnids):
        for p in _class_images(downstream / "train" / wnid):
            with Image.open(p) as im:
                feats.append(_features(im))
            labels.append(k)
    ref = RidgeReference(np.stack(feats), np.asarray(labels), len(wnids))
    a_wnids = set(imagenet_a_wnids())
    out.mkdir(parents=True, exist_ok=True)
    (out / "README.txt").write_text("ImageNet-A layout: one folder per wnid of natural adversarial examples.\n")
    for k, wnid in enumerate(wnids):
        if wnid not in a_wnids:
            continue
        rng = _seed(seed, "imagenet_a", wnid)
        pool = [render(specs[wnid], rng, size, HARD_SHIFT) for _ in range(max(hard_pool, per_class))]
        scores = ref.scores(np.stack([_features(im) for im in pool]))
        others = np.delete(scores, k, axis=1).max(axis=1)
        margin = scores[:, k] - others  # < 0: the reference gets it wrong
        # The wrong ones in drawing order; if the pool has too few, the least-right ones fill up.
        order = sorted(range(len(pool)), key=lambda i: (margin[i] >= 0, margin[i] if margin[i] >= 0 else 0.0, i))
        for j, i in enumerate(order[:per_class]):
            _save(pool[i], out / wnid / f"{_hex(seed, 'a', wnid, j, n=12)}.jpg", format="JPEG", quality=IMAGE_QUALITY)


# ---------------------------------------------------------------- ObjectNet
def _with_border(img: Image.Image, px: int) -> Image.Image:
    return ImageOps.expand(img.convert("RGB"), border=px, fill=(255, 0, 0))


def _write_objectnet(out: Path, wnids: list[str], seed: int, size: int, per_class: int) -> None:
    k1 = imagenet1k_wnids()
    lemmas = wnid_lemmas()
    plan = _objectnet_plan(wnids)
    distractor_wnid = next(w for w in k1 if w not in wnids)
    specs = class_specs([*wnids, distractor_wnid], "downstream")  # the distractor's spec is unseen downstream
    folder_to_label, label_to_imagenet = {}, {}
    referenced: list[str] = []
    for folder, label, mapped, used in plan:
        folder_to_label[folder] = label
        label_to_imagenet[label] = "; ".join(lemmas[w] for w in mapped)
        referenced.extend(w for w in mapped if w not in referenced)
        rng = _seed(seed, "objectnet", folder)
        for i in range(per_class):
            img = render(specs[used[i % len(used)]], rng, size, OBJECTNET_SHIFT)  # alternate the mapped classes
            _save(_with_border(img, OBJECTNET_BORDER_PX), out / "images" / folder / f"{_hex(seed, folder, i, n=15)}.png",
                  format="PNG")
    d_folder, d_label = _OBJECTNET_DISTRACTOR
    folder_to_label[d_folder] = d_label
    rng = _seed(seed, "objectnet", d_folder)
    for i in range(per_class):
        img = render(specs[distractor_wnid], rng, size, OBJECTNET_SHIFT)
        _save(_with_border(img, OBJECTNET_BORDER_PX), out / "images" / d_folder / f"{_hex(seed, d_folder, i, n=15)}.png",
              format="PNG")
    # imagenet_to_label_2012_v2 lists label strings by "2012 id", an order that is not the
    # sorted-wnid order; here the lines are sorted by label text, so pytorch index != line.
    lines = sorted(referenced, key=lambda w: lemmas[w])
    mappings = out / "mappings"
    _write_json(mappings / "folder_to_objectnet_label.json", folder_to_label)
    _write_json(mappings / "objectnet_to_imagenet_1k.json", label_to_imagenet)
    _write_json(mappings / "pytorch_to_imagenet_2012_id.json", {str(k1.index(w)): i for i, w in enumerate(lines)})
    (mappings / "imagenet_to_label_2012_v2").write_text("".join(lemmas[w] + "\n" for w in lines))
    (out / "README").write_text("ObjectNet-1.0 layout: images/<folder>/*.png with a red border; mappings/ to ImageNet.\n")


# ---------------------------------------------------------------- video sets
def _walk_offsets(neighbours: int) -> list[int]:
    """Frame j of a random walk from the anchor → temporal offset: +1, -1, +2, -2, ...
    so that nearer frames (in time) are fewer walk steps from the anchor."""
    return [0] + [(j + 1) // 2 if j % 2 else -(j // 2) for j in range(1, 2 * neighbours + 1)]


def _write_vid_robust(out: Path, wnids: list[str], specs, seed: int, size: int, videos_per_class: int,
                      neighbours: int) -> None:
    labels, pmsets = {}, {}
    class_index, rev_wnid, wnid_map = {}, {}, {}
    k1 = imagenet1k_wnids()
    for vid_idx, vid_wnid, name, used in _vid_plan(wnids):
        class_index[str(vid_idx)] = [vid_wnid, name]
        mapped = [k1[x] for x in _VID_CLASSES[vid_idx][3]]
        rev_wnid[vid_wnid] = mapped
        wnid_map.update({w: vid_wnid for w in mapped})
        for v in range(videos_per_class):
            wnid = used[v % len(used)]
            rng = _seed(seed, "imagenet_vid_robust", vid_idx, v)
            frames = render_sequence(specs[wnid], rng, 2 * neighbours + 1, size, VIDEO_SHIFT)
            snippet = f"ILSVRC2015_val_{vid_idx * 1000 + v:08d}"
            base = int(rng.integers(neighbours, 400))  # anchor frame number within the snippet
            keys = {}
            for frame, off in zip(frames, _walk_offsets(neighbours)):
                key = f"val/{snippet}/{base + off:06d}.JPEG"
                keys[off] = key
                labels[key] = [vid_idx]
                _save(frame, out / key, format="JPEG", quality=IMAGE_QUALITY)
            pmsets[keys[0]] = [keys[o] for o in sorted(keys) if o != 0]
    _write_json(out / "metadata" / "labels.json", dict(sorted(labels.items())))
    _write_json(out / "metadata" / "pmsets.json", dict(sorted(pmsets.items())))
    _write_json(out / "misc" / "imagenet_vid_class_index.json", class_index)
    _write_json(out / "misc" / "rev_wnid_map.json", rev_wnid)
    _write_json(out / "misc" / "wnid_map.json", wnid_map)
    _write_json(out / "misc" / "imagenet_class_index.json",
                {str(i): [w, wnid_lemmas()[w]] for i, w in enumerate(k1) if w in wnid_map})


_YTID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _write_ytbb_robust(out: Path, wnids: list[str], specs, seed: int, size: int, videos_per_class: int,
                       neighbours: int) -> None:
    anchor_names = ["good", "bad", "unsure"]
    pmk_names = ["similar", "dissimilar", "correct", "bad-anchor"]
    plan = _ytbb_plan(wnids)
    class_names = [name for _, name, _ in plan]
    anchor_names += class_names
    anchors, pmks, csv_rows = [], [], []
    valid = set(_ytbb_valid_offsets(neighbours))
    for y_idx, name, used in plan:
        for v in range(videos_per_class):
            wnid = used[v % len(used)]
            rng = _seed(seed, "ytbb_robust", y_idx, v)
            frames = render_sequence(specs[wnid], rng, 2 * neighbours + 1, size, VIDEO_SHIFT)
            ytid = "".join(_YTID_CHARS[i] for i in rng.integers(0, len(_YTID_CHARS), size=11))
            ms = int(rng.integers(5, 200)) * 1000
            anchor_frame = round(ms / 1000 * 15)  # frames are numbered at 15 fps (the testbed's ms_to_frame_15fps)
            folder = f"{ytid}_{ms}"
            a_key = f"{folder}/frame-{anchor_frame}.jpg"
            for frame, off in zip(frames, _walk_offsets(neighbours)):
                _save(frame, out / "ytbb_videos" / folder / f"frame-{anchor_frame + off}.jpg",
                      format="JPEG", quality=IMAGE_QUALITY)
                if off == 0:
                    continue
                n_key = f"{folder}/frame-{anchor_frame + off}.jpg"
                tag = "similar" if off in valid else "dissimilar"
                pmks.append({"key": f"{a_key},{n_key}", "labels": [pmk_names.index(tag)], "notes": ""})
            # Anchor reviewed 'good'; its class comes from the CSV (in YT-BB ids) and, for
            # every other video, also from the annotation, as reviewers added labels.
            a_labels = [anchor_names.index("good")] + ([anchor_names.index(name)] if v % 2 else [])
            anchors.append({"key": a_key, "labels": a_labels, "notes": ""})
            csv_rows.append({"ytid": ytid, "time_ms": ms, "label": _YTBB_CSV_SWAP.get(y_idx, y_idx), "class_name": name})
    meta = out / "metadata"
    _write_json(meta / "anchor_labels.json", {"labels": anchor_names, "annotations": anchors})
    _write_json(meta / "pmk_labels.json", {"labels": pmk_names, "annotations": pmks})
    _write_json(meta / "ytbb_class_index.json", {str(i): name for i, name, _ in plan})
    used_idx = {i for i, _, _ in plan}
    _write_json(meta / "rev_class_idx_map.json", {str(i): list(idx) for i, _, idx in _YTBB_CLASSES if i in used_idx})
    with open(meta / "ytbb_robustness_test_anchors_full.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["ytid", "time_ms", "label", "class_name"])
        writer.writeheader()
        writer.writerows(csv_rows)
