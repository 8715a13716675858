"""Convert labelled images into an FFCV ``.beton`` with a sidecar manifest.

Layout written for ``OUT.beton``::

    OUT.beton        fields: image (RGBImageField), label (int), index (int: the row itself)
    OUT.json         the manifest: settings, class list, count, per-class counts, sha256
    OUT.meta.npz     optional per-image integer metadata (benchmark sets: corruption, anchor...)

The beton is written to a temporary name and renamed when complete; the manifest is
written last, so its presence means the conversion finished. Re-running with the same
source and settings does nothing.

CLI: ``python -m datamodules.beton SRC_FOLDER OUT.beton [--max-resolution 256 ...]`` where
SRC_FOLDER holds one sub-folder of images per class (ImageNet-1k/21k extracted layout).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from datamodules.files import atomic_write_json, sha256_file

MANIFEST_FORMAT = "ood-scaling/beton-manifest/v1"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


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


def read_manifest(beton: Path, make_hint: str = "python -m datamodules.beton SRC OUT.beton") -> dict:
    """The manifest of a finished conversion, or a one-line error naming the path and the fix."""
    beton, manifest = Path(beton), manifest_path(beton)
    if not beton.exists() or not manifest.exists():
        missing = beton if not beton.exists() else manifest
        raise FileNotFoundError(f"{missing} not found: the beton is missing or its conversion did not finish; create it with `{make_hint}`")
    data = json.loads(manifest.read_text())
    if data.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{manifest} is not a beton manifest of this project (format {data.get('format')!r}); re-run the conversion")
    return data


def scan_class_folder(root: Path, classes: Sequence[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Images of ``root/<class>/*`` with labels by position in ``classes`` (default: sorted folder names)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder of class sub-folders (ImageNet layout <root>/<wnid>/*.JPEG)")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = list(classes) if classes is not None else folders
    unknown = sorted(set(folders) - set(classes))
    if unknown:
        raise ValueError(f"{root}: folders {unknown[:5]} are not in the supplied class list ({len(unknown)} in all)")
    paths, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in IMAGE_EXTENSIONS:
                paths.append(p)
                labels.append(label)
    if not paths:
        raise ValueError(f"{root}: no images found in its class folders")
    return paths, np.asarray(labels, dtype=np.int64), classes


def _decode_error(path: Path) -> str | None:
    """Why ``path`` cannot be decoded in full, or None if it can."""
    try:
        with Image.open(path) as im:
            im.load()  # a full decode: catches truncated files that ``verify`` lets through
        return None
    except (OSError, SyntaxError, ValueError) as err:
        return f"{type(err).__name__}: {err}"


def find_undecodable(paths: Sequence[Path], num_workers: int = 1) -> dict[str, str]:
    """``{path: reason}`` for every image that does not decode (a pre-pass before writing).

    FFCV's writer workers cannot skip a row once the count is fixed, and a worker that
    raises leaves the writer waiting forever, so bad files are found first.
    """
    if num_workers > 1 and len(paths) > 1000:
        from multiprocessing import get_context

        with get_context("fork").Pool(num_workers) as pool:
            reasons = pool.map(_decode_error, paths, chunksize=256)
    else:
        reasons = [_decode_error(p) for p in paths]
    return {str(p): r for p, r in zip(paths, reasons) if r is not None}


class _ImageRows:
    """Indexable dataset handed to FFCV's writer: (RGB uint8 array, label, index)."""

    def __init__(self, paths, labels, preprocess):
        self.paths, self.labels, self.preprocess = paths, labels, preprocess

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            with Image.open(self.paths[i]) as im:
                im = im.convert("RGB")
                if self.preprocess is not None:
                    im = self.preprocess(im)
                array = np.asarray(im, dtype=np.uint8)
        except OSError as err:
            raise ValueError(f"cannot decode image {self.paths[i]}: {err}") from err
        return array, int(self.labels[i]), i


