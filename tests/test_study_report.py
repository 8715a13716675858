"""Heat-maps and the report CLI (small grids: one or two benchmarks keep rendering fast)."""

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from PIL import Image

from results.grid import build_grid
from results.figures import count_labels, figure_key, format_count, save_figures
from results.heatmaps import grid_figures
from results.report import main, rebuild_report
from results.schema import result_path, write_result

REPO = Path(__file__).resolve().parents[1]

# imagenet_a errors; (steps, size) -> error. Small model reference (10, 1000) = 0.5.
SMALL = {(10, 1000): 0.50, (10, 2000): 0.40, (20, 1000): 0.55, (20, 2000): 0.30}
BIG = {(10, 1000): 0.40, (10, 2000): 0.30, (20, 1000): 0.44, (20, 2000): 0.15}


def write_study(folder, skip=(), benches=("imagenet_a",)):
    for model, table, n in (("small_model", SMALL, 10), ("big_model", BIG, 90)):
        for (s, d), e in table.items():
            if (model, s, d) in skip:
                continue
            r = dict(model=model, steps=s, data_size=d, seed=0, num_params=n,
                     errors={b: e for b in benches})
            write_result(result_path(folder, r), r)


def test_format_count():
    assert format_count(1000) == "1K"
    assert format_count(2500) == "2.5K"
    assert format_count(1_000_000) == "1M"
    assert format_count(112_000) == "112K"
    assert format_count(457_032) == "457K"
    assert format_count(1_120_000) == "1.12M"
    assert format_count(13_000_000) == "13M"
    assert format_count(400) == "400"
    assert format_count(999_999) == "1M"
    assert count_labels([1_000_000, 1_001_000]) == ["1M", "1.001M"]  # never two equal ticks


def test_figure_keys_and_layout():
    g = build_grid([dict(model=m, steps=s, data_size=d, seed=0, num_params=n,
                         errors={"imagenet_a": t[(s, d)], "imagenet_v2": 0.5})
                    for m, t, n in (("small_model", SMALL, 1), ("big_model", BIG, 2)) for s, d in t
                    if (m, s, d) != ("big_model", 20, 2000)])
    figs = grid_figures(g)
    assert list(figs) == ["top_small_model", "top_big_model", "bottom_small_model-vs-big_model"]
    assert figure_key("bottom", "a/b->c") == "bottom_a_b-vs-c"
    fig = figs["top_small_model"]
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in axes] == ["ImageNet-A", "ImageNet-V2"]
    ax = axes[0]
    assert ax.get_xlabel() == "Dataset size" and ax.get_ylabel() == "Training steps"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1K", "2K"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["10", "20"]
    # fewest steps at the bottom: image origin lower, y = row index of steps
    assert ax.get_ylim()[0] < ax.get_ylim()[1]
    texts = {(t.get_position(), t.get_text()) for t in ax.texts}
    # (steps=20, size=2000) = 100*(.5-.3)/.5 = 40.0; (20, 1000) = 100*(.5-.55)/.5 = -10.0
    assert ((1, 1), "40.0") in texts and ((0, 1), "-10.0") in texts and ((0, 0), "0.0") in texts
    # the missing cell of big_model is blank (no annotation), the others are there
    big_ax = [a for a in figs["top_big_model"].axes if a.get_title() == "ImageNet-A"][0]
    big_texts = {t.get_position(): t.get_text() for t in big_ax.texts}
    assert (1, 1) not in big_texts and big_texts[(1, 0)] == "25.0"  # (.4-.3)/.4
    # shared colour scale, symmetric around 0
    norms = {(im.norm.vmin, im.norm.vmax) for a in fig.axes for im in a.images}
    assert len(norms) == 1 and (lambda lo_hi: lo_hi[0] == -lo_hi[1])(norms.pop())


def test_save_figures_real_pngs(tmp_path):
    g = build_grid([dict(model="m", steps=s, data_size=d, seed=0, errors={"imagenet_a": e})
                    for (s, d), e in SMALL.items()])
    paths = save_figures(grid_figures(g), tmp_path / "png")
    assert [p.name for p in paths] == ["top_m.png"]
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["top_m.png"]  # no temp files
    with Image.open(paths[0]) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 150
        lo_hi = im.convert("L").getextrema()
        assert lo_hi[1] - lo_hi[0] > 100  # not a blank canvas
    assert paths[0].stat().st_size > 5_000


