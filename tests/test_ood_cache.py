"""The benchmark betons the OOD suite caches: named by what they hold, and made the way the
reference preprocesses when asked (``preprocessing="testbed"``).

The releases are the generator's, in their real layouts (ObjectNet with its border, the video
sets with their metadata); the loaders are the suite's own FFCV loaders.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.ood import OODSuite
from synthetic.miniature_classes import MINIATURE_WNIDS

WNIDS = list(MINIATURE_WNIDS[:8])
SIZE = 20
SUITE = dict(per_class=1, c_per_class=1, videos_per_class=1, neighbours=2)


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    from tests.conftest import write_generated_suite

    root = tmp_path_factory.mktemp("ood_cache")
    _, _, sizes = write_generated_suite(root, WNIDS, SIZE, **SUITE)
    return root / "ood", {name: {"expected_size": n} for name, n in sizes.items()}


def _suite(releases, cache: Path, names, classes=WNIDS, resolution=SIZE, **kwargs) -> OODSuite:
    ood, options = releases
    return OODSuite(ood, list(names), classes, resolution, {n: options[n] for n in names}, cache, **kwargs)


def _batches(suite: OODSuite, name: str):
    """Every (image, label, row) of ``name`` as the evaluation reads it, in row order."""
    (evaluation,) = [s for s in suite.evaluation_sets(64, 1, 0, 1) if s.name == name]
    images, labels, rows = [], [], []
    for x, y, i in evaluation.loader:
        images.append(x.numpy().copy()), labels.append(y.numpy().copy()), rows.append(i.numpy().copy())
    return np.concatenate(images), np.concatenate(labels), np.concatenate(rows), evaluation.index


def test_another_class_list_gets_its_own_cache_and_a_rerun_reuses_it(releases, tmp_path):
    cache = tmp_path / "cache"
    first = _suite(releases, cache, ["imagenet_v2"])
    _, beton = first.prepare("imagenet_v2")
    stamp = beton.stat().st_mtime_ns
    # the same classes in another output order: same images, other labels
    reordered = _suite(releases, cache, ["imagenet_v2"], classes=WNIDS[::-1])
    _, other = reordered.prepare("imagenet_v2")
    assert other != beton and beton.exists()
    for suite in (first, reordered):
        _, labels, rows, index = _batches(suite, "imagenet_v2")
        assert np.array_equal(labels, index.labels[rows])  # each beton holds its own run's labels
    _, again = _suite(releases, cache, ["imagenet_v2"]).prepare("imagenet_v2")
    assert again == beton and beton.stat().st_mtime_ns == stamp  # reused, not rewritten
    _, bigger = _suite(releases, cache, ["imagenet_v2"], resolution=300).prepare("imagenet_v2")
    assert bigger != beton  # another storage cap (max(256, 300))


def test_a_benchmark_option_that_changes_the_rows_gets_its_own_cache(releases, tmp_path):
    ood, options = releases
    cache = tmp_path / "cache"
    suites = [OODSuite(ood, ["imagenet_vid_robust"], WNIDS[:3], SIZE, {"imagenet_vid_robust": {**options["imagenet_vid_robust"], "unmapped": u}}, cache)
              for u in ("testbed", "exclude")]
    betons = [s.prepare("imagenet_vid_robust")[1] for s in suites]
    assert betons[0] != betons[1]
    assert len(suites[0].scan("imagenet_vid_robust")) > len(suites[1].scan("imagenet_vid_robust"))


@pytest.mark.parametrize("name", ["objectnet", "imagenet_a"])
def test_testbed_preprocessing_gives_the_testbeds_pixels(releases, tmp_path, name):
    """raw storage: the loaded batch is exactly the testbed's transform of each file (the
    benchmark's own step, e.g. ObjectNet's 2 px border crop, then a PIL bilinear squash)."""
    resolution = 24  # not the stored size: the squash really resizes
    suite = _suite(releases, tmp_path / "cache", [name], resolution=resolution, preprocessing="testbed", write_mode="raw")
    images, _, rows, index = _batches(suite, name)
    bench = suite.benchmarks[name]
    for image, row in zip(images, rows):
        with Image.open(index.paths[row]) as original:
            expected = np.asarray(bench.preprocess(original.convert("RGB")).resize((resolution, resolution), Image.BILINEAR))
        assert np.array_equal(image.transpose(1, 2, 0), expected)


def test_ffcv_preprocessing_is_close_to_but_not_the_testbeds(releases, tmp_path):
    suite = _suite(releases, tmp_path / "cache", ["imagenet_a"], resolution=24)
    images, _, rows, index = _batches(suite, "imagenet_a")
    diffs = []
    for image, row in zip(images, rows):
        with Image.open(index.paths[row]) as original:
            expected = np.asarray(original.convert("RGB").resize((24, 24), Image.BILINEAR)).astype(np.int16)
        diffs.append(np.abs(image.transpose(1, 2, 0).astype(np.int16) - expected).mean())
    assert 0 < np.mean(diffs) < 20  # same content, another interpolation and a JPEG re-encode


def test_unknown_preprocessing_is_refused(releases, tmp_path):
    from conversion.errors import InputError

    with pytest.raises(InputError, match="OOD preprocessing 'pil' unknown; choose one of ffcv, testbed"):
        _suite(releases, tmp_path, ["imagenet_a"], preprocessing="pil")


def test_a_missing_beton_is_written_in_a_fresh_process(releases, tmp_path, monkeypatch):
    """FFCV's writer forks; a fork of a process with live loader threads can deadlock, so the
    conversion runs in a spawned process, and an existing beton is reused without one."""
    import os

    import datamodules.ood as ood_module

    pids = []
    real = ood_module.in_fresh_process
    monkeypatch.setattr(ood_module, "in_fresh_process", lambda fn, **job: pids.append(real(_writer_pid, write=fn, job=job)))
    suite = _suite(releases, tmp_path / "cache", ["imagenet_a"])
    _, beton = suite.prepare("imagenet_a")
    assert len(pids) == 1 and pids[0] != os.getpid() and beton.exists()
    _suite(releases, tmp_path / "cache", ["imagenet_a"]).prepare("imagenet_a")
    assert len(pids) == 1  # finished: reused, no process started


def _writer_pid(write, job):
    import os

    write(**job)
    return os.getpid()
