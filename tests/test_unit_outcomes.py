"""Each benchmark's per-unit outcomes (what confidence intervals resample) reproduce its error.

For random outcome vectors on the generated releases (real layouts), the error recomputed
from ``unit_outcomes`` equals ``summarize``'s for every result key, units are named the same
way on every scan (so two runs pair), and the units are what the benchmark says they are.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from ood import get_benchmark
from synthetic.miniature_classes import MINIATURE_WNIDS

WNIDS = list(MINIATURE_WNIDS[:8])
SIZE = 16
SUITE = dict(per_class=2, c_per_class=2, videos_per_class=2, neighbours=2)
ALL = ["imagenet_a", "imagenet_c", "imagenet_v2", "objectnet", "imagenet_vid_robust", "ytbb_robust"]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    from tests.conftest import write_generated_suite

    _, paths, sizes = write_generated_suite(tmp_path_factory.mktemp("units"), WNIDS, SIZE, val_per_class=2, **SUITE)
    return paths, sizes


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_units_reproduce_every_result_key(suite, name, seed):
    paths, sizes = suite
    bench = get_benchmark(name, expected_size=sizes[name])
    index = bench.scan(paths[name], WNIDS)
    correct = np.random.default_rng(seed).random(len(index)) < 0.6
    summary = bench.summarize(correct, np.full(len(index), 0.5), index)
    units = bench.unit_outcomes(correct, index)
    assert set(units) == set(index.result_keys)
    for key, u in units.items():
        assert u.error() == pytest.approx(summary[key], abs=1e-12), key
        assert len(set(u.units)) == len(u.units)  # one row per unit
    again = get_benchmark(name, expected_size=sizes[name])
    again_units = again.unit_outcomes(correct, again.scan(paths[name], WNIDS))
    assert all(again_units[k].units == units[k].units for k in units)  # the same names on every scan: paired


def test_the_units_are_base_images_for_imagenet_c_and_anchors_for_the_videos(suite):
    paths, sizes = suite
    c = get_benchmark("imagenet_c", expected_size=sizes["imagenet_c"])
    index = c.scan(paths["imagenet_c"], WNIDS)
    (u,) = c.unit_outcomes(np.ones(len(index), bool), index).values()
    assert u.correct.shape == (len(index) // 75, 75) and u.unit == "base image" and u.valid is None
    vid = get_benchmark("imagenet_vid_robust", expected_size=sizes["imagenet_vid_robust"])
    index = vid.scan(paths["imagenet_vid_robust"], WNIDS)
    units = vid.unit_outcomes(np.ones(len(index), bool), index)
    assert units["imagenet_vid"].correct.shape == (int(index.meta["is_anchor"].sum()), 1)
    assert all(name.startswith("val/ILSVRC2015_val_") for name in units["imagenet_vid"].units)


def test_an_incomplete_imagenet_c_keeps_its_error_through_the_valid_mask(suite, tmp_path):
    paths, sizes = suite
    root = tmp_path / "imagenet-c"
    shutil.copytree(paths["imagenet_c"], root)
    victim = next((root / "fog" / "3").rglob("*.JPEG"))
    victim.unlink()
    bench = get_benchmark("imagenet_c", expected_size=sizes["imagenet_c"], strict=False)
    with pytest.warns(Warning):
        index = bench.scan(root, WNIDS)
    correct = np.random.default_rng(5).random(len(index)) < 0.5
    (u,) = bench.unit_outcomes(correct, index).values()
    assert u.valid is not None and (~u.valid).sum() == 1
    assert u.error() == pytest.approx(bench.summarize(correct, np.zeros(len(index)), index)["imagenet_c"], abs=1e-12)
