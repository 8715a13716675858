"""Paired bootstrap intervals of the grid's reductions, checked against plain-Python bootstraps.

The reference loops below share only the random draws with `results.bootstrap` (the documented
streams `unit_rng`/`draw_units` and `seed_rng`): the weighting, the seed averaging, the
reductions and the percentiles are recomputed by hand, one replicate at a time.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from results.bootstrap import BootstrapSettings, add_intervals, draw_units, seed_rng, unit_rng
from results.grid import CSV_COLUMNS, build_grid
from results.outcomes import StoredOutcomes, units_digest, write_outcomes
from results.report import main, rebuild_report
from results.schema import result_path, write_result

REPO = Path(__file__).resolve().parents[1]


def stored(correct, units="u", valid=None) -> StoredOutcomes:
    correct = np.asarray(correct, dtype=bool).reshape(len(correct), -1)
    names = [f"{units}/{i}" for i in range(correct.shape[0])]
    return StoredOutcomes(correct, None if valid is None else np.asarray(valid, bool), units_digest(names), "image")


def record(model, steps, size, seed, outcomes, params):
    return dict(model=model, steps=steps, data_size=size, seed=seed, num_params=params,
                errors={k: o.error() for k, o in outcomes.items()})


def quantile(values, q):
    """numpy's default ("linear") quantile, by hand."""
    v = sorted(values)
    h = (len(v) - 1) * q
    lo = math.floor(h)
    return v[lo] + (h - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo])


def hand_interval(reductions):
    return quantile(reductions, 0.025), quantile(reductions, 0.975)


def grid_with(recs, outs, **settings):
    grid = build_grid(recs)
    add_intervals(grid, recs, outs, BootstrapSettings(**settings) if settings else BootstrapSettings())
    return grid


def interval(grid, panel, model, steps, size, bench="imagenet_a"):
    r = grid.row_map()[(panel, model, bench, steps, size, None)]
    return None if r.ci_low is None else (r.ci_low, r.ci_high)


# 12 images; small's reference (1, 1) and a two-seed cell (2, 1); big at both cells (the bottom panel).
# Every reference errs on 7 or more, so no resample of 300 makes a reference error 0.
SMALL_REF = [1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 1, 0]  # error 8/12
SMALL_SEEDS = ([1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0], [0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0])  # 7/12, 8/12
BIG = {(1, 1): [1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0], (2, 1): [1, 1, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0]}  # 7/12, 5/12


def tiny_study():
    recs, outs = [], []
    for seed, c in [(0, SMALL_REF)]:
        outs.append({"imagenet_a": stored(c)})
        recs.append(record("small", 1, 1, seed, outs[-1], 1))
    for seed, c in enumerate(SMALL_SEEDS):
        outs.append({"imagenet_a": stored(c)})
        recs.append(record("small", 2, 1, seed, outs[-1], 1))
    for (s, d), c in BIG.items():
        outs.append({"imagenet_a": stored(c)})
        recs.append(record("big", s, d, 0, outs[-1], 9))
    return recs, outs


def test_interval_equals_a_plain_python_bootstrap():
    recs, outs = tiny_study()
    b, seed = 300, 11
    # chunks of 2 replicates: the streams must continue across chunks
    grid = build_grid(recs)
    add_intervals(grid, recs, outs, BootstrapSettings(b, seed), chunk_elements=24)
    draws = draw_units(unit_rng(seed, outs[0]["imagenet_a"].units_sha256), b, 12)
    seed_draws = seed_rng(seed, ("small", 2, 1, "imagenet_a", None)).integers(0, 2, size=(b, 2))

    def err(correct, idx):
        return 1 - sum(correct[i] for i in idx) / len(idx)

    top, bottom = [], []
    for k in range(b):
        idx = list(draws[k])
        ref = err(SMALL_REF, idx)
        seeds = [err(SMALL_SEEDS[j], idx) for j in seed_draws[k]]
        cell = sum(seeds) / len(seeds)
        top.append(100 * (ref - cell) / ref)
        big_ref = err(BIG[(1, 1)], idx)
        bottom.append(100 * (ref - big_ref) / ref)
    assert interval(grid, "top", "small", 2, 1) == pytest.approx(hand_interval(top), abs=1e-9)
    assert interval(grid, "bottom", "small->big", 1, 1) == pytest.approx(hand_interval(bottom), abs=1e-9)
    # the point estimate in the row is the grid's own (seed-averaged) number, untouched
    assert grid.value("top", "small", "imagenet_a", 2, 1) == pytest.approx(100 * (8 - 7.5) / 8)
    # the same seed and results give the same intervals, whatever the chunking; another seed moves them
    again = grid_with(recs, outs, resamples=b, seed=seed)
    assert [r.ci_low for r in again.rows] == [r.ci_low for r in grid.rows]
    other = grid_with(recs, outs, resamples=b, seed=seed + 1)
    assert interval(other, "top", "small", 2, 1) != interval(grid, "top", "small", 2, 1)
    assert grid.intervals == f"95 % paired bootstrap, {b} resamples, seed {seed}"


