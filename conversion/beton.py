"""Convert labelled images into an FFCV ``.beton`` with a sidecar manifest.

Layout written for ``OUT.beton``::

    OUT.beton        fields: image (RGBImageField), label (int), index (int: the row itself)
                     [+ labels (int32 x max_labels, -1 padded): multi-label sources, datamodules.multilabel]
    OUT.json         the manifest: settings, class list, count, per-class counts, sha256
    OUT.meta.npz     optional per-image integer metadata (benchmark sets: corruption, anchor...)

The beton is written to a temporary name and renamed when complete; the manifest is
written last, so its presence means the conversion finished. Re-running with the same
source and settings does nothing. Readers compare the beton's size with the manifest's
``bytes`` (and, on request, its ``sha256``), so a truncated copy is refused at start-up.

The CLI over the ImageNet layouts is ``python -m conversion`` (see its ``--help``).
"""
from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from conversion.errors import InputError
from conversion.files import atomic_write_json, sha256_file
from conversion.multilabel import merge_duplicates, pad_label_sets
from conversion.sources import ImageRef, LabelledImages, map_images, open_image, scan_class_folders

MANIFEST_FORMAT = "ood-scaling/beton-manifest/v1"


@dataclass(frozen=True)
class BetonSettings:
    """How images are stored. Defaults follow FFCV's ImageNet recipes (jpg at quality 90);
    ``max_resolution`` caps the longer side (FFCV's recipes use 256-512 for ImageNet)."""

    max_resolution: int = 256
    jpeg_quality: int = 90
    write_mode: str = "jpg"  # jpg | raw | proportion | smart
    compress_probability: float = 0.5  # only for write_mode=proportion


def manifest_path(beton: Path) -> Path:
    return Path(beton).with_suffix(".json")


def meta_path(beton: Path) -> Path:
    return Path(beton).with_suffix(".meta.npz")


DEFAULT_HINT = "python -m conversion folder SRC OUT.beton"


def read_manifest(beton: Path, make_hint: str = DEFAULT_HINT) -> dict:
    """The manifest of a finished conversion whose beton still has the size it recorded, or a
    one-line error naming the path and the fix (``make_hint``: the command that creates it)."""
    beton, manifest = Path(beton), manifest_path(beton)
    if not beton.exists() or not manifest.exists():
        missing = beton if not beton.exists() else manifest
        raise FileNotFoundError(f"{missing} not found: the beton is missing or its conversion did not finish; create it with `{make_hint}`")
    data = json.loads(manifest.read_text())
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{manifest} is not a beton manifest of this project (format {data.get('format')!r}); re-run the conversion")
    _refuse(size_mismatch(beton, data), make_hint)
    return data


def size_mismatch(beton: Path, manifest: dict) -> str | None:
    """Why ``beton`` is not the file ``manifest`` describes, judged by its size (one ``stat``), or None.

    A truncated copy would otherwise fail deep inside FFCV's reader
    (``ValueError: negative dimensions are not allowed``).
    """
    actual, recorded = Path(beton).stat().st_size, manifest["bytes"]  # in every manifest since v1
    if actual == recorded:
        return None
    return (f"{beton} is {actual:,} bytes but its manifest {manifest_path(beton)} records {recorded:,} "
            f"(a truncated or partial copy?)")


def check_beton_sha256(beton: Path, manifest: dict, make_hint: str = DEFAULT_HINT) -> None:
    """Refuse (:class:`InputError`) a beton whose sha256 differs from its manifest's ``sha256``:
    bytes changed without the size changing. Reads the whole file, so it is opt-in."""
    actual = sha256_file(beton)
    if actual != manifest.get("sha256"):
        _refuse(f"{beton} has sha256 {actual} but its manifest {manifest_path(beton)} records {manifest.get('sha256')} "
                f"(its bytes changed since the conversion)", make_hint)


def stored_longest_side(beton: Path) -> int:
    """The longest side of any image stored in ``beton`` (from FFCV's per-image metadata)."""
    from ffcv.reader import Reader

    meta = Reader(str(beton)).metadata["f0"]
    return int(max(meta["width"].max(initial=0), meta["height"].max(initial=0)))


