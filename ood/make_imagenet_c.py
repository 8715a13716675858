"""Write an ImageNet-C-style set from any labelled folder, in the release's layout.

    python -m ood.make_imagenet_c SRC OUT [--per-class N] [--workers 8] [--seed 0]

``SRC`` holds ``<class>/`` folders of images (an ImageNet-style val set); ``OUT`` receives
``<corruption>/<severity>/<class>/<stem>.JPEG`` for the 15 benchmark corruptions x 5
severities — the layout ``ood.imagenet_c`` reads. The protocol is the
release's (Hendrycks' ``make_imagenet_c.py``): resize the shorter side to 256, centre-crop
224, corrupt (corrupt-tta, the maintained port of the same corruption code), truncate to
uint8, save as JPEG quality 85. So a -C variant exists for any downstream set.

Deterministic: every (image, corruption, severity) draws from its own seed, derived from
``--seed`` and the image's position, so runs with any worker count write the same files.
Atomic: written into a hidden sibling folder renamed to ``OUT`` when complete.
"""
from __future__ import annotations

import argparse
import os
import shutil
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence
from unittest import mock

import numpy as np
from PIL import Image, ImageOps

from ood.imagenet_c import IMAGENET_C_CORRUPTIONS, SEVERITIES

RELEASE_RESIZE, RELEASE_CROP = 256, 224
JPEG_QUALITY = 85  # make_imagenet_c.py saves with quality=85
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@contextmanager
def seeded_corruptions(seed_seq: Sequence[int]) -> Iterator[None]:
    """corrupt-tta draws from numpy's global generator (and skimage's ``random_noise`` from a
    fresh unseeded one); seed both for one call and restore the global state afterwards."""
    import corrupt_tta.corruptions as cc
    from skimage.util import random_noise

    state = np.random.get_state()
    ss = np.random.SeedSequence(list(seed_seq))
    np.random.seed(ss.generate_state(1)[0])
    rng = np.random.default_rng(ss.spawn(1)[0])
    try:
        with mock.patch.object(cc, "random_noise", lambda image, **kw: random_noise(image, rng=rng, **kw)):
            yield
    finally:
        np.random.set_state(state)


def release_crop(img: Image.Image, crop: int = RELEASE_CROP, resize: int | None = None) -> np.ndarray:
    """Resize the shorter side to ``resize`` (default ``crop * 256 / 224``) and centre-crop ``crop``."""
    img = img.convert("RGB")
    short = resize or round(crop * RELEASE_RESIZE / RELEASE_CROP)
    w, h = img.size
    scale = short / min(w, h)
    img = img.resize((max(short, round(w * scale)), max(short, round(h * scale))), Image.BILINEAR)
    return np.asarray(ImageOps.fit(img, (crop, crop), Image.BILINEAR, centering=(0.5, 0.5)))


def corrupt_image(x: np.ndarray, corruption: str, severity: int, seed_seq: Sequence[int]) -> np.ndarray:
    """One corrupted copy of the centre-cropped ``x`` (uint8 truncation of the clipped result, as the release)."""
    import corrupt_tta

    with seeded_corruptions(seed_seq):
        y = corrupt_tta.corrupt(x, severity=severity, corruption_name=corruption)
    return np.uint8(np.clip(y, 0, 255))


def _image_jobs(src: Path, classes: Sequence[str], per_class: int | None) -> list[tuple[int, int, Path, str]]:
    jobs = []
    for ci, name in enumerate(classes):
        folder = src / name
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
        if per_class is not None:
            if len(images) < per_class:
                raise ValueError(f"{folder} has {len(images)} images; --per-class {per_class} needs at least that many")
            images = images[:per_class]
        jobs.extend((ci, ii, p, name) for ii, p in enumerate(images))
    return jobs


def _write_one(job: tuple) -> None:
    (ci, ii, path, name), out, seed, crop, resize, corruptions, severities = job
    with Image.open(path) as im:
        x = release_crop(im, crop, resize)
    for k, corruption in enumerate(corruptions):
        for severity in severities:
            y = corrupt_image(x, corruption, severity, [int(seed), zlib.crc32(b"imagenet_c"), ci, ii, k, severity])
            target = out / corruption / str(severity) / name / f"{path.stem}.JPEG"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(y).save(target, format="JPEG", quality=JPEG_QUALITY)


def write_imagenet_c(src: Path, out: Path, *, classes: Sequence[str] | None = None, per_class: int | None = None,
                     seed: int = 0, crop: int = RELEASE_CROP, resize: int | None = None, workers: int = 1,
                     corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS, severities: Sequence[int] = SEVERITIES) -> int:
    """Write the -C set of ``src`` to ``out`` (atomically); returns the number of source images used.

    ``classes``: which ``src/<class>/`` folders, in which order (default: all, sorted).
    ``per_class``: the first N images of each class by name (default: all).
    """
    src, out = Path(src), Path(out)
    if not src.is_dir():
        raise FileNotFoundError(f"{src} is not a folder of <class>/ image folders")
    if out.exists():
        raise FileExistsError(f"{out} exists; remove it or choose another output folder")
    unknown = sorted(set(corruptions) - set(IMAGENET_C_CORRUPTIONS))
    if unknown:
        raise ValueError(f"unknown corruptions {unknown}; the benchmark's are {list(IMAGENET_C_CORRUPTIONS)}")
    classes = list(classes) if classes is not None else sorted(p.name for p in src.iterdir() if p.is_dir())
    jobs = _image_jobs(src, classes, per_class)
    if not jobs:
        raise ValueError(f"{src}: no images in its class folders")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    args = [(job, tmp, seed, crop, resize, tuple(corruptions), tuple(severities)) for job in jobs]
    try:
        from tqdm import tqdm

        progress = dict(total=len(args), desc="corrupting", unit="img", disable=len(args) < 50)
        if workers > 1:
            from multiprocessing import get_context

            with get_context("fork").Pool(workers) as pool:
                for _ in tqdm(pool.imap_unordered(_write_one, args), **progress):
                    pass
        else:
            for a in tqdm(args, **progress):
                _write_one(a)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(jobs)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src", type=Path, help="folder of <class>/ image folders (e.g. an ImageNet-style val set)")
    parser.add_argument("out", type=Path, help="output folder (<corruption>/<severity>/<class>/*.JPEG)")
    parser.add_argument("--per-class", type=int, help="use the first N images of each class (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crop", type=int, default=RELEASE_CROP, help="centre crop (default 224, the release's)")
    parser.add_argument("--resize", type=int, help="shorter side before the crop (default crop x 256/224)")
    parser.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1))
    parser.add_argument("--corruptions", nargs="+", default=list(IMAGENET_C_CORRUPTIONS))
    parser.add_argument("--severities", nargs="+", type=int, default=list(SEVERITIES))
    args = parser.parse_args(argv)
    try:
        n = write_imagenet_c(args.src, args.out, per_class=args.per_class, seed=args.seed, crop=args.crop, resize=args.resize,
                             workers=args.workers, corruptions=args.corruptions, severities=args.severities)
    except (FileNotFoundError, FileExistsError, ValueError) as err:
        raise SystemExit(f"error: {err}")
    print(f"{args.out}: {n} images x {len(args.corruptions)} corruptions x {len(args.severities)} severities")


if __name__ == "__main__":
    main()
