"""Bad data input is refused before compute is spent: truncated or changed betons at start-up,
out-of-range labels at write time, each in one line naming the file and the fix."""
import os
import re

import numpy as np
import pytest

from datamodules.base import BetonDataModule
from conversion.beton import beton_labels, convert_folder, manifest_path, read_manifest, write_beton
from conversion.errors import InputError
from conversion.files import sha256_file
from conversion.sources import scan_class_folders
from tests.conftest import copy_beton, write_colour_folder


def _truncated_copy(beton, folder):
    """A copy of ``beton`` (with its manifest) cut to half its size, as an interrupted copy leaves it;
    returns ``(copy, full size, truncated size)``."""
    folder.mkdir(parents=True, exist_ok=True)
    copy = copy_beton(beton, folder)
    full = copy.stat().st_size
    os.truncate(copy, full // 2)
    return copy, full, full // 2


def _sizes_and_path(path, on_disk, recorded):
    return rf"{re.escape(str(path))} is {on_disk:,} bytes but its manifest .* records {recorded:,}.*re-copy"


class _OneBeton(BetonDataModule):
    """The smallest DataModule over one beton, as the project's DataModules read theirs."""

    def __init__(self, beton, verify_sha256: bool):
        super().__init__(batch_size=8, eval_batch_size=None, num_workers=1, os_cache=False, verify_sha256=verify_sha256)
        self.manifest = self._manifest(beton)


def test_a_truncated_beton_is_refused_when_the_upstream_datamodule_is_built(colour_beton, tmp_path):
    from datamodules.upstream import UpstreamDataModule

    intact = copy_beton(colour_beton, tmp_path)
    assert UpstreamDataModule(str(intact), holdout=4).num_classes == 4  # the copy itself is readable
    copy, full, cut = _truncated_copy(colour_beton, tmp_path / "cut")
    assert full == os.stat(colour_beton).st_size
    with pytest.raises(InputError, match=_sizes_and_path(copy, cut, full) + r".*--overwrite"):
        UpstreamDataModule(str(copy), holdout=4)
    with pytest.raises(InputError, match=_sizes_and_path(copy, cut, full)):
        beton_labels(copy)  # read before FFCV's reader sees the file


def test_a_truncated_val_beton_is_refused_when_the_downstream_datamodule_is_built(colour_beton, tmp_path):
    from datamodules.downstream import DownstreamDataModule

    train = copy_beton(colour_beton, tmp_path)
    val, full, cut = _truncated_copy(colour_beton, tmp_path / "val")
    with pytest.raises(InputError, match=_sizes_and_path(val, cut, full)):
        DownstreamDataModule(str(train), str(val), resize=20, crop=16)


def test_changed_bytes_of_the_same_size_are_refused_only_with_sha256_verification(colour_beton, tmp_path):
    from datamodules.upstream import UpstreamDataModule

    copy = copy_beton(colour_beton, tmp_path)
    _OneBeton(copy, verify_sha256=True)  # an intact copy passes the hash
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF  # the last byte inverted: same size, other content
    copy.write_bytes(bytes(data))
    assert copy.stat().st_size == colour_beton.stat().st_size
    UpstreamDataModule(str(copy), holdout=4)  # the size check alone cannot see it
    _OneBeton(copy, verify_sha256=False)
    recorded = read_manifest(colour_beton)["sha256"]
    with pytest.raises(InputError, match=rf"{re.escape(str(copy))} has sha256 {sha256_file(copy)} .* records {recorded}.*re-copy"):
        _OneBeton(copy, verify_sha256=True)


def test_a_rerun_over_a_truncated_beton_is_refused_and_overwrite_rebuilds_it(colour_beton, tmp_path):
    src = colour_beton.parent / "src"  # what the fixture converted: same source, count and settings
    copy = copy_beton(colour_beton, tmp_path)
    stamp = copy.stat().st_mtime_ns
    convert_folder(src, copy, num_workers=1)  # intact: a no-op
    assert copy.stat().st_mtime_ns == stamp
    full = copy.stat().st_size
    os.truncate(copy, full - 100)
    with pytest.raises(InputError, match=_sizes_and_path(copy, full - 100, full) + r".*--overwrite"):
        convert_folder(src, copy, num_workers=1)
    manifest = convert_folder(src, copy, num_workers=1, overwrite=True)
    assert manifest["bytes"] == copy.stat().st_size and manifest["sha256"] == sha256_file(copy)
    assert read_manifest(copy)["num_images"] == 24


@pytest.fixture
def four_classes(tmp_path):
    """8 images in 4 class folders (labels 0,0,1,1,2,2,3,3) and an empty output folder."""
    images = scan_class_folders(write_colour_folder(tmp_path / "src", per_class=2))
    assert images.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    (tmp_path / "out").mkdir()
    return images, tmp_path / "out"


@pytest.mark.parametrize("row,label", [(3, 4), (5, -1), (0, 7)])
def test_a_label_outside_the_class_list_is_refused_before_anything_is_written(four_classes, row, label):
    images, out = four_classes
    labels = images.labels.copy()
    labels[row] = label
    with pytest.raises(InputError, match=rf"{re.escape(str(images.refs[row]))}: label {label} is outside \[0, 4\).*fix its label"):
        write_beton(out / "a.beton", images.refs, labels, images.classes, num_workers=1)
    assert os.listdir(out) == []  # no beton, no manifest, no temp file


def test_a_label_set_member_outside_the_class_list_is_refused_before_anything_is_written(four_classes):
    images, out = four_classes
    label_sets = [(int(k),) for k in images.labels]
    label_sets[6] = (3, 9)
    with pytest.raises(InputError, match=rf"{re.escape(str(images.refs[6]))}: label set \(3, 9\) holds 9, outside \[0, 4\)"):
        write_beton(out / "a.beton", images.refs, images.labels, images.classes, num_workers=1, label_sets=label_sets)
    assert os.listdir(out) == []


def test_a_label_refusal_leaves_a_finished_beton_untouched(colour_beton, tmp_path):
    copy = copy_beton(colour_beton, tmp_path)
    images = scan_class_folders(colour_beton.parent / "src")
    before = sha256_file(copy), manifest_path(copy).read_bytes()
    labels = np.where(np.arange(len(images.labels)) == 10, 4, images.labels)
    with pytest.raises(InputError, match=rf"{re.escape(str(images.refs[10]))}: label 4"):
        write_beton(copy, images.refs, labels, images.classes, num_workers=1, overwrite=True)
    assert (sha256_file(copy), manifest_path(copy).read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([copy.name, manifest_path(copy).name])



def test_upstream_datamodule_verifies_sha256_on_request(colour_beton, tmp_path):
    from datamodules.upstream import UpstreamDataModule

    copy = copy_beton(colour_beton, tmp_path)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes: only the hash can tell
    copy.write_bytes(bytes(data))
    UpstreamDataModule(str(copy), holdout=4)
    with pytest.raises(InputError, match=rf"{re.escape(str(copy))} has sha256"):
        UpstreamDataModule(str(copy), holdout=4, verify_sha256=True)
