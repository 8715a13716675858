"""Figure-3 arithmetic, checked against reductions computed by hand."""

import math

import pytest

from results.grid import CSV_COLUMNS, build_grid, choose_reference, order_models, reduction_pct, write_grid_csv

STEPS = (100, 200, 400)
SIZES = (1000, 2000, 4000)
# imagenet_a errors, rows = steps (100, 200, 400), columns = sizes (1000, 2000, 4000).
SMALL_A = ((0.50, 0.45, 0.40), (0.48, 0.40, 0.35), (0.55, 0.38, 0.30))
BIG_A = ((0.40, 0.36, 0.30), (0.38, 0.30, 0.25), (0.42, 0.28, 0.20))
# Alphabetical order (big_model < small_model) is the wrong size order on purpose:
# only num_params can put small_model first.
PARAMS = {"small_model": 1_000, "big_model": 9_000}


def records(skip=(), seeds=(0,)):
    out = []
    for model, table, obj in (("small_model", SMALL_A, 0.6), ("big_model", BIG_A, 0.3)):
        for i, s in enumerate(STEPS):
            for j, d in enumerate(SIZES):
                if (model, s, d) in skip:
                    continue
                for seed in seeds:
                    out.append(dict(model=model, data_size=d, steps=s, seed=seed,
                                    errors={"imagenet_a": table[i][j], "objectnet": obj, "not_a_bench": 0.1},
                                    metrics={"num_params": PARAMS[model]}))
    return out


def test_reduction_formula():
    assert reduction_pct(0.5, 0.4) == pytest.approx(20.0)
    assert reduction_pct(0.5, 0.6) == pytest.approx(-20.0)  # worse than the reference
    assert reduction_pct(0.2, 0.4) == pytest.approx(-100.0)
    assert reduction_pct(0.4, 0.0) == pytest.approx(100.0)
    assert reduction_pct(0.3, 0.3) == 0.0
    assert math.isnan(reduction_pct(0.0, 0.1)) and math.isnan(reduction_pct(0.0, 0.0))


def test_full_grid_hand_computed():
    g = build_grid(records())
    assert g.models == ["small_model", "big_model"]
    assert g.pairs == [("small_model", "big_model")]
    assert g.benchmarks == ["imagenet_a", "objectnet"]  # Figure-3 order; unknown key ignored
    assert g.steps == list(STEPS) and g.data_sizes == list(SIZES)
    assert g.missing == []
    assert len(g.rows) == 2 * (9 + 9 + 9)
    v = g.value
    assert v("top", "small_model", "imagenet_a", 100, 1000) == 0.0  # the reference
    assert v("top", "small_model", "imagenet_a", 400, 4000) == pytest.approx(40.0)  # (.5-.3)/.5
    assert v("top", "small_model", "imagenet_a", 200, 2000) == pytest.approx(20.0)  # (.5-.4)/.5
    assert v("top", "small_model", "imagenet_a", 400, 1000) == pytest.approx(-10.0)  # (.5-.55)/.5
    assert v("top", "big_model", "imagenet_a", 400, 4000) == pytest.approx(50.0)  # (.4-.2)/.4
    assert v("top", "big_model", "imagenet_a", 400, 1000) == pytest.approx(-5.0)  # (.4-.42)/.4
    pair = "small_model->big_model"
    assert v("bottom", pair, "imagenet_a", 100, 1000) == pytest.approx(20.0)  # (.5-.4)/.5
    assert v("bottom", pair, "imagenet_a", 400, 4000) == pytest.approx(100 / 3)  # (.3-.2)/.3
    assert v("bottom", pair, "imagenet_a", 400, 1000) == pytest.approx(1300 / 55)  # (.55-.42)/.55
    assert v("bottom", pair, "objectnet", 200, 2000) == pytest.approx(50.0)
    assert all(r.reduction_pct == 0.0 for r in g.rows if r.panel == "top" and r.benchmark == "objectnet")
    # deterministic order: top small, top big, bottom; benchmark; steps; size
    keys = [(r.panel, r.model, r.benchmark, r.steps, r.data_size) for r in g.rows]
    assert keys[0] == ("top", "small_model", "imagenet_a", 100, 1000)
    assert keys[1] == ("top", "small_model", "imagenet_a", 100, 2000)
    assert keys[9] == ("top", "small_model", "objectnet", 100, 1000)
    assert keys[18] == ("top", "big_model", "imagenet_a", 100, 1000)
    assert keys[36] == ("bottom", pair, "imagenet_a", 100, 1000)