def hand_reduction_interval(ref_correct, cell_correct, seed, b):
    """Plain-loop interval of 100 * (err_ref - err_cell) / err_ref, one seed per cell, one column."""
    units = len(ref_correct)
    draws = draw_units(unit_rng(seed, stored(ref_correct).units_sha256), b, units)
    reductions = []
    for idx in draws:
        ref = 1 - sum(ref_correct[i] for i in idx) / units
        cell = 1 - sum(cell_correct[i] for i in idx) / units
        reductions.append(100 * (ref - cell) / ref)
    return hand_interval(reductions)


def test_fallback_reference_and_resolution_axis_use_the_rows_own_reference():
    rng = np.random.default_rng(6)
    correct = {(res, s, d): list(rng.random(60) >= 0.5 - 0.1 * (s == 2) - 0.05 * (d == 2) - 0.1 * (res == 64))
               for res in (32, 64) for s in (1, 2) for d in (1, 2)}
    del correct[(32, 1, 1)]  # res 32's reference cell failed: a fallback to (1, 2)
    outs, recs = [], []
    for (res, s, d), c in correct.items():
        outs.append({"imagenet_a": stored(c)})
        recs.append(dict(record("m", s, d, 0, outs[-1], 1), resolution=res))
    grid = build_grid(recs, fallback_reference=True)
    add_intervals(grid, recs, outs, BootstrapSettings(200, 2))
    rows = grid.row_map()
    assert grid.references[("m", "imagenet_a", 32)] == (1, 2) and grid.references[("m", "imagenet_a", 64)] == (1, 1)
    low32 = rows[("top", "m", "imagenet_a", 2, 2, 32)]
    assert (low32.ci_low, low32.ci_high) == pytest.approx(
        hand_reduction_interval(correct[(32, 1, 2)], correct[(32, 2, 2)], 2, 200), abs=1e-9)
    high64 = rows[("top", "m", "imagenet_a", 2, 2, 64)]
    assert (high64.ci_low, high64.ci_high) == pytest.approx(
        hand_reduction_interval(correct[(64, 1, 1)], correct[(64, 2, 2)], 2, 200), abs=1e-9)
    assert (rows[("top", "m", "imagenet_a", 1, 2, 32)].ci_low, rows[("top", "m", "imagenet_a", 1, 2, 32)].ci_high) == (0, 0)


def test_identical_cells_and_the_reference_give_exactly_zero():
    rng = np.random.default_rng(0)
    same = rng.random(50) < 0.4
    outs = [{"imagenet_a": stored(same)}, {"imagenet_a": stored(same)},
            {"imagenet_a": stored(rng.random(50) < 0.3)}, {"imagenet_a": stored(rng.random(50) < 0.3)}]
    recs = [record("a", 1, 1, 0, outs[0], 1), record("b", 1, 1, 0, outs[1], 2),
            record("a", 2, 1, 0, outs[2], 1), record("b", 2, 1, 0, outs[3], 2)]
    grid = grid_with(recs, outs, resamples=200)
    assert interval(grid, "bottom", "a->b", 1, 1) == (0.0, 0.0)  # two identical cells
    assert interval(grid, "top", "a", 1, 1) == (0.0, 0.0)  # the reference against itself
    lo, hi = interval(grid, "bottom", "a->b", 2, 1)
    assert lo < hi