def write_beton(
    out: Path,
    paths: Sequence[Path],
    labels: np.ndarray,
    classes: Sequence[str],
    settings: BetonSettings = BetonSettings(),
    source: str = "",
    meta: dict[str, np.ndarray] | None = None,
    extra: dict | None = None,
    preprocess: Callable[[Image.Image], Image.Image] | None = None,
    num_workers: int = 2,
    on_corrupt: str = "skip",
) -> dict:
    """Write ``paths``/``labels`` to ``out`` (atomically) and return the manifest.

    Images that do not decode are skipped and listed in the manifest under ``skipped``
    (``on_corrupt="skip"``), or stop the conversion with a one-line error naming the file
    (``on_corrupt="abort"``). ``meta`` arrays are filtered with the images.

    ``labels[i]`` indexes ``classes``; ``meta`` arrays (one entry per image) go to the
    ``.meta.npz`` sidecar; ``extra`` is stored in the manifest verbatim. If a finished
    beton with the same source, count and settings exists, it is kept and its manifest returned.
    """
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    out = Path(out)
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(labels):
        raise ValueError(f"{out}: {len(paths)} images but {len(labels)} labels")
    # what identifies a finished conversion: re-running with the same source, count and settings is a no-op
    wanted = {"source": str(source), "num_source_images": len(paths), "settings": asdict(settings)}
    if manifest_path(out).exists() and out.exists():
        existing = json.loads(manifest_path(out).read_text())
        if all(existing.get(k) == v for k, v in wanted.items()):
            return existing
    bad = find_undecodable(list(paths), num_workers)
    if bad and on_corrupt == "abort":
        path, reason = next(iter(bad.items()))
        raise ValueError(f"cannot decode image {path} ({reason}); remove or replace it, or convert with on_corrupt=skip")
    if bad:
        keep = np.array([str(p) not in bad for p in paths])
        paths = [p for p, k in zip(paths, keep) if k]
        labels = labels[keep]
        meta = {k: np.asarray(v)[keep] for k, v in meta.items()} if meta else meta
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
        writer = DatasetWriter(str(tmp), fields, num_workers=num_workers)
        writer.from_indexed_dataset(_ImageRows(list(paths), labels, preprocess))
        if meta:
            np.savez(meta_path(out).with_suffix(".tmp.npz"), **meta)
            os.replace(meta_path(out).with_suffix(".tmp.npz"), meta_path(out))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    counts = Counter(int(x) for x in labels)
    manifest = {
        "format": MANIFEST_FORMAT,
        **wanted,
        "num_images": len(paths),
        "beton": out.name,
        "classes": list(classes),
        "class_counts": {classes[k]: counts.get(k, 0) for k in range(len(classes))},
        "fields": ["image", "label", "index"],
        "meta_fields": sorted(meta) if meta else [],
        "skipped": bad,
        "sha256": sha256_file(out),
        "bytes": out.stat().st_size,
        "seconds": round(time.time() - started, 2),
        "extra": extra or {},
    }
    atomic_write_json(manifest_path(out), manifest)
    return manifest


def convert_folder(src: Path, out: Path, settings: BetonSettings = BetonSettings(), num_workers: int = 2,
                   classes: Sequence[str] | None = None, on_corrupt: str = "skip") -> dict:
    """Convert ``src/<class>/*`` to ``out``; labels index ``classes`` (default: sorted folder names).

    Pass the train set's class list when converting its val set, so both share indices.
    """
    paths, labels, classes = scan_class_folder(src, classes)
    return write_beton(out, paths, labels, classes, settings, source=str(Path(src).resolve()), num_workers=num_workers,
                       on_corrupt=on_corrupt)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="folder with one sub-folder of images per class")
    parser.add_argument("out", type=Path, help="output .beton path (manifest written beside it)")
    parser.add_argument("--max-resolution", type=int, default=BetonSettings.max_resolution)
    parser.add_argument("--jpeg-quality", type=int, default=BetonSettings.jpeg_quality)
    parser.add_argument("--write-mode", default=BetonSettings.write_mode, choices=["jpg", "raw", "proportion", "smart"])
    parser.add_argument("--compress-probability", type=float, default=BetonSettings.compress_probability)
    parser.add_argument("--num-workers", type=int, default=max(1, os.cpu_count() or 1))
    parser.add_argument("--on-corrupt", choices=["skip", "abort"], default="skip",
                        help="an image that does not decode: skip it (listed in the manifest) or stop with its path")
    args = parser.parse_args(argv)
    settings = BetonSettings(args.max_resolution, args.jpeg_quality, args.write_mode, args.compress_probability)
    try:
        manifest = convert_folder(args.src, args.out, settings, args.num_workers, on_corrupt=args.on_corrupt)
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}")
    print(f"{args.out}: {manifest['num_images']} images, {len(manifest['classes'])} classes, {manifest['bytes'] / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