def test_missing_cells_and_missing_reference():
    skip = {("small_model", 100, 1000), ("big_model", 400, 4000)}
    g = build_grid(records(skip=skip))  # must not raise
    ref_msgs = [m for m in g.messages if "reference cell" in m]
    assert sorted(ref_msgs) == sorted(
        f"top panel for model small_model, benchmark {b}: reference cell (steps=100, data_size=1000) "
        f"missing; no top-panel values for it (run that cell, or pass --fallback-reference to build the panel "
        f"against the next cell with a result)" for b in ("imagenet_a", "objectnet"))
    assert set(g.refused) == {("small_model", b, None) for b in ("imagenet_a", "objectnet")}
    assert not [r for r in g.rows if r.panel == "top" and r.model == "small_model"]
    # big_model keeps its reference (100, 1000): 8 cells per benchmark
    big = [r for r in g.rows if r.model == "big_model"]
    assert len(big) == 2 * 8
    assert g.value("top", "big_model", "imagenet_a", 400, 2000) == pytest.approx(30.0)  # (.4-.28)/.4
    bottom = [r for r in g.rows if r.panel == "bottom"]
    assert len(bottom) == 2 * 7
    assert g.value("bottom", "small_model->big_model", "imagenet_a", 100, 1000) is None
    missing = {(c.panel, c.model, c.benchmark, c.steps, c.data_size) for c in g.missing}
    assert missing == {
        ("top", "small_model", b, 100, 1000) for b in ("imagenet_a", "objectnet")
    } | {("top", "big_model", b, 400, 4000) for b in ("imagenet_a", "objectnet")} | {
        ("bottom", "small_model->big_model", b, s, d)
        for b in ("imagenet_a", "objectnet") for s, d in ((100, 1000), (400, 4000))}
    [c] = [c for c in g.missing if c.panel == "bottom" and c.steps == 100 and c.benchmark == "imagenet_a"]
    assert "no result for small_model" in str(c) and "big_model" not in c.reason


def test_reference_lacking_one_benchmark():
    recs = records()
    for r in recs:
        if (r["model"], r["steps"], r["data_size"]) == ("small_model", 100, 1000):
            del r["errors"]["objectnet"]
    g = build_grid(recs)
    assert [m for m in g.messages if "reference" in m] == [
        "top panel for model small_model, benchmark objectnet: reference cell (steps=100, "
        "data_size=1000) missing; no top-panel values for it (run that cell, or pass --fallback-reference "
        "to build the panel against the next cell with a result)"]
    assert g.value("top", "small_model", "imagenet_a", 400, 4000) == pytest.approx(40.0)


def test_seed_averaging():
    recs = [
        dict(model="m", steps=10, data_size=100, seed=0, errors={"imagenet_a": 0.4}),
        dict(model="m", steps=10, data_size=100, seed=1, errors={"imagenet_a": 0.6}),  # mean .5
        dict(model="m", steps=10, data_size=200, seed=0, errors={"imagenet_a": 0.3}),
        dict(model="m", steps=10, data_size=200, seed=1, errors={"imagenet_a": 0.5}),  # mean .4
        dict(model="m", steps=20, data_size=100, seed=0, errors={"imagenet_a": 0.45}),
    ]
    g = build_grid(recs)
    assert g.cells[("m", 10, 100, "imagenet_a", None)].mean == pytest.approx(0.5)
    assert g.cells[("m", 10, 100, "imagenet_a", None)].n == 2
    [r] = [r for r in g.rows if (r.steps, r.data_size) == (10, 200)]
    assert r.reduction_pct == pytest.approx(20.0) and (r.n_ref, r.n_cell) == (2, 2)
    [r] = [r for r in g.rows if (r.steps, r.data_size) == (20, 100)]
    assert r.reduction_pct == pytest.approx(10.0) and r.n_cell == 1
    assert [(c.steps, c.data_size) for c in g.missing] == [(20, 200)]
    assert "only one model (m): no bottom panel" in g.messages
    # the same seed twice (a rerun copied aside) is averaged and noted
    g2 = build_grid(recs + [dict(model="m", steps=20, data_size=100, seed=0, errors={"imagenet_a": 0.25})])
    assert g2.cells[("m", 20, 100, "imagenet_a", None)].mean == pytest.approx(0.35)
    assert any("seed(s) [0]" in m and "steps=20" in m for m in g2.messages)


