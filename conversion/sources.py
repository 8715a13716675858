"""Where the images of a conversion come from: the raw ImageNet downloads, as users have them.

A *source* is a :class:`LabelledImages`: a list of image references (a file path, or a
member of a tar read in place by offset, never extracted), their labels, the class list
the labels index, and what the download was checked against. The converter
(``conversion.convert``) hands it to ``conversion.beton.write_beton``.

Layouts read:

- ImageNet-21k (fall11 or winter21): one ``<wnid>.tar`` of JPEGs per class, or extracted
  ``<wnid>/`` folders. Classes are the wnids found, sorted, unless a class-index file fixes
  the order (one wnid per line; ``timm:<name>`` reads ``timm/data/_info/<name>_synsets.txt``,
  e.g. ``timm:imagenet21k_goog``, the 21,843-output order of BiT's heads), so that two
  releases share indices.
- ImageNet-1k train: 1,000 ``<wnid>/`` folders, labels in timm's ImageNet-1k order.
- ImageNet-1k val: ``<wnid>/`` folders, or the flat ``ILSVRC2012_val_*.JPEG`` folder plus the
  devkit's ground truth (``data/ILSVRC2012_validation_ground_truth.txt`` + ``data/meta.mat``,
  folder or ``.tar.gz``) or Kaggle's ``LOC_val_solution.csv``.

Each release has expected class and image counts (:data:`RELEASES`); a download that does
not match is refused with a message saying what was found, unless ``allow_partial`` is set,
in which case the manifest flags it (``source_check.partial``).
"""
from __future__ import annotations

import csv
import io
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class Release:
    """What a complete download holds. ``images=None``: the count is not checked (unknown to us)."""

    classes: int
    images: int | None
    note: str = ""


# Dataset facts, in one place. fall11: 14,197,122 images in 21,841 synsets (image-net.org's
# statistics); winter21: 19,167 synsets per the study spec, its image count not verified here.
RELEASES: dict[str, Release] = {
    "fall11": Release(21_841, 14_197_122, "ImageNet-21k fall 2011 (no longer distributed)"),
    "winter21": Release(19_167, None, "ImageNet-21k winter 2021 (image count not checked)"),
    "imagenet1k-train": Release(1_000, 1_281_167, "ILSVRC-2012 train"),
    "imagenet1k-val": Release(1_000, 50_000, "ILSVRC-2012 val"),
    "folder": Release(0, None, "any <class>/ folder layout (nothing checked)"),
}


@dataclass(frozen=True)
class TarMember:
    """An image stored uncompressed inside a tar: read with one seek, never extracted."""

    tar: str
    offset: int
    size: int
    name: str

    def __str__(self) -> str:
        return f"{self.tar}:{self.name}"


ImageRef = Union[Path, TarMember]


def read_image_bytes(ref: ImageRef) -> bytes:
    if isinstance(ref, TarMember):
        with open(ref.tar, "rb") as f:
            f.seek(ref.offset)
            return f.read(ref.size)
    return Path(ref).read_bytes()


def open_image(ref: ImageRef) -> Image.Image:
    """The image behind ``ref`` (lazy PIL image; call ``load``/``convert`` to decode)."""
    return Image.open(io.BytesIO(read_image_bytes(ref)))


def map_images(fn, refs: Sequence[ImageRef], num_workers: int = 1, desc: str = "images") -> list:
    """``[fn(ref) for ref in refs]``, in ``num_workers`` forked processes for large lists, with a
    progress bar from 10,000 images (``fn`` must be a module-level function)."""
    from tqdm import tqdm

    progress = dict(desc=desc, total=len(refs), unit="img", leave=False, mininterval=2.0, disable=len(refs) < 10_000)
    if num_workers > 1 and len(refs) > 1000:
        from multiprocessing import get_context

        with get_context("fork").Pool(num_workers) as pool:
            return list(tqdm(pool.imap(fn, refs, chunksize=256), **progress))
    return [fn(r) for r in tqdm(refs, **progress)]


@dataclass
class LabelledImages:
    """Images of one conversion: ``refs[i]`` has label ``labels[i]``, an index into ``classes``.

    ``source`` identifies the download (its resolved path); ``check`` records what it was
    checked against (release, expected and found counts, ``partial``) and goes to the manifest.
    """

    refs: list[ImageRef]
    labels: np.ndarray
    classes: list[str]
    source: str
    check: dict = field(default_factory=dict)


def read_class_index(spec: str | Path) -> list[str]:
    """A fixed class order: a file of one wnid per line, or ``timm:<name>`` for timm's ``<name>_synsets.txt``."""
    spec = str(spec)
    if spec.startswith("timm:"):
        name = spec[len("timm:"):]
        path = resources.files("timm.data") / "_info" / f"{name}_synsets.txt"
        if not path.is_file():
            known = sorted(p.name[: -len("_synsets.txt")] for p in (resources.files("timm.data") / "_info").iterdir() if p.name.endswith("_synsets.txt"))
            raise FileNotFoundError(f"class index {spec}: timm ships no {name}_synsets.txt; choose one of {known}")
        text = path.read_text()
    else:
        if not Path(spec).is_file():
            raise FileNotFoundError(f"class index file {spec} not found (one wnid per line, or timm:imagenet21k_goog)")
        text = Path(spec).read_text()
    wnids = [line.strip() for line in text.splitlines() if line.strip()]
    duplicates = sorted(w for w, n in Counter(wnids).items() if n > 1)
    if duplicates:
        raise ValueError(f"class index {spec} lists {duplicates[:3]} more than once; one wnid per line, each once")
    return wnids


