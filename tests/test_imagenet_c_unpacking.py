"""ImageNet-C as users unpack its five tars: all into one folder, or each into its own.

Both trees are built here as the tars unpack (every tar holds its corruption folders at its
top level); the scans must agree image for image, the extra corruptions stay out of the
15-set metric, and a mixed, misplaced or partial tree is refused in one line.
"""
from __future__ import annotations

import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.ood import misplaced_release
from ood import get_benchmark
from ood.imagenet_c import CATEGORIES, IMAGENET_C_CORRUPTIONS, IMAGENET_C_EXTRA, find_corruption_folders

CLASSES = ["n01530575", "n01531178"]  # brambling, goldfinch
PER_CLASS = (2, 1)


def _jpeg_bytes(seed: int) -> bytes:
    import io

    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def unpack(root: Path, per_tar_folder: bool, tars=tuple(CATEGORIES), folder_names=None) -> Path:
    """The release tree: ``root/<corruption>/...`` or ``root/<tar folder>/<corruption>/...``."""
    for category in tars:
        base = root / (folder_names or {}).get(category, category) if per_tar_folder else root
        for k, corruption in enumerate(CATEGORIES[category]):
            for severity in range(1, 6):
                for wnid, n in zip(CLASSES, PER_CLASS):
                    folder = base / corruption / str(severity) / wnid
                    folder.mkdir(parents=True)
                    for i in range(n):
                        (folder / f"ILSVRC2012_val_{i:08d}.JPEG").write_bytes(_jpeg_bytes(zlib.crc32(f"{corruption}/{severity}/{i}".encode())))
    return root


def _relative(index, root: Path) -> list[str]:
    """Each image as <corruption>/<severity>/<wnid>/<file>, whatever the unpacking."""
    return ["/".join(Path(p).parts[-4:]) for p in index.paths]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("imagenet_c")
    return unpack(base / "one" / "imagenet-c", False), unpack(base / "per_tar" / "imagenet-c", True,
                                                              folder_names={"blur": "blur-tar", "extra": "ImageNet-C-extra"})


def test_both_unpackings_are_read_alike_and_the_extras_stay_out(trees):
    one, per_tar = trees
    bench = lambda: get_benchmark("imagenet_c", expected_size=sum(PER_CLASS))  # noqa: E731
    a, b = bench().scan(one, CLASSES), bench().scan(per_tar, CLASSES)
    assert _relative(a, one) == _relative(b, per_tar)
    assert len(a) == 15 * 5 * sum(PER_CLASS)
    assert not {Path(p).parts[-4] for p in b.paths} & set(IMAGENET_C_EXTRA)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.meta["set_id"], b.meta["set_id"])
    assert find_corruption_folders(per_tar)["defocus_blur"] == per_tar / "blur-tar" / "defocus_blur"
    assert set(find_corruption_folders(one)) == set(IMAGENET_C_CORRUPTIONS) | set(IMAGENET_C_EXTRA)
    for root in trees:  # the suite's placement check accepts both
        assert misplaced_release(root.parent, get_benchmark("imagenet_c")) is None


def test_an_extra_corruption_is_read_when_named(trees):
    _, per_tar = trees
    bench = get_benchmark("imagenet_c", corruptions=("spatter", "fog"), expected_size=3)
    index = bench.scan(per_tar, CLASSES)
    assert {Path(p).parts[-4] for p in index.paths} == {"spatter", "fog"}
    out = bench.summarize(np.ones(len(index), bool), np.ones(len(index)), index)
    assert out["imagenet_c"] == 0.0 and "imagenet_c/mce" not in out  # no AlexNet normaliser for an extra
    with pytest.raises(ValueError, match="unknown corruption 'speckle'"):
        get_benchmark("imagenet_c", corruptions=("speckle",))


def test_a_tree_mixing_both_unpackings_is_refused(tmp_path, trees):
    root = unpack(tmp_path / "imagenet-c", False, tars=("noise", "blur", "weather", "digital"))
    unpack(root, True, tars=("extra",))
    with pytest.raises(ValueError) as err:
        get_benchmark("imagenet_c", expected_size=3).scan(root, CLASSES)
    msg = str(err.value)
    assert "\n" not in msg and "mixes two unpackings" in msg and str(root) in msg


def test_a_partial_per_tar_tree_names_what_is_missing(tmp_path):
    root = unpack(tmp_path / "imagenet-c", True, tars=("noise", "blur", "weather", "extra"))  # digital.tar not unpacked
    with pytest.raises(ValueError) as err:
        get_benchmark("imagenet_c", expected_size=3).scan(root, CLASSES)
    msg = str(err.value)
    assert "\n" not in msg and "expected 75 (corruption, severity) sets, found 55" in msg and "contrast/1" in msg
    shutil.rmtree(root / "noise" / "shot_noise" / "4" / CLASSES[0])  # and one class of one set
    unpack(root, True, tars=("digital",))
    with pytest.raises(ValueError, match=r"expected 3 images per set, found shot_noise/4: 1"):
        get_benchmark("imagenet_c", expected_size=3).scan(root, CLASSES)


def test_one_folder_unpacking_a_level_too_deep_is_refused(tmp_path):
    root = unpack(tmp_path / "imagenet-c" / "ImageNet-C", False)
    with pytest.raises(ValueError, match=r"holds corruptions of 5 tars .*move its corruption folders up into .*imagenet-c$"):
        get_benchmark("imagenet_c", expected_size=3).scan(root.parent, CLASSES)


def test_a_corruption_in_two_tar_folders_is_refused(tmp_path):
    root = unpack(tmp_path / "imagenet-c", True)
    shutil.copytree(root / "noise", root / "noise-again")
    with pytest.raises(ValueError, match=r"corruption gaussian_noise appears twice .*noise-again"):
        get_benchmark("imagenet_c", expected_size=3).scan(root, CLASSES)