def check_storage_resolution(beton: Path, manifest: dict, crop: int, make_hint: str, setting: str) -> None:
    """Refuse (:class:`InputError`) training or evaluating at ``crop`` px from a beton whose
    storage cap (``settings.max_resolution``) shrank its images below ``crop``: every image
    would be upsampled again, a silent loss of resolution against the reference pipeline.

    A cap below ``crop`` that no image reached (the originals are smaller than the cap, e.g.
    CIFAR-sized sources) shrank nothing and passes. ``setting`` names the option that allows
    the upsampling on purpose; the message also names the conversion flag that avoids it.
    """
    cap = int(manifest.get("settings", {}).get("max_resolution", 0))
    if cap >= crop or stored_longest_side(beton) < cap:
        return
    raise InputError(f"{beton} stores images at most {cap} px on the longer side (its manifest's settings.max_resolution) "
                     f"but this run crops {crop} px, so every image would be upsampled from {cap} px; convert it again with "
                     f"`{make_hint} --max-resolution {crop} --overwrite` (or larger), or set {setting}: true to train on upsampled images")


def _refuse(why: str | None, make_hint: str) -> None:
    if why is not None:
        raise InputError(f"{why}; re-copy it from where it was converted, or convert it again with `{make_hint} --overwrite`")


def beton_labels(beton: Path) -> np.ndarray:
    """Per-row labels, read from the beton's metadata table (field 1 is ``label``) without decoding images.

    Refuses a missing, unfinished or truncated beton first (:func:`read_manifest`): FFCV's
    reader would fail on it with an error that names neither the file nor the fix.
    """
    from ffcv.reader import Reader

    read_manifest(beton)
    return np.asarray(Reader(str(beton)).metadata["f1"], dtype=np.int64)


def _decode_error(ref: ImageRef) -> str | None:
    """Why ``ref`` cannot be decoded in full, or None if it can."""
    try:
        with open_image(ref) as im:
            if im.format == "JPEG":
                # libjpeg's DCT scaling still reads every coefficient, so a truncated or corrupt
                # file fails as it would at full size, at a fraction of the cost
                im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
        return None
    except (OSError, SyntaxError, ValueError) as err:
        return f"{type(err).__name__}: {err}"


def find_undecodable(refs: Sequence[ImageRef], num_workers: int = 1) -> dict[str, str]:
    """``{image: reason}`` for every image that does not decode (a pre-pass before writing).

    FFCV's writer workers cannot skip a row once the count is fixed, and a worker that
    raises leaves the writer waiting forever, so bad files are found first.
    """
    reasons = map_images(_decode_error, refs, num_workers, desc="checking images decode")
    return {str(r): why for r, why in zip(refs, reasons) if why is not None}


class _ImageRows:
    """Indexable dataset handed to FFCV's writer: (RGB uint8 array, label, index[, label set])."""

    def __init__(self, refs, labels, preprocess, label_sets=None):
        self.refs, self.labels, self.preprocess, self.label_sets = refs, labels, preprocess, label_sets

    def __len__(self):
        return len(self.refs)

    def __getitem__(self, i):
        try:
            with open_image(self.refs[i]) as im:
                im = im.convert("RGB")
                if self.preprocess is not None:
                    im = self.preprocess(im)
                array = np.asarray(im, dtype=np.uint8)
        except OSError as err:
            raise ValueError(f"cannot decode image {self.refs[i]}: {err}") from err
        if self.label_sets is not None:
            return array, int(self.labels[i]), i, self.label_sets[i]
        return array, int(self.labels[i]), i


