"""The parity comparison (results.parity) on fabricated results whose accuracies are known."""
from __future__ import annotations

import json

import pytest

from results.parity import PUBLISHED, ROWS, compare, format_table, main, published_model

OFFSETS = {"clean/error": 0.1, "imagenet_a": -0.4, "imagenet_c": 2.5, "imagenet_v2": 0.0, "objectnet": -1.2,
           "imagenet_vid": 0.3, "imagenet_vid_w": -0.9, "ytbb": 1.05, "ytbb_w": -3.0}


def _result(model: str, offsets=OFFSETS, drop=()) -> dict:
    """A result record whose top-1 is the published one plus ``offsets`` points."""
    errors = {k: 1 - (PUBLISHED[model][k] + d) / 100 for k, d in offsets.items() if k not in drop}
    return {"model": "resnetv2_101x3_bit" if model == "BiT-M-R101x3" else "resnetv2_50x1_bit",
            "errors": {k: v for k, v in errors.items() if k != "clean/error"},
            "metrics": {"clean/error": errors["clean/error"]} if "clean/error" in errors else {}}


@pytest.mark.parametrize("model", sorted(PUBLISHED))
def test_rows_carry_our_accuracy_the_published_one_and_the_difference(model):
    rows = compare(_result(model), model)
    assert [r.key for r in rows] == [key for _, key, _ in ROWS]
    for row in rows:
        assert row.published == PUBLISHED[model][row.key]
        assert row.diff == pytest.approx(OFFSETS[row.key], abs=1e-9)
    assert [r.label for r in rows if r.off(1.0)] == ["ImageNet-C (15 x 5 mean)", "ObjectNet", "YTBB-Robust pm0", "YTBB-Robust pm10"]


def test_the_table_flags_what_is_off_and_what_is_missing():
    text = format_table(compare(_result("BiT-M-R50x1", drop=("ytbb_w",)), "BiT-M-R50x1"), "BiT-M-R50x1", tolerance=1.0)
    lines = text.splitlines()
    assert "imagenet-testbed" in lines[0] and "BiT-M-R50x1" in lines[0] and "480x480" in lines[1]
    (a,) = [l for l in lines if l.startswith("ImageNet-A ")]
    assert a.split()[1:] == ["24.87", "25.27", "-0.40"]
    (c,) = [l for l in lines if l.startswith("ImageNet-C")]
    assert c.endswith("<-- off by more than 1") and "+2.50" in c
    (w,) = [l for l in lines if l.startswith("YTBB-Robust pm10")]
    assert w.split()[2:4] == ["-", "50.79"] and "not in the result" in w
    assert lines[-1] == "8 of 9 compared; 3 off by more than 1 points (ImageNet-C (15 x 5 mean), ObjectNet, YTBB-Robust pm0)"


def test_the_published_model_follows_timms_names():
    assert published_model("resnetv2_50x1_bit") == "BiT-M-R50x1"
    assert published_model("resnetv2_101x3_bit.goog_in21k_ft_in1k") == "BiT-M-R101x3"
    assert published_model("resnetv2_50x1_bitm") == "BiT-M-R50x1"
    assert published_model("resnetv2_50x3_bit") is None and published_model("resnetv2_tiny_bit") is None
    with pytest.raises(ValueError, match="no published numbers for 'BiT-S-R50x1'"):
        compare({}, "BiT-S-R50x1")


def test_the_command_reads_a_result_file(tmp_path, capsys):
    path = tmp_path / "ood_result.json"
    path.write_text(json.dumps(_result("BiT-M-R101x3")))
    assert main([str(path)]) == 0
    assert "BiT-M-R101x3" in capsys.readouterr().out
    assert main([str(path), "--check"]) == 1
    assert main([str(path), "--check", "--tolerance", "3.5"]) == 0
    capsys.readouterr()
    path.write_text(json.dumps({**_result("BiT-M-R50x1"), "model": "resnetv2_tiny_bit"}))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert "no published numbers" in err and "--model" in err and "\n" not in err.strip()
    assert main([str(path), "--model", "BiT-M-R50x1"]) == 0