def test_unpaired_cells_get_no_interval_and_a_message():
    rng = np.random.default_rng(1)
    outs = [{"imagenet_a": stored(rng.random(40) < 0.5)}, {"imagenet_a": stored(rng.random(40) < 0.5)},
            {"imagenet_a": stored(rng.random(40) < 0.4, units="other")},  # big scored on other images
            {"imagenet_a": stored(rng.random(40) < 0.4, units="other")}]
    recs = [record("small", 1, 1, 0, outs[0], 1), record("small", 2, 1, 0, outs[1], 1),
            record("big", 1, 1, 0, outs[2], 9), record("big", 2, 1, 0, outs[3], 9)]
    grid = grid_with(recs, outs, resamples=100)
    assert interval(grid, "bottom", "small->big", 1, 1) is None and interval(grid, "bottom", "small->big", 2, 1) is None
    assert interval(grid, "top", "small", 2, 1) is not None and interval(grid, "top", "big", 2, 1) is not None
    assert ("no interval for 1 row(s) of bottom small->big: small (steps=1, data_size=1) and big (steps=1, data_size=1) "
            "were scored on different imagenet_a images (units_sha256 differ): not paired") in grid.messages
    # a second seed of small (2, 1) scored on yet other images: that cell has no interval either
    extra = {"imagenet_a": stored(rng.random(40) < 0.5, units="third")}
    grid = grid_with(recs + [record("small", 2, 1, 1, extra, 1)], outs + [extra], resamples=100)
    assert interval(grid, "top", "small", 2, 1) is None and interval(grid, "top", "big", 2, 1) is not None
    assert any("the seeds of small (steps=2, data_size=1) were scored on different imagenet_a images" in m
               for m in grid.messages)


def test_missing_outcomes_say_which_rows_and_why():
    recs, outs = tiny_study()
    outs[3] = "r3.json has no per-example outcomes (written before they were recorded?); rerun its evaluation"
    grid = grid_with(recs, outs, resamples=100)
    assert interval(grid, "top", "big", 2, 1) is None and interval(grid, "bottom", "small->big", 1, 1) is None
    assert interval(grid, "top", "small", 2, 1) is not None and interval(grid, "bottom", "small->big", 2, 1) is not None
    [line] = [m for m in grid.messages if m.startswith("no interval")]
    assert line == ("no interval for 3 row(s) of top big, bottom small->big: big (steps=1, data_size=1) has no usable "
                    "per-example outcomes: " + outs[3])
    # no record with outcomes (older result files): one line, no interval anywhere, the grid as before
    plain = build_grid(recs)
    grid = grid_with(recs, ["no outcomes"] * len(recs), resamples=100)
    assert grid.rows == plain.rows and grid.intervals is None
    assert [m for m in grid.messages if "interval" in m] == [
        "no confidence intervals: none of the 5 result(s) has usable per-example outcomes (first: no outcomes)"]
    off = grid_with(recs, outs, resamples=0)
    assert off.rows == plain.rows and "no confidence intervals: resamples is 0" in off.messages