def check_label_range(paths: Sequence[ImageRef], labels: np.ndarray, num_classes: int,
                      label_sets: Sequence[Sequence[int]] | None = None) -> None:
    """Refuse (:class:`InputError`) any label, or member of a label set, outside ``[0, num_classes)``,
    naming the first image that has one.

    Checked before anything is written: FFCV would store such a label, the manifest's class
    counts would drop its row, and training would stop much later in the loss
    (``IndexError: Target 7 is out of bounds``).
    """
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        row = bad[0]
        raise InputError(f"{paths[row]}: label {labels[row]} is outside [0, {num_classes}), the {num_classes} classes of the "
                         f"class list; fix its label, or add its class to the class list")
    if label_sets is None:
        return
    sizes = np.fromiter(map(len, label_sets), dtype=np.int64, count=len(label_sets))
    members = np.fromiter(itertools.chain.from_iterable(label_sets), dtype=np.int64, count=int(sizes.sum()))
    bad = np.flatnonzero((members < 0) | (members >= num_classes))
    if len(bad):
        row = int(np.repeat(np.arange(len(label_sets)), sizes)[bad[0]])
        raise InputError(f"{paths[row]}: label set {tuple(int(k) for k in label_sets[row])} holds {members[bad[0]]}, outside "
                         f"[0, {num_classes}), the {num_classes} classes of the class list; fix its labels, or add the class "
                         f"to the class list")


