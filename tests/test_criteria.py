"""Figure 3's criteria (a)-(c) (`results/criteria.py`) against hand arithmetic and a plain-Python
bootstrap that shares only the documented draws (`unit_rng`/`draw_units`)."""
from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from results.bootstrap import BootstrapSettings, draw_units, unit_rng
from results.criteria import CriteriaError, criteria_values, figure3_criteria, main
from results.outcomes import units_digest, write_outcomes
from results.schema import result_path, write_result

N = 200  # units per benchmark
# errors of the corners (model, steps, size), chosen so that every criterion is hand-computable
ERRORS = {("big", 10, 100): 0.50, ("big", 10, 400): 0.45, ("big", 90, 100): 0.50, ("big", 90, 400): 0.30,
          ("small", 10, 100): 0.60, ("small", 10, 400): 0.60, ("small", 90, 100): 0.55, ("small", 90, 400): 0.50}


def correct_with_error(err: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly round(err * N) wrong units, at random places."""
    wrong = rng.permutation(N) < round(err * N)
    return (~wrong).reshape(N, 1)


def write_results(folder: Path, errors=ERRORS, keys=("imagenet_a",), units_of=lambda key, cell: key) -> dict:
    rng = np.random.default_rng(0)
    correct = {}
    for (model, steps, size), err in errors.items():
        outs = {}
        for key in keys:
            c = correct_with_error(err, rng)
            correct[(key, model, steps, size)] = c
            outs[key] = SimpleNamespace(correct=c, valid=None, units=[f"{units_of(key, (model, steps, size))}/{i}" for i in range(N)],
                                        unit="image")
        r = dict(model=model, steps=steps, data_size=size, seed=0, num_params=9 if model == "big" else 1,
                 errors={k: 1 - float(o.correct.mean()) for k, o in outs.items()})
        r["outcomes"] = write_outcomes(result_path(folder, r), outs)
        write_result(result_path(folder, r), r)
    return correct


def test_points_are_the_hand_computed_figure3_differences(tmp_path):
    write_results(tmp_path)
    rows, notes = figure3_criteria(tmp_path, BootstrapSettings(50))
    got = {r.criterion: r for r in rows}
    # top panel of "big" against (10, 100) = 0.50: r(10,400) = 10, r(90,100) = 0, r(90,400) = 40
    assert got["a"].points == pytest.approx(40 - 0)            # r(90,400) - r(90,100)
    assert got["b"].points == pytest.approx((40 - 10) - 0)     # [r(90,400) - r(10,400)] - r(90,100)
    # bottom at 90 steps: 100 (0.55 - 0.50) / 0.55 at 100 images, 100 (0.50 - 0.30) / 0.50 at 400
    assert got["c"].points == pytest.approx(40 - 100 * 0.05 / 0.55)
    assert got["a"].err_longest_smallest == pytest.approx(0.5) and got["a"].err_longest_largest == pytest.approx(0.3)
    assert "larger model big, smaller small" in notes[0]


def test_intervals_equal_a_plain_python_bootstrap(tmp_path):
    correct = write_results(tmp_path)
    b = 40
    rows, _ = figure3_criteria(tmp_path, BootstrapSettings(b, seed=3))
    idx = draw_units(unit_rng(3, units_digest([f"imagenet_a/{i}" for i in range(N)])), b, N)
    samples = {"a": [], "b": [], "c": []}
    for row in idx:
        e = {cell: 1 - sum(bool(correct[("imagenet_a", *cell)][i, 0]) for i in row) / N for cell in ERRORS}
        red = lambda ref, x: 100 * (ref - x) / ref  # noqa: E731
        ref = e[("big", 10, 100)]
        samples["a"].append(red(ref, e[("big", 90, 400)]) - red(ref, e[("big", 90, 100)]))
        samples["b"].append((red(ref, e[("big", 90, 400)]) - red(ref, e[("big", 10, 400)])) - red(ref, e[("big", 90, 100)]))
        samples["c"].append(red(e[("small", 90, 400)], e[("big", 90, 400)]) - red(e[("small", 90, 100)], e[("big", 90, 100)]))
    for r in rows:
        v = sorted(samples[r.criterion])
        h = (b - 1) * 0.025
        lo = v[math.floor(h)] + (h - math.floor(h)) * (v[math.floor(h) + 1] - v[math.floor(h)])
        assert r.ci_low == pytest.approx(lo, abs=1e-9)
        assert r.ci_low <= r.points <= r.ci_high


def test_holds_needs_the_whole_interval_above_zero(tmp_path):
    flat = {cell: 0.5 for cell in ERRORS}  # nothing changes anywhere: every criterion is 0, none holds
    write_results(tmp_path, errors=flat)
    rows, _ = figure3_criteria(tmp_path, BootstrapSettings(100))
    assert all(r.points == pytest.approx(0) and not r.holds for r in rows)
    assert all(r.ci_low < 0 < r.ci_high for r in rows)


def test_criteria_values_are_signed_as_figure3_reads():
    e = {"L--": 0.5, "L-+": 0.5, "L+-": 0.4, "L++": 0.45, "s+-": 0.6, "s++": 0.5}  # more data hurts at the longest budget
    v = criteria_values({k: np.float64(x) for k, x in e.items()})
    assert v["a"] < 0 and v["gain_smallest"] == pytest.approx(20) and v["gain_largest"] == pytest.approx(10)


def test_missing_corner_and_unpaired_keys(tmp_path, capsys):
    write_results(tmp_path / "r", keys=("imagenet_a", "objectnet"),
                  units_of=lambda key, cell: key if key == "imagenet_a" or cell[0] == "big" else "other")
    rows, notes = figure3_criteria(tmp_path / "r", BootstrapSettings(20))
    assert {r.key for r in rows} == {"imagenet_a"}
    assert any("objectnet: the corner cells were scored on different units" in n for n in notes)
    partial = {k: v for k, v in ERRORS.items() if k != ("small", 90, 400)}
    write_results(tmp_path / "p", errors=partial)
    with pytest.raises(CriteriaError, match=r"no result for small at steps=90, data_size=400"):
        figure3_criteria(tmp_path / "p")
    assert main([str(tmp_path / "p")]) == 2
    assert "error: no result for small" in capsys.readouterr().err
    assert main([str(tmp_path / "r"), "--resamples", "30", "--csv", str(tmp_path / "c.csv")]) == 0
    assert (tmp_path / "c.csv").read_text().splitlines()[0].startswith("key,units,criterion,points,ci_low,ci_high,holds")
