"""The generated OOD suite is read back by every benchmark loader with the expected counts."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from ood import get_benchmark
from ood.class_lists import imagenet1k_wnids
from synthetic.generator import NATURAL, class_specs, render
from synthetic.miniature_classes import MINIATURE_WNIDS
from synthetic.ood_sets import MARKER, RidgeReference, _features, expected_sizes, write_ood_suite

WNIDS = list(MINIATURE_WNIDS[:8])
SIZE = 32
ARGS = dict(size=SIZE, per_class=1, c_per_class=1, videos_per_class=1, neighbours=2, hard_pool=8)

# Worked out from the class correspondences by hand for the first 8 miniature wnids:
# ImageNet-A has 7 of them (not the mountain bike); ObjectNet touches Banana, Chair, Lemon,
# Bicycle, Umbrella; Vid: bird, dog, airplane, bicycle; YTBB: those + umbrella.
# Video sets: anchor + 2 neighbours a side = 5 frames (none marked dissimilar at |offset| <= 2).
EXPECTED = {"imagenet_a": 7, "imagenet_c": 8, "imagenet_v2": 8, "objectnet": 5,
            "imagenet_vid_robust": 4 * 5, "ytbb_robust": 5 * 5}
ROWS = {**EXPECTED, "imagenet_c": 8 * 75}


def test_miniature_classes_cover_every_benchmark():
    sizes = expected_sizes(MINIATURE_WNIDS, per_class=1, c_per_class=1, neighbours=1)
    assert len(set(MINIATURE_WNIDS)) == len(MINIATURE_WNIDS) and set(MINIATURE_WNIDS) <= set(imagenet1k_wnids())
    assert sizes["imagenet_a"] >= 4 and sizes["objectnet"] >= 4
    assert sizes["imagenet_vid_robust"] // 3 >= 4 and sizes["ytbb_robust"] // 3 >= 4


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ood")
    down = tmp / "downstream"
    specs = class_specs(WNIDS, "downstream")
    for split, n in (("train", 6), ("val", 1)):
        for k, wnid in enumerate(WNIDS):
            rng = np.random.default_rng([7, len(split), k])
            for i in range(n):
                path = down / split / wnid / f"{wnid}_{i}.JPEG"
                path.parent.mkdir(parents=True, exist_ok=True)
                render(specs[wnid], rng, SIZE, NATURAL).save(path, quality=95)
    paths = write_ood_suite(tmp / "ood", down, WNIDS, seed=3, **ARGS)
    return tmp, down, paths


def test_expected_sizes_match_hand_count():
    assert expected_sizes(WNIDS, per_class=1, c_per_class=1, videos_per_class=1, neighbours=2) == EXPECTED


@pytest.mark.parametrize("name", list(EXPECTED))
def test_every_benchmark_reads_the_generated_layout(suite, name):
    _, _, paths = suite
    bench = get_benchmark(name, expected_size=EXPECTED[name])  # strict: counts must match exactly
    assert paths[name].name == bench.release_folder.split("/")[-1]
    index = bench.scan(paths[name], WNIDS)
    assert len(index) == ROWS[name]
    assert index.stats["excluded"] == 0
    logits = torch.randn(len(index), len(WNIDS), generator=torch.Generator().manual_seed(0))
    correct, conf = bench.outcomes(logits, torch.from_numpy(index.labels))
    results = bench.summarize(correct.numpy(), conf.numpy(), index)
    for key in index.result_keys:
        assert 0.0 <= results[key] <= 1.0


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_release_is_recognised_by_its_own_landmarks_only(suite, name):
    """``looks_like_release`` explains a misplaced release: it must not take another
    benchmark's release, or the folder above, for this one."""
    _, _, paths = suite
    bench = get_benchmark(name)
    assert bench.looks_like_release(paths[name])
    assert not [other for other, path in paths.items() if other != name and bench.looks_like_release(path)]
    assert not bench.looks_like_release(paths[name].parent)  # the OOD root, or the video tarball's top folder


def test_smaller_model_excludes_and_counts(suite):
    _, _, paths = suite
    index = get_benchmark("imagenet_v2", expected_size=8).scan(paths["imagenet_v2"], WNIDS[:3])
    assert index.stats == {"found": 8, "kept": 3, "excluded": 5, "excluded_classes": 5}


def test_release_details(suite):
    tmp, down, paths = suite
    k1 = imagenet1k_wnids()
    # ImageNet-V2: numeric class-index folders, all three variants
    assert sorted(int(d.name) for d in paths["imagenet_v2"].iterdir()) == sorted(k1.index(w) for w in WNIDS)
    for variant in ("imagenetv2-threshold0.7-format-val", "imagenetv2-top-images-format-val"):
        assert len(list((tmp / "ood" / variant).rglob("*.jpeg"))) == 8
    # ObjectNet: PNG with a red border that the loader's default crop removes
    png = next((paths["objectnet"] / "images" / "banana").glob("*.png"))
    img = Image.open(png)
    assert img.size == (SIZE + 4, SIZE + 4) and img.getpixel((0, 0)) == (255, 0, 0)
    assert get_benchmark("objectnet").preprocess(img).size == (SIZE, SIZE)
    assert (paths["objectnet"] / "images" / "air_freshener").is_dir()  # a non-overlapping class
    mapping = json.loads((paths["objectnet"] / "mappings" / "objectnet_to_imagenet_1k.json").read_text())
    assert mapping["Chair"] == "barber chair; folding chair; rocking chair, rocker"
    # ImageNet-C: 15 x 5 sets of JPEGs at the suite's size
    c = paths["imagenet_c"]
    assert len([d for d in c.iterdir()]) == 15 and sorted(d.name for d in (c / "fog").iterdir()) == list("12345")
    assert Image.open(next((c / "fog" / "3" / WNIDS[0]).glob("*.JPEG"))).size == (SIZE, SIZE)
    # ImageNet-A: the reference classifier gets (at least most of) the kept images wrong
    feats, labels = [], []
    for k, w in enumerate(WNIDS):
        for p in sorted((down / "train" / w).iterdir()):
            feats.append(_features(Image.open(p)))
            labels.append(k)
    ref = RidgeReference(np.stack(feats), np.asarray(labels), len(WNIDS))
    a_imgs = sorted(paths["imagenet_a"].rglob("*.jpg"))
    pred = ref.scores(np.stack([_features(Image.open(p)) for p in a_imgs])).argmax(1)
    truth = [WNIDS.index(p.parent.name) for p in a_imgs]
    assert (pred != np.asarray(truth)).mean() >= 0.5


def test_idempotent_and_deterministic(suite, tmp_path):
    tmp, down, paths = suite
    marker = tmp / "ood" / MARKER
    stamp = marker.stat().st_mtime_ns
    assert write_ood_suite(tmp / "ood", down, WNIDS, seed=3, **ARGS) == paths
    assert marker.stat().st_mtime_ns == stamp  # complete: nothing rewritten
    other = write_ood_suite(tmp_path / "again", down, WNIDS, seed=3, **{**ARGS})

    def digest(root):
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != MARKER)
        return hashlib.sha256(b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)).hexdigest()

    for name in ("imagenet_a", "objectnet", "imagenet_vid_robust", "ytbb_robust"):
        assert digest(other[name]) == digest(paths[name]), name
    assert digest(other["imagenet_c"] / "impulse_noise") == digest(paths["imagenet_c"] / "impulse_noise")
    assert not list(tmp_path.glob(".again.tmp-*"))
