"""Rank correlations between benchmarks over a study's cells: hand-computed coefficients, ties,
a plain-Python bootstrap, and what the report writes."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from results.bootstrap import digest64
from results.correlations import (CORRELATION_COLUMNS, average_ranks, correlations, correlations_csv_text,
                                  kendall_tau_b, spearman)
from results.grid import build_grid
from results.report import rebuild_report
from results.schema import result_path, write_result

REPO = Path(__file__).resolve().parents[1]


def test_monotone_reversed_and_constant():
    x = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    for fn in (spearman, kendall_tau_b):
        assert float(fn(x, x ** 2 + 3)) == pytest.approx(1.0)  # perfectly monotone, not linear
        assert float(fn(x, -x)) == pytest.approx(-1.0)
        assert math.isnan(float(fn(x, np.full(5, 0.3))))  # a constant variable: undefined


def test_ties_average_ranks_and_tau_b_by_hand():
    x, y = np.array([1.0, 2.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0, 3.0])
    assert average_ranks(x).tolist() == [1.0, 2.5, 2.5, 4.0]
    # pairs: 4 concordant, (2,3) tied in x, (3,4) tied in y -> 4 / sqrt((6-1) * (6-1))
    assert float(kendall_tau_b(x, y)) == pytest.approx(0.8)
    # ranks [1, 2.5, 2.5, 4] and [1, 2, 3.5, 3.5]: 3.75 / sqrt(4.5 * 4.5)
    assert float(spearman(x, y)) == pytest.approx(3.75 / 4.5)


def test_against_scipy_with_ties_and_vectorised_rows():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=(6, 15)).astype(float)  # many ties
    y = x + rng.integers(0, 4, size=(6, 15))
    tau, rho = kendall_tau_b(x, y), spearman(x, y)
    for k in range(6):
        assert tau[k] == pytest.approx(stats.kendalltau(x[k], y[k]).statistic, abs=1e-12)
        assert rho[k] == pytest.approx(stats.spearmanr(x[k], y[k]).statistic, abs=1e-12)


CELLS = [(m, s, d) for m in ("small", "big") for s in (10, 20) for d in (100, 200)]


def study(clean=True, seeds=(0,)):
    """8 cells; imagenet_a rises with the clean error, objectnet falls with it, imagenet_v2 has a tie."""
    recs = []
    for k, (m, s, d) in enumerate(CELLS):
        for seed in seeds:
            jitter = 0.01 * (seed - (len(seeds) - 1) / 2)  # seeds average back to the cell's value
            errors = {"imagenet_a": 0.5 + 0.04 * k + jitter, "objectnet": 0.9 - 0.05 * k + jitter,
                      "imagenet_v2": 0.3 + 0.02 * min(k, 5)}
            r = dict(model=m, steps=s, data_size=d, seed=seed, num_params=1 if m == "small" else 9, errors=errors)
            if clean:
                r["metrics"] = {"clean/error": 0.2 + 0.03 * k + jitter}
            recs.append(r)
    return recs


def test_study_correlations_known_values():
    recs = study(seeds=(0, 1, 2))
    result = correlations(build_grid(recs), recs, resamples=200, seed=1)
    assert result.variables == ["clean", "imagenet_a", "imagenet_v2", "objectnet"]
    assert len(result.cells) == 8  # seeds averaged: one point per cell
    by = {(c.method, c.a, c.b): c for c in result.rows}
    assert len(by) == 2 * 6
    for method in ("spearman", "kendall"):
        assert by[(method, "clean", "imagenet_a")].rho == pytest.approx(1.0)
        assert by[(method, "clean", "objectnet")].rho == pytest.approx(-1.0)
        assert by[(method, "imagenet_a", "objectnet")].n_cells == 8
        # perfectly monotone in every resample: the interval is [1, 1]
        assert by[(method, "clean", "imagenet_a")].ci == pytest.approx((1.0, 1.0))
    # imagenet_v2: cells 5, 6, 7 tied -> tau-b = (28 - 3) / sqrt((28 - 3) * 28)
    assert by[("kendall", "clean", "imagenet_v2")].rho == pytest.approx(25 / math.sqrt(25 * 28))
    lo, hi = by[("spearman", "clean", "imagenet_v2")].ci
    assert lo <= by[("spearman", "clean", "imagenet_v2")].rho <= hi <= 1.0


def test_interval_equals_a_plain_python_bootstrap():
    recs = study()
    rng = np.random.default_rng(7)
    for r in recs:  # a noisier relation, so the interval is not a point
        r["errors"]["objectnet"] = float(rng.random())
    result = correlations(build_grid(recs), recs, resamples=150, seed=4)
    x = [0.2 + 0.03 * k for k in range(8)]
    y = [r["errors"]["objectnet"] for r in recs]
    draws = np.random.default_rng([4, 2, digest64("clean,objectnet")]).integers(0, 8, size=(150, 8))

    def tau(a, b):  # plain tau-b
        s = tx = ty = 0
        for i, j in itertools.combinations(range(len(a)), 2):
            dx, dy = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            s, tx, ty = s + dx * dy, tx + (dx != 0), ty + (dy != 0)
        return s / math.sqrt(tx * ty) if tx and ty else math.nan

    reps = sorted(t for t in (tau([x[i] for i in d], [y[i] for i in d]) for d in draws) if not math.isnan(t))
    h = (len(reps) - 1) * 0.025, (len(reps) - 1) * 0.975
    expected = [reps[math.floor(q)] + (q - math.floor(q)) * (reps[math.ceil(q)] - reps[math.floor(q)]) for q in h]
    [c] = [c for c in result.rows if (c.method, c.a, c.b) == ("kendall", "clean", "objectnet")]
    assert c.rho == pytest.approx(tau(x, y))
    assert c.ci == pytest.approx(expected, abs=1e-12)
    again = correlations(build_grid(recs), recs, resamples=150, seed=4)
    assert again.rows == result.rows


def test_missing_values_few_cells_and_no_bootstrap():
    recs = study(clean=False)
    for r in recs[3:]:
        del r["errors"]["imagenet_v2"]  # only 3 cells have it
    for r in recs[1:]:
        del r["errors"]["imagenet_a"]  # only 1 cell has it
    result = correlations(build_grid(recs), recs, resamples=0)
    assert result.variables == ["imagenet_a", "imagenet_v2", "objectnet"] and result.intervals is None
    by = {(c.method, c.a, c.b): c for c in result.rows}
    assert by[("spearman", "imagenet_v2", "objectnet")].n_cells == 3
    assert by[("spearman", "imagenet_v2", "objectnet")].ci is None
    assert math.isnan(by[("kendall", "imagenet_a", "objectnet")].rho)
    assert "correlations: imagenet_a vs objectnet: 1 cell(s) with both, fewer than 3; no coefficient" in result.messages
    text = correlations_csv_text(result).splitlines()
    assert text[0] == ",".join(CORRELATION_COLUMNS)
    assert "spearman,imagenet_a,objectnet,1,nan,," in text
    two = study()[:2]
    assert correlations(build_grid(two), two).rows == []
    assert correlations(build_grid(two), two).messages == ["correlations: 2 cell(s), fewer than 3: nothing to correlate yet"]
    single = [dict(r, errors={"imagenet_a": r["errors"]["imagenet_a"]}) for r in study(clean=False)]
    assert correlations(build_grid(single), single).messages == [
        "correlations: fewer than two variables (imagenet_a): nothing to correlate"]


def test_report_writes_csv_figures_and_tables(tmp_path):
    for r in study():
        write_result(result_path(tmp_path / "r", r), r)
    out = rebuild_report(tmp_path / "r", tmp_path / "g", resamples=100, log_messages=False)
    lines = out.correlations_csv_path.read_text().splitlines()
    assert out.correlations_csv_path == tmp_path / "g" / "correlations.csv"
    assert lines[0] == "method,benchmark_a,benchmark_b,n_cells,rho,ci_low,ci_high"
    assert "spearman,clean,imagenet_a,8,1.0000,1.0000,1.0000" in lines
    assert "kendall,clean,objectnet,8,-1.0000,-1.0000,-1.0000" in lines
    for method in ("spearman", "kendall"):
        assert (tmp_path / "g" / f"correlations_{method}.png").exists()
        assert (tmp_path / "g" / f"correlations_{method}.svg").exists()
        [ax] = [a for a in out.figures[f"correlations_{method}"].axes if a.images]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["ImageNet (clean)", "ImageNet-A", "ImageNet-V2", "ObjectNet"]
        assert "1.00\n[1.00, 1.00]" in [t.get_text() for t in ax.texts]
    assert "| **ImageNet (clean)** |  | 1.00 [1.00, 1.00] |" in out.tables["correlations_spearman"]


def test_the_csv_header_is_documented():
    doc = (REPO / "docs" / "results-schema.md").read_text()
    assert f"`{','.join(CORRELATION_COLUMNS)}`" in doc
    assert all(f"| `{c}` |" in doc for c in CORRELATION_COLUMNS)
