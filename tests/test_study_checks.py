"""A study is refused at load when its benchmark list and its stacked option files disagree.

The downstream datamodule builds its OOD suite from ``data.init_args.benchmarks`` and
``data.init_args.benchmark_options`` of the stacked configs only when fine-tuning starts, after
pre-training; the study checks the same two values when it is loaded (and, with every stacked
file required, before `run`/`slurm`/`cell`). No training here: the stages are never called.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from study.cli import main
from study.definition import StudyConfigError, StudyDefinition
from study.overrides import benchmark_problem, stacked_value

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = str(REPO / "configs/miniature/pretrain.yaml")
FINETUNE = str(REPO / "configs/miniature/finetune.yaml")
SIX = ["imagenet_a", "imagenet_c", "imagenet_v2", "objectnet", "imagenet_vid_robust", "ytbb_robust"]


def ood_options(path: Path, names=SIX) -> Path:
    """What study/quickstart.py writes: ``expected_size`` per generated set, keys sorted."""
    from synthetic.miniature_classes import MINIATURE_WNIDS
    from synthetic.ood_sets import expected_sizes

    sizes = expected_sizes(MINIATURE_WNIDS, per_class=20, c_per_class=4, videos_per_class=4)
    options = {"data": {"init_args": {"benchmark_options": {n: {"expected_size": sizes[n]} for n in names}}}}
    path.write_text(yaml.safe_dump(options, sort_keys=True))
    return path


def write_study(tmp_path: Path, **extra) -> Path:
    raw = dict(name="tiny", models=["small_net", "big_net"], data_sizes=[100, 400], steps=[10, 40], seeds=[0],
               upstream_config=PRETRAIN, downstream_config=FINETUNE, runs_dir=str(tmp_path / "runs"))
    raw.update(extra)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(StudyConfigError) as info:
        StudyDefinition.from_yaml(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"study config {path}: ")
    return message


# ----------------------------------------------------------------------------- at load


def test_shorter_benchmark_list_than_the_generated_options_is_refused_at_load(tmp_path):
    # the defect: this study used to load, pre-train every cell, then fail each at fine-tuning
    opts = ood_options(tmp_path / "ood_options.yaml")
    path = write_study(tmp_path, benchmarks=["imagenet_a", "imagenet_c"], downstream_extra_configs=[str(opts)])
    assert refusal(path) == (
        f"study config {path}: {opts} sets benchmark_options for imagenet_v2, imagenet_vid_robust, objectnet, "
        f"ytbb_robust, which the run does not evaluate (it evaluates imagenet_a, imagenet_c, set by the study's "
        f"benchmarks); every cell would fail when fine-tuning starts, after pre-training: add them to the study's "
        f"benchmarks or remove them from {opts}")


def test_agreeing_lists_load_and_options_may_cover_fewer_benchmarks(tmp_path):
    opts = ood_options(tmp_path / "ood_options.yaml")
    path = write_study(tmp_path, benchmarks=SIX, downstream_extra_configs=[str(opts)])
    assert StudyDefinition.from_yaml(path).benchmarks == SIX
    fewer = ood_options(tmp_path / "fewer.yaml", names=["imagenet_c"])
    StudyDefinition.from_yaml(write_study(tmp_path, benchmarks=["imagenet_a", "imagenet_c"],
                                          downstream_extra_configs=[str(fewer)]))


def test_the_miniature_study_with_its_generated_options(tmp_path):
    raw = yaml.safe_load((REPO / "configs/miniature/study.yaml").read_text())
    raw.update(upstream_config=PRETRAIN, downstream_config=FINETUNE, runs_dir=str(tmp_path / "runs"),
               downstream_extra_configs=[str(ood_options(tmp_path / "ood_options.yaml"))])
    assert StudyDefinition.from_dict(raw).benchmarks == SIX
    raw["benchmarks"] = SIX[:5]  # one set dropped from the study, still in the generated file
    with pytest.raises(StudyConfigError, match=r"sets benchmark_options for ytbb_robust, which the run does not evaluate"):
        StudyDefinition.from_dict(raw)


@pytest.mark.parametrize("change, expected", [
    ({"options": ["imagenet_a"]}, "data.init_args.benchmark_options must map benchmark names to option mappings"),
    ({"options": {"imagenet_a": None}}, "data.init_args.benchmark_options must map benchmark names to option mappings"),
    ({"options": {"imagenet_a": {"expected_size": 3}, "imagenet_r": {}}},
     "sets benchmark_options for imagenet_r, which the run does not evaluate (it evaluates imagenet_a, imagenet_c, "
     "imagenet_v2, objectnet, imagenet_vid_robust, ytbb_robust, set by "),
])
def test_malformed_or_unused_options_are_refused_at_load(tmp_path, change, expected):
    opts = tmp_path / "opts.yaml"
    opts.write_text(yaml.safe_dump({"data": {"init_args": {"benchmark_options": change["options"]}}}))
    assert expected in refusal(write_study(tmp_path, downstream_extra_configs=[str(opts)]))


@pytest.mark.parametrize("change, expected", [
    ({"benchmarks": ["imagenet_a", "imagenet-r"]},
     "benchmarks names imagenet-r, which are not registered; registered: imagenet_a, imagenet_c, imagenet_v2, "
     "objectnet, imagenet_vid_robust, ytbb_robust (ood/__init__.py)"),
    ({"stacked": {"benchmarks": ["imagenet_c", "imagenet_z"]}}, "opts.yaml names benchmark(s) imagenet_z, which are not registered"),
    ({"stacked": {"benchmark_options": {"imagenet_a": {"expected_sze": 3}}}},
     "opts.yaml: benchmark_options.imagenet_a is refused by the benchmark ("),
    ({"stacked": {"benchmark_options": {"imagenet_v2": {"variant": "sideways"}}}},
     "opts.yaml: benchmark_options.imagenet_v2 is refused by the benchmark (imagenet_v2: unknown variant 'sideways'"),
])
def test_names_and_options_the_registry_refuses_stop_a_run(tmp_path, change, expected):
    # the registry imports torch: `list` does not consult it, `run`/`slurm`/`cell` do, in a child process
    extra = {}
    if "stacked" in change:
        opts = tmp_path / "opts.yaml"
        opts.write_text(yaml.safe_dump({"data": {"init_args": change.pop("stacked")}}))
        extra["downstream_extra_configs"] = [str(opts)]
    path = write_study(tmp_path, **change, **extra)
    study = StudyDefinition.from_yaml(path)
    with pytest.raises(StudyConfigError) as info:
        study.check_runnable()
    message = str(info.value)
    assert message.startswith(f"study config {path}: ") and "\n" not in message and expected in message


def test_loading_a_study_does_not_import_torch():
    code = ("import sys; from study.definition import StudyDefinition; "
            "StudyDefinition.from_yaml('configs/miniature/study.yaml'); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr


def test_options_in_the_stage_config_itself_are_checked_and_a_later_file_replaces_them(tmp_path):
    stage = yaml.safe_load(Path(FINETUNE).read_text())
    stage["data"]["init_args"]["benchmark_options"] = {n: {"strict": True} for n in SIX}
    finetune = tmp_path / "finetune.yaml"
    finetune.write_text(yaml.safe_dump(stage))
    path = write_study(tmp_path, downstream_config=str(finetune), benchmarks=["objectnet"])
    assert f"{finetune} sets benchmark_options for imagenet_a, imagenet_c, imagenet_v2, imagenet_vid_robust, ytbb_robust" in refusal(path)
    # LightningCLI replaces a dict-typed argument whole: a later file with objectnet's options only wins
    only = ood_options(tmp_path / "only.yaml", names=["objectnet"])
    StudyDefinition.from_yaml(write_study(tmp_path, downstream_config=str(finetune), benchmarks=["objectnet"],
                                          downstream_extra_configs=[str(only)]))


def test_a_models_own_benchmark_list_is_checked_against_the_options(tmp_path):
    opts = ood_options(tmp_path / "ood_options.yaml")
    path = write_study(tmp_path, downstream_extra_configs=[str(opts)],
                       model_overrides={"big_net": {"downstream": {"data.init_args.benchmarks": ["imagenet_a"]}}})
    message = refusal(path)
    assert "which the run does not evaluate (it evaluates imagenet_a, set by the study's model_overrides.big_net.downstream)" in message


def test_stacked_value_and_benchmark_problem_by_hand():
    layers = [("base", {"data": {"init_args": {"benchmarks": ["a", "b"], "benchmark_options": {"a": {}, "b": {}}}}}),
              ("extra", {"data": {"init_args": {"benchmark_options": {"b": {"k": 1}}}}}),
              ("cell", {"data": {"init_args": {"crop": 3}}})]
    assert stacked_value(layers, "benchmark_options") == ({"b": {"k": 1}}, "extra")  # replaced whole, not merged
    assert stacked_value(layers, "benchmarks") == (["a", "b"], "base")
    assert stacked_value(layers, "nothing") == (None, None)
    registry = {"a": object, "b": object}
    built = []
    assert benchmark_problem(layers, registry, build=lambda name, **kw: built.append((name, kw))) is None
    assert built == [("b", {"k": 1})]
    shorter = [*layers, ("study", {"data": {"init_args": {"benchmarks": ["a"]}}})]
    assert benchmark_problem(shorter, registry, build=lambda *a, **k: None).startswith(
        "extra sets benchmark_options for b, which the run does not evaluate (it evaluates a, set by study)")
    none = [("base", {"data": {"init_args": {"benchmark_options": {"a": {}}}}})]
    assert benchmark_problem(none, registry) is None  # no benchmarks: no suite is built, the options are unused
    assert benchmark_problem(none, registry, require_benchmarks=True).startswith(
        "the downstream stage evaluates no benchmark (no stacked config sets data.init_args.benchmarks)")


# ----------------------------------------------------------------------------- files that do not exist yet


def test_missing_extra_config_lists_but_does_not_run(tmp_path, capsys, monkeypatch):
    ran = []
    for stage in ("run_upstream", "run_downstream"):
        monkeypatch.setattr(f"study.runner.{stage}", lambda study, unit: ran.append(unit.name))
    missing = tmp_path / "data/ood_options.yaml"  # the quickstart writes it before running
    path = write_study(tmp_path, benchmarks=["imagenet_a"], downstream_extra_configs=[str(missing)])
    assert StudyDefinition.from_yaml(path).downstream_extra_configs == [str(missing)]
    assert main(["list", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "8 cells: 8 pending, 0 running, 0 preempted, 0 done, 0 failed"
    for command in ("run", "slurm"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert err == (f"error: study config {path}: downstream_extra_configs {missing} does not exist; create it before "
                       f"running (the generated ood_options.yaml is written by `make quickstart`'s data step) or remove "
                       f"it from downstream_extra_configs\n")
    assert main(["cell", str(path), "small_net-size=100-steps=10-seed=0"]) == 2
    assert ran == [] and not (tmp_path / "runs/slurm").exists()
    # once generated, the file is checked like any other: six options, one benchmark
    missing.parent.mkdir()
    ood_options(missing)
    with pytest.raises(StudyConfigError, match="sets benchmark_options for imagenet_c, imagenet_v2"):
        StudyDefinition.from_yaml(path)


def test_run_refuses_a_study_that_evaluates_nothing_or_writes_no_result(tmp_path, capsys, monkeypatch):
    ran = []
    for stage in ("run_upstream", "run_downstream"):
        monkeypatch.setattr(f"study.runner.{stage}", lambda study, unit: ran.append(unit.name))
    empty = tmp_path / "empty.yaml"
    empty.write_text(yaml.safe_dump({"data": {"init_args": {"benchmarks": []}}}))
    path = write_study(tmp_path, downstream_extra_configs=[str(empty)])
    StudyDefinition.from_yaml(path)  # loads (list, report work) ...
    assert main(["run", str(path)]) == 2  # ... but nothing runs
    assert f"the downstream stage evaluates no benchmark ({empty} sets data.init_args.benchmarks to [])" in capsys.readouterr().err
    no_results = tmp_path / "no_ood.yaml"
    stage = yaml.safe_load(Path(FINETUNE).read_text())
    stage["trainer"]["callbacks"] = [c for c in stage["trainer"]["callbacks"] if "OODEvaluation" not in c["class_path"]]
    no_results.write_text(yaml.safe_dump(stage))
    assert main(["run", str(write_study(tmp_path, downstream_config=str(no_results)))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the downstream stage needs the callbacks.ood_evaluation.OODEvaluation callback" in err
    assert ran == []


# ----------------------------------------------------------------------------- the command line


def test_cli_refuses_disagreeing_options_with_one_line(tmp_path, capsys):
    opts = ood_options(tmp_path / "ood_options.yaml")
    path = write_study(tmp_path, benchmarks=["imagenet_a"], downstream_extra_configs=[str(opts)])
    for command in ("list", "run", "report"):
        assert main([command, str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"error: study config {path}: {opts} sets benchmark_options for imagenet_c")
    assert not (tmp_path / "runs").exists()  # nothing ran, nothing was written
    proc = subprocess.run([sys.executable, "-m", "study", "run", str(path)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "which the run does not evaluate" in proc.stderr and "Traceback" not in proc.stderr


def test_study_report_passes_the_fallback_option(tmp_path, capsys):
    from results.schema import write_result
    from study.layout import CellPaths

    path = write_study(tmp_path, benchmarks=["imagenet_a"])
    study = StudyDefinition.from_yaml(path)
    for cell in study.cells():
        if (cell.model, cell.steps) != ("small_net", 10):  # small_net's fewest-steps row failed
            error = {100: 0.5, 400: 0.4}[cell.data_size] * (0.5 if cell.steps == 40 else 1.0)
            write_result(CellPaths(tmp_path / "runs", cell.name).result, {**cell.axes(), "errors": {"imagenet_a": error}})
    assert main(["report", str(path)]) == 0
    assert "top panel small_net (imagenet_a): REFUSED" in capsys.readouterr().out
    assert (tmp_path / "runs/grid/grid.csv").read_text().splitlines()[0].endswith(",reduction_pct,ci_low,ci_high")
    assert main(["report", str(path), "--fallback-reference"]) == 0
    assert "top panel small_net (imagenet_a): FALLBACK reference (steps=40, data_size=100)" in capsys.readouterr().out
    lines = (tmp_path / "runs/grid/grid.csv").read_text().splitlines()
    # small_net at 40 steps: .25 (100 images), .20 (400 images); reference .25 -> 100 * .05 / .25 = 20
    assert "top,small_net,imagenet_a,40,400,20.0000,,,40,100" in lines


def test_study_report_passes_the_bootstrap_options(tmp_path, capsys, monkeypatch):
    from results import report

    path = write_study(tmp_path, benchmarks=["imagenet_a"])
    seen = []
    monkeypatch.setattr(report, "main", lambda argv: seen.append(argv) or 0)
    assert main(["report", str(path), "--resamples", "0", "--bootstrap-seed", "7"]) == 0
    assert main(["report", str(path)]) == 0
    assert seen[0][-4:] == ["--resamples", "0", "--bootstrap-seed", "7"]
    assert seen[1][-4:] == ["--resamples", "1000", "--bootstrap-seed", "0"]  # the report's own defaults


def test_study_report_uses_the_studys_axes_and_its_fallback_option(tmp_path, capsys):
    from study.layout import CellPaths
    from results.report import main as report_main
    from results.schema import write_result

    path = write_study(tmp_path, benchmarks=["imagenet_a"])
    study = StudyDefinition.from_yaml(path)
    for cell in study.cells():
        if cell.steps != 10:  # every model's fewest-steps row failed: no result has steps=10
            error = {100: 0.5, 400: 0.4}[cell.data_size] * (0.5 if cell.model == "big_net" else 1.0)
            write_result(CellPaths(tmp_path / "runs", cell.name).result, {**cell.axes(), "errors": {"imagenet_a": error}})
    assert main(["report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "top panels: reference cell (steps=10, data_size=100), the fewest steps and smallest data size of the axes" in out
    assert "top panel small_net (imagenet_a): REFUSED, reference cell (steps=10, data_size=100) has no result" in out
    assert "top panel big_net (imagenet_a): REFUSED" in out
    assert not [ln for ln in (tmp_path / "runs/grid/grid.csv").read_text().splitlines() if ln.startswith("top,")]
    # the bare results folder cannot know step 10: its report takes (40, 100) as the reference
    assert report_main([str(tmp_path / "runs/results"), "--out", str(tmp_path / "bare")]) == 0
    assert "top panel small_net (imagenet_a): reference (steps=40, data_size=100)" in capsys.readouterr().out
    # `fallback_reference: true` in the study file: the report falls back without the flag, and says so
    path.write_text(path.read_text() + "fallback_reference: true\n")
    assert main(["report", str(path)]) == 0
    assert ("top panel big_net (imagenet_a): FALLBACK reference (steps=40, data_size=100), because "
            "(steps=10, data_size=100) has no result") in capsys.readouterr().out
    lines = (tmp_path / "runs/grid/grid.csv").read_text().splitlines()
    # small_net at 40 steps: .5 (100 images), .4 (400 images); reference .5 -> 100 * .1 / .5 = 20
    assert "top,small_net,imagenet_a,40,400,20.0000,,,40,100" in lines