def _two(a, b, **extra_a):
    return [dict(model=a, steps=1, data_size=1, seed=0, errors={"imagenet_a": 0.5}, **extra_a),
            dict(model=b, steps=1, data_size=1, seed=0, errors={"imagenet_a": 0.4})]


def test_bottom_naming_and_model_order():
    g = build_grid(_two("zeta", "alpha"))
    # no size information: alphabetical, said out loud
    assert g.pairs == [("alpha", "zeta")]
    assert any("alphabetical" in m for m in g.messages)
    assert g.value("bottom", "alpha->zeta", "imagenet_a", 1, 1) == pytest.approx(-25.0)  # (.4-.5)/.4
    g = build_grid(_two("zeta", "alpha"), model_order=["zeta", "alpha"])
    assert [r.model for r in g.rows if r.panel == "bottom"] == ["zeta->alpha"]
    assert g.value("bottom", "zeta->alpha", "imagenet_a", 1, 1) == pytest.approx(20.0)  # (.5-.4)/.5
    assert not any("alphabetical" in m for m in g.messages)


def test_num_params_decides_order():
    recs = _two("zeta", "alpha", num_params=5)
    recs[1]["num_params"] = 50
    order, notes = order_models(recs, model_order=["alpha", "zeta"])
    assert order == ["zeta", "alpha"] and any("disagrees" in n for n in notes)
    three = recs + [dict(model="mid", steps=1, data_size=1, seed=0, errors={"imagenet_a": 0.45},
                         metrics={"num_params": 20})]
    g = build_grid(three)
    assert g.models == ["zeta", "mid", "alpha"]
    assert [r.model for r in g.rows if r.panel == "bottom"] == ["zeta->mid", "mid->alpha"]
    assert g.value("bottom", "mid->alpha", "imagenet_a", 1, 1) == pytest.approx(100 * 0.05 / 0.45)


def test_zero_reference_is_nan_with_message(tmp_path):
    recs = [dict(model="m", steps=1, data_size=1, seed=0, errors={"imagenet_a": 0.0}),
            dict(model="m", steps=2, data_size=1, seed=0, errors={"imagenet_a": 0.1})]
    g = build_grid(recs)
    assert any("reference error is 0" in m for m in g.messages)
    assert math.isnan(g.value("top", "m", "imagenet_a", 2, 1))
    text = write_grid_csv(g, tmp_path / "g.csv").read_text()
    assert text.splitlines()[1:] == ["top,m,imagenet_a,1,1,nan,,", "top,m,imagenet_a,2,1,nan,,"]


