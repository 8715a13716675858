"""The converters read the downloads as users have them: 21k tars/folders, 1k train, 1k val (flat + labels)."""
from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from ood.class_lists import imagenet1k_wnids
from conversion.beton import beton_labels, read_manifest
from conversion.convert import main as convert_main
from conversion.sources import (RELEASES, TarMember, check_release, read_class_index, scan_imagenet1k_train,
                                scan_imagenet1k_val, scan_imagenet21k)


def _jpeg(seed: int, size: int = 20) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size + 4, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def write_class_tars(root, wnids, per_class=3, corrupt: str | None = None):
    """ImageNet-21k's download layout: ``root/<wnid>.tar`` holding ``<wnid>_<n>.JPEG`` at its top level."""
    root.mkdir(parents=True, exist_ok=True)
    for k, wnid in enumerate(wnids):
        with tarfile.open(root / f"{wnid}.tar", "w") as tar:
            for n in range(per_class):
                name = f"{wnid}_{n}.JPEG"
                data = _jpeg(100 * k + n)
                if name == corrupt:
                    data = data[: len(data) // 2]
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return root


def write_class_folders(root, wnids, per_class=3):
    for k, wnid in enumerate(wnids):
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            (root / wnid / f"{wnid}_{n}.JPEG").write_bytes(_jpeg(100 * k + n))
    return root


# wnids present in both 21k releases' head order (timm's list of BiT's 21,843 outputs)
GOOG = read_class_index("timm:imagenet21k_goog")
FALL11_WNIDS = [GOOG[5], GOOG[900], GOOG[20_000], GOOG[13]]
WINTER21_WNIDS = FALL11_WNIDS[1:]  # winter21 dropped classes; indices must not shift


def test_tar_per_class_is_read_in_place_with_sorted_classes(tmp_path):
    write_class_tars(tmp_path / "w21", WINTER21_WNIDS)
    images = scan_imagenet21k(tmp_path / "w21", "winter21", allow_partial=True)
    assert images.classes == sorted(WINTER21_WNIDS)
    assert all(isinstance(r, TarMember) for r in images.refs) and len(images.refs) == 9
    assert images.check["layout"] == "tar per class" and images.check["partial"] is True
    first = images.refs[0]
    assert first.name == f"{images.classes[0]}_0.JPEG" and np.array_equal(images.labels, np.repeat([0, 1, 2], 3))


def test_tars_and_extracted_folders_give_the_same_labels(tmp_path):
    tars = scan_imagenet21k(write_class_tars(tmp_path / "tars", FALL11_WNIDS), "fall11", allow_partial=True)
    folders = scan_imagenet21k(write_class_folders(tmp_path / "folders", FALL11_WNIDS), "fall11", allow_partial=True)
    assert folders.check["layout"] == "folder per class"
    assert tars.classes == folders.classes and np.array_equal(tars.labels, folders.labels)


def test_class_index_file_gives_both_releases_the_same_indices(tmp_path):
    fall = scan_imagenet21k(write_class_tars(tmp_path / "f11", FALL11_WNIDS), "fall11", GOOG, allow_partial=True)
    winter = scan_imagenet21k(write_class_tars(tmp_path / "w21", WINTER21_WNIDS), "winter21", GOOG, allow_partial=True)
    assert len(fall.classes) == len(winter.classes) == 21_843  # the head has BiT's outputs whatever was downloaded
    for wnid in WINTER21_WNIDS:  # the same wnid gets the same integer label in both betons
        (in_fall,) = set(fall.labels[[str(r).split(":")[0].endswith(f"{wnid}.tar") for r in fall.refs]].tolist())
        (in_winter,) = set(winter.labels[[str(r).split(":")[0].endswith(f"{wnid}.tar") for r in winter.refs]].tolist())
        assert in_fall == in_winter == GOOG.index(wnid)
    assert sorted(set(fall.labels.tolist())) == sorted(GOOG.index(w) for w in FALL11_WNIDS)
    assert set(winter.labels.tolist()) == {GOOG.index(w) for w in WINTER21_WNIDS}


def test_a_wnid_missing_from_the_class_index_is_named(tmp_path):
    write_class_tars(tmp_path / "x", ["n99999999", *WINTER21_WNIDS])
    with pytest.raises(ValueError, match="n99999999.*not in the class index"):
        scan_imagenet21k(tmp_path / "x", "winter21", GOOG, allow_partial=True)


@pytest.mark.parametrize("release", ["fall11", "winter21"])
def test_partial_download_is_refused_with_counts(tmp_path, release):
    write_class_tars(tmp_path / "dl", WINTER21_WNIDS)
    with pytest.raises(ValueError, match=f"found 3 classes with images, {release} has {RELEASES[release].classes:,}.*--allow-partial"):
        scan_imagenet21k(tmp_path / "dl", release)


def test_release_counts_are_the_published_ones():
    assert RELEASES["fall11"].classes == 21_841 and RELEASES["fall11"].images == 14_197_122
    assert RELEASES["winter21"].classes == 19_167
    assert (RELEASES["imagenet1k-train"].images, RELEASES["imagenet1k-val"].images) == (1_281_167, 50_000)


def test_a_complete_download_passes_the_check(tmp_path, monkeypatch):
    from conversion import sources

    monkeypatch.setitem(sources.RELEASES, "winter21", sources.Release(3, 9))
    images = scan_imagenet21k(write_class_tars(tmp_path / "dl", WINTER21_WNIDS), "winter21")
    assert images.check["partial"] is False and images.check["found_images"] == 9


def test_corrupt_member_of_a_tar_is_skipped_and_listed(tmp_path):
    bad = f"{WINTER21_WNIDS[0]}_1.JPEG"
    write_class_tars(tmp_path / "w21", WINTER21_WNIDS, corrupt=bad)
    convert_main(["imagenet21k", str(tmp_path / "w21"), str(tmp_path / "in21k.beton"), "--release", "winter21",
                  "--allow-partial", "--num-workers", "1", "--max-resolution", "32"])
    manifest = read_manifest(tmp_path / "in21k.beton")
    assert manifest["num_images"] == 8 and manifest["num_source_images"] == 9
    (listed,) = manifest["skipped"]
    assert listed.endswith(f"{WINTER21_WNIDS[0]}.tar:{bad}")
    assert manifest["source_check"]["partial"] is True and manifest["source_check"]["release"] == "winter21"
    assert manifest["classes"] == sorted(WINTER21_WNIDS)
    labels = beton_labels(tmp_path / "in21k.beton")
    assert np.bincount(labels).tolist() == [manifest["class_counts"][c] for c in manifest["classes"]]


def test_cli_names_the_partial_download_in_one_line(tmp_path):
    write_class_tars(tmp_path / "w21", WINTER21_WNIDS)
    with pytest.raises(SystemExit, match=r"^error: .*w21: found 3 classes with images, winter21 has 19,167"):
        convert_main(["imagenet21k", str(tmp_path / "w21"), str(tmp_path / "o.beton"), "--release", "winter21"])
    assert not (tmp_path / "o.beton").exists()


def test_timm_class_index_names_the_choices():
    with pytest.raises(FileNotFoundError, match="imagenet21k_goog"):
        read_class_index("timm:nonsense")


# ---- ImageNet-1k ------------------------------------------------------------------------------

IN1K = imagenet1k_wnids()
SOME_1K = [IN1K[0], IN1K[1], IN1K[500], IN1K[999]]


def test_imagenet1k_train_uses_timm_indices(tmp_path):
    write_class_folders(tmp_path / "train", SOME_1K, per_class=2)
    with pytest.raises(ValueError, match="found 4 classes with images, imagenet1k-train has 1,000"):
        scan_imagenet1k_train(tmp_path / "train")
    images = scan_imagenet1k_train(tmp_path / "train", allow_partial=True)
    assert len(images.classes) == 1000
    assert sorted(set(images.labels.tolist())) == [0, 1, 500, 999]


def _write_flat_val(root, wnids_in_order):
    root.mkdir(parents=True)
    for n, _ in enumerate(wnids_in_order, start=1):
        (root / f"ILSVRC2012_val_{n:08d}.JPEG").write_bytes(_jpeg(n))


def _write_devkit(root, wnids_in_order):
    """ILSVRC2012_devkit_t12 as released: data/meta.mat (synsets struct) + data/ILSVRC2012_validation_ground_truth.txt.

    The devkit's ILSVRC2012_IDs are its own numbering: here they are deliberately not the
    sorted-wnid order, so a reader that assumes they are gets the labels wrong.
    """
    from scipy.io import savemat

    leaves = sorted(set(wnids_in_order), reverse=True)
    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children", "wordnet_height", "num_train_images"]
    synsets = np.zeros(len(leaves) + 1, dtype=[(f, object) for f in fields])
    for i, wnid in enumerate(leaves):
        synsets[i] = (i + 1, wnid, "words", "gloss", 0, np.zeros(0), 0, 1300)
    synsets[-1] = (len(leaves) + 1, "n00001740", "entity", "gloss", 2, np.array([1, 2]), 18, 0)  # a non-leaf node
    data = root / "data"
    data.mkdir(parents=True)
    savemat(data / "meta.mat", {"synsets": synsets})
    id_of = {w: i + 1 for i, w in enumerate(leaves)}
    (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{id_of[w]}\n" for w in wnids_in_order))
    return root


VAL_ORDER = [SOME_1K[2], SOME_1K[0], SOME_1K[3], SOME_1K[1], SOME_1K[0]]


@pytest.mark.parametrize("packed", [False, True])
def test_flat_val_with_devkit_labels(tmp_path, packed):
    _write_flat_val(tmp_path / "val", VAL_ORDER)
    devkit = _write_devkit(tmp_path / "ILSVRC2012_devkit_t12", VAL_ORDER)
    if packed:
        with tarfile.open(tmp_path / "ILSVRC2012_devkit_t12.tar.gz", "w:gz") as tar:
            tar.add(devkit, arcname="ILSVRC2012_devkit_t12")
        devkit = tmp_path / "ILSVRC2012_devkit_t12.tar.gz"
    images = scan_imagenet1k_val(tmp_path / "val", devkit=devkit, allow_partial=True)
    assert [images.classes[l] for l in images.labels] == VAL_ORDER
    assert images.check["labels_from"] == str(devkit.resolve())


def test_flat_val_with_kaggle_csv(tmp_path):
    _write_flat_val(tmp_path / "val", VAL_ORDER)
    rows = [f"ILSVRC2012_val_{n:08d},{w} 10 20 100 200 {w} 1 2 3 4" for n, w in enumerate(VAL_ORDER, start=1)]
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    images = scan_imagenet1k_val(tmp_path / "val", loc_csv=tmp_path / "LOC_val_solution.csv", allow_partial=True)
    assert [images.classes[l] for l in images.labels] == VAL_ORDER


def test_flat_val_without_labels_says_what_to_pass(tmp_path):
    _write_flat_val(tmp_path / "val", VAL_ORDER)
    with pytest.raises(ValueError, match="--devkit .* or --loc-csv"):
        scan_imagenet1k_val(tmp_path / "val")


def test_flat_val_image_without_a_label_is_named(tmp_path):
    _write_flat_val(tmp_path / "val", VAL_ORDER)
    (tmp_path / "LOC_val_solution.csv").write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 2 3 4\n")
    with pytest.raises(ValueError, match="no label for \\['ILSVRC2012_val_00000002.JPEG'"):
        scan_imagenet1k_val(tmp_path / "val", loc_csv=tmp_path / "LOC_val_solution.csv", allow_partial=True)


def test_val_in_wnid_folders_needs_no_label_file(tmp_path):
    write_class_folders(tmp_path / "val", SOME_1K[:2], per_class=2)
    images = scan_imagenet1k_val(tmp_path / "val", allow_partial=True)
    assert images.labels.tolist() == [0, 0, 1, 1] and images.check["partial"] is True


def test_check_release_flags_rather_than_hides(tmp_path):
    images = scan_imagenet1k_val(write_class_folders(tmp_path / "val", SOME_1K[:1], per_class=1), allow_partial=True)
    again = check_release(images, "imagenet1k-val", allow_partial=True)
    assert json.loads(json.dumps(again.check))["found_images"] == 1
