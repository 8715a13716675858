"""The outcomes sidecar: written atomically beside a result, read back bit for bit, and refused
in one line when missing, changed, of another format, or disagreeing with its record."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ood.base import UnitOutcomes
from results.outcomes import OutcomesError, read_outcomes, sidecar_path, write_outcomes
from results.schema import write_result


def _units(seed: int = 0):
    rng = np.random.default_rng(seed)
    valid = np.ones((40, 75), bool)
    valid[3, 7] = False
    return {"imagenet_a": UnitOutcomes(rng.random(101) < 0.3, [f"n0/{i}.jpg" for i in range(101)], "image"),
            "imagenet_c": UnitOutcomes(rng.random((40, 75)) < 0.6, [f"n1/{i}.JPEG" for i in range(40)], "base image", valid)}


def _record(units) -> dict:
    return {"model": "m", "data_size": 10, "steps": 5, "seed": 0, "errors": {k: u.error() for k, u in units.items()}}


def test_round_trip(tmp_path):
    units = _units()
    path = tmp_path / "r.json"
    record = {**_record(units), "outcomes": write_outcomes(path, units)}
    write_result(path, record)
    assert sidecar_path(path).name == "r.outcomes.npz" and record["outcomes"]["file"] == "r.outcomes.npz"
    stored = read_outcomes(path, json.loads(path.read_text()))
    for key, u in units.items():
        assert np.array_equal(stored[key].correct, u.correct)
        assert stored[key].error() == pytest.approx(u.error(), abs=1e-15)
    assert stored["imagenet_c"].valid[3, 7] == False and stored["imagenet_a"].valid is None  # noqa: E712
    assert stored["imagenet_a"].unit_scores().shape == (101,)
    assert sidecar_path(path).stat().st_size < 2000  # bit-packed: 101 + 3,000 outcomes


def test_refusals_name_the_file(tmp_path):
    units = _units()
    path = tmp_path / "r.json"
    record = {**_record(units), "outcomes": write_outcomes(path, units)}
    with pytest.raises(OutcomesError, match="has no per-example outcomes"):
        read_outcomes(path, _record(units))
    other = {**record, "errors": {**record["errors"], "imagenet_a": 0.01}}
    with pytest.raises(OutcomesError, match=r"imagenet_a outcomes give error .* but .*r\.json records 0\.010000"):
        read_outcomes(path, other)
    write_outcomes(tmp_path / "x.json", _units(seed=1))
    sidecar_path(tmp_path / "x.json").replace(sidecar_path(path))  # another run's outcomes under this name
    with pytest.raises(OutcomesError, match=r"r\.outcomes\.npz differs from what .*r\.json recorded"):
        read_outcomes(path, record)
    sidecar_path(path).unlink()
    with pytest.raises(OutcomesError, match=r"r\.outcomes\.npz, the outcomes of .*r\.json, is missing"):
        read_outcomes(path, record)
