"""Nested, seeded subsets and their index files."""
import json

import numpy as np
import pytest

from conversion.subsets import load_or_create_subset, seeded_order, split_indices
from tests.conftest import copy_beton

LABELS = np.repeat(np.arange(10), [50, 40, 30, 30, 30, 30, 30, 20, 20, 20])  # 300 items, unbalanced


@pytest.mark.parametrize("balanced", [False, True])
def test_subsets_are_nested_and_disjoint_from_holdout(balanced):
    small, val = split_indices(LABELS, 30, seed=3, holdout=20, balanced=balanced)
    mid, val2 = split_indices(LABELS, 120, seed=3, holdout=20, balanced=balanced)
    full, val3 = split_indices(LABELS, None, seed=3, holdout=20, balanced=balanced)
    assert set(small) < set(mid) < set(full)
    assert len(small) == 30 and len(mid) == 120 and len(full) == 280
    assert np.array_equal(val, val2) and np.array_equal(val, val3)
    assert not set(val) & set(full)
    assert set(full) | set(val) == set(range(300))


def test_seed_decides_the_subset():
    a, _ = split_indices(LABELS, 50, seed=0)
    b, _ = split_indices(LABELS, 50, seed=0)
    c, _ = split_indices(LABELS, 50, seed=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_balanced_prefix_counts():
    order = seeded_order(LABELS, 0, balanced=True)
    counts = np.bincount(LABELS[order[:100]], minlength=10)
    assert counts.tolist() == [10] * 10  # every class has >= 20 items, so 100 = 10 per class
    # after 20 rounds the three 20-item classes are exhausted (200 items); the next 50 go
    # round-robin over the other seven: 7 rounds of 7 and one more item
    counts = np.bincount(LABELS[order[:250]], minlength=10)
    assert counts[7:].tolist() == [20, 20, 20]
    assert sorted(counts[:7].tolist()) == [27] * 6 + [28]


def test_oversized_subset_is_refused_with_numbers():
    with pytest.raises(ValueError, match="subset size 290 is not in \\[1, 280\\]"):
        split_indices(LABELS, 290, seed=0, holdout=20)


def test_index_files_are_written_once_and_reused(tmp_path):
    beton = tmp_path / "up.beton"
    classes = [f"c{k}" for k in range(10)]
    train, val = load_or_create_subset(beton, LABELS, classes, 60, seed=0, holdout=10, balanced=False)
    folder = tmp_path / "up.subsets" / "seed=0-uniform-holdout=10"
    assert (folder / "size=60.npy").exists() and (folder / "val.npy").exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed"] == 0 and manifest["subsets"]["size=60"]["size"] == 60
    assert sum(manifest["subsets"]["size=60"]["per_class_counts"].values()) == 60
    stamp = (folder / "size=60.npy").stat().st_mtime_ns
    again, _ = load_or_create_subset(beton, LABELS, classes, 60, seed=0, holdout=10, balanced=False)
    assert np.array_equal(train, again) and (folder / "size=60.npy").stat().st_mtime_ns == stamp
    assert train.dtype == np.uint32  # 13M indices cost 52 MB


@pytest.mark.parametrize("text,size", [("1M", 1_000_000), ("5m", 5_000_000), ("500K", 500_000), ("1.5M", 1_500_000),
                                       ("13,000", 13_000), (40, 40), ("full", None), (None, None)])
def test_sizes_by_name(text, size):
    from conversion.subsets import parse_size

    assert parse_size(text) == size


def test_a_bad_size_is_named():
    from conversion.subsets import parse_size

    with pytest.raises(ValueError, match="subset size 'lots' is not a number like 1000000, 1M"):
        parse_size("lots")


def test_cli_writes_nested_subsets_with_their_manifests(tmp_path, colour_beton):
    from conversion.convert import main

    beton = copy_beton(colour_beton, tmp_path)
    main(["subsets", str(beton), "--sizes", "12", "6", "full", "--holdout", "4", "--seed", "7", "--balanced"])
    folder = tmp_path / "up.subsets" / "seed=7-balanced-holdout=4"
    small, mid, full = (np.load(folder / f"{n}.npy") for n in ("size=6", "size=12", "full"))
    assert set(small) < set(mid) < set(full) and len(full) == 20
    assert not set(full) & set(np.load(folder / "val.npy"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["subsets"]) == ["full", "size=12", "size=6"]
    assert manifest["subsets"]["size=12"]["per_class_counts"] == {c: 3 for c in read_classes(beton)}  # balanced: 12 over 4 classes
    assert json.loads((folder / "size=6.json").read_text())["seed"] == 7


def read_classes(beton):
    from conversion.beton import read_manifest

    return read_manifest(beton)["classes"]


def test_datamodule_takes_a_size_name(tmp_path, colour_beton):
    from datamodules.upstream import UpstreamDataModule

    beton = copy_beton(colour_beton, tmp_path)
    dm = UpstreamDataModule(str(beton), subset_size="0.01K", holdout=4)
    train, val = dm.rows()
    assert dm.num_train_examples == len(train) == 10 and len(val) == 4
    with pytest.raises(ValueError, match="data.subset_size=30 but .*up.beton has 20 images after holding out 4"):
        UpstreamDataModule(str(beton), subset_size=30, holdout=4)
