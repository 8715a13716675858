"""One CLI for every conversion: raw ImageNet downloads → FFCV betons (+ manifests), and subsets.

    python -m conversion imagenet21k /data/winter21 /fast/in21k.beton --release winter21 [--class-index timm:imagenet21k_goog]
    python -m conversion imagenet1k-train /data/imagenet/train /fast/in1k_train.beton
    python -m conversion imagenet1k-val /data/imagenet/val /fast/in1k_val.beton [--devkit ILSVRC2012_devkit_t12.tar.gz | --loc-csv LOC_val_solution.csv]
    python -m conversion folder /data/any/train /fast/any_train.beton [--classes-from other.beton]
    python -m conversion subsets /fast/in21k.beton --sizes 1M 5M --holdout 51200 [--seed 0 --balanced]

Conversions write to a temporary file renamed when complete, skip (and list) or abort on
images that do not decode, refuse a download whose counts do not match its release
(``--allow-partial`` converts it anyway, flagged), refuse labels outside the class list,
and do nothing when re-run over a finished beton with the same source and settings (one
whose size no longer matches its manifest is refused; ``--overwrite`` rebuilds it).
Storage caps follow the use (``--max-resolution``): ImageNet-1k 512 px (the HyperRule's largest
squash, so either variant crops without upsampling), ImageNet-21k 256 px (pre-training crops
224), a plain folder 256 px; the other storage defaults are in ``conversion.beton.BetonSettings``
(see docs/data-loading.md for what they cost).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Sequence

from conversion.beton import BetonSettings, convert, read_manifest
from conversion.sources import (RELEASES, read_class_index, scan_class_folders, scan_imagenet1k_train,
                                scan_imagenet1k_val, scan_imagenet21k)
from conversion.subsets import parse_size, write_subsets
from recipes import hyperrule

# Storage caps (longer side, px) by use: never below what training crops, so nothing is
# upsampled again after being shrunk for storage (the DataModules refuse that at start-up).
# ImageNet-1k feeds fine-tuning: the HyperRule squashes to 448 (paper) or 512 (code) before its
# crop, so store the larger. ImageNet-21k feeds pre-training at 224: 256 keeps FFCV's margin.
FINETUNE_STORAGE = max(resize for resize, _crop in hyperrule.RESOLUTIONS.values())
PRETRAIN_STORAGE = 256


def _storage_options(p: argparse.ArgumentParser, max_resolution: int) -> None:
    d = BetonSettings()
    p.add_argument("--max-resolution", type=int, default=max_resolution,
                   help="cap on the longer side, px; at least the crop the betons will be trained at (default %(default)s)")
    p.add_argument("--jpeg-quality", type=int, default=d.jpeg_quality, help="(default %(default)s)")
    p.add_argument("--write-mode", default=d.write_mode, choices=["jpg", "raw", "proportion", "smart"], help="(default %(default)s)")
    p.add_argument("--compress-probability", type=float, default=d.compress_probability, help="share stored as JPEG in write-mode proportion")
    p.add_argument("--num-workers", type=int, default=max(1, os.cpu_count() or 1), help="writer and decode-check processes")
    p.add_argument("--on-corrupt", choices=["skip", "abort"], default="skip",
                   help="an image that does not decode: skip it (listed in the manifest) or stop with its path")
    p.add_argument("--allow-partial", action="store_true", help="convert a download whose counts do not match its release (flagged in the manifest)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished beton made from another source or with other settings")


def _multi_label_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--multi-label", action="store_true",
                   help="merge byte-identical images filed under several classes into one row with all their labels "
                        "(adds the beton field 'labels'; train with data.multi_label: true). Reads every file once more to hash it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m conversion", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("imagenet21k", help="ImageNet-21k: <wnid>.tar per class, or extracted <wnid>/ folders")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--release", required=True, choices=["fall11", "winter21"],
                   help=f"fall11: {RELEASES['fall11'].classes:,} classes; winter21: {RELEASES['winter21'].classes:,}")
    p.add_argument("--class-index", help="fixed class order: a file of one wnid per line, or timm:<name> "
                                         "(timm:imagenet21k_goog = BiT's 21,843 outputs); default: sorted wnids found")
    _multi_label_option(p)
    _storage_options(p, PRETRAIN_STORAGE)

    p = commands.add_parser("imagenet1k-train", help="ImageNet-1k train: 1,000 <wnid>/ folders (labels in timm's 1k order)")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    _storage_options(p, FINETUNE_STORAGE)

    p = commands.add_parser("imagenet1k-val", help="ImageNet-1k val: <wnid>/ folders, or flat files + devkit or LOC_val_solution.csv")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    labels = p.add_mutually_exclusive_group()
    labels.add_argument("--devkit", type=Path, help="ILSVRC2012_devkit_t12 folder or .tar.gz (ground truth + meta.mat)")
    labels.add_argument("--loc-csv", type=Path, help="Kaggle's LOC_val_solution.csv")
    _storage_options(p, FINETUNE_STORAGE)

    p = commands.add_parser("folder", help="any <class>/ folder layout (sorted folder names, or another beton's classes)")
    p.add_argument("src", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--classes-from", type=Path, help="a beton whose class list (and indices) to use, e.g. the train set's")
    _multi_label_option(p)
    _storage_options(p, BetonSettings().max_resolution)

    p = commands.add_parser("subsets", help="write nested, seeded subset index files beside a beton")
    p.add_argument("beton", type=Path)
    p.add_argument("--sizes", nargs="+", required=True, help="subset sizes, e.g. 1M 5M full (1M = 1,000,000)")
    p.add_argument("--holdout", type=int, default=0, help="images held out for upstream validation before subsets are drawn")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--balanced", action="store_true", help="class-balanced subsets instead of uniform")
    return parser


def run(args: argparse.Namespace) -> str:
    """Carry out one parsed command; returns the summary line."""
    if args.command == "subsets":
        written = write_subsets(args.beton, [parse_size(s) for s in args.sizes], args.seed, args.holdout, args.balanced)
        return f"{written}: subsets {', '.join(args.sizes)} (seed {args.seed}, holdout {args.holdout}, {'balanced' if args.balanced else 'uniform'})"
    if args.command == "imagenet21k":
        index = read_class_index(args.class_index) if args.class_index else None
        images = scan_imagenet21k(args.src, args.release, index, args.allow_partial)
    elif args.command == "imagenet1k-train":
        images = scan_imagenet1k_train(args.src, args.allow_partial)
    elif args.command == "imagenet1k-val":
        images = scan_imagenet1k_val(args.src, args.devkit, args.loc_csv, args.allow_partial)
    else:
        classes = read_manifest(args.classes_from)["classes"] if args.classes_from else None
        images = scan_class_folders(args.src, classes)
    settings = BetonSettings(args.max_resolution, args.jpeg_quality, args.write_mode, args.compress_probability)
    manifest = convert(images, args.out, settings, args.num_workers, args.on_corrupt, args.overwrite,
                       multi_label=getattr(args, "multi_label", False))
    skipped = f", {len(manifest['skipped'])} skipped (listed in the manifest)" if manifest["skipped"] else ""
    partial = " [PARTIAL: counts do not match the release]" if manifest["source_check"].get("partial") else ""
    return (f"{args.out}: {manifest['num_images']:,} images, {len(manifest['classes']):,} classes, "
            f"{manifest['bytes'] / 2**20:,.1f} MiB{skipped}{partial}")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (FileNotFoundError, ValueError) as err:
        raise SystemExit(f"error: {err}")


if __name__ == "__main__":
    main()