def test_incomplete_imagenet_c_uses_per_column_weighted_means():
    rng = np.random.default_rng(2)
    u, c, b, seed = 20, 75, 60, 5
    correct = [rng.random((u, c)) < p for p in (0.5, 0.35)]
    valid = rng.random((u, c)) > 0.1
    valid[:, 3] = False  # a whole set missing from the release: not a column of the error
    valid[:19, 7] = False  # a set with one valid base image: often not drawn at all
    outs = [{"imagenet_c": stored(correct[0], valid=valid)}, {"imagenet_c": stored(correct[1], valid=valid)}]
    recs = [record("m", 1, 1, 0, outs[0], 1), record("m", 2, 1, 0, outs[1], 1)]
    grid = grid_with(recs, outs, resamples=b, seed=seed)
    draws = draw_units(unit_rng(seed, outs[0]["imagenet_c"].units_sha256), b, u)

    def err(k, idx):
        rates = []
        for col in range(c):
            den = sum(1 for i in idx if valid[i, col])
            if den and valid[:, col].any():
                rates.append(sum(1 for i in idx if valid[i, col] and correct[k][i, col]) / den)
        return 1 - sum(rates) / len(rates)

    reductions = []
    for k in range(b):
        ref, cell = err(0, draws[k]), err(1, draws[k])
        reductions.append(100 * (ref - cell) / ref)
    assert interval(grid, "top", "m", 2, 1, "imagenet_c") == pytest.approx(hand_interval(reductions), abs=1e-9)
    assert grid.value("top", "m", "imagenet_c", 2, 1) == pytest.approx(
        100 * (outs[0]["imagenet_c"].error() - outs[1]["imagenet_c"].error()) / outs[0]["imagenet_c"].error())


def test_a_known_difference_is_covered():
    # 100 studies drawn from known error rates .5 (reference) and .4 (cell): true reduction 20 %
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(100):
        outs = [{"imagenet_a": stored(rng.random(400) >= p)} for p in (0.5, 0.4)]  # errors about p
        recs = [record("m", 1, 1, 0, outs[0], 1), record("m", 2, 1, 0, outs[1], 1)]
        lo, hi = interval(grid_with(recs, outs, resamples=300), "top", "m", 2, 1)
        covered += lo <= 20.0 <= hi
    # nominal 95 %; the percentile interval of a ratio on 400 images covers ~92 % (200 studies:
    # 185); a broken pairing, scale or seed handling lands far below
    assert covered >= 85


def test_seeds_widen_the_interval():
    rng = np.random.default_rng(4)
    ref = {"imagenet_a": stored(rng.random(500) >= 0.5)}  # error about .5
    seeds = [{"imagenet_a": stored(rng.random(500) >= p)} for p in (0.20, 0.40, 0.60)]
    one = [{"imagenet_a": stored(rng.random(500) >= 0.40)}]

    def width(cell_outs):
        outs = [ref] + cell_outs
        recs = [record("m", 1, 1, 0, ref, 1)] + [record("m", 2, 1, k, o, 1) for k, o in enumerate(cell_outs)]
        lo, hi = interval(grid_with(recs, outs, resamples=400), "top", "m", 2, 1)
        return hi - lo

    # three seeds whose errors spread from .2 to .6: drawing seeds adds their spread
    assert width(seeds) > 1.5 * width(one)


def write_study(folder: Path, with_outcomes=lambda model, steps: True):
    rng = np.random.default_rng(5)
    for model, base, params in (("small", 0.6, 1), ("big", 0.45, 9)):
        for steps in (10, 20):
            for size in (100, 200):
                p = base - 0.1 * (steps == 20) - 0.02 * (size == 200)
                units = {b: SimpleNamespace(correct=rng.random((300, 1)) >= p, valid=None,  # error about p
                                            units=[f"{b}/{i}" for i in range(300)], unit="image")
                         for b in ("imagenet_a", "objectnet")}
                r = dict(model=model, steps=steps, data_size=size, seed=0, num_params=params,
                         errors={b: 1 - float(u.correct.mean()) for b, u in units.items()})
                if with_outcomes(model, steps):
                    r["outcomes"] = write_outcomes(result_path(folder, r), units)
                write_result(result_path(folder, r), r)