def test_csv_header_and_content(tmp_path):
    path = write_grid_csv(build_grid(records()), tmp_path / "out" / "grid.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high"
    assert tuple(lines[0].split(",")) == CSV_COLUMNS
    assert len(lines) == 1 + 54
    assert lines[1] == "top,small_model,imagenet_a,100,1000,0.0000,,"
    assert "top,small_model,imagenet_a,400,1000,-10.0000,," in lines
    assert "top,big_model,imagenet_a,400,4000,50.0000,," in lines
    assert "bottom,small_model->big_model,imagenet_a,400,1000,23.6364,," in lines
    assert "bottom,small_model->big_model,imagenet_a,400,4000,33.3333,," in lines
    assert not any("-0.0000" in ln for ln in lines)
    assert [p.name for p in path.parent.iterdir()] == ["grid.csv"]  # no temp file left
    # writing twice gives the same bytes (deterministic order)
    assert write_grid_csv(build_grid(list(reversed(records()))), tmp_path / "b.csv").read_text() == path.read_text()


def test_invalid_records_skipped_by_grid():
    recs = records() + [dict(model="x", steps=1, data_size=1, seed=0, errors={"imagenet_a": 2.0})]
    g = build_grid(recs)
    assert "x" not in g.models and any(m.startswith("skipped record") for m in g.messages)
    empty = build_grid([])
    assert empty.rows == [] and empty.messages


def test_resolution_axis_gets_its_own_panels_and_references(tmp_path):
    # model m at two resolutions; errors by (steps, size). Each resolution has its own reference.
    low = {(10, 1): 0.50, (10, 2): 0.40, (20, 1): 0.60}                  # res 32: (20, 2) missing
    high = {(10, 1): 0.40, (10, 2): 0.30, (20, 1): 0.20, (20, 2): 0.10}  # res 64
    big_high = {(10, 1): 0.20, (10, 2): 0.15, (20, 1): 0.25, (20, 2): 0.05}
    recs = [dict(model="m", steps=s, data_size=d, seed=0, resolution=r, num_params=1, errors={"imagenet_c": e})
            for r, t in ((32, low), (64, high)) for (s, d), e in t.items()]
    recs += [dict(model="big", steps=s, data_size=d, seed=0, resolution=64, num_params=9, errors={"imagenet_c": e})
             for (s, d), e in big_high.items()]
    g = build_grid(recs)
    assert g.resolutions == [32, 64] and g.has_resolution
    assert g.references[("m", "imagenet_c", 32)] == (10, 1) and g.references[("m", "imagenet_c", 64)] == (10, 1)
    v = g.value
    assert v("top", "m", "imagenet_c", 10, 2, 32) == pytest.approx(20.0)    # (.5-.4)/.5
    assert v("top", "m", "imagenet_c", 20, 1, 32) == pytest.approx(-20.0)   # (.5-.6)/.5: worse
    assert v("top", "m", "imagenet_c", 20, 2, 64) == pytest.approx(75.0)    # (.4-.1)/.4, not vs. res 32
    assert v("top", "m", "imagenet_c", 20, 2, 32) is None
    assert v("top", "m", "imagenet_c", 20, 2) is None  # no resolution-less panel exists
    assert v("bottom", "m->big", "imagenet_c", 10, 1, 64) == pytest.approx(50.0)  # (.4-.2)/.4
    assert v("bottom", "m->big", "imagenet_c", 20, 1, 64) == pytest.approx(-25.0)  # (.2-.25)/.2
    assert not [r for r in g.rows if r.panel == "bottom" and r.resolution == 32]  # big has no res-32 result
    assert any(m == "top panel for model big at resolution 32, benchmark imagenet_c: no result at all; no top-panel "
               "values for it" for m in g.messages)
    missing = {(c.panel, c.model, c.steps, c.data_size, c.resolution) for c in g.missing}
    assert ("top", "m", 20, 2, 32) in missing and ("bottom", "m->big", 20, 2, 32) in missing
    assert ("top", "m", 20, 2, 64) not in missing
    assert "top panel m at resolution 32, imagenet_c: cell (steps=20, data_size=2) missing" in str(
        next(c for c in g.missing if (c.panel, c.model, c.steps, c.data_size, c.resolution) == ("top", "m", 20, 2, 32)))
    lines = write_grid_csv(g, tmp_path / "g.csv").read_text().splitlines()
    assert lines[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high,resolution"
    assert lines[1:4] == ["top,m,imagenet_c,10,1,0.0000,,,32", "top,m,imagenet_c,10,2,20.0000,,,32",
                          "top,m,imagenet_c,20,1,-20.0000,,,32"]
    assert "top,m,imagenet_c,20,2,75.0000,,,64" in lines and "bottom,m->big,imagenet_c,20,2,50.0000,,,64" in lines


def test_no_resolution_column_without_the_axis(tmp_path):
    g = build_grid(records())
    assert not g.has_resolution and g.resolutions == [None]
    assert write_grid_csv(g, tmp_path / "g.csv").read_text().splitlines()[0] == ",".join(CSV_COLUMNS)


# The whole fewest-steps row of small_model missing (e.g. its 100-step cells failed): big_model
# still has it, so the grid's reference cell is (100, 1000) for every top panel.
NO_FIRST_ROW = {("small_model", 100, d) for d in SIZES}


def test_missing_fewest_steps_row_refuses_the_panel_by_default():
    g = build_grid(records(skip=NO_FIRST_ROW))
    assert g.reference_cell == (100, 1000) and g.fallback_reference is False
    # before: the reference silently became (200, 1000) and (400, 4000) read 37.5
    assert not [r for r in g.rows if r.panel == "top" and r.model == "small_model"]
    assert g.refused == {("small_model", b, None): (100, 1000) for b in ("imagenet_a", "objectnet")}
    assert g.fallbacks() == {} and ("small_model", "imagenet_a", None) not in g.references
    assert ("top panel for model small_model, benchmark imagenet_a: reference cell (steps=100, data_size=1000) "
            "missing; no top-panel values for it (run that cell, or pass --fallback-reference to build the panel "
            "against the next cell with a result)") in g.messages
    assert g.value("top", "big_model", "imagenet_a", 400, 4000) == pytest.approx(50.0)  # (.4-.2)/.4, unaffected
    # bottom cells need both models at the same cell: the 100-step row is just missing there
    assert g.value("bottom", "small_model->big_model", "imagenet_a", 100, 1000) is None
    assert g.value("bottom", "small_model->big_model", "imagenet_a", 200, 1000) == pytest.approx(100 * 0.10 / 0.48)


def test_missing_fewest_steps_row_with_fallback_uses_the_next_cell_named_everywhere(tmp_path):
    g = build_grid(records(skip=NO_FIRST_ROW), fallback_reference=True)
    key = ("small_model", "imagenet_a", None)
    assert g.references[key] == (200, 1000) and g.fallbacks() == {
        ("small_model", b, None): (200, 1000) for b in ("imagenet_a", "objectnet")}
    assert g.refused == {} and g.references[("big_model", "imagenet_a", None)] == (100, 1000)
    assert ("top panel for model small_model, benchmark imagenet_a: reference cell (steps=100, data_size=1000) "
            "missing; fallback reference (steps=200, data_size=1000) used: this panel's reductions are relative to it"
            ) in g.messages
    v = g.value
    # small_model's imagenet_a errors at 200 steps .48/.40/.35, at 400 steps .55/.38/.30; reference .48
    assert v("top", "small_model", "imagenet_a", 200, 1000) == 0.0
    assert v("top", "small_model", "imagenet_a", 200, 2000) == pytest.approx(100 * 0.08 / 0.48)  # 16.667
    assert v("top", "small_model", "imagenet_a", 200, 4000) == pytest.approx(100 * 0.13 / 0.48)  # 27.083
    assert v("top", "small_model", "imagenet_a", 400, 1000) == pytest.approx(-100 * 0.07 / 0.48)  # -14.583
    assert v("top", "small_model", "imagenet_a", 400, 4000) == pytest.approx(37.5)  # (.48-.30)/.48
    assert v("top", "small_model", "imagenet_a", 100, 1000) is None
    assert v("top", "big_model", "imagenet_a", 400, 4000) == pytest.approx(50.0)  # big keeps (100, 1000)
    lines = write_grid_csv(g, tmp_path / "g.csv").read_text().splitlines()
    assert lines[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high,ref_steps,ref_data_size"
    assert lines[1] == "top,small_model,imagenet_a,200,1000,0.0000,,,200,1000"
    assert "top,small_model,imagenet_a,400,4000,37.5000,,,200,1000" in lines
    assert "top,small_model,imagenet_a,400,1000,-14.5833,,,200,1000" in lines
    assert "top,big_model,imagenet_a,400,4000,50.0000,,,100,1000" in lines
    assert "bottom,small_model->big_model,imagenet_a,400,4000,33.3333,,,400,4000" in lines  # its own cell
    assert len(lines) == 1 + 2 * 6 + 2 * 9 + 2 * 6


def test_fallback_order_is_steps_then_size():
    # only the reference cell itself missing: the next cell is the same row's next size
    g = build_grid(records(skip={("small_model", 100, 1000)}), fallback_reference=True)
    assert g.references[("small_model", "imagenet_a", None)] == (100, 2000)
    assert g.value("top", "small_model", "imagenet_a", 400, 4000) == pytest.approx(100 * 0.15 / 0.45)  # 33.333
    assert g.value("top", "small_model", "imagenet_a", 200, 1000) == pytest.approx(-100 * 0.03 / 0.45)  # -6.667
    assert choose_reference((1, 1), [(2, 1), (1, 5), (3, 0)], True) == (1, 5)
    assert choose_reference((1, 1), [(2, 1), (1, 1)], True) == (1, 1)
    assert choose_reference((1, 1), [(2, 1)], False) is None and choose_reference((1, 1), [], True) is None
    # with every reference present, the option changes nothing, and the CSV keeps its six columns
    full = build_grid(records(), fallback_reference=True)
    assert full.fallbacks() == {} and full.rows == build_grid(records()).rows


# The fewest-steps row missing from EVERY model (all the study's 100-step runs failed): the
# records alone do not have step 100 on their axes; the study's expected axes put it back.
NO_FIRST_ROW_ANYWHERE = {(m, 100, d) for m in PARAMS for d in SIZES}


def test_row_missing_everywhere_with_expected_axes_refuses_the_panels():
    g = build_grid(records(skip=NO_FIRST_ROW_ANYWHERE), expected_steps=[400, 100, 200], expected_sizes=SIZES)
    assert g.steps == [100, 200, 400] and g.data_sizes == [1000, 2000, 4000]
    assert g.expected_steps == [100, 200, 400] and g.has_expected_axes
    assert g.reference_cell == (100, 1000)
    assert g.refused == {(m, b, None): (100, 1000) for m in PARAMS for b in ("imagenet_a", "objectnet")}
    assert g.references == {} and not [r for r in g.rows if r.panel == "top"]
    assert ("top panel for model big_model, benchmark imagenet_a: reference cell (steps=100, data_size=1000) "
            "missing; no top-panel values for it (run that cell, or pass --fallback-reference to build the panel "
            "against the next cell with a result)") in g.messages
    assert "no result at steps=100 (expected): that row of the grid is empty" in g.messages
    # the empty row is missing cells of every panel, bottom included
    missing = {(c.panel, c.model, c.steps, c.data_size) for c in g.missing if c.benchmark == "imagenet_a"}
    assert {("top", m, 100, d) for m in PARAMS for d in SIZES} <= missing
    assert {("bottom", "small_model->big_model", 100, d) for d in SIZES} <= missing
    # bottom cells are their own references: (.48-.38)/.48 at (200, 1000)
    assert g.value("bottom", "small_model->big_model", "imagenet_a", 200, 1000) == pytest.approx(100 * 0.10 / 0.48)


def test_row_missing_everywhere_with_expected_axes_and_fallback_names_the_next_row():
    g = build_grid(records(skip=NO_FIRST_ROW_ANYWHERE), expected_steps=STEPS, expected_sizes=SIZES,
                   fallback_reference=True)
    assert g.reference_cell == (100, 1000) and g.refused == {}
    assert g.fallbacks() == {(m, b, None): (200, 1000) for m in PARAMS for b in ("imagenet_a", "objectnet")}
    assert ("top panel for model small_model, benchmark imagenet_a: reference cell (steps=100, data_size=1000) "
            "missing; fallback reference (steps=200, data_size=1000) used: this panel's reductions are relative to it"
            ) in g.messages
    v = g.value
    assert v("top", "small_model", "imagenet_a", 400, 4000) == pytest.approx(37.5)  # (.48-.30)/.48
    assert v("top", "big_model", "imagenet_a", 400, 4000) == pytest.approx(100 * 0.18 / 0.38)  # (.38-.20)/.38
    assert v("top", "big_model", "imagenet_a", 400, 1000) == pytest.approx(-100 * 0.04 / 0.38)  # (.38-.42)/.38
    assert [(r.ref_steps, r.ref_data_size) for r in g.rows if r.panel == "top"] == [(200, 1000)] * (2 * 2 * 6)


def test_row_missing_everywhere_without_expected_axes_is_not_on_the_axes():
    # the documented limit of a bare results folder: no result has step 100, so nothing says it
    # was expected; the 200-step row is the fewest steps and the reference, without a note
    g = build_grid(records(skip=NO_FIRST_ROW_ANYWHERE))
    assert g.steps == [200, 400] and not g.has_expected_axes
    assert g.reference_cell == (200, 1000) and g.refused == {} and g.fallbacks() == {}
    assert not [m for m in g.messages if "reference" in m or "expected" in m]
    assert g.value("top", "small_model", "imagenet_a", 200, 1000) == 0.0
    assert g.value("top", "small_model", "imagenet_a", 400, 4000) == pytest.approx(37.5)  # (.48-.30)/.48


def test_column_missing_everywhere_and_expected_axes_that_change_nothing():
    no_first_column = {(m, s, 1000) for m in PARAMS for s in STEPS}
    g = build_grid(records(skip=no_first_column), expected_sizes=[1000, 2000, 4000])
    assert g.reference_cell == (100, 1000) and len(g.refused) == 4 and g.expected_steps is None
    assert "no result at data_size=1000 (expected): that column of the grid is empty" in g.messages
    assert build_grid(records(skip=no_first_column)).reference_cell == (100, 2000)
    # expected axes equal to the records' axes: the same grid, the same notes
    same, plain = build_grid(records(), expected_steps=STEPS, expected_sizes=SIZES), build_grid(records())
    assert same.rows == plain.rows and same.messages == plain.messages and same.missing == []
    # a result off the expected axes stays on the grid (it can be the reference), with a note
    off = build_grid(records(), expected_steps=[200, 400])
    assert off.steps == [100, 200, 400] and off.reference_cell == (100, 1000)
    assert "results at steps [100] are not among the expected steps values [200, 400]; they are on the grid's axes too" in off.messages
    with pytest.raises(ValueError, match="expected_sizes must be positive integers"):
        build_grid(records(), expected_sizes=[1000, 0])
