"""ObjectNet 1.0 (Barbu et al. 2019), scored on the 113 classes that overlap ImageNet-1k.

Release layout (``objectnet-1.0.zip``)::

    objectnet-1.0/
      README, LICENSE
      images/<folder>/*.png                       313 folders, 50,273 images
      mappings/folder_to_objectnet_label.json     {"alarm_clock": "Alarm clock", ...}
      mappings/objectnet_to_imagenet_1k.json      {"Alarm clock": "analog clock; digital clock", ...}
      mappings/imagenet_to_label_2012_v2          text, line i = ImageNet label string of "2012 id" i
      mappings/pytorch_to_imagenet_2012_id.json   {"<sorted-wnid index>": <line number in the file above>}

A folder overlaps ImageNet when its ObjectNet label has an entry in
``objectnet_to_imagenet_1k.json``; the entry lists one or more ImageNet label strings joined
by ``"; "`` (113 ObjectNet classes → 125 ImageNet classes; 18,514 images). Label strings
are resolved to lines of ``imagenet_to_label_2012_v2``, lines to PyTorch indices by
inverting ``pytorch_to_imagenet_2012_id.json``, indices to wnids with ImageNet-1k's
sorted-wnid list. (A label string occurring on two lines — ImageNet has two "crane"s —
resolves to the last line, as the published loaders' dict comprehensions do.)

Scoring (as modestyachts/imagenet-testbed): logits restricted to the mapped ImageNet
classes the model has; correct if the argmax is one of the image's folder's mapped classes.

Border: every ObjectNet image has a thin red border. ``preprocess`` crops ``border_px``
pixels from each side before the image is stored (the beton converter calls it). Default
2 px: what the dataset authors' own evaluation template (abarbu/objectnet-template-pytorch,
"crops out 2 pixel red border") and imagenet-testbed do; 1-3 px are in use elsewhere.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ood.base import (Benchmark, BenchmarkIndex, _check_lengths, list_dirs, list_images,
                      masked_argmax, read_json, require_file)
from ood.class_lists import imagenet1k_wnids

EXPECTED_IMAGES = 18_514  # images in the 113 overlapping folders
EXPECTED_FOLDERS = 113
MAPPING_FILES = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json",
                 "pytorch_to_imagenet_2012_id.json", "imagenet_to_label_2012_v2")


def read_objectnet_mappings(mappings: Path, benchmark: str = "objectnet") -> dict[str, tuple[str, list[str]]]:
    """``mappings/`` → {folder: (objectnet label, [ImageNet wnids])} for the overlapping folders."""
    folder_to_label = read_json(mappings / "folder_to_objectnet_label.json", benchmark)
    label_to_imagenet = read_json(mappings / "objectnet_to_imagenet_1k.json", benchmark)
    pytorch_to_line = read_json(mappings / "pytorch_to_imagenet_2012_id.json", benchmark)
    lines = require_file(mappings / "imagenet_to_label_2012_v2", benchmark).read_text().splitlines()
    wnids = imagenet1k_wnids()
    line_to_wnid = {int(line): wnids[int(idx)] for idx, line in pytorch_to_line.items()}
    label_to_line = {text.strip(): i for i, text in enumerate(lines)}  # last occurrence wins (see docstring)
    out = {}
    for folder, label in folder_to_label.items():
        if label not in label_to_imagenet:
            continue
        mapped = []
        for name in label_to_imagenet[label].split("; "):
            name = name.strip()
            if name not in label_to_line:
                raise ValueError(f"{benchmark}: ImageNet label {name!r} (mapped from {label!r}) is not a line of {mappings / 'imagenet_to_label_2012_v2'}")
            line = label_to_line[name]
            if line not in line_to_wnid:
                raise ValueError(f"{benchmark}: line {line} ({name!r}) has no entry in {mappings / 'pytorch_to_imagenet_2012_id.json'}")
            mapped.append(line_to_wnid[line])
        out[folder] = (label, mapped)
    return out


class ObjectNet(Benchmark):
    """ObjectNet on its ImageNet-overlapping classes. ``labels`` index the kept folders
    (sorted by name); ``outcomes`` checks the argmax against that folder's mapped outputs.
    Result key ``objectnet`` (top-1 error).

    Args:
        border_px: pixels cropped from each side by ``preprocess`` (default 2, see module doc).
        strict, expected_size: see ``Benchmark``. With ``expected_size=None`` the overlapping
            folders must be 113 with 18,514 images; an explicit size checks the image count only.
    """

    name = "objectnet"
    result_keys = ("objectnet",)
    release_folder = "objectnet-1.0"
    layout = "images/<folder>/*.png and mappings/*.json"
    landmarks = ("mappings/*.json", "images/*/*.png")

    def __init__(self, *, border_px: int = 2, strict: bool = True, expected_size: int | None = None):
        super().__init__(strict=strict, expected_size=expected_size)
        if int(border_px) < 0:
            raise ValueError(f"objectnet: border_px must be >= 0, got {border_px}")
        self.border_px = int(border_px)
        self._allowed = np.zeros((0, 0), dtype=bool)  # (kept folders, model outputs)

    def _settings(self):
        return {"border_px": self.border_px}

    def preprocess(self, image: Image.Image) -> Image.Image:
        b = self.border_px
        w, h = image.size
        if b == 0 or w <= 2 * b or h <= 2 * b:
            return image
        return image.crop((b, b, w - b, h - b))

    def _scan(self, root: Path, strict: bool) -> BenchmarkIndex:
        for name in MAPPING_FILES:  # name the first missing file before parsing anything
            require_file(root / "mappings" / name, self.name)
        mapping = read_objectnet_mappings(root / "mappings", self.name)
        images_dir = root / "images"
        if not images_dir.is_dir():
            raise FileNotFoundError(f"{self.name}: image folder {images_dir} is missing; the release is incomplete (re-download it)")
        on_disk = {d.name: d for d in list_dirs(images_dir)}
        overlapping = sorted(f for f in mapping if f in on_disk)
        if self.expected_size is None:
            self._check_count("overlapping class folders", EXPECTED_FOLDERS, len(overlapping), images_dir, strict)
        paths, labels, allowed_rows, kept = [], [], [], []
        found = excluded = excluded_classes = 0
        for folder in overlapping:
            images = list_images(on_disk[folder])
            found += len(images)
            outputs = [self._out_index[w] for w in mapping[folder][1] if w in self._out_index]
            if not outputs:
                excluded += len(images)
                excluded_classes += 1
                continue
            row = np.zeros(len(self.class_list), dtype=bool)
            row[outputs] = True
            paths.extend(images)
            labels.extend([len(allowed_rows)] * len(images))
            allowed_rows.append(row)
            kept.append(folder)
        expected = EXPECTED_IMAGES if self.expected_size is None else self.expected_size
        self._check_count("images in the ImageNet-overlapping classes", expected, found, images_dir, strict)
        self._allowed = np.stack(allowed_rows) if allowed_rows else np.zeros((0, len(self.class_list)), dtype=bool)
        self._device_cache = {}
        self.folders = kept  # label k of the index is folder self.folders[k]
        return BenchmarkIndex(paths, np.asarray(labels, dtype=np.int64), {}, self.result_keys,
                              {"found": found, "kept": len(paths), "excluded": excluded, "excluded_classes": excluded_classes})

    def outcomes(self, logits, labels):
        self._require_bound()
        allowed = self._on_device("allowed", lambda: torch.from_numpy(self._allowed), logits.device)  # (F, C)
        pred, conf = masked_argmax(logits, allowed.any(dim=0))
        correct = allowed[labels.to(logits.device).long(), pred]
        return correct, conf

    def summarize(self, correct, confidence, index):
        correct = np.asarray(correct, dtype=bool)
        _check_lengths(self.name, correct, confidence, index)
        return {"objectnet": float(1.0 - correct.mean()), "objectnet/n_images": float(correct.size)}