def test_report_cli_writes_intervals_marks_heatmaps_and_tables(tmp_path, capsys):
    write_study(tmp_path / "r", with_outcomes=lambda model, steps: (model, steps) != ("big", 20))
    assert main([str(tmp_path / "r"), "--out", str(tmp_path / "g"), "--resamples", "200", "--bootstrap-seed", "3"]) == 0
    out, err = capsys.readouterr()
    assert "confidence intervals (95 % paired bootstrap, 200 resamples, seed 3): 16 of 24 rows" in out
    lines = (tmp_path / "g" / "grid.csv").read_text().splitlines()
    assert lines[0] == ",".join(CSV_COLUMNS)
    rows = {tuple(ln.split(",")[:5]): ln.split(",")[5:] for ln in lines[1:]}
    assert rows[("top", "small", "imagenet_a", "10", "100")] == ["0.0000", "0.0000", "0.0000"]
    value, lo, hi = map(float, rows[("top", "small", "objectnet", "20", "200")])
    assert lo < value < hi
    assert rows[("top", "big", "imagenet_a", "20", "100")][1:] == ["", ""]  # no outcomes for big at 20 steps
    assert re.search(r"no interval for 4 row\(s\) of top big, bottom small->big: big \(steps=20, data_size=100\) has "
                     r"no usable per-example outcomes: .*big-size=100-steps=20-seed=0\.json has no per-example outcomes", err)
    # the heat-map hatches exactly the cells whose interval contains 0 (not the reference itself)
    report = rebuild_report(tmp_path / "r", tmp_path / "g2", resamples=200, bootstrap_seed=3, log_messages=False)
    fig = report.figures["top_small"]
    for bench in ("imagenet_a", "objectnet"):
        [ax] = [a for a in fig.axes if a.get_title() == {"imagenet_a": "ImageNet-A", "objectnet": "ObjectNet"}[bench]]
        hatched = {(round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in ax.patches if p.get_hatch() == "///"}
        expected = {(report.grid.data_sizes.index(r.data_size), report.grid.steps.index(r.steps)) for r in report.grid.rows
                    if (r.panel, r.model, r.benchmark) == ("top", "small", bench) and not r.is_reference
                    and r.ci_low <= 0 <= r.ci_high}
        assert hatched == expected
    assert "///: the interval contains 0" in [t.get_text() for t in fig.texts]
    assert "4 cell(s) without an interval (see the notes)" in [t.get_text() for t in report.figures["top_big"].texts]
    table = report.tables["top_small"]
    row = next(r for r in report.grid.rows if (r.panel, r.model, r.benchmark, r.steps, r.data_size) ==
               ("top", "small", "imagenet_a", 20, 200))
    assert f"{row.reduction_pct:.1f} [{row.ci_low:.1f}, {row.ci_high:.1f}]" in table
    assert "[low, high]: 95 % paired bootstrap, 200 resamples, seed 3" in table
    # --resamples 0: the same grid, the interval columns empty
    assert main([str(tmp_path / "r"), "--out", str(tmp_path / "off"), "--resamples", "0"]) == 0
    off = (tmp_path / "off" / "grid.csv").read_text().splitlines()
    assert off[0] == lines[0] and all(ln.endswith(",,") for ln in off[1:]) and len(off) == len(lines)
    assert "no confidence intervals: resamples is 0" in capsys.readouterr().err


def test_grid_report_callback_logs_the_intervals(tmp_path):
    from callbacks.grid_report import GridReport, log_report

    write_study(tmp_path / "r")
    trainer = SimpleNamespace(is_global_zero=True, logger=None, global_step=0)
    report = GridReport(str(tmp_path / "r"), str(tmp_path / "g"), resamples=50, bootstrap_seed=1).rebuild(trainer)
    assert report.grid.intervals == "95 % paired bootstrap, 50 resamples, seed 1"
    texts = {}
    writer = SimpleNamespace(add_image=lambda *a, **k: None, flush=lambda: None,
                             add_text=lambda tag, text, global_step: texts.setdefault(tag, text))
    log_report(writer, report, 0)
    assert re.search(r"\| -?\d+\.\d \[-?\d+\.\d, -?\d+\.\d\] \|", texts["grid/top_small/table"])
    assert "grid/correlations_spearman/table" in texts and "ci_low,ci_high" in texts["grid/csv"]


def test_the_csv_header_is_documented():
    doc = (REPO / "docs" / "results-schema.md").read_text()
    assert f"`{','.join(CSV_COLUMNS)}`" in doc
    assert all(f"| `{c}` |" in doc for c in ("ci_low", "ci_high") if c in CSV_COLUMNS)
