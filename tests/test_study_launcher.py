"""The study launcher: definition, per-cell overrides, states, resume, SLURM script, CLI.

No training here: a cell's work is a fake that writes what the real stages write (a
checkpoint with ``study_cell``, a result file named by the cell), so these tests are fast.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from study.cell_run import collect_seeds, run_cell, stage_args
from study.cli import main
from study.definition import Cell, StudyConfigError, StudyDefinition
from study.layout import CellPaths
from study.overrides import merge, nested, stage_overrides
from study.results import read_results, result_path, write_result
from study.runner import attempt, cell_statuses, plan, run_study
from study.slurm import array_spec, slurm_jobs, write_slurm_scripts
from study.state import DONE, FAILED, PENDING, RUNNING, cell_status, mark_running

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = str(REPO / "configs/miniature/pretrain.yaml")
FINETUNE = str(REPO / "configs/miniature/finetune.yaml")


def study_dict(tmp_path: Path, **extra) -> dict:
    base = dict(name="tiny", models=["small_net", "big_net"], data_sizes=[100, 400], steps=[10, 40], seeds=[0],
                upstream_config=PRETRAIN, downstream_config=FINETUNE, runs_dir=str(tmp_path / "runs"))
    base.update(extra)
    return base


def write_study(tmp_path: Path, **extra) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study_dict(tmp_path, **extra)))
    return path


# ----------------------------------------------------------------------------- definition


def test_miniature_study_has_the_papers_grid_shape():
    study = StudyDefinition.from_yaml(REPO / "configs/miniature/study.yaml")
    cells = study.cells()
    assert len(cells) == 18 and len({c.name for c in cells}) == 18
    assert cells[0].name == "resnetv2_tiny_bit-size=1000-steps=50-seed=0"
    assert cells[-1].name == "resnetv2_tinyx3_bit-size=10000-steps=500-seed=0"
    assert study.results_dir == Path("runs/miniature/results")


def test_paper_study_names_the_bit_configs():
    study = StudyDefinition.from_yaml(REPO / "configs/bit/study.yaml")
    assert study.data_sizes == [1_000_000, 5_000_000, 13_000_000]
    assert study.steps == [112_000, 457_000, 1_120_000]
    assert len(study.cells()) == 18 and study.slurm["gpus_per_node"] == 8


@pytest.mark.parametrize("change, expected", [
    ({"seed": 0}, "unknown key(s) seed; known keys:"),
    ({"data_sizes": [100, "1M"]}, "data_sizes must hold positive integers"),
    ({"steps": [10, 10]}, "steps lists a value twice"),
    ({"models": []}, "models must be a non-empty list"),
    ({"upstream_config": "configs/nope.yaml"}, "upstream_config 'configs/nope.yaml' is not a file"),
    ({"resolutions": {"big": {"downstream": {"data.init_args.crop": 3}}}}, "resolution 'big' must be a positive integer"),
    ({"resolutions": {32: {"sideways": {"a": 1}}}}, "resolutions.32 must map 'upstream' and/or 'downstream'"),
    ({"slurm": {"array": "0-3"}}, "slurm.array is not an sbatch option this writer accepts"),
    ({"workers": 0}, "workers must be a positive integer"),
    ({"fallback_reference": "yes"}, "fallback_reference must be true or false, got 'yes'"),
    ({"name": "my study"}, "name 'my study' must be letters"),
])
def test_bad_study_file_is_one_line_naming_file_and_key(tmp_path, change, expected):
    path = write_study(tmp_path, **change)
    with pytest.raises(StudyConfigError) as info:
        StudyDefinition.from_yaml(path)
    message = str(info.value)
    assert message.startswith(f"study config {path}: ") and expected in message and "\n" not in message


def test_resolution_axis_doubles_cells_and_names_them():
    study = StudyDefinition.from_dict(study_dict(Path("/x"), resolutions={
        40: {"downstream": {"data.init_args.crop": 40}}, 32: {"downstream": {"data.init_args.crop": 32}}}))
    cells = study.cells()
    assert len(cells) == 2 * 2 * 2 * 2
    assert cells[0] == Cell("small_net", 100, 10, 0, 32)
    assert cells[0].name == "small_net-size=100-steps=10-seed=0-res=32"
    assert cells[0].axes() == {"model": "small_net", "data_size": 100, "steps": 10, "seed": 0, "resolution": 32}
    assert study.cell("big_net-size=400-steps=40-seed=0-res=40") == Cell("big_net", 400, 40, 0, 40)
    with pytest.raises(StudyConfigError, match="no cell named 'nope'"):
        study.cell("nope")


# ----------------------------------------------------------------------------- overrides


def test_nested_and_merge():
    assert nested({"data.init_args.crop": 3, "data.init_args.resize": 4, "seed_everything": 1}) == {
        "data": {"init_args": {"crop": 3, "resize": 4}}, "seed_everything": 1}
    assert merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2], "d": 3}}) == {"a": {"b": 1, "c": [2], "d": 3}}


def test_upstream_overrides_set_the_cell_and_its_checkpoint_dir(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, seeds=[3]))
    cell = Cell("big_net", 400, 40, 3)
    o = stage_overrides(study, cell, "upstream")
    runs = tmp_path / "runs"
    assert o["seed_everything"] == 3
    assert o["model"] == {"init_args": {"backbone": "big_net"}}
    assert o["data"] == {"init_args": {"subset_size": 400}}
    assert o["trainer"]["max_steps"] == 40
    assert o["trainer"]["logger"]["init_args"] == {"save_dir": str(runs / "tb"), "name": f"pretrain/{cell.name}"}
    ckpt = o["trainer"]["callbacks"][0]  # the stage config's own callbacks follow (throughput monitor)
    assert ckpt["class_path"] == "lightning.pytorch.callbacks.ModelCheckpoint"
    assert ckpt["init_args"] == {"save_last": True, "save_top_k": 0, "every_n_train_steps": 10,
                                 "dirpath": str(runs / "cells" / cell.name / "checkpoints/upstream")}


def test_downstream_overrides_point_callbacks_at_the_study(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, benchmarks=["imagenet_a"], resolutions={
        40: {"downstream": {"data.init_args.crop": 40, "data.init_args.resize": 45}, "upstream": {"data.init_args.resolution": 40}}}))
    cell = Cell("small_net", 100, 10, 0, 40)
    o = stage_overrides(study, cell, "downstream")
    runs = tmp_path / "runs"
    assert o["model"] == {"init_args": {"upstream_checkpoint": str(runs / "cells" / cell.name / "checkpoints/upstream/last.ckpt")}}
    assert o["data"] == {"init_args": {"benchmarks": ["imagenet_a"], "crop": 40, "resize": 45}}
    ood, grid = o["trainer"]["callbacks"][:2]
    assert ood["init_args"] == {"results_dir": str(runs / "results")}
    # the study's axes (a row no result has stays on the grid) and its reference rule
    assert grid["init_args"] == {"results_dir": str(runs / "results"), "out_dir": str(runs / "grid"), "model_order": ["small_net", "big_net"],
                                 "steps": [10, 40], "data_sizes": [100, 400], "fallback_reference": False}
    assert "max_steps" not in o["trainer"]  # the HyperRule decides downstream
    assert stage_overrides(study, cell, "upstream")["data"]["init_args"] == {"subset_size": 100, "resolution": 40}


def test_the_studys_fallback_reference_reaches_the_grid_report(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, fallback_reference=True, data_sizes=[400, 100]))
    callbacks = stage_overrides(study, Cell("big_net", 400, 40, 0), "downstream")["trainer"]["callbacks"]
    [grid] = [c for c in callbacks if c["class_path"] == "callbacks.grid_report.GridReport"]
    assert grid["init_args"]["fallback_reference"] is True
    assert grid["init_args"]["data_sizes"] == [400, 100] and grid["init_args"]["steps"] == [10, 40]
    assert StudyDefinition.from_dict(study_dict(tmp_path)).fallback_reference is False


def test_stage_that_cannot_serve_a_study_is_refused(tmp_path):
    no_ckpt = tmp_path / "pre.yaml"
    no_ckpt.write_text(yaml.safe_dump({"trainer": {"callbacks": []}}))
    study = StudyDefinition.from_dict(study_dict(tmp_path, upstream_config=str(no_ckpt), downstream_config=str(no_ckpt)))
    with pytest.raises(StudyConfigError, match=r"pre\.yaml: the upstream stage needs a .*ModelCheckpoint with save_last: true"):
        stage_overrides(study, study.cells()[0], "upstream")
    with pytest.raises(StudyConfigError, match="the downstream stage needs the callbacks.ood_evaluation.OODEvaluation"):
        stage_overrides(study, study.cells()[0], "downstream")


# ----------------------------------------------------------------------------- one cell, fake stages


class FakeStages:
    """Stands in for `cli_main`: merges the stacked configs as LightningCLI does and writes what
    the real stages write (upstream: last.ckpt with ``study_cell``; downstream: the result file
    at ``results_dir/<study_cell run_name>.json``, spreading ``study_cell`` into the record as
    the OOD callback does) plus ``config.yaml`` in a versioned log dir."""

    def __init__(self, fail_downstream: bool = False):
        self.calls: list[list[str]] = []
        self.fail_downstream = fail_downstream

    def __call__(self, args: list[str]):
        self.calls.append(list(args))
        config: dict = {}
        for i, a in enumerate(args):
            if a == "--config":
                config = merge(config, yaml.safe_load(Path(args[i + 1]).read_text()) or {})
        trainer = config["trainer"]
        log_dir = Path(trainer["logger"]["init_args"]["save_dir"]) / trainer["logger"]["init_args"]["name"] / "version_0"
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "config.yaml").write_text(yaml.safe_dump(config))
        callbacks = {c["class_path"].rsplit(".", 1)[-1]: c["init_args"] for c in trainer["callbacks"]}
        if "upstream_checkpoint" not in config["model"]["init_args"]:
            cell = {"model": config["model"]["init_args"]["backbone"], "data_size": config["data"]["init_args"]["subset_size"],
                    "steps": trainer["max_steps"], "seed": config["seed_everything"]}
            ckpt = Path(callbacks["ModelCheckpoint"]["dirpath"]) / "last.ckpt"
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"study_cell": cell, "state_dict": {}}, ckpt)
        else:
            if self.fail_downstream:
                raise RuntimeError("downstream exploded")
            cell = torch.load(config["model"]["init_args"]["upstream_checkpoint"], weights_only=True)["study_cell"]
            record = {**cell, "errors": {"imagenet_a": 0.5}, "timings": {"imagenet_a": {"seconds": 1.0, "images": 4}}}
            write_result(result_path(Path(callbacks["OODEvaluation"]["results_dir"]), record), record)
        return SimpleNamespace(trainer=SimpleNamespace(logger=SimpleNamespace(log_dir=str(log_dir))))


def test_run_cell_writes_the_result_under_the_cells_name_with_the_study_fields(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, resolutions={
        32: {"downstream": {"data.init_args.crop": 32}}, 40: {"downstream": {"data.init_args.crop": 40}}}))
    cell = Cell("small_net", 100, 10, 0, 40)
    stages = FakeStages()
    path = run_cell(study, cell, cli=stages)
    paths = CellPaths(tmp_path / "runs", cell.name)
    assert path == paths.result == tmp_path / "runs/results/small_net-size=100-steps=10-seed=0-res=40.json"
    record = json.loads(path.read_text())
    assert record["resolution"] == 40 and record["run_name"] == cell.name
    assert record["config"]["downstream"]["data"]["init_args"]["crop"] == 40
    assert record["config"]["upstream"]["trainer"]["max_steps"] == 10
    assert record["seeds"]["upstream.seed_everything"] == 0 and record["seeds"]["upstream.data.init_args.subset_seed"] == 0
    assert record["timings"]["imagenet_a"] == {"seconds": 1.0, "images": 4}  # the callback's timings are kept
    assert record["timings"]["upstream"]["reused"] is False and record["timings"]["downstream"]["seconds"] >= 0
    assert record["study"]["cell"] == cell.name and record["study"]["log"] == str(paths.log)
    # the upstream checkpoint now names its cell, so the result could not land under another name
    assert torch.load(paths.upstream_checkpoint, weights_only=True)["study_cell"]["run_name"] == cell.name
    assert [a for a in stages.calls[0] if a.endswith(".yaml")][-1] == str(paths.overrides("upstream"))
    # a second run of the same cell reuses the finished pre-training
    stages2 = FakeStages()
    run_cell(study, cell, cli=stages2)
    assert len(stages2.calls) == 1 and json.loads(path.read_text())["timings"]["upstream"]["reused"] is True


def test_interrupted_pretraining_resumes_from_its_checkpoint(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]
    paths = CellPaths(tmp_path / "runs", cell.name)
    paths.upstream_checkpoint.parent.mkdir(parents=True)
    torch.save({"study_cell": {}}, paths.upstream_checkpoint)  # left by a killed run, no upstream_done
    stages = FakeStages()
    run_cell(study, cell, cli=stages)
    assert stages.calls[0][-2:] == ["--ckpt_path", str(paths.upstream_checkpoint)]
    assert stages.calls[1][-2:] == ["--ckpt_path", "last"]  # fine-tuning continues its own last.ckpt, if any


def test_stage_args_stack_extra_configs_before_the_cells_file(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, downstream_extra_configs=["extra.yaml"]))
    cell = study.cells()[0]
    assert stage_args(study, cell, "downstream") == [
        "fit", "--config", FINETUNE, "--config", "extra.yaml",
        "--config", str(tmp_path / "runs/cells" / cell.name / "downstream.yaml")]


def test_collect_seeds():
    assert collect_seeds({"up": {"seed_everything": 1, "data": {"init_args": {"subset_seed": 2, "x": 3}}},
                          "cbs": [{"mixup_seed": None}]}) == {
        "up.seed_everything": 1, "up.data.init_args.subset_seed": 2, "cbs[0].mixup_seed": None}


# ----------------------------------------------------------------------------- states, resume, retry


def fake_execute(fail: set[str] = frozenset(), ran: list | None = None):
    def execute(study, cell):
        if ran is not None:
            ran.append(cell.name)
        print(f"training {cell.name}")
        if cell.name in fail:
            raise RuntimeError(f"loss is nan at step 7 of {cell.name}")
        record = {**cell.axes(), "errors": {"imagenet_a": 0.5}}
        write_result(CellPaths(Path(study.runs_dir), cell.name).result, record)
    return execute


def test_resume_skips_done_cells_and_failed_ones_until_asked(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    names = [c.name for c in study.cells()]
    bad = names[2]
    ran: list[str] = []
    lines: list[str] = []
    failures = run_study(study, execute=fake_execute({bad}, ran), echo=lines.append)
    assert ran == names  # one after another, in the study's order
    log = CellPaths(tmp_path / "runs", bad).log
    assert failures == [f"{bad}: RuntimeError: loss is nan at step 7 of {bad}; log: {log}"]
    assert "Traceback" in log.read_text() and f"training {bad}" in log.read_text()
    states = {c.name: s.state for c, s in cell_statuses(study)}
    assert states == {n: (FAILED if n == bad else DONE) for n in names}

    ran.clear()
    lines.clear()
    assert run_study(study, execute=fake_execute(set(), ran), echo=lines.append) == []
    assert ran == []  # nothing re-run: done cells skipped, the failed one only on request
    assert any(l.startswith(f"{bad}: failed (RuntimeError") and "--retry-failed" in l for l in lines)
    assert f"study tiny: 8 cells, 7 done, 0 to run with 1 worker(s)" in lines

    assert run_study(study, retry_failed=True, execute=fake_execute(set(), ran), echo=lines.append) == []
    assert ran == [bad]
    assert all(s.state == DONE for _, s in cell_statuses(study))
    assert log.read_text().count("===== ") == 2  # both attempts kept in the log


def test_state_rules(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]
    paths = CellPaths(tmp_path / "runs", cell.name)
    assert cell_status(paths).state == PENDING
    mark_running(paths)
    assert cell_status(paths).state == RUNNING  # this very process: alive
    marker = json.loads(paths.state.read_text())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout
    paths.state.write_text(json.dumps({**marker, "pid": int(dead)}))
    status = cell_status(paths)
    assert status.state == FAILED and status.detail.startswith(f"interrupted: {socket.gethostname()} pid {int(dead)} is gone")
    paths.state.write_text(json.dumps({**marker, "host": "node-17", "slurm_job": "991_3"}))
    status = cell_status(paths)
    assert status.state == RUNNING and "node-17" in status.detail and "SLURM job 991_3" in status.detail
    assert plan(study)[1] == [f"{cell.name}: running ({status.detail}); left alone"]
    # a half-written result file does not make the cell done
    paths.result.parent.mkdir(parents=True)
    paths.result.write_text('{"model": "small_net", "data_si')
    status = cell_status(paths)
    assert status.state == FAILED and f"result file {paths.result} is invalid" in status.detail


def test_interrupt_marks_failed_and_propagates(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]

    def interrupted(study, cell):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attempt(study, cell, interrupted)
    status = cell_status(CellPaths(tmp_path / "runs", cell.name))
    assert status.state == FAILED and "interrupted (KeyboardInterrupt)" in status.detail


# ----------------------------------------------------------------------------- SLURM


def test_array_spec():
    assert array_spec(18) == "0-17"
    assert array_spec(5, 2) == "0-4%2"
    with pytest.raises(ValueError):
        array_spec(0)


def test_slurm_script_has_one_task_per_pending_cell_and_runs_the_right_one(tmp_path):
    config = write_study(tmp_path, slurm={"partition": "gpu", "gpus_per_node": 8, "ntasks_per_node": 8,
                                          "time": "2-00:00:00", "max_parallel": 3, "setup": ["module load cuda"]})
    study = StudyDefinition.from_yaml(config)
    cells = study.cells()
    for done in cells[:3]:  # three cells finished earlier
        write_result(CellPaths(tmp_path / "runs", done.name).result, {**done.axes(), "errors": {"imagenet_a": 0.4}})
    to_run = plan(study)[0]
    assert to_run == cells[3:]
    [(script, n)] = write_slurm_scripts(study, to_run, config_path=config, repo_root=tmp_path, python="/venv/bin/python")
    assert script == tmp_path / "runs/slurm/tiny.sbatch" and n == 5 and script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert "#SBATCH --array=0-4%3\n" in text  # 8 cells - 3 done = 5 tasks, at most 3 at once
    for directive in ("--job-name=tiny", "--partition=gpu", "--gpus-per-node=8", "--ntasks-per-node=8",
                      "--time=2-00:00:00", f"--output={tmp_path}/runs/logs/slurm-%A_%a.out"):
        assert f"#SBATCH {directive}\n" in text
    assert f"srun /venv/bin/python -m study cell {config} \"$CELL\"\n" in text
    assert "module load cuda\n" in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # run task 1 with a stand-in srun that prints what it was asked to run
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\necho "$@"\n')
    (bin_dir / "srun").chmod(0o755)
    (bin_dir / "module").write_text("#!/bin/sh\n")
    (bin_dir / "module").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "1"}
    out = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == f"/venv/bin/python -m study cell {config} {cells[4].name}"


def test_models_with_other_resources_get_their_own_array_job(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, slurm={"nodes": 1, "time": "1:00:00", "per_model": {"big_net": {"nodes": 4}}}))
    jobs = slurm_jobs(study, study.cells())
    assert [(stem, options, len(cells)) for stem, options, cells in jobs] == [
        ("tiny-small_net", {"nodes": 1, "time": "1:00:00"}, 4), ("tiny-big_net", {"nodes": 4, "time": "1:00:00"}, 4)]
    assert {c.model for c in jobs[1][2]} == {"big_net"}
    paths = write_slurm_scripts(study, study.cells(), config_path=tmp_path / "s.yaml", repo_root=tmp_path)
    assert "#SBATCH --nodes=4\n" in paths[1][0].read_text() and "#SBATCH --array=0-3\n" in paths[1][0].read_text()


def test_model_overrides_and_per_model_stage_configs(tmp_path):
    study = StudyDefinition.from_dict(study_dict(
        tmp_path, upstream_config={"small_net": PRETRAIN, "big_net": FINETUNE},
        model_overrides={"big_net": {"downstream": {"trainer.num_nodes": 4, "data.init_args.batch_size": 16}}}))
    small, big = Cell("small_net", 100, 10, 0), Cell("big_net", 100, 10, 0)
    assert stage_args(study, big, "upstream")[2] == FINETUNE and stage_args(study, small, "upstream")[2] == PRETRAIN
    o = stage_overrides(study, big, "downstream")
    assert o["trainer"]["num_nodes"] == 4 and o["data"]["init_args"]["batch_size"] == 16
    assert "num_nodes" not in stage_overrides(study, small, "downstream")["trainer"]
    with pytest.raises(StudyConfigError, match="upstream_config must name every model exactly"):
        StudyDefinition.from_dict(study_dict(tmp_path, upstream_config={"small_net": PRETRAIN}))
    with pytest.raises(StudyConfigError, match="model_overrides must map models of the study"):
        StudyDefinition.from_dict(study_dict(tmp_path, model_overrides={"other": {"upstream": {"a": 1}}}))


def test_slurm_cli_prints_the_sbatch_line_and_nothing_when_all_done(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_study(tmp_path)
    assert main(["slurm", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    script = tmp_path / "runs/slurm/tiny.sbatch"
    assert out == ["8 cell(s) to run, 0 done (skipped)", f"wrote {script}: 8 array task(s), one per cell", f"sbatch {script}"]
    assert "#SBATCH --array=0-7\n" in script.read_text()
    study = StudyDefinition.from_yaml(config)
    for c in study.cells():
        write_result(CellPaths(tmp_path / "runs", c.name).result, {**c.axes(), "errors": {"imagenet_a": 0.4}})
    assert main(["slurm", str(config)]) == 0
    assert capsys.readouterr().out.startswith("nothing to submit: 8 of 8 cells done")


# ----------------------------------------------------------------------------- CLI


def test_cli_list_run_list(tmp_path, capsys, monkeypatch):
    config = write_study(tmp_path)
    study = StudyDefinition.from_yaml(config)
    bad = study.cells()[1].name
    monkeypatch.setattr("study.runner.run_cell", fake_execute({bad}))
    assert main(["list", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["0", "pending", study.cells()[0].name]
    assert out[-1] == "8 cells: 8 pending, 0 running, 0 done, 0 failed"

    assert main(["run", str(config)]) == 1  # one cell failed
    captured = capsys.readouterr()
    log = tmp_path / "runs/logs" / f"{bad}.log"
    assert f"failed: {bad}: RuntimeError: loss is nan at step 7 of {bad}; log: {log}" in captured.err
    assert (tmp_path / "runs/grid/grid.csv").exists()  # the grid as far as it goes

    assert main(["list", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    [failed] = [l for l in out if "failed" in l.split()[:2]]
    assert failed.split()[:3] == ["1", "failed", bad] and f"log: {log}" in failed
    assert out[-1] == "8 cells: 0 pending, 0 running, 7 done, 1 failed"

    monkeypatch.setattr("study.runner.run_cell", fake_execute())
    assert main(["run", str(config), "--retry-failed"]) == 0
    assert main(["cell", str(config), bad]) == 0  # done: nothing to run
    assert capsys.readouterr().out.splitlines()[-1] == f"{bad}: already done, nothing to run"
    records, _ = read_results(tmp_path / "runs/results")
    assert len(records) == 8


def test_cli_bad_study_is_one_error_line(tmp_path, capsys):
    path = write_study(tmp_path, steps=[0])
    assert main(["list", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: study config {path}: steps must hold positive integers")
    with pytest.raises(SystemExit):
        main(["run", str(write_study(tmp_path)), "--workers", "0"])
    assert "'0' is not a positive integer" in capsys.readouterr().err


def test_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "study", "list", str(write_study(tmp_path))],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "8 cells: 8 pending, 0 running, 0 done, 0 failed"


@pytest.mark.slow
def test_worker_processes_report_a_failing_cell_with_its_log(tmp_path):
    """A spawned worker runs the real CLI; a missing beton fails the cell with one clear line."""
    missing = tmp_path / "nowhere/upstream.beton"
    extra = tmp_path / "missing_beton.yaml"
    extra.write_text(yaml.safe_dump({"data": {"init_args": {"beton": str(missing)}}}))
    study = StudyDefinition.from_dict(study_dict(tmp_path, models=["resnetv2_tiny_bit"], data_sizes=[100], steps=[10],
                                                 upstream_extra_configs=[str(extra)], workers=2))
    lines: list[str] = []
    failures = run_study(study, echo=lines.append)
    assert len(failures) == 1
    for cell in study.cells():
        log = CellPaths(tmp_path / "runs", cell.name).log
        [line] = [f for f in failures if f.startswith(cell.name)]
        assert f"SystemExit: error: {missing}" in line and line.endswith(f"log: {log}")
        assert str(missing) in log.read_text()
    assert [s.state for _, s in cell_statuses(study)] == [FAILED]


def test_result_that_does_not_describe_its_cell_is_moved_out_and_fails_the_cell(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]
    paths = CellPaths(tmp_path / "runs", cell.name)

    class WrongSeed(FakeStages):
        def __call__(self, args):
            if any(a.endswith("downstream.yaml") for a in args):
                ckpt = CellPaths(tmp_path / "runs", cell.name).upstream_checkpoint
                saved = torch.load(ckpt, weights_only=True)
                torch.save({**saved, "study_cell": {**saved["study_cell"], "seed": 9}}, ckpt)
            return super().__call__(args)

    error = attempt(study, cell, lambda s, c: run_cell(s, c, cli=WrongSeed()))
    assert error.startswith(f"RuntimeError: {cell.name}: the result file does not describe this cell (seed=9 (cell: 0))")
    assert not paths.result.exists() and (paths.cell_dir / "rejected_result.json").exists()
    assert cell_status(paths).state == FAILED