def _class_order(found: Sequence[str], class_index: Sequence[str] | None, where: Path) -> list[str]:
    if class_index is None:
        return sorted(found)
    unknown = sorted(set(found) - set(class_index))
    if unknown:
        raise ValueError(f"{where}: classes {unknown[:5]} ({len(unknown)} in all) are not in the class index; use an index file that lists them")
    return list(class_index)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _progress(iterable, desc: str, total: int | None = None):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, unit="class", leave=False, mininterval=2.0)


def scan_class_folders(root: Path, classes: Sequence[str] | None = None, desc: str = "scanning") -> LabelledImages:
    """``root/<class>/*`` (extracted layout); labels by position in ``classes`` (default: sorted folder names)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of class sub-folders (ImageNet layout <root>/<wnid>/*.JPEG)")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    order = _class_order(folders, classes, root)
    refs, labels = [], []
    position = {c: k for k, c in enumerate(order)}
    for name in _progress(folders, desc):
        for p in sorted((root / name).iterdir()):
            if _is_image(p.name):
                refs.append(p)
                labels.append(position[name])
    if not refs:
        raise ValueError(f"{root}: no images found in its class folders")
    return LabelledImages(refs, np.asarray(labels, dtype=np.int64), order, str(root.resolve()))


def scan_class_tars(root: Path, classes: Sequence[str] | None = None, desc: str = "indexing tars") -> LabelledImages:
    """``root/<wnid>.tar`` (ImageNet-21k's download layout); members are indexed by offset, not extracted."""
    root = Path(root)
    tars = sorted(root.glob("*.tar"))
    if not tars:
        raise FileNotFoundError(f"{root} holds no <wnid>.tar files")
    order = _class_order([t.stem for t in tars], classes, root)
    position = {c: k for k, c in enumerate(order)}
    refs, labels = [], []
    for tar in _progress(tars, desc):
        try:
            with tarfile.open(tar, "r:") as archive:  # "r:" = uncompressed, so members can be read in place
                members = sorted((m for m in archive if m.isfile() and _is_image(m.name)), key=lambda m: m.name)
        except tarfile.TarError as err:
            raise ValueError(f"{tar} is not a readable uncompressed tar ({err}); re-download it") from err
        for m in members:
            refs.append(TarMember(str(tar), m.offset_data, m.size, m.name))
            labels.append(position[tar.stem])
    if not refs:
        raise ValueError(f"{root}: its tars hold no images")
    return LabelledImages(refs, np.asarray(labels, dtype=np.int64), order, str(root.resolve()))


def check_release(images: LabelledImages, release: str, allow_partial: bool = False) -> LabelledImages:
    """Compare what was found with ``RELEASES[release]``; refuse a mismatch unless ``allow_partial``."""
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; choose one of {sorted(RELEASES)}")
    expected = RELEASES[release]
    found_classes = int(len(np.unique(images.labels)))
    problems = []
    if expected.classes and found_classes != expected.classes:
        problems.append(f"{found_classes:,} classes with images, {release} has {expected.classes:,}")
    if expected.images is not None and len(images.refs) != expected.images:
        problems.append(f"{len(images.refs):,} images, {release} has {expected.images:,}")
    images.check = {
        "release": release, "expected_classes": expected.classes or None, "expected_images": expected.images,
        "found_classes": found_classes, "found_images": len(images.refs), "partial": bool(problems),
    }
    if problems and not allow_partial:
        raise ValueError(f"{images.source}: found {'; '.join(problems)}: a partial or different download? "
                         f"Complete it, choose the matching --release, or pass --allow-partial (flagged in the manifest)")
    if problems:
        print(f"warning: {images.source}: {'; '.join(problems)}; converting anyway (manifest flags it partial)")
    return images


def scan_imagenet21k(root: Path, release: str, class_index: Sequence[str] | None = None, allow_partial: bool = False) -> LabelledImages:
    """ImageNet-21k as downloaded (``<wnid>.tar`` per class) or extracted (``<wnid>/`` folders)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder; point at the folder holding the <wnid>.tar files or <wnid>/ folders")
    has_tars = any(root.glob("*.tar"))
    images = scan_class_tars(root, class_index) if has_tars else scan_class_folders(root, class_index)
    check_release(images, release, allow_partial)
    images.check["layout"] = "tar per class" if has_tars else "folder per class"
    return images


def scan_imagenet1k_train(root: Path, allow_partial: bool = False) -> LabelledImages:
    from ood.class_lists import imagenet1k_wnids

    return check_release(scan_class_folders(root, imagenet1k_wnids()), "imagenet1k-train", allow_partial)


# ---- ImageNet-1k val: folders, or flat + devkit / Kaggle CSV ---------------------------------

_DEVKIT_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
_DEVKIT_META = "data/meta.mat"


def _devkit_files(devkit: Path) -> tuple[str, bytes]:
    """(ground-truth text, meta.mat bytes) from a devkit folder or its ``.tar.gz``."""
    devkit = Path(devkit)
    if devkit.is_dir():
        truth, meta = devkit / _DEVKIT_TRUTH, devkit / _DEVKIT_META
        for p in (truth, meta):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found: expected the ILSVRC2012 devkit (ILSVRC2012_devkit_t12) unpacked at {devkit}")
        return truth.read_text(), meta.read_bytes()
    if devkit.is_file() and tarfile.is_tarfile(devkit):
        with tarfile.open(devkit) as archive:
            found = {}
            for m in archive:
                for key in (_DEVKIT_TRUTH, _DEVKIT_META):
                    if m.name.endswith(key):
                        found[key] = archive.extractfile(m).read()
        missing = [k for k in (_DEVKIT_TRUTH, _DEVKIT_META) if k not in found]
        if missing:
            raise FileNotFoundError(f"{devkit} lacks {missing}; is it ILSVRC2012_devkit_t12.tar.gz?")
        return found[_DEVKIT_TRUTH].decode(), found[_DEVKIT_META]
    raise FileNotFoundError(f"devkit {devkit} not found (the unpacked ILSVRC2012_devkit_t12 folder or its .tar.gz)")


def devkit_val_wnids(devkit: Path) -> list[str]:
    """The wnid of val image k+1 (``ILSVRC2012_val_<k+1>.JPEG``), from the devkit's ground truth.

    The ground truth holds ILSVRC2012_IDs (1..1000); ``meta.mat`` maps them to wnids. That
    order is the devkit's own, so the mapping is read, never assumed.
    """
    from scipy.io import loadmat

    truth, meta_bytes = _devkit_files(devkit)
    synsets = loadmat(io.BytesIO(meta_bytes), squeeze_me=True)["synsets"]
    id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    try:
        return [id_to_wnid[int(line)] for line in truth.split()]
    except KeyError as err:
        raise ValueError(f"devkit {devkit}: ground truth names ILSVRC2012_ID {err} that meta.mat does not define") from err


def loc_csv_val_wnids(csv_path: Path) -> dict[str, str]:
    """``{image id: wnid}`` from Kaggle's ``LOC_val_solution.csv`` (first wnid of PredictionString)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path} not found (Kaggle's LOC_val_solution.csv: ImageId,PredictionString)")
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"ImageId", "PredictionString"} <= set(rows[0]):
        raise ValueError(f"{csv_path}: expected columns ImageId,PredictionString (Kaggle's LOC_val_solution.csv)")
    return {r["ImageId"]: r["PredictionString"].split()[0] for r in rows}