def test_cli_main_writes_csv_and_pngs(tmp_path, capsys):
    results = tmp_path / "runs" / "results"
    write_study(results)
    (results / "broken.json").write_text('{"model": "small_mo')  # a run killed mid-write
    assert main([str(results)]) == 0  # default OUT_DIR: runs/grid
    out, err = capsys.readouterr()
    grid_dir = tmp_path / "runs" / "grid"
    csv_lines = (grid_dir / "grid.csv").read_text().splitlines()
    assert csv_lines[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high"
    assert "top,small_model,imagenet_a,20,2000,40.0000,," in csv_lines
    assert "top,big_model,imagenet_a,20,2000,62.5000,," in csv_lines  # (.4-.15)/.4
    assert "bottom,small_model->big_model,imagenet_a,20,2000,50.0000,," in csv_lines  # (.3-.15)/.3
    assert len(csv_lines) == 1 + 12
    stems = ["bottom_small_model-vs-big_model", "errors_big_model", "errors_small_model",
             "lines_big_model", "lines_small_model", "top_big_model", "top_small_model"]
    pngs = sorted(grid_dir.glob("*.png"))
    assert [p.name for p in pngs] == [f"{s}.png" for s in stems]
    for p in pngs:
        with Image.open(p) as im:
            im.verify()
        assert p.stat().st_size > 5_000
        assert str(p) in out
    svgs = sorted(grid_dir.glob("*.svg"))
    assert [p.name for p in svgs] == [f"{s}.svg" for s in stems]
    for p in svgs:
        root = ElementTree.parse(p).getroot()
        assert root.tag.endswith("svg") and str(p) in out
    # matplotlib draws text as glyphs, each string preceded by a comment naming it:
    # the annotated reduction of (20 steps, 2K images) and the axis labels are there
    svg = (grid_dir / "top_small_model.svg").read_text()
    assert all(f"<!-- {t} -->" in svg for t in ("40.0", "-10.0", "Dataset size", "Training steps", "ImageNet-A"))
    assert str(grid_dir / "grid.csv") in out and str(grid_dir / "errors.csv") in out
    # the normal case names each top panel's reference once (a bare folder: the results' axes)
    assert [ln for ln in out.splitlines() if ln.startswith("top panel")] == [
        "top panels: reference cell (steps=10, data_size=1000), the fewest steps and smallest data size of the results "
        "(a row or column that no result has is not known here: --steps/--sizes, or `python -m study report STUDY.yaml`, "
        "add the study's)",
        "top panel small_model (imagenet_a): reference (steps=10, data_size=1000)",
        "top panel big_model (imagenet_a): reference (steps=10, data_size=1000)"]
    errors = (grid_dir / "errors.csv").read_text().splitlines()
    assert errors[0] == "model,benchmark,steps,data_size,error,n_seeds"
    assert errors[1] == "small_model,imagenet_a,10,1000,0.500000,1"  # smallest model first, fewest steps first
    assert "big_model,imagenet_a,20,2000,0.150000,1" in errors and len(errors) == 1 + 8
    assert f"skipped {results / 'broken.json'}: not valid JSON" in err


def test_cli_partial_grid_reports_and_exits_zero(tmp_path, capsys):
    results = tmp_path / "results"
    write_study(results, skip={("small_model", 10, 1000), ("big_model", 20, 2000)})
    assert main([str(results), "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert ("top panel for model small_model, benchmark imagenet_a: reference cell "
            "(steps=10, data_size=1000) missing") in err
    assert "missing: top panel big_model, cell (steps=20, data_size=2000), all benchmarks" in err
    lines = (tmp_path / "o" / "grid.csv").read_text().splitlines()
    assert not [ln for ln in lines if ln.startswith("top,small_model")]
    assert len(lines) == 1 + 3 + 2  # big top: 3 cells; bottom: 2 cells present for both


def test_cli_missing_and_empty_folder(tmp_path, capsys):
    missing = tmp_path / "no_such_results"
    assert main([str(missing)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:") and str(missing) in err
    assert "does not exist" in err and "callbacks/ood_evaluation.py" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "bad.json").write_text("{}")
    assert main([str(empty)]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no valid result file in") and "1 file(s) skipped" in err
    assert not (tmp_path / "grid").exists()


def test_rebuild_report_for_callbacks(tmp_path):
    write_study(tmp_path / "r", benches=("imagenet_a", "ytbb_w"))
    out = rebuild_report(tmp_path / "r", tmp_path / "g", log_messages=False)
    assert out.csv_path == tmp_path / "g" / "grid.csv" and out.n_results == 8
    assert set(out.figures) == {p.stem for p in out.png_paths}
    assert out.grid.benchmarks == ["imagenet_a", "ytbb_w"]
    with pytest.raises(FileNotFoundError):
        rebuild_report(tmp_path / "nope", tmp_path / "g")


def test_module_entry_point_subprocess(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "results.report", str(tmp_path / "absent")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: results folder") and "absent" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_absolute_error_heatmap_and_line_plot_show_the_errors():
    from results.heatmaps import error_figures
    from results.lineplots import line_figures

    recs = [dict(model=m, steps=s, data_size=d, seed=0, num_params=n, errors={"imagenet_a": e})
            for m, t, n in (("small_model", SMALL, 1), ("big_model", BIG, 2)) for (s, d), e in t.items()
            if (m, s, d) != ("small_model", 20, 1000)]
    g = build_grid(recs)
    [ax] = [a for a in error_figures(g)["errors_small_model"].axes if a.get_title() == "ImageNet-A"]
    texts = {t.get_position(): t.get_text() for t in ax.texts}
    # (col = size index, row = steps index): errors in percent; the missing cell is blank
    assert texts == {(0, 0): "50.0", (1, 0): "40.0", (1, 1): "30.0"}
    [ax] = [a for a in line_figures(g)["lines_small_model"].axes if a.get_title() == "ImageNet-A"]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
    assert lines["10 steps"] == pytest.approx([50.0, 40.0])
    assert lines["20 steps"][0] != lines["20 steps"][0] and lines["20 steps"][1] == pytest.approx(30.0)  # nan gap
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1K", "2K"] and ax.get_xlabel() == "Dataset size"


def test_markdown_tables_have_fewest_steps_at_the_bottom():
    from results.tables import markdown_tables

    g = build_grid([dict(model="m", steps=s, data_size=d, seed=0, errors={"imagenet_a": e})
                    for (s, d), e in SMALL.items() if (s, d) != (20, 1000)])
    tables = markdown_tables(g)
    assert list(tables) == ["top_m", "errors_m"]
    lines = tables["top_m"].splitlines()
    assert lines[0].startswith("**top panel m:") and "*ImageNet-A*" in lines
    start = lines.index("| steps \\ size | 1K | 2K |")
    assert lines[start + 1] == "|---|---|---|"
    assert lines[start + 2] == "| **20** |  | 40.0 |"  # (20, 1K) missing: empty; (.5-.3)/.5 = 40
    assert lines[start + 3] == "| **10** | 0.0 | 20.0 |"
    assert "| **10** | 50.0 | 40.0 |" in tables["errors_m"].splitlines()


def test_missing_reference_panel_says_so(tmp_path):
    write_study(tmp_path / "r", skip={("small_model", 10, 1000)})
    out = rebuild_report(tmp_path / "r", tmp_path / "g", log_messages=False)
    [ax] = [a for a in out.figures["top_small_model"].axes if a.get_title() == "ImageNet-A"]
    assert "reference cell\n10 steps,\n1K images\nmissing" in [t.get_text() for t in ax.texts]
    assert any("reference cell (steps=10, data_size=1000) missing" in m for m in out.messages)
    assert (tmp_path / "g" / "top_small_model.svg").exists()


def test_report_with_a_resolution_axis_names_figures_per_value(tmp_path):
    for res in (32, 64):
        for (s, d), e in SMALL.items():
            r = dict(model="small_model", steps=s, data_size=d, seed=0, resolution=res, errors={"imagenet_a": e * res / 64})
            write_result(result_path(tmp_path / "r", r), r)
    out = rebuild_report(tmp_path / "r", tmp_path / "g", log_messages=False)
    assert sorted(out.figures) == ["errors_small_model-res=32", "errors_small_model-res=64", "lines_small_model-res=32",
                                   "lines_small_model-res=64", "top_small_model-res=32", "top_small_model-res=64"]
    assert "at resolution 32" in out.figures["top_small_model-res=32"].texts[0].get_text()
    assert (tmp_path / "g" / "errors.csv").read_text().splitlines()[0].endswith(",resolution")


FIRST_ROW = {("small_model", 10, 1000), ("small_model", 10, 2000)}  # small_model's fewest-steps row


def test_cli_missing_fewest_steps_row_refuses_the_panel_by_default(tmp_path, capsys):
    write_study(tmp_path / "r", skip=FIRST_ROW)
    assert main([str(tmp_path / "r"), "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert "top panels: reference cell (steps=10, data_size=1000), the fewest steps and smallest data size of the results (" in out
    assert "top panel big_model (imagenet_a): reference (steps=10, data_size=1000)" in out
    assert ("top panel small_model (imagenet_a): REFUSED, reference cell (steps=10, data_size=1000) has no result; "
            "--fallback-reference builds it against the next cell with one") in out
    assert "top panel for model small_model, benchmark imagenet_a: reference cell (steps=10, data_size=1000) missing" in err
    lines = (tmp_path / "o" / "grid.csv").read_text().splitlines()
    assert lines[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high"
    assert not [ln for ln in lines if ln.startswith("top,small_model")]
    assert len(lines) == 1 + 4 + 2  # big top: 4 cells; bottom: the 20-step row only


def test_cli_fallback_reference_names_the_cell_in_csv_title_notes_and_summary(tmp_path, capsys):
    write_study(tmp_path / "r", skip=FIRST_ROW)
    assert main([str(tmp_path / "r"), "--out", str(tmp_path / "o"), "--fallback-reference"]) == 0
    out, err = capsys.readouterr()
    assert ("top panel small_model (imagenet_a): FALLBACK reference (steps=20, data_size=1000), because "
            "(steps=10, data_size=1000) has no result") in out
    assert "fallback reference (steps=20, data_size=1000) used" in err
    lines = (tmp_path / "o" / "grid.csv").read_text().splitlines()
    assert lines[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high,ref_steps,ref_data_size"
    # small_model: reference (20, 1K) = .55; (20, 2K) = .30 -> 100 * .25 / .55
    assert lines[1:3] == ["top,small_model,imagenet_a,20,1000,0.0000,,,20,1000", "top,small_model,imagenet_a,20,2000,45.4545,,,20,1000"]
    assert "top,big_model,imagenet_a,20,2000,62.5000,,,10,1000" in lines  # (.4-.15)/.4 against its own (10, 1K)
    assert "bottom,small_model->big_model,imagenet_a,20,1000,20.0000,,,20,1000" in lines  # (.55-.44)/.55
    assert len(lines) == 1 + 2 + 4 + 2
    svg = (tmp_path / "o" / "top_small_model.svg").read_text()
    assert "<!-- 45.5 -->" in svg and "FALLBACK 20 steps, 1K images" in svg


def test_rebuild_report_fallback_reference_in_figure_and_table(tmp_path):
    write_study(tmp_path / "r", skip=FIRST_ROW)
    out = rebuild_report(tmp_path / "r", tmp_path / "g", fallback_reference=True, log_messages=False)
    fig = out.figures["top_small_model"]
    assert fig.texts[0].get_text() == ("small_model: OOD error reduction (%) relative to \nFALLBACK 20 steps, 1K images "
                                       "(10 steps, 1K images: no result)")
    [ax] = [a for a in fig.axes if a.get_title().startswith("ImageNet-A")]
    assert ax.get_title() == "ImageNet-A\nvs. FALLBACK 20 steps, 1K images"
    texts = {t.get_position(): t.get_text() for t in ax.texts}
    assert texts == {(0, 1): "0.0", (1, 1): "45.5"}  # the 10-step row is blank
    assert out.figures["top_big_model"].texts[0].get_text().endswith("relative to 10 steps, 1K images")
    assert "*ImageNet-A* (vs. FALLBACK reference steps=20, data_size=1000)" in out.tables["top_small_model"].splitlines()
    refused = rebuild_report(tmp_path / "r", tmp_path / "g2", log_messages=False)
    assert "*ImageNet-A* (no values: reference cell steps=10, data_size=1000 missing)" in refused.tables["top_small_model"]
    assert refused.grid.refused and not refused.grid.fallbacks()


ROW_10 = {(m, 10, d) for m in ("small_model", "big_model") for d in (1000, 2000)}  # every 10-step run failed
AXES = ["--steps", "20", "10", "--sizes", "1000", "2000"]


def test_cli_expected_axes_keep_a_row_no_result_has_as_the_reference(tmp_path, capsys):
    write_study(tmp_path / "r", skip=ROW_10, benches=("imagenet_a", "imagenet_v2"))
    assert main([str(tmp_path / "r"), "--out", str(tmp_path / "o"), *AXES]) == 0
    out, err = capsys.readouterr()
    assert [ln for ln in out.splitlines() if ln.startswith("top panel")] == [
        "top panels: reference cell (steps=10, data_size=1000), the fewest steps and smallest data size of the axes "
        "(the results' and the expected steps/sizes)",
        "top panel small_model (all benchmarks): REFUSED, reference cell (steps=10, data_size=1000) has no result; "
        "--fallback-reference builds it against the next cell with one",
        "top panel big_model (all benchmarks): REFUSED, reference cell (steps=10, data_size=1000) has no result; "
        "--fallback-reference builds it against the next cell with one"]
    assert "no result at steps=10 (expected): that row of the grid is empty" in err
    assert "missing: top panel small_model, cell (steps=10, data_size=2000), all benchmarks: no result for small_model" in err
    lines = (tmp_path / "o" / "grid.csv").read_text().splitlines()
    # only the bottom panel's 20-step row: (.55-.44)/.55 = 20 and (.30-.15)/.30 = 50, per benchmark
    assert lines == ["panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high",
                     "bottom,small_model->big_model,imagenet_a,20,1000,20.0000,,",
                     "bottom,small_model->big_model,imagenet_a,20,2000,50.0000,,",
                     "bottom,small_model->big_model,imagenet_v2,20,1000,20.0000,,",
                     "bottom,small_model->big_model,imagenet_v2,20,2000,50.0000,,"]


def test_cli_expected_axes_with_fallback_and_the_bare_folder(tmp_path, capsys):
    write_study(tmp_path / "r", skip=ROW_10)
    assert main([str(tmp_path / "r"), "--out", str(tmp_path / "f"), *AXES, "--fallback-reference"]) == 0
    out = capsys.readouterr().out
    assert ("top panel small_model (imagenet_a): FALLBACK reference (steps=20, data_size=1000), because "
            "(steps=10, data_size=1000) has no result") in out
    lines = (tmp_path / "f" / "grid.csv").read_text().splitlines()
    assert lines[0].endswith(",ref_steps,ref_data_size")
    assert "top,small_model,imagenet_a,20,2000,45.4545,,,20,1000" in lines  # (.55-.30)/.55
    assert "top,big_model,imagenet_a,20,2000,65.9091,,,20,1000" in lines    # (.44-.15)/.44
    # without the axes the folder cannot know step 10: (20, 1000) is the reference, not a fallback
    assert main([str(tmp_path / "r"), "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "top panel small_model (imagenet_a): reference (steps=20, data_size=1000)" in out
    assert "FALLBACK" not in out and "REFUSED" not in out
    bare = (tmp_path / "b" / "grid.csv").read_text().splitlines()
    assert bare[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high"
    assert "top,small_model,imagenet_a,20,2000,45.4545,," in bare
    with pytest.raises(SystemExit):
        main([str(tmp_path / "r"), "--steps", "0"])
    assert "'0' is not a positive integer" in capsys.readouterr().err


def test_rebuild_report_with_expected_axes_draws_the_empty_row(tmp_path):
    write_study(tmp_path / "r", skip=ROW_10)
    out = rebuild_report(tmp_path / "r", tmp_path / "g", expected_steps=[10, 20], expected_sizes=[1000, 2000],
                         log_messages=False)
    [ax] = [a for a in out.figures["top_big_model"].axes if a.get_title() == "ImageNet-A"]
    assert [t.get_text() for t in ax.texts] == ["reference cell\n10 steps,\n1K images\nmissing"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["10", "20"]
    assert "| **10** |  |  |" in out.tables["errors_big_model"].splitlines()  # the row is there, empty
    assert (tmp_path / "g" / "lines_big_model.svg").exists()


def test_grid_report_callback_passes_the_axes_and_prints_the_references(tmp_path, caplog):
    import logging
    from types import SimpleNamespace

    from callbacks.grid_report import GridReport

    write_study(tmp_path / "r", skip=ROW_10)
    trainer = SimpleNamespace(is_global_zero=True, logger=None, global_step=0)
    callback = GridReport(str(tmp_path / "r"), str(tmp_path / "g"), steps=[10, 20], data_sizes=[1000, 2000])
    with caplog.at_level(logging.INFO):
        report = callback.rebuild(trainer)
    assert report.grid.reference_cell == (10, 1000) and len(report.grid.refused) == 2
    assert "grid: top panel big_model (imagenet_a): REFUSED, reference cell (steps=10, data_size=1000) has no result; " \
           "--fallback-reference builds it against the next cell with one" in caplog.messages
    fallback = GridReport(str(tmp_path / "r"), str(tmp_path / "g"), fallback_reference=True,
                          steps=[10, 20], data_sizes=[1000, 2000]).rebuild(trainer)
    assert fallback.grid.fallbacks() == {(m, "imagenet_a", None): (20, 1000) for m in ("small_model", "big_model")}
    assert GridReport(str(tmp_path / "r"), str(tmp_path / "g")).rebuild(trainer).grid.reference_cell == (20, 1000)
