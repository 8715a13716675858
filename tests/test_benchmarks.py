"""Benchmark loaders and scoring on tiny fixtures in each release's layout.

Every expected number below is worked out by hand from the fixed logits in the test.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ood import REGISTRY, IncompleteReleaseWarning, get_benchmark
from ood.class_lists import imagenet1k_wnids, imagenet_a_wnids

K1 = imagenet1k_wnids()
TENCH = K1[0]  # not an ImageNet-A class, not mapped by ObjectNet/Vid
GOLDFINCH, JUNCO = K1[11], K1[13]  # both ImageNet-A classes
ROCKING_CHAIR, FOLDING_CHAIR, BANANA = K1[765], K1[559], K1[954]
AIRLINER, GOLDEN_RETRIEVER, LABRADOR = K1[404], K1[207], K1[208]


def _img(path: Path, color=(200, 30, 30), size: int = 8, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), color).save(path, format=fmt)
    return path


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _run(bench, index, logits):
    correct, conf = bench.outcomes(torch.tensor(logits, dtype=torch.float32), torch.from_numpy(index.labels))
    return bench.summarize(correct.numpy(), conf.numpy(), index), correct.numpy(), conf.numpy()


def test_registry_names_and_unknown_name():
    assert list(REGISTRY) == ["imagenet_a", "imagenet_c", "imagenet_v2", "objectnet", "imagenet_vid_robust", "ytbb_robust"]
    with pytest.raises(ValueError) as err:
        get_benchmark("imagenet_x")
    msg = str(err.value)
    assert "\n" not in msg and "imagenet_a" in msg and "ytbb_robust" in msg


def test_outcomes_before_scan_is_refused():
    with pytest.raises(RuntimeError, match="scan"):
        get_benchmark("imagenet_v2").outcomes(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))


# ---------------------------------------------------------------- ImageNet-A
@pytest.fixture
def imagenet_a_root(tmp_path):
    root = tmp_path / "imagenet-a"
    (root).mkdir()
    (root / "README.txt").write_text("readme")
    _img(root / GOLDFINCH / "0.jpg")
    _img(root / GOLDFINCH / "1.jpg")
    _img(root / JUNCO / "0.jpg")
    _img(root / K1[6] / "0.jpg")  # stingray: an ImageNet-A class the model below lacks
    return root


def test_imagenet_a_restricted_vs_full(imagenet_a_root):
    classes = [GOLDFINCH, JUNCO, TENCH]  # output 2 (tench) is outside ImageNet-A's 200
    logits = [[1.0, 0.0, 5.0],   # goldfinch: full argmax = tench (wrong), restricted = goldfinch (right)
              [0.0, 2.0, 1.0],   # goldfinch: junco either way (wrong)
              [0.0, 3.0, 1.0]]   # junco: right either way
    restricted = get_benchmark("imagenet_a", expected_size=4)
    index = restricted.scan(imagenet_a_root, classes)
    assert [p.parent.name for p in index.paths] == [GOLDFINCH, GOLDFINCH, JUNCO]
    assert index.labels.tolist() == [0, 0, 1]
    assert index.stats == {"found": 4, "kept": 3, "excluded": 1, "excluded_classes": 1}
    res, correct, conf = _run(restricted, index, logits)
    assert correct.tolist() == [True, False, True]
    assert res["imagenet_a"] == pytest.approx(1 / 3)
    assert conf[0] == pytest.approx(math.e / (math.e + 1))  # softmax over the two A outputs only
    assert restricted.describe()["scoring"] == "restricted"

    full = get_benchmark("imagenet_a", restrict=False, expected_size=4)
    index = full.scan(imagenet_a_root, classes)
    res, correct, _ = _run(full, index, logits)
    assert correct.tolist() == [False, False, True]
    assert res["imagenet_a"] == pytest.approx(2 / 3)
    assert full.describe()["scoring"] == "full"


def test_imagenet_a_partial_download_refused_then_warned(imagenet_a_root):
    with pytest.raises(ValueError) as err:
        get_benchmark("imagenet_a").scan(imagenet_a_root, [GOLDFINCH])
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (f"imagenet_a: expected 200 class folders, found 3 under {imagenet_a_root}; "
                   "re-download or pass strict=False")
    with pytest.warns(IncompleteReleaseWarning) as record:
        index = get_benchmark("imagenet_a", strict=False).scan(imagenet_a_root, [GOLDFINCH])
    messages = [str(w.message) for w in record]
    assert any("expected 200 class folders, found 3" in m for m in messages)
    assert any("expected 7500 images, found 4" in m for m in messages)
    assert len(index) == 2


def test_missing_release_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        get_benchmark("imagenet_a").scan(tmp_path / "nowhere", [GOLDFINCH])


# ---------------------------------------------------------------- ImageNet-V2
def test_imagenet_v2_numeric_folders_are_class_indices(tmp_path):
    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for k in (2, 10, 100):
        _img(root / str(k) / "a.jpeg")
    bench = get_benchmark("imagenet_v2", expected_size=3)
    assert bench.release_folder == root.name
    index = bench.scan(root, list(K1))
    # "10" is ImageNet class 10 (brambling), not the 2nd folder of a string sort
    assert {p.parent.name: int(l) for p, l in zip(index.paths, index.labels)} == {"2": 2, "10": 10, "100": 100}
    # through wnids: a model with only these outputs, in its own order
    index = bench.scan(root, [K1[100], K1[10], K1[2]])
    assert {p.parent.name: int(l) for p, l in zip(index.paths, index.labels)} == {"2": 2, "10": 1, "100": 0}
    res, correct, _ = _run(bench, index, [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # folders 2, 10, 100
    assert correct.tolist() == [True, True, False]
    assert res["imagenet_v2"] == pytest.approx(1 / 3)
    assert get_benchmark("imagenet_v2", variant="threshold-0.7").release_folder == "imagenetv2-threshold0.7-format-val"


def test_imagenet_v2_rejects_non_index_folder(tmp_path):
    root = tmp_path / "v2"
    _img(root / GOLDFINCH / "a.jpeg")
    with pytest.raises(ValueError, match="not a class index"):
        get_benchmark("imagenet_v2", expected_size=1).scan(root, list(K1))


# ---------------------------------------------------------------- ObjectNet
@pytest.fixture
def objectnet_root(tmp_path):
    root = tmp_path / "objectnet-1.0"
    red = (255, 0, 0)
    for folder, n in (("chair", 2), ("banana", 2), ("air_freshener", 3)):
        for i in range(n):
            path = root / "images" / folder / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            img = Image.new("RGB", (8, 8), red)
            img.paste(Image.new("RGB", (6, 6), (10, 200, 10)), (1, 1))  # a 1-px red border
            img.save(path)
    m = root / "mappings"
    _dump(m / "folder_to_objectnet_label.json", {"chair": "Chair", "banana": "Banana", "air_freshener": "Air freshener"})
    _dump(m / "objectnet_to_imagenet_1k.json", {"Chair": "folding chair; rocking chair, rocker", "Banana": "banana"})
    # line order is not the sorted-wnid order: the pytorch map decides
    (m / "imagenet_to_label_2012_v2").write_text("rocking chair, rocker\nbanana\nfolding chair\n")
    _dump(m / "pytorch_to_imagenet_2012_id.json", {"765": 0, "954": 1, "559": 2})
    return root


def test_objectnet_many_to_one_mapping(objectnet_root):
    bench = get_benchmark("objectnet", expected_size=4)
    index = bench.scan(objectnet_root, [ROCKING_CHAIR, BANANA, FOLDING_CHAIR, TENCH])
    assert index.stats["found"] == 4  # the non-overlapping folder is not counted
    assert [p.parent.name for p in index.paths] == ["banana", "banana", "chair", "chair"]
    logits = [[0.0, 1.0, 0.0, 9.0],   # banana: tench is outside the mapped classes → banana (right)
              [3.0, 1.0, 0.0, 9.0],   # banana: rocking chair (wrong)
              [0.0, 0.0, 2.0, 0.0],   # chair: folding chair (right)
              [2.0, 0.0, 0.0, 0.0]]   # chair: rocking chair (right: two ImageNet classes, one ObjectNet class)
    res, correct, conf = _run(bench, index, logits)
    assert correct.tolist() == [True, False, True, True]
    assert res["objectnet"] == pytest.approx(0.25)
    assert conf[0] == pytest.approx(math.e / (math.e + 2))  # softmax over the 3 mapped outputs


def test_objectnet_border_crop(objectnet_root):
    img = Image.open(objectnet_root / "images" / "chair" / "0.png")
    cropped = get_benchmark("objectnet", border_px=1).preprocess(img)
    assert cropped.size == (6, 6)
    assert (np.asarray(cropped) == (10, 200, 10)).all()  # no red left
    default = get_benchmark("objectnet")
    assert default.border_px == 2 and default.preprocess(img).size == (4, 4)
    assert default.describe()["border_px"] == 2


def test_objectnet_missing_mapping_file_is_named(objectnet_root):
    (objectnet_root / "mappings" / "pytorch_to_imagenet_2012_id.json").unlink()
    with pytest.raises(FileNotFoundError) as err:
        get_benchmark("objectnet", expected_size=4).scan(objectnet_root, [BANANA])
    msg = str(err.value)
    assert "\n" not in msg and str(objectnet_root / "mappings" / "pytorch_to_imagenet_2012_id.json") in msg


def test_objectnet_excluded_classes_are_counted(objectnet_root):
    index = get_benchmark("objectnet", expected_size=4).scan(objectnet_root, [BANANA, TENCH])
    assert index.stats == {"found": 4, "kept": 2, "excluded": 2, "excluded_classes": 1}


# ---------------------------------------------------------------- ImageNet-Vid-Robust
def _vid_release(tmp_path) -> Path:
    root = tmp_path / "imagenet_vid_ytbb_robust" / "imagenet-vid-robust"
    labels, pmsets = {}, {}
    for snippet, cls, frames in (("ILSVRC2015_val_00000000", 0, (10, 11, 12)),   # airplane
                                 ("ILSVRC2015_val_00001000", 1, (20, 21, 22)),   # dog
                                 ("ILSVRC2015_val_00002000", 2, (5, 6))):        # turtle: no model output
        keys = [f"val/{snippet}/{f:06d}.JPEG" for f in frames]
        for key in keys:
            _img(root / key, fmt="JPEG")
            labels[key] = [cls]
        pmsets[keys[0]] = keys[1:]
    _dump(root / "metadata" / "labels.json", labels)
    _dump(root / "metadata" / "pmsets.json", pmsets)
    _dump(root / "misc" / "imagenet_vid_class_index.json",
          {"0": ["n02691156", "airplane"], "1": ["n02084071", "dog"], "2": ["n01662784", "turtle"]})
    _dump(root / "misc" / "rev_wnid_map.json",
          {"n02691156": [AIRLINER], "n02084071": [GOLDEN_RETRIEVER, LABRADOR], "n01662784": [K1[33]]})
    return root


def test_vid_pm0_right_pm10_wrong(tmp_path):
    root = _vid_release(tmp_path)
    bench = get_benchmark("imagenet_vid_robust", unmapped="exclude", expected_size=8)  # frames on disk, before exclusion
    index = bench.scan(root, [AIRLINER, GOLDEN_RETRIEVER, LABRADOR, TENCH])
    assert [p.name for p in index.paths] == ["000010.JPEG", "000011.JPEG", "000012.JPEG",
                                             "000020.JPEG", "000021.JPEG", "000022.JPEG"]
    assert index.meta["pmset"].tolist() == [0, 0, 0, 1, 1, 1]
    assert index.meta["is_anchor"].tolist() == [1, 0, 0, 1, 0, 0]
    assert index.stats["excluded"] == 2 and index.stats["anchors_kept"] == 2  # the turtle set
    logits = [[5.0, 0.0, 0.0, 0.0],  # airplane anchor: right
              [5.0, 0.0, 0.0, 0.0],  # neighbour: right
              [0.0, 5.0, 0.0, 0.0],  # neighbour: dog (wrong) → this set fails pm10
              [0.0, 0.0, 5.0, 0.0],  # dog anchor via the Labrador output (max over mapped): right
              [0.0, 5.0, 0.0, 9.0],  # neighbour: tench is no Vid class → dog: right
              [0.0, 5.0, 0.0, 0.0]]  # neighbour: right
    res, correct, _ = _run(bench, index, logits)
    assert correct.tolist() == [True, True, False, True, True, True]
    assert res["imagenet_vid/pm0"] == pytest.approx(1.0)
    assert res["imagenet_vid/pm10"] == pytest.approx(0.5)
    assert res["imagenet_vid"] == pytest.approx(0.0)
    assert res["imagenet_vid_w"] == pytest.approx(0.5)


def test_vid_max_vs_sum_aggregation(tmp_path):
    root = _vid_release(tmp_path)
    logits = [[2.0, 1.9, 1.9, 0.0]] * 6  # max: airplane (2.0 > 1.9); sum of softmax: dog (2 x 0.32 > 0.36)
    preds = {}
    for aggregate in ("max", "sum"):
        bench = get_benchmark("imagenet_vid_robust", aggregate=aggregate, unmapped="exclude", expected_size=8)
        index = bench.scan(root, [AIRLINER, GOLDEN_RETRIEVER, LABRADOR, TENCH])
        _, correct, conf = _run(bench, index, logits)
        preds[aggregate] = correct.tolist()
        p = np.exp([2.0, 1.9, 1.9]) / np.exp([2.0, 1.9, 1.9]).sum()
        assert conf[0] == pytest.approx(p[0] if aggregate == "max" else p[1] + p[2], rel=1e-5)
    assert preds["max"] == [True, True, True, False, False, False]
    assert preds["sum"] == [False, False, False, True, True, True]


def test_vid_testbed_rule_by_default_keeps_an_unmapped_anchor_as_an_error(tmp_path):
    root = _vid_release(tmp_path)
    bench = get_benchmark("imagenet_vid_robust", expected_size=8)
    index = bench.scan(root, [AIRLINER, GOLDEN_RETRIEVER, LABRADOR, TENCH])
    assert bench.unmapped == "testbed" and index.stats["anchors_kept"] == 3 and index.stats["anchors_unmapped"] == 1
    # every mapped logit negative: -inf for the turtle class (no output) never wins, so the turtle
    # set is wrong however the model scores; the other two sets are right
    logits = [[5.0, 0.0, 0.0, 0.0]] * 3 + [[0.0, 5.0, 0.0, 0.0]] * 3 + [[-1.0, -2.0, -2.0, 0.0]] * 2
    res, correct, _ = _run(bench, index, logits)
    assert correct.tolist() == [True] * 6 + [False, False]
    assert res["imagenet_vid/pm0"] == pytest.approx(2 / 3) and res["imagenet_vid/n_anchors"] == 3
    assert res["imagenet_vid_w"] == pytest.approx(1 / 3)


def test_vid_a_frame_is_never_right_by_a_class_without_an_output(tmp_path):
    root = _vid_release(tmp_path)
    bench = get_benchmark("imagenet_vid_robust", expected_size=8)
    index = bench.scan(root, [TENCH, GOLDEN_RETRIEVER])  # only dog has an output; airplane is class 0
    scores, _ = bench.class_scores(torch.tensor([[1.0, -50.0]]))
    assert torch.isinf(scores[0, [0, 2]]).all() and scores[0, 1] == -50.0
    _, correct, _ = _run(bench, index, [[1.0, -50.0]] * 8)
    assert correct.tolist() == [False] * 3 + [True] * 3 + [False] * 2  # the dog set only, never airplane's
    with pytest.raises(ValueError, match=r"imagenet_vid_robust: no class of the benchmark has an output among the model's 1 classes"):
        bench.scan(root, [TENCH])


def test_vid_zero_policy_keeps_unmapped_anchor(tmp_path):
    root = _vid_release(tmp_path)
    for name in ("zero", "reference"):  # "reference": the pre-fix rule's old name
        assert get_benchmark("imagenet_vid_robust", unmapped=name).unmapped == "zero"
    bench = get_benchmark("imagenet_vid_robust", unmapped="zero", expected_size=8)
    index = bench.scan(root, [AIRLINER, GOLDEN_RETRIEVER, LABRADOR, TENCH])
    assert index.stats["anchors_kept"] == 3
    # every mapped logit negative: the turtle class's constant 0 wins, as in the testbed
    _, correct, conf = _run(bench, index, [[-1.0, -2.0, -2.0, 0.0]] * 8)
    assert correct.tolist() == [False] * 6 + [True, True]
    assert conf[-1] == 0.0


def test_vid_missing_metadata_and_missing_frames(tmp_path):
    root = _vid_release(tmp_path)
    (root / "val" / "ILSVRC2015_val_00001000" / "000021.JPEG").unlink()
    with pytest.raises(ValueError) as err:
        get_benchmark("imagenet_vid_robust", expected_size=8).scan(root, [AIRLINER, GOLDEN_RETRIEVER])
    msg = str(err.value)
    assert "\n" not in msg and "expected 8 frames, found 7" in msg and str(root) in msg and "strict=False" in msg
    (root / "metadata" / "pmsets.json").unlink()
    with pytest.raises(FileNotFoundError, match="metadata/pmsets.json"):
        get_benchmark("imagenet_vid_robust", expected_size=8).scan(root, [AIRLINER])


def test_vid_default_sizes_are_the_release(tmp_path):
    root = _vid_release(tmp_path)
    with pytest.raises(ValueError, match="expected 1109 pm-sets"):
        get_benchmark("imagenet_vid_robust").scan(root, [AIRLINER])


# ---------------------------------------------------------------- YouTube-BB-Robust
def test_ytbb_review_annotations_and_pm_sets(tmp_path):
    root = tmp_path / "imagenet_vid_ytbb_robust" / "ytbb-robust"
    vids = {"abcdefghijk_15000": 225, "bbbbbbbbbbb_2000": 30, "ccccccccccc_4000": 60}
    for folder, anchor in vids.items():
        for off in (-2, -1, 0, 1, 2):
            _img(root / "ytbb_videos" / folder / f"frame-{anchor + off}.jpg", fmt="JPEG")
    meta = root / "metadata"
    _dump(meta / "ytbb_class_index.json", {"19": "dog", "22": "none", "23": "car"})
    _dump(meta / "rev_class_idx_map.json", {"19": [207, 208], "23": [609]})
    a = "abcdefghijk_15000/frame-225.jpg"
    _dump(meta / "anchor_labels.json", {
        "labels": ["good", "bad", "unsure", "dog", "car"],
        "annotations": [
            {"key": f"ytbb_videos/{a}", "labels": [0, 3]},                  # good, reviewer added 'dog'
            {"key": "bbbbbbbbbbb_2000/frame-30.jpg", "labels": [0]},         # good, but a neighbour says bad-anchor
            {"key": "ccccccccccc_4000/frame-60.jpg", "labels": [0, 2]},      # unsure → not used
        ]})
    pmk = [{"key": f"{a},abcdefghijk_15000/frame-{225 + o}.jpg", "labels": lab}
           for o, lab in ((-2, [0]), (-1, [0, 2]), (1, [1]), (2, [0, 3]))]  # +1 dissimilar; +2 similar but 'deformation'
    pmk.append({"key": "bbbbbbbbbbb_2000/frame-30.jpg,bbbbbbbbbbb_2000/frame-31.jpg", "labels": [4]})
    _dump(meta / "pmk_labels.json", {"labels": ["similar", "dissimilar", "correct", "deformation", "bad-anchor"],
                                     "annotations": pmk})
    # YT-BB's ids: 22 in the CSV is ytbb_class_index's 23 (car), as the testbed swaps them
    (meta / "ytbb_robustness_test_anchors_full.csv").write_text(
        "ytid,time_ms,label\nabcdefghijk,15000,22\nbbbbbbbbbbb,2000,19\nccccccccccc,4000,19\n")

    bench = get_benchmark("ytbb_robust", expected_size=3)
    classes = [GOLDEN_RETRIEVER, K1[609], TENCH]  # outputs: dog, car(jeep), tench
    index = bench.scan(root, classes)
    # anchor + the two reviewed-similar neighbours (-2, -1); +1 is dissimilar, +2 has a problem label
    assert [p.name for p in index.paths] == ["frame-225.jpg", "frame-223.jpg", "frame-224.jpg"]
    assert index.stats["anchors"] == 1
    logits = [[0.0, 4.0, 0.0],   # anchor: car, one of its labels {dog (annotation), car (CSV)} → right
              [4.0, 0.0, 0.0],   # neighbour: dog → right (judged against the anchor's labels)
              [0.0, 0.0, 4.0]]   # neighbour: tench is no YTBB class; dog and car tie at 0 → dog (first): right
    res, correct, _ = _run(bench, index, logits)
    assert correct.tolist() == [True, True, True]
    assert res["ytbb"] == pytest.approx(0.0) and res["ytbb_w"] == pytest.approx(0.0)
    assert res["ytbb/pm0"] == 1.0 and res["ytbb/pm10"] == 1.0
    # without the CSV's (swapped) car label the anchor would only be a dog
    (meta / "ytbb_robustness_test_anchors_full.csv").write_text("ytid,time_ms,label\n")
    index = bench.scan(root, classes)
    res, correct, _ = _run(bench, index, logits)
    assert correct.tolist() == [False, True, True] and res["ytbb"] == 1.0 and res["ytbb_w"] == 1.0
    # metadata without the fields the loader reads: one line naming the file, not a bare KeyError
    (meta / "ytbb_robustness_test_anchors_full.csv").write_text("ytid,time_ms\nabcdefghijk,15000\n")
    with pytest.raises(ValueError, match=r"ytbb_robust: metadata file .*ytbb_robustness_test_anchors_full\.csv lacks 'label'"):
        bench.scan(root, classes)
    _dump(meta / "pmk_labels.json", {"labels": ["similar"]})
    with pytest.raises(ValueError, match=r"ytbb_robust: metadata file .*pmk_labels\.json lacks 'annotations'"):
        bench.scan(root, classes)


# ---------------------------------------------------------------- ImageNet-C
@pytest.fixture
def imagenet_c_root(tmp_path):
    root = tmp_path / "imagenet-c"
    for c in ("gaussian_noise", "fog"):
        for s in range(1, 6):
            for i in range(2):
                _img(root / c / str(s) / GOLDFINCH / f"{i}.JPEG", fmt="JPEG")
            _img(root / c / str(s) / TENCH / "0.JPEG", fmt="JPEG")  # class the model lacks
    return root


def test_imagenet_c_mce_arithmetic_two_corruptions(imagenet_c_root):
    bench = get_benchmark("imagenet_c", corruptions=("gaussian_noise", "fog"), expected_size=3)
    index = bench.scan(imagenet_c_root, [GOLDFINCH, JUNCO])
    assert len(index) == 20 and index.stats["excluded"] == 10
    assert index.meta["set_id"].tolist() == [k for k in range(10) for _ in range(2)]
    assert index.meta["severity"].tolist()[:4] == [1, 1, 2, 2]
    # per-set errors (2 images a set): gaussian 0, .5, .5, 1, 1 (mean .6); fog 0, 0, .5, .5, 1 (mean .4)
    wrong = {0: 0, 1: 1, 2: 1, 3: 2, 4: 2, 5: 0, 6: 0, 7: 1, 8: 1, 9: 2}
    correct = np.array([i >= wrong[s] for s in range(10) for i in range(2)])
    conf = np.full(20, 0.5)
    res = bench.summarize(correct, conf, index)
    assert res["imagenet_c/gaussian_noise/2"] == pytest.approx(0.5)
    assert res["imagenet_c/fog/5"] == pytest.approx(1.0)
    assert res["imagenet_c/gaussian_noise"] == pytest.approx(0.6)
    assert res["imagenet_c/fog"] == pytest.approx(0.4)
    assert res["imagenet_c"] == pytest.approx(0.5)
    assert res["imagenet_c/mce"] == pytest.approx((0.6 / 0.886 + 0.4 / 0.819) / 2)
    assert "imagenet_c/relative_mce" not in res
    res = bench.summarize(correct, conf, index, clean_error=0.2)
    assert res["imagenet_c/relative_mce"] == pytest.approx(((0.6 - 0.2) / (0.886 - 0.4348) + (0.4 - 0.2) / (0.819 - 0.4348)) / 2)


def test_imagenet_c_missing_set_and_short_set(imagenet_c_root):
    import shutil

    shutil.rmtree(imagenet_c_root / "fog" / "3")
    with pytest.raises(ValueError) as err:
        get_benchmark("imagenet_c", corruptions=("gaussian_noise", "fog"), expected_size=3).scan(imagenet_c_root, [GOLDFINCH])
    msg = str(err.value)
    assert "\n" not in msg and "expected 10 (corruption, severity) sets, found 9" in msg and "fog/3" in msg
    assert str(imagenet_c_root) in msg
    # the published size per set (50,000) against a set of 3 images (2 goldfinch + 1 tench)
    with pytest.raises(ValueError, match="expected 50000 images per set, found gaussian_noise/1: 3"):
        get_benchmark("imagenet_c", corruptions=("gaussian_noise",)).scan(imagenet_c_root, [GOLDFINCH])
    with pytest.warns(IncompleteReleaseWarning, match="found 9"):
        index = get_benchmark("imagenet_c", corruptions=("gaussian_noise", "fog"), expected_size=3,
                              strict=False).scan(imagenet_c_root, [GOLDFINCH])
    assert sorted(set(index.meta["set_id"].tolist())) == [0, 1, 2, 3, 4, 5, 6, 8, 9]


def test_imagenet_a_class_list_is_timms():
    assert len(imagenet_a_wnids()) == 200 and GOLDFINCH in imagenet_a_wnids() and TENCH not in imagenet_a_wnids()
