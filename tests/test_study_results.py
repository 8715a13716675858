"""Result-file schema: naming, atomic writing, validating reader."""

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from results.schema import (
    BENCHMARKS,
    DISPLAY_NAMES,
    ResultSchemaError,
    read_results,
    result_path,
    run_name,
    validate_record,
    write_result,
)


def rec(**kw):
    base = dict(model="resnetv2_tiny_bit", data_size=2000, steps=400, seed=0,
                errors={"imagenet_a": 0.9, "imagenet_v2": 0.5})
    base.update(kw)
    return base


def test_benchmarks_in_figure_order_with_display_names():
    assert BENCHMARKS == ("imagenet_a", "imagenet_c", "imagenet_v2", "objectnet",
                          "imagenet_vid", "ytbb", "imagenet_vid_w", "ytbb_w")
    assert [DISPLAY_NAMES[b] for b in BENCHMARKS] == [
        "ImageNet-A", "ImageNet-C", "ImageNet-V2", "ObjectNet",
        "ImageNet-Vid", "YouTube-BB", "ImageNet-Vid-W", "YouTube-BB-W"]


def test_run_name_format_and_distinct():
    assert run_name("resnetv2_tiny_bit", 2000, 400, 0) == "resnetv2_tiny_bit-size=2000-steps=400-seed=0"
    assert run_name("m", 1, 2, None) == "m-size=1-steps=2-seed=none"
    # unsafe characters in a model name never reach the file system
    assert run_name("hf-hub:org/model x", 5, 6, 1) == "hf-hub_org_model_x-size=5-steps=6-seed=1"
    names = {run_name(m, d, s, seed) for m in ("a", "b") for d in (1, 2) for s in (3, 4) for seed in (0, 1, None)}
    assert len(names) == 2 * 2 * 2 * 3


def test_write_then_read_roundtrip(tmp_path):
    r = rec(metrics={"imagenet_vid_pm0": 0.7, "ece": float("nan"), "c": {"fog": np.float32(0.25)}},
            config={"path": tmp_path / "x"}, errors={"imagenet_a": np.float32(0.75), "extra_bench": 0.1})
    p = write_result(result_path(tmp_path, r), r)
    assert p == tmp_path / "resnetv2_tiny_bit-size=2000-steps=400-seed=0.json"
    assert "schema_version" not in r  # caller's dict untouched
    records, messages = read_results(tmp_path)
    assert messages == []
    [got] = records
    assert got["schema_version"] == 1 and got["run_name"] == p.stem and got["created"]
    assert got["errors"] == {"imagenet_a": 0.75, "extra_bench": pytest.approx(0.1)}  # unknown key kept
    assert got["metrics"]["ece"] is None  # JSON has no NaN
    assert got["metrics"]["c"]["fog"] == 0.25
    assert got["config"]["path"] == str(tmp_path / "x")


def test_write_rejects_invalid_and_leaves_nothing(tmp_path):
    with pytest.raises(ResultSchemaError, match="errors.imagenet_a"):
        write_result(tmp_path / "a.json", rec(errors={"imagenet_a": float("nan")}))
    with pytest.raises(ResultSchemaError, match="errors.imagenet_a"):
        write_result(tmp_path / "a.json", rec(errors={"imagenet_a": 37.5}))  # percent, not fraction
    with pytest.raises(ValueError, match=r"\.json"):
        write_result(tmp_path / "a.txt", rec())
    with pytest.raises(TypeError):
        write_result(tmp_path / "a.json", rec(config={"bad": {1, 2}}))  # not serialisable
    assert list(tmp_path.iterdir()) == []  # no temp file left behind by any failure


def test_atomic_overwrite_and_no_temp_files(tmp_path):
    p = tmp_path / "r.json"
    write_result(p, rec(errors={"imagenet_a": 0.5}))
    write_result(p, rec(errors={"imagenet_a": 0.25}))
    assert [x.name for x in tmp_path.iterdir()] == ["r.json"]
    assert json.loads(p.read_text())["errors"]["imagenet_a"] == 0.25


def test_concurrent_writers_different_files(tmp_path):
    def work(k):
        for s in range(5):
            r = rec(seed=k, steps=100 + s)
            write_result(result_path(tmp_path, r), r)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".json"] * 30
    records, messages = read_results(tmp_path)
    assert len(records) == 30 and messages == []


BAD_FILES = {
    "half.json": '{"model": "m", "data_size": 2000, "steps": 4',  # killed mid-write
    "empty.json": "",
    "list.json": "[1, 2]",
    "steps_str.json": json.dumps(rec(steps="400")),
    "bool_seed.json": json.dumps(rec(seed=True)),
    "float_size.json": json.dumps(rec(data_size=2000.0)),
    "out_of_range.json": json.dumps(rec(errors={"imagenet_a": 1.5})),
    "negative.json": json.dumps(rec(errors={"imagenet_a": -0.1})),
    "nan.json": '{"model": "m", "data_size": 1, "steps": 1, "seed": 0, "errors": {"imagenet_a": NaN}}',
    "no_errors.json": json.dumps({k: v for k, v in rec().items() if k != "errors"}),
    "empty_errors.json": json.dumps(rec(errors={})),
    "err_str.json": json.dumps(rec(errors={"imagenet_a": "0.5"})),
    "version.json": json.dumps(rec(schema_version=2)),
    "metrics_str.json": json.dumps(rec(metrics={"note": "x"})),
}
EXPECTED_WHAT = {
    "half.json": "not valid JSON", "empty.json": "empty", "list.json": "JSON object",
    "steps_str.json": "'steps'", "bool_seed.json": "'seed'", "float_size.json": "'data_size'",
    "out_of_range.json": "[0, 1]", "negative.json": "[0, 1]", "nan.json": "[0, 1]",
    "no_errors.json": "missing required field(s): errors", "empty_errors.json": "non-empty",
    "err_str.json": "must be a number", "version.json": "schema_version", "metrics_str.json": "metrics.note",
}


def test_reader_skips_bad_files_with_named_messages(tmp_path, caplog):
    sub = tmp_path / "nested"
    sub.mkdir()
    for name, text in BAD_FILES.items():
        (sub / name).write_text(text)
    write_result(tmp_path / "good.json", rec())
    (tmp_path / ".good.json.abc.tmp").write_text("{")  # a writer's temp file: not a result
    (tmp_path / "notes.txt").write_text("ignored")
    with caplog.at_level("WARNING", logger="results.schema"):
        records, messages = read_results(tmp_path)
    assert [r["run_name"] for r in records] == ["resnetv2_tiny_bit-size=2000-steps=400-seed=0"]
    assert len(messages) == len(BAD_FILES)
    for name, what in EXPECTED_WHAT.items():
        [m] = [m for m in messages if f"{sub / name}:" in m]
        assert m.startswith("skipped ") and what in m and "\n" not in m, m
    assert len([r for r in caplog.records if r.name == "results.schema"]) == len(BAD_FILES)


def test_reader_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_results(tmp_path / "nope")


def test_validate_accepts_edges():
    validate_record(rec(errors={"imagenet_a": 0, "ytbb": 1.0}, seed=None, num_params=10))
    with pytest.raises(ResultSchemaError):
        validate_record(rec(num_params=0))
