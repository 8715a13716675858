"""The ImageNet-C-style generator: release layout, release protocol, deterministic, atomic."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from ood.imagenet_c import ImageNetC
from ood.make_imagenet_c import main, write_imagenet_c
from tests.conftest import write_colour_folder

WNIDS = ("n01440764", "n01443537")
CORRUPTIONS = ["gaussian_noise", "brightness"]


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.JPEG"))}


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("val")
    return write_colour_folder(root / "val", wnids=WNIDS, per_class=2, size=300)


def test_release_layout_and_crop(val_folder, tmp_path):
    n = write_imagenet_c(val_folder, tmp_path / "c", corruptions=CORRUPTIONS, severities=[1, 5])
    assert n == 4
    files = sorted((tmp_path / "c").rglob("*.JPEG"))
    assert len(files) == 4 * 2 * 2
    assert (tmp_path / "c" / "gaussian_noise" / "5" / WNIDS[1] / f"{WNIDS[1]}_0.JPEG").is_file()
    with Image.open(files[0]) as im:
        assert im.size == (224, 224) and im.format == "JPEG"  # the release's 256 → 224 centre crop
    # severity changes the image: the corruption was applied
    a = np.asarray(Image.open(tmp_path / "c" / "gaussian_noise" / "1" / WNIDS[0] / f"{WNIDS[0]}_0.JPEG"), dtype=float)
    b = np.asarray(Image.open(tmp_path / "c" / "gaussian_noise" / "5" / WNIDS[0] / f"{WNIDS[0]}_0.JPEG"), dtype=float)
    assert np.abs(a - b).mean() > 5


def test_same_files_whatever_the_worker_count(val_folder, tmp_path):
    write_imagenet_c(val_folder, tmp_path / "one", corruptions=CORRUPTIONS[:1], severities=[3], workers=1, seed=4)
    write_imagenet_c(val_folder, tmp_path / "two", corruptions=CORRUPTIONS[:1], severities=[3], workers=2, seed=4)
    write_imagenet_c(val_folder, tmp_path / "other", corruptions=CORRUPTIONS[:1], severities=[3], workers=1, seed=5)
    assert _digest(tmp_path / "one") == _digest(tmp_path / "two") != _digest(tmp_path / "other")


def test_benchmark_reads_what_the_generator_writes(val_folder, tmp_path):
    write_imagenet_c(val_folder, tmp_path / "imagenet-c", corruptions=CORRUPTIONS, severities=[2], per_class=1)
    bench = ImageNetC(corruptions=CORRUPTIONS, severities=[2], expected_size=2)
    index = bench.scan(tmp_path / "imagenet-c", list(WNIDS))
    assert len(index.paths) == 4 and sorted(set(index.labels.tolist())) == [0, 1]


def test_existing_output_and_unknown_corruption_are_refused(val_folder, tmp_path):
    (tmp_path / "c").mkdir()
    with pytest.raises(SystemExit, match=r"error: .*c exists; remove it"):
        main([str(val_folder), str(tmp_path / "c")])
    with pytest.raises(SystemExit, match=r"unknown corruptions \['nope'\]"):
        main([str(val_folder), str(tmp_path / "d"), "--corruptions", "nope"])
    assert not (tmp_path / "d").exists()
