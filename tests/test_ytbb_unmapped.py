"""YouTube-BB-Robust scored for an ImageNet-1k model as imagenet-testbed scores it.

The release's class index and ImageNet mapping are the testbed's (``ytbb-robust_metadata``,
``rev_class_idx_map.json``): person → 981-983 (ballplayer, groom, scuba diver); cow, giraffe,
skateboard, toilet and none have no ImageNet class. Since the testbed's "float -inf fix" an anchor labelled only with unmapped classes is
kept and always wrong; the older rules are options with their own, different numbers.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ood import get_benchmark
from ood.class_lists import imagenet1k_wnids

YTBB_CLASSES = ["person", "bird", "bicycle", "boat", "bus", "bear", "cow", "cat", "giraffe", "potted plant", "horse",
                "motorcycle", "knife", "airplane", "skateboard", "train", "truck", "zebra", "toilet", "dog", "elephant",
                "umbrella", "none", "car"]
_r = lambda a, b: list(range(a, b + 1))  # noqa: E731
MAPPING = {0: [981, 982, 983], 1: _r(7, 24) + _r(80, 100) + _r(127, 146), 2: [444, 671], 3: [472, 554, 576, 625, 814, 914],
           4: [654, 779, 874], 5: _r(294, 297), 7: _r(281, 287), 9: [985, 986], 10: [339], 11: [665], 12: [499, 623],
           13: [404], 15: [466], 16: [555, 569, 675, 717, 734, 864, 867], 17: [340], 19: _r(151, 268), 20: [385, 386],
           21: [879], 23: [407, 436, 468, 511, 609, 627, 656, 661, 751, 817]}
UNMAPPED = {"cow", "giraffe", "skateboard", "toilet", "none"}
# (youtube id, ms, CSV label in YT-BB's ids, extra annotation labels): one frame each, no neighbours
ANCHORS = [("cowcowcowco", 1000, 6, []),            # cow only: no ImageNet class
           ("personpers", 2000, 0, []),             # person
           ("dogandacow", 3000, 19, ["cow"]),       # dog, reviewer added cow
           ("cardriving", 4000, 22, [])]            # CSV 22 is car (index 23) after the testbed's swap


def _release(root: Path) -> Path:
    meta = root / "metadata"
    meta.mkdir(parents=True)
    names = ["good", "bad", "unsure", *YTBB_CLASSES]
    annotations = []
    for ytid, ms, _label, extra in ANCHORS:
        frame = root / "ytbb_videos" / f"{ytid}_{ms}" / "frame-30.jpg"
        frame.parent.mkdir(parents=True)
        Image.new("RGB", (8, 8), (90, 90, 90)).save(frame, format="JPEG")
        annotations.append({"key": f"ytbb_videos/{ytid}_{ms}/frame-30.jpg", "labels": [0] + [names.index(e) for e in extra]})
    (meta / "anchor_labels.json").write_text(json.dumps({"labels": names, "annotations": annotations}))
    (meta / "pmk_labels.json").write_text(json.dumps({"labels": ["similar", "bad-anchor"], "annotations": []}))
    (meta / "ytbb_class_index.json").write_text(json.dumps({str(i): n for i, n in enumerate(YTBB_CLASSES)}))
    (meta / "rev_class_idx_map.json").write_text(json.dumps({str(k): v for k, v in MAPPING.items()}))
    rows = "".join(f"{ytid},{ms},{label}\n" for ytid, ms, label, _ in ANCHORS)
    (meta / "ytbb_robustness_test_anchors_full.csv").write_text("ytid,time_ms,label\n" + rows)
    return root


def _logits(winners: list[int], base: float = -3.0) -> torch.Tensor:
    """One row per anchor (in key order), every ImageNet logit ``base`` but the winner's 5."""
    out = torch.full((len(winners), 1000), base)
    for row, k in enumerate(winners):
        out[row, k] = 5.0
    return out


def _score(policy: str, root: Path, winners: list[int]):
    bench = get_benchmark("ytbb_robust", unmapped=policy, expected_size=len(ANCHORS))
    index = bench.scan(root, imagenet1k_wnids())
    order = [Path(p).parent.name.split("_")[0] for p in index.paths]
    by_name = dict(zip([a[0] for a in ANCHORS], winners))
    correct, confidence = bench.outcomes(_logits([by_name[o] for o in order]), torch.from_numpy(index.labels))
    return index, order, correct.numpy(), bench.summarize(correct.numpy(), confidence.numpy(), index)


def test_the_mapping_leaves_exactly_the_testbeds_unmapped_classes():
    assert {YTBB_CLASSES[k] for k in range(24) if k not in MAPPING} == UNMAPPED


def test_the_testbed_rule_is_the_default_and_counts_the_cow_anchor_wrong(tmp_path):
    root = _release(tmp_path / "ytbb-robust")
    assert get_benchmark("ytbb_robust").unmapped == "testbed"
    # the model says: groom (person), groom again, a golden retriever (dog), a jeep (car)
    index, order, correct, res = _score("testbed", root, [982, 982, 207, 609])
    assert index.stats["anchors_kept"] == 4 and index.stats["anchors_unmapped"] == 1
    assert dict(zip(order, correct)) == {"cowcowcowco": False, "personpers": True, "dogandacow": True, "cardriving": True}
    assert res["ytbb"] == pytest.approx(0.25) and res["ytbb/n_anchors"] == 4


def test_the_cow_anchor_is_wrong_whatever_the_model_says_under_the_testbed_rule(tmp_path):
    root = _release(tmp_path / "ytbb-robust")
    for winner in (0, 345, 982):  # tench, ox (ImageNet's cattle, unmapped in YTBB), groom
        _, order, correct, _ = _score("testbed", root, [winner] * 4)
        assert not correct[order.index("cowcowcowco")]


def test_the_older_rules_give_their_own_numbers(tmp_path):
    root = _release(tmp_path / "ytbb-robust")
    # every mapped logit negative (-3) and the winner unmapped (tench): before the fix, the zero
    # score of the first unmapped class (cow) beat them, so the cow anchor counted as right
    _, order, correct, res = _score("zero", root, [0, 0, 0, 0])
    assert dict(zip(order, correct)) == {"cowcowcowco": True, "personpers": False, "dogandacow": True, "cardriving": False}
    assert res["ytbb"] == 0.5
    # after the fix the mapped classes tie at -3 and the first, person, is the prediction
    _, order, correct, res = _score("testbed", root, [0, 0, 0, 0])
    assert dict(zip(order, correct)) == {"cowcowcowco": False, "personpers": True, "dogandacow": False, "cardriving": False}
    assert res["ytbb"] == 0.75
    # exclude: the cow anchor is dropped, so the error is over three anchors
    index, order, correct, res = _score("exclude", root, [982, 982, 207, 609])
    assert "cowcowcowco" not in order and index.stats["anchors_kept"] == 3 and res["ytbb"] == 0.0


def test_a_pm_set_count_other_than_the_testbeds_is_said(tmp_path, caplog):
    import logging

    root = _release(tmp_path / "ytbb-robust")
    with caplog.at_level(logging.WARNING, logger="ood.video_robust"):
        get_benchmark("ytbb_robust").scan(root, imagenet1k_wnids())  # the release's own sizes, not a test's
    assert "4 reviewed pm-sets" in caplog.text and "imagenet-testbed scores 2030" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ood.video_robust"):
        get_benchmark("ytbb_robust", expected_size=4).scan(root, imagenet1k_wnids())
    assert "reviewed pm-sets" not in caplog.text