def write_beton(
    out: Path,
    paths: Sequence[ImageRef],
    labels: np.ndarray,
    classes: Sequence[str],
    settings: BetonSettings = BetonSettings(),
    source: str = "",
    meta: dict[str, np.ndarray] | None = None,
    extra: dict | None = None,
    preprocess: Callable[[Image.Image], Image.Image] | None = None,
    num_workers: int = 2,
    on_corrupt: str = "skip",
    source_check: dict | None = None,
    overwrite: bool = False,
    label_sets: Sequence[Sequence[int]] | None = None,
) -> dict:
    """Write ``paths``/``labels`` to ``out`` (atomically) and return the manifest.

    ``paths`` are image files or :class:`conversion.sources.TarMember` references.

    Images that do not decode are skipped and listed in the manifest under ``skipped``
    (``on_corrupt="skip"``), or stop the conversion with a one-line error naming the file
    (``on_corrupt="abort"``). ``meta`` arrays are filtered with the images.

    ``labels[i]`` indexes ``classes``; a label (or label-set member) outside it is refused
    before anything is written (:func:`check_label_range`). An empty ``classes`` means the
    labels are not class indices (benchmark caches: their benchmark defines them), so they are
    not checked. ``meta`` arrays (one entry per image) go to the ``.meta.npz`` sidecar;
    ``extra`` is stored in the manifest verbatim. If a finished beton with the same source,
    count and settings exists, it is kept and its manifest returned; a finished beton made from
    anything else, or whose size no longer matches its manifest, is refused unless ``overwrite``
    (a changed source folder should not silently replace hours of conversion). The manifest's
    ``bytes`` and ``sha256`` are those of the finished, renamed file. ``source_check`` (what the
    download was checked against, see ``conversion.sources.check_release``) goes to the manifest.
    ``label_sets`` (every class of each image, ``conversion.multilabel``) adds the ``labels`` field.
    """
    from ffcv.fields import IntField, NDArrayField, RGBImageField
    from ffcv.writer import DatasetWriter

    out = Path(out)
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(labels):
        raise ValueError(f"{out}: {len(paths)} images but {len(labels)} labels")
    # what identifies a finished conversion: re-running with the same source, count and settings is a no-op
    wanted = {"source": str(source), "num_source_images": len(paths), "settings": asdict(settings)}
    if label_sets is not None:
        if len(label_sets) != len(paths):
            raise ValueError(f"{out}: {len(paths)} images but {len(label_sets)} label sets")
        wanted["multi_label"] = True
    if len(classes):
        check_label_range(paths, labels, len(classes), label_sets)
    if manifest_path(out).exists() and out.exists():
        existing = json.loads(manifest_path(out).read_text())
        differ = [f"{k} {existing.get(k)} -> {v}" for k, v in wanted.items() if existing.get(k) != v]
        broken = size_mismatch(out, existing)
        if not differ and broken is None:
            return existing
        if not overwrite and differ:
            raise ValueError(f"{out} already holds a finished conversion that differs ({'; '.join(differ)}); "
                             f"delete it, write to another path, or pass --overwrite")
        if not overwrite:
            raise InputError(f"{broken}; re-copy it from where it was converted, or pass --overwrite to convert it again")
    bad = find_undecodable(list(paths), num_workers)
    if bad and on_corrupt == "abort":
        path, reason = next(iter(bad.items()))
        raise InputError(f"cannot decode image {path} ({reason}); remove or replace it, or convert with --on-corrupt skip "
                         f"(it is then left out and listed in the manifest's skipped)")
    if bad:
        keep = np.array([str(p) not in bad for p in paths])
        paths = [p for p, k in zip(paths, keep) if k]
        labels = labels[keep]
        meta = {k: np.asarray(v)[keep] for k, v in meta.items()} if meta else meta
        label_sets = [ls for ls, k in zip(label_sets, keep) if k] if label_sets is not None else None
        print(f"warning: {out}: skipping {len(bad)} image(s) that do not decode (listed in the manifest), e.g. {next(iter(bad))}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    started = time.time()
    try:
        fields = {
            "image": RGBImageField(
                write_mode=settings.write_mode,
                max_resolution=settings.max_resolution,
                jpeg_quality=settings.jpeg_quality,
                compress_probability=settings.compress_probability,
            ),
            "label": IntField(),
            "index": IntField(),
        }
        padded = None
        if label_sets is not None:
            max_labels = max([len(ls) for ls in label_sets] + [1])
            padded = pad_label_sets(label_sets, max_labels)
            fields["labels"] = NDArrayField(np.dtype("int32"), (max_labels,))
        writer = DatasetWriter(str(tmp), fields, num_workers=num_workers)
        writer.from_indexed_dataset(_ImageRows(list(paths), labels, preprocess, padded))
        if meta:
            np.savez(meta_path(out).with_suffix(".tmp.npz"), **meta)
            os.replace(meta_path(out).with_suffix(".tmp.npz"), meta_path(out))
        manifest_path(out).unlink(missing_ok=True)  # the manifest marks a finished beton: never beside the wrong one
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    counts = np.bincount(labels, minlength=len(classes)) if len(classes) else np.zeros(0, dtype=np.int64)
    manifest = {
        "format": MANIFEST_FORMAT,
        **wanted,
        "num_images": len(paths),
        "beton": out.name,
        "classes": list(classes),
        "class_counts": {c: int(k) for c, k in zip(classes, counts)},
        "source_check": source_check or {},
        "fields": ["image", "label", "index"] + (["labels"] if padded is not None else []),
        "multi_label": None if padded is None else {
            "max_labels": int(padded.shape[1]), "images_with_several": int((padded[:, 1:] >= 0).any(1).sum()) if padded.shape[1] > 1 else 0,
        },
        "meta_fields": sorted(meta) if meta else [],
        "skipped": bad,
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "seconds": round(time.time() - started, 2),
        "extra": extra or {},
    }
    atomic_write_json(manifest_path(out), manifest)
    return manifest


def convert(images: LabelledImages, out: Path, settings: BetonSettings = BetonSettings(), num_workers: int = 2,
            on_corrupt: str = "skip", overwrite: bool = False, multi_label: bool = False) -> dict:
    """Write a scanned source (``conversion.sources``) to ``out`` with its check in the manifest.

    ``multi_label``: merge byte-identical images filed under several classes into one row
    carrying all of them (``conversion.multilabel``); the manifest counts the merged copies.
    """
    label_sets, extra = None, None
    if multi_label:
        merged = merge_duplicates(images, num_workers)
        images, label_sets, extra = merged.images, merged.label_sets, {"duplicates_merged": merged.duplicates_merged}
    return write_beton(out, images.refs, images.labels, images.classes, settings, source=images.source, num_workers=num_workers,
                       on_corrupt=on_corrupt, source_check=images.check, overwrite=overwrite, label_sets=label_sets, extra=extra)


def convert_folder(src: Path, out: Path, settings: BetonSettings = BetonSettings(), num_workers: int = 2,
                   classes: Sequence[str] | None = None, on_corrupt: str = "skip", overwrite: bool = False) -> dict:
    """Convert ``src/<class>/*`` to ``out``; labels index ``classes`` (default: sorted folder names).

    Pass the train set's class list when converting its val set, so both share indices.
    """
    return convert(scan_class_folders(src, classes), out, settings, num_workers, on_corrupt, overwrite)
