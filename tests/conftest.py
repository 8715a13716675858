"""Shared fixtures: tiny labelled image folders and betons built in the real layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")


def write_colour_folder(root: Path, wnids=WNIDS, per_class: int = 6, size: int = 24, seed: int = 0) -> Path:
    """``root/<wnid>/<wnid>_<n>.JPEG``: each class a distinct colour plus noise."""
    rng = np.random.default_rng(seed)
    for k, wnid in enumerate(wnids):
        folder = root / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            base = np.array([(k * 67) % 256, (k * 131 + 40) % 256, (k * 29 + 90) % 256], dtype=np.float64)
            img = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{wnid}_{n}.JPEG", quality=90)
    return root


@pytest.fixture(scope="session")
def colour_beton(tmp_path_factory) -> Path:
    """A beton of 4 classes x 6 images (24 rows) with its manifest."""
    from datamodules.beton import convert_folder

    root = tmp_path_factory.mktemp("colour")
    write_colour_folder(root / "src")
    convert_folder(root / "src", root / "colour.beton", num_workers=1)
    return root / "colour.beton"