def scan_imagenet1k_val(root: Path, devkit: Path | None = None, loc_csv: Path | None = None, allow_partial: bool = False) -> LabelledImages:
    """ImageNet-1k val, labelled in timm's 1k order, from wnid folders or the flat folder plus labels."""
    from ood.class_lists import imagenet1k_wnids

    root = Path(root)
    classes = list(imagenet1k_wnids())
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder (ImageNet val: <wnid>/ folders, or the flat ILSVRC2012_val_*.JPEG files)")
    flat = sorted(p for p in root.iterdir() if p.is_file() and _is_image(p.name))
    if not flat:
        return check_release(scan_class_folders(root, classes), "imagenet1k-val", allow_partial)
    if devkit is None and loc_csv is None:
        raise ValueError(f"{root} holds flat val images: pass the devkit (--devkit ILSVRC2012_devkit_t12[.tar.gz]) or --loc-csv LOC_val_solution.csv for their labels")
    if devkit is not None:
        by_number = devkit_val_wnids(devkit)

        def wnid_of(p: Path) -> str | None:
            number = int(p.stem.rsplit("_", 1)[-1])  # ILSVRC2012_val_00000001 → 1
            return by_number[number - 1] if 0 < number <= len(by_number) else None
    else:
        by_id = loc_csv_val_wnids(loc_csv)

        def wnid_of(p: Path) -> str | None:
            return by_id.get(p.stem)
    position = {c: k for k, c in enumerate(classes)}
    unlabelled = [p.name for p in flat if wnid_of(p) not in position]
    if unlabelled:
        raise ValueError(f"{root}: no label for {unlabelled[:3]} ({len(unlabelled)} in all) in {devkit or loc_csv}; is it the ILSVRC2012 val set?")
    labels = np.asarray([position[wnid_of(p)] for p in flat], dtype=np.int64)
    images = LabelledImages(list(flat), labels, classes, str(root.resolve()))
    check_release(images, "imagenet1k-val", allow_partial)
    images.check["labels_from"] = str(Path(devkit or loc_csv).resolve())
    return images
