"""The study launcher: definition, shared upstream runs, overrides, claims, states, resume,
SLURM scripts, CLI.

No training here: a stage is a fake that writes what the real stages write (an upstream
checkpoint of the budgeted step; a result file where the override file says, with the cell's
axes), so these tests are fast. Real stages: tests/test_study_real_cell.py.
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

from results.outcomes import sidecar_path
from study import claims
from study.cell_run import UpstreamNotReady, collect_seeds, ready_upstream, run_downstream, run_upstream
from study.cli import main
from study.definition import Cell, StudyConfigError, StudyDefinition, UpstreamRun
from study.layout import CellPaths, UpstreamPaths
from study.overrides import downstream_overrides, merge, nested, stage_overrides, upstream_overrides
from results.schema import read_results, write_result
from study.runner import Unit, attempt, cell_statuses, plan, run_study, upstream_statuses, work
from study.slurm import array_spec, slurm_jobs, write_slurm_scripts
from study.state import DONE, FAILED, PENDING, PREEMPTED, RUNNING, cell_status, mark_running, upstream_status

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


# ----------------------------------------------------------------------------- shared upstream runs, overrides


RES_DOWN = {32: {"downstream": {"data.init_args.crop": 32}}, 40: {"downstream": {"data.init_args.crop": 40}}}


def test_cells_share_an_upstream_run_exactly_when_their_upstream_settings_are_equal(tmp_path):
    down_only = StudyDefinition.from_dict(study_dict(tmp_path, resolutions=RES_DOWN))
    assert len(down_only.cells()) == 16 and len(down_only.upstream_runs()) == 8  # both resolutions share
    a, b = Cell("small_net", 100, 10, 0, 32), Cell("small_net", 100, 10, 0, 40)
    assert down_only.upstream_of(a) == down_only.upstream_of(b) == UpstreamRun("small_net", 100, 10, 0)
    both = StudyDefinition.from_dict(study_dict(tmp_path, resolutions={
        32: {"upstream": {"data.init_args.resolution": 32}}, 40: {"upstream": {"data.init_args.resolution": 40}}}))
    assert len(both.upstream_runs()) == 16 and both.upstream_of(a).name == "small_net-size=100-steps=10-seed=0-res=32"
    assert StudyDefinition.from_dict(study_dict(tmp_path, seeds=[0, 1])).upstream_runs()[1].seed == 1


def test_upstream_overrides_set_the_run_and_its_checkpoint_dir(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, seeds=[3]))
    run = UpstreamRun("big_net", 400, 40, 3)
    o = upstream_overrides(study, run)
    runs = tmp_path / "runs"
    assert o["seed_everything"] == 3
    assert o["model"] == {"init_args": {"backbone": "big_net"}}
    assert o["data"] == {"init_args": {"subset_size": 400}}
    assert o["trainer"]["max_steps"] == 40
    assert o["trainer"]["logger"]["init_args"] == {"save_dir": str(runs / "tb"), "name": f"pretrain/{run.name}"}
    [ckpt] = [c for c in o["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
    assert ckpt["init_args"] == {"save_last": True, "save_top_k": 0, "every_n_train_steps": 10,
                                 "dirpath": str(runs / "upstream" / run.name / "checkpoints")}
    assert stage_overrides(study, Cell("big_net", 400, 40, 3), "upstream") == o


def test_downstream_overrides_tell_the_run_what_it_is_and_where_its_result_goes(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, benchmarks=["imagenet_a"], resolutions={
        40: {"downstream": {"data.init_args.crop": 40, "data.init_args.resize": 45}, "upstream": {"data.init_args.resolution": 40}}}))
    cell = Cell("small_net", 100, 10, 0, 40)
    o = downstream_overrides(study, cell)
    runs = tmp_path / "runs"
    upstream = runs / "upstream" / study.upstream_of(cell).name / "checkpoints/last.ckpt"
    assert o["model"] == {"init_args": {"upstream_checkpoint": str(upstream)}}
    assert o["data"] == {"init_args": {"benchmarks": ["imagenet_a"], "crop": 40, "resize": 45}}
    callbacks = {c["class_path"].rsplit(".", 1)[-1]: c["init_args"] for c in o["trainer"]["callbacks"]}
    assert callbacks["OODEvaluation"] == {"result_file": str(runs / "results" / f"{cell.name}.json"),
                                          "record": {**cell.axes(), "run_name": cell.name}}
    # the study's axes (a row no result has stays on the grid) and its reference rule
    assert callbacks["GridReport"] == {"results_dir": str(runs / "results"), "out_dir": str(runs / "grid"),
                                       "model_order": ["small_net", "big_net"], "steps": [10, 40], "data_sizes": [100, 400],
                                       "fallback_reference": False}
    assert callbacks["ModelCheckpoint"]["dirpath"] == str(runs / "cells" / cell.name / "checkpoints/downstream")
    assert "max_steps" not in o["trainer"]  # the HyperRule decides downstream
    assert upstream_overrides(study, study.upstream_of(cell))["data"]["init_args"] == {"subset_size": 100, "resolution": 40}


def test_the_studys_fallback_reference_reaches_the_grid_report(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, fallback_reference=True, data_sizes=[400, 100]))
    callbacks = downstream_overrides(study, Cell("big_net", 400, 40, 0))["trainer"]["callbacks"]
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


def test_model_overrides_and_per_model_stage_configs(tmp_path):
    study = StudyDefinition.from_dict(study_dict(
        tmp_path, upstream_config={"small_net": PRETRAIN, "big_net": FINETUNE},
        model_overrides={"big_net": {"downstream": {"trainer.num_nodes": 4, "data.init_args.batch_size": 16}}}))
    small, big = Cell("small_net", 100, 10, 0), Cell("big_net", 100, 10, 0)
    assert study.stage_config("upstream", "big_net") == FINETUNE and study.stage_config("upstream", "small_net") == PRETRAIN
    o = downstream_overrides(study, big)
    assert o["trainer"]["num_nodes"] == 4 and o["data"]["init_args"]["batch_size"] == 16
    assert "num_nodes" not in downstream_overrides(study, small)["trainer"]
    with pytest.raises(StudyConfigError, match="upstream_config must name every model exactly"):
        StudyDefinition.from_dict(study_dict(tmp_path, upstream_config={"small_net": PRETRAIN}))
    with pytest.raises(StudyConfigError, match="model_overrides must map models of the study"):
        StudyDefinition.from_dict(study_dict(tmp_path, model_overrides={"other": {"upstream": {"a": 1}}}))


def test_collect_seeds():
    assert collect_seeds({"up": {"seed_everything": 1, "data": {"init_args": {"subset_seed": 2, "x": 3}}},
                          "cbs": [{"mixup_seed": None}]}) == {
        "up.seed_everything": 1, "up.data.init_args.subset_seed": 2, "cbs[0].mixup_seed": None}


# ----------------------------------------------------------------------------- stages, with a fake CLI


class FakeStages:
    """Stands in for `cli_main`: merges the stacked configs as LightningCLI does and writes what
    the real stages write: upstream, ``last.ckpt`` of step ``max_steps`` in the ModelCheckpoint's
    folder; downstream, the result at OODEvaluation's ``result_file`` with its ``record``; plus
    ``config.yaml`` in the log dir. ``stop_upstream_at`` makes the upstream stage stop like a
    signal does (a checkpoint of that step, SystemExit 143)."""

    def __init__(self, fail_downstream: bool = False, stop_upstream_at: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_downstream, self.stop_upstream_at = fail_downstream, stop_upstream_at

    def __call__(self, args: list[str]):
        self.calls.append(list(args))
        config: dict = {}
        for i, a in enumerate(args):
            if a == "--config":
                config = merge(config, yaml.safe_load(Path(args[i + 1]).read_text()) or {})
        trainer = config["trainer"]
        log_dir = Path(trainer["logger"]["init_args"]["save_dir"]) / trainer["logger"]["init_args"]["name"] / "run-fake"
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "config.yaml").write_text(yaml.safe_dump(config))
        callbacks = {c["class_path"].rsplit(".", 1)[-1]: c.get("init_args", {}) for c in trainer["callbacks"]}
        ckpt = Path(callbacks["ModelCheckpoint"]["dirpath"]) / "last.ckpt"
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        if "upstream_checkpoint" not in config["model"]["init_args"]:
            step = trainer["max_steps"] if self.stop_upstream_at is None else self.stop_upstream_at
            torch.save({"global_step": step, "state_dict": {}}, ckpt)
            if self.stop_upstream_at is not None:
                raise SystemExit(143)
        else:
            if self.fail_downstream:
                raise RuntimeError("downstream exploded")
            ood = callbacks["OODEvaluation"]
            record = {**ood["record"], "errors": {"imagenet_a": 0.5}, "timings": {"imagenet_a": {"seconds": 1.0, "images": 4}}}
            write_result(Path(ood["result_file"]), record)
        return SimpleNamespace(trainer=SimpleNamespace(logger=SimpleNamespace(log_dir=str(log_dir))))


def stages_execute(stages: FakeStages):
    return lambda study, target: (run_upstream(study, target, cli=stages) if isinstance(target, UpstreamRun)
                                  else run_downstream(study, target, cli=stages))


def test_two_resolutions_pretrain_once_and_each_cell_gets_its_result(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, models=["small_net"], data_sizes=[100], steps=[10], resolutions=RES_DOWN))
    stages, lines = FakeStages(), []
    assert run_study(study, execute=stages_execute(stages), echo=lines.append) == []
    upstream_calls = [c for c in stages.calls if any(a.endswith("upstream.yaml") for a in c)]
    assert len(upstream_calls) == 1 and len(stages.calls) == 3  # one pre-training, two fine-tunings
    assert all(c[-2:] == ["--ckpt_path", "last"] for c in stages.calls)  # a stopped stage continues its own checkpoint
    assert "2 to run from 1 upstream run(s) to pre-train" in lines[0]
    for cell in study.cells():
        record = json.loads(CellPaths(tmp_path / "runs", cell.name).result.read_text())
        assert record["run_name"] == cell.name and record["resolution"] == cell.resolution
        assert record["config"]["downstream"]["data"]["init_args"]["crop"] == cell.resolution
        assert record["config"]["upstream"]["trainer"]["max_steps"] == 10
        assert record["study"]["upstream_run"] == "small_net-size=100-steps=10-seed=0"
        assert record["seeds"]["upstream.seed_everything"] == 0
        assert record["timings"]["imagenet_a"] == {"seconds": 1.0, "images": 4}  # the callback's timings are kept
    assert [s.state for _, s in upstream_statuses(study)] == [DONE]


def test_a_cell_refuses_an_unfinished_or_wrong_step_upstream_run(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]
    with pytest.raises(UpstreamNotReady, match=f"{cell.name}: its upstream run .* has not finished"):
        ready_upstream(study, cell)
    run_upstream(study, study.upstream_of(cell), cli=FakeStages())
    paths = UpstreamPaths(tmp_path / "runs", study.upstream_of(cell).name)
    assert json.loads(paths.done.read_text())["step"] == cell.steps
    torch.save({"global_step": 3}, paths.checkpoint)  # e.g. overwritten by a stale stop checkpoint
    with pytest.raises(UpstreamNotReady, match=r"is of step 3, not its budget 10"):
        ready_upstream(study, cell)
    with pytest.raises(RuntimeError, match=r"last checkpoint .* is of step 4, not 10"):
        run_upstream(study, study.upstream_of(cell), cli=_StepFake(4))


class _StepFake(FakeStages):
    """An upstream stage that ends normally but leaves a checkpoint of another step."""

    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def __call__(self, args):
        out = super().__call__(args)
        config = merge({}, yaml.safe_load(Path([a for a in args if a.endswith("upstream.yaml")][0]).read_text()))
        [ckpt] = [c for c in config["trainer"]["callbacks"] if c["class_path"].endswith("ModelCheckpoint")]
        torch.save({"global_step": self.step}, Path(ckpt["init_args"]["dirpath"]) / "last.ckpt")
        return out


# ----------------------------------------------------------------------------- claims, states, stops


def test_a_claim_is_held_once_and_a_dead_claimants_claim_is_taken_over(tmp_path):
    path = tmp_path / "unit/claim.json"
    first = claims.try_claim(path)
    assert first is not None and claims.try_claim(path) is None  # held by this (live) process
    first.release()
    assert not path.exists()
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": dead, "claimed": "then"}))
    taken = claims.try_claim(path)
    assert taken is not None and json.loads(path.read_text())["pid"] == os.getpid()
    taken.release()
    # another host: stale only once its heartbeat stopped
    path.write_text(json.dumps({"host": "node-17", "pid": 1, "slurm_job": "991_3", "claimed": "then"}))
    assert claims.try_claim(path) is None
    old = path.stat().st_mtime - claims.STALE_AFTER_S - 1
    os.utime(path, (old, old))
    assert claims.try_claim(path) is not None
    assert not list(path.parent.glob(".claim.json.stale-*"))


def test_state_rules(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]
    paths = CellPaths(tmp_path / "runs", cell.name)
    assert cell_status(paths).state == PENDING
    claim = claims.try_claim(paths.claim)
    mark_running(paths)
    assert cell_status(paths).state == RUNNING  # a live claim
    claim.release()
    status = cell_status(paths)  # "running" but nobody holds it: killed, continues next run
    assert status.state == PREEMPTED and status.detail.startswith(f"interrupted: {socket.gethostname()} pid {os.getpid()} is gone")
    paths.claim.write_text(json.dumps({"host": "node-17", "pid": 5, "slurm_job": "991_3", "claimed": "now"}))
    status = cell_status(paths)
    assert status.state == RUNNING and "node-17" in status.detail and "SLURM job 991_3" in status.detail
    assert plan(study)[1] == [f"{cell.name}: running ({status.detail}); left alone"]
    paths.claim.unlink()
    # a half-written result file does not make the cell done
    paths.result.parent.mkdir(parents=True)
    paths.result.write_text('{"model": "small_net", "data_si')
    status = cell_status(paths)
    assert status.state == FAILED and f"result file {paths.result} is invalid" in status.detail


def test_a_stopped_unit_is_preempted_and_continues_on_the_next_plain_run(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, models=["small_net"], data_sizes=[100], steps=[10], resolutions=RES_DOWN))
    run = study.upstream_runs()[0]
    lines: list[str] = []
    stopped = FakeStages(stop_upstream_at=6)
    assert run_study(study, execute=stages_execute(stopped), echo=lines.append) == []
    assert len(stopped.calls) == 1 and lines[-1].endswith("PREEMPTED (continues next run) in 0s")  # no cell started
    status = upstream_status(UpstreamPaths(tmp_path / "runs", run.name))
    assert status.state == PREEMPTED and "continues from its last checkpoint" in status.detail
    resumed = FakeStages()
    assert run_study(study, execute=stages_execute(resumed), echo=lines.append) == []  # no --retry-failed needed
    assert len(resumed.calls) == 3 and resumed.calls[0][-2:] == ["--ckpt_path", "last"]
    assert all(s.state == DONE for _, s in cell_statuses(study))


def test_a_failed_upstream_run_holds_its_cells_until_retried(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, models=["small_net"], data_sizes=[100], steps=[10], resolutions=RES_DOWN))
    run = study.upstream_runs()[0]

    def failing(study, target):
        if isinstance(target, UpstreamRun):
            raise RuntimeError("loss is nan at step 7")
        raise AssertionError("a cell ran without its upstream run")

    failures = run_study(study, execute=failing, echo=lambda line: None)
    log = UpstreamPaths(tmp_path / "runs", run.name).log
    assert failures == [f"upstream {run.name}: RuntimeError: loss is nan at step 7; log: {log}"]
    assert "Traceback" in log.read_text()
    lines: list[str] = []
    assert run_study(study, execute=failing, echo=lines.append) == []  # nothing runs without --retry-failed
    assert sum("waits for upstream" in l and "--retry-failed" in l for l in lines) == 2
    stages = FakeStages()
    assert run_study(study, retry_failed=True, execute=stages_execute(stages), echo=lambda line: None) == []
    assert len(stages.calls) == 3 and log.read_text().count("===== ") == 2  # both attempts kept in the log


def test_interrupt_marks_preempted_and_propagates(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]

    def interrupted(study, cell):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        attempt(study, cell, interrupted)
    status = cell_status(CellPaths(tmp_path / "runs", cell.name))
    assert status.state == PREEMPTED and "interrupted (KeyboardInterrupt)" in status.detail


def test_logging_works_for_every_unit_in_one_process(tmp_path, capfd):
    import logging

    study = StudyDefinition.from_dict(study_dict(tmp_path))
    logger = logging.getLogger("study_test.made_during_a_unit")

    def execute(study, target):
        if not logger.handlers:  # as Lightning makes its handlers on first use: with the unit's log as stderr
            logger.addHandler(logging.StreamHandler())
            logger.setLevel(logging.INFO)
        logger.info(f"training {target.name}")
        write_result(CellPaths(Path(study.runs_dir), target.name).result, {**target.axes(), "errors": {"imagenet_a": 0.5}})

    try:
        for cell in study.cells()[:2]:
            assert attempt(study, Unit("cell", cell, CellPaths(tmp_path / "runs", cell.name)), execute) is None
        logger.info("after the units")
    finally:
        logger.handlers.clear()
    assert "Logging error" not in capfd.readouterr().err
    for cell in study.cells()[:2]:
        assert f"training {cell.name}" in CellPaths(tmp_path / "runs", cell.name).log.read_text()


def _work_in_a_process(raw: dict, ran: str) -> None:
    study = StudyDefinition.from_dict(raw)

    def execute(study, target):
        with open(ran, "a") as f:
            f.write(f"{os.getpid()} {target.name} {'up' if isinstance(target, UpstreamRun) else 'cell'}\n")
        return stages_execute(FakeStages())(study, target)

    work(study, execute=execute, poll_s=0.2)


@pytest.mark.slow
def test_two_runners_on_one_study_run_every_unit_once(tmp_path):
    import multiprocessing as mp

    raw = study_dict(tmp_path, resolutions=RES_DOWN)  # 16 cells from 8 upstream runs
    ran = tmp_path / "ran.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_work_in_a_process, args=(raw, str(ran))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    rows = [line.split() for line in ran.read_text().splitlines()]
    units = [(name, kind) for _, name, kind in rows]
    assert len(units) == len(set(units)) == 8 + 16  # each upstream run and each cell once
    assert len({pid for pid, _, _ in rows}) == 2  # both runners did work
    study = StudyDefinition.from_dict(raw)
    assert all(s.state == DONE for _, s in cell_statuses(study))


# ----------------------------------------------------------------------------- SLURM


def test_array_spec():
    assert array_spec(18) == "0-17"
    assert array_spec(5, 2) == "0-4%2"
    with pytest.raises(ValueError):
        array_spec(0)


def test_slurm_arrays_pretrain_each_upstream_run_once_then_run_the_cells(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = write_study(tmp_path, resolutions=RES_DOWN, slurm={"partition": "gpu", "gpus_per_node": 8, "ntasks_per_node": 8,
                                                                "time": "2-00:00:00", "max_parallel": 3, "setup": ["module load cuda"]})
    study = StudyDefinition.from_yaml(config)
    cells = study.cells()
    first = [c for c in cells if study.upstream_of(c) == study.upstream_runs()[0]]
    assert len(first) == 2
    for done in first:  # both resolutions of the first upstream run finished earlier
        write_result(CellPaths(tmp_path / "runs", done.name).result, {**done.axes(), "errors": {"imagenet_a": 0.4}})
    left = [c for c in cells if c not in first]
    assert main(["slurm", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    up, ft = tmp_path / "runs/slurm/tiny-upstream.sbatch", tmp_path / "runs/slurm/tiny-cells.sbatch"
    assert out == ["7 upstream run(s) to pre-train, 14 cell(s) to run, 2 done (skipped)",
                   f"wrote {up}: 7 array task(s), one per upstream run", f"wrote {ft}: 14 array task(s), one per cell",
                   f"up0=$(sbatch --parsable {up})", f"sbatch --dependency=afterok:$up0 {ft}"]
    for script, n, command in ((up, 7, "upstream"), (ft, 14, "cell")):
        text = script.read_text()
        assert f"#SBATCH --array=0-{n - 1}%3\n" in text and script.stat().st_mode & stat.S_IXUSR
        for directive in ("--partition=gpu", "--gpus-per-node=8", "--ntasks-per-node=8", "--time=2-00:00:00",
                          f"--output={tmp_path}/runs/logs/slurm-%A_%a.out"):
            assert f"#SBATCH {directive}\n" in text
        assert f"srun {sys.executable} -m study {command} {config.resolve()} \"$UNIT\"\n" in text
        assert "module load cuda\n" in text and subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # run task 1 of each with a stand-in srun that prints what it was asked to run
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool, body in (("srun", 'echo "$@"'), ("module", "")):
        (bin_dir / tool).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_ID": "1"}
    out = subprocess.run(["bash", str(up)], env=env, capture_output=True, text=True, check=True).stdout
    upstream_left = [u.target.name for u in plan(study)[0] if u.kind == "upstream"]  # longest first
    assert out.splitlines()[-1] == f"{sys.executable} -m study upstream {config.resolve()} {upstream_left[1]}"
    out = subprocess.run(["bash", str(ft)], env=env, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == f"{sys.executable} -m study cell {config.resolve()} {left[1].name}"
    for c in cells:
        write_result(CellPaths(tmp_path / "runs", c.name).result, {**c.axes(), "errors": {"imagenet_a": 0.4}})
    assert main(["slurm", str(config)]) == 0
    assert capsys.readouterr().out.startswith("nothing to submit: 16 of 16 cells done")


def test_models_with_other_resources_get_their_own_array_jobs(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path, slurm={"nodes": 1, "time": "1:00:00", "per_model": {"big_net": {"nodes": 4}}}))
    jobs = slurm_jobs(study, study.upstream_runs(), "upstream")
    assert [(stem, options, len(units)) for stem, options, units in jobs] == [
        ("tiny-upstream-small_net", {"nodes": 1, "time": "1:00:00"}, 4), ("tiny-upstream-big_net", {"nodes": 4, "time": "1:00:00"}, 4)]
    paths = write_slurm_scripts(study, study.cells(), kind="cells", config_path=tmp_path / "s.yaml", repo_root=tmp_path)
    assert "#SBATCH --nodes=4\n" in paths[1][0].read_text() and "#SBATCH --array=0-3\n" in paths[1][0].read_text()


# ----------------------------------------------------------------------------- CLI


def fake_cells(fail: set[str] = frozenset()):
    """`run_upstream`/`run_downstream` stand-ins: upstream does nothing but finish; a cell writes its result."""
    def upstream(study, run, cli=None):
        paths = UpstreamPaths(Path(study.runs_dir), run.name)
        paths.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"global_step": run.steps}, paths.checkpoint)
        paths.done.write_text(json.dumps({"checkpoint": str(paths.checkpoint), "step": run.steps}))

    def downstream(study, cell, cli=None):
        print(f"training {cell.name}")
        if cell.name in fail:
            raise RuntimeError(f"loss is nan at step 7 of {cell.name}")
        write_result(CellPaths(Path(study.runs_dir), cell.name).result, {**cell.axes(), "errors": {"imagenet_a": 0.5}})
    return upstream, downstream


def test_cli_list_run_list(tmp_path, capsys, monkeypatch):
    config = write_study(tmp_path)
    study = StudyDefinition.from_yaml(config)
    bad = study.cells()[1].name
    upstream, downstream = fake_cells({bad})
    monkeypatch.setattr("study.runner.run_upstream", upstream)
    monkeypatch.setattr("study.runner.run_downstream", downstream)
    assert main(["list", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "upstream runs:" and out[1].split() == ["0", "pending", study.upstream_runs()[0].name]
    assert "8 upstream runs: 8 pending, 0 running, 0 preempted, 0 done, 0 failed" in out
    assert out[-1] == "8 cells: 8 pending, 0 running, 0 preempted, 0 done, 0 failed"

    assert main(["run", str(config)]) == 1  # one cell failed
    captured = capsys.readouterr()
    log = tmp_path / "runs/logs" / f"{bad}.log"
    assert f"failed: {bad}: RuntimeError: loss is nan at step 7 of {bad}; log: {log}" in captured.err
    assert (tmp_path / "runs/grid/grid.csv").exists()  # the grid as far as it goes

    assert main(["list", str(config)]) == 0
    out = capsys.readouterr().out.splitlines()
    [failed] = [l for l in out if "failed" in l.split()[:2]]
    assert failed.split()[:3] == ["1", "failed", bad] and f"log: {log}" in failed
    assert out[-1] == "8 cells: 0 pending, 0 running, 0 preempted, 7 done, 1 failed"

    monkeypatch.setattr("study.runner.run_downstream", fake_cells()[1])
    assert main(["run", str(config), "--retry-failed"]) == 0
    assert main(["cell", str(config), bad]) == 0  # done: nothing to run
    assert capsys.readouterr().out.splitlines()[-1] == f"{bad}: already done, nothing to run"
    records, _ = read_results(tmp_path / "runs/results")
    assert len(records) == 8


def test_cli_cell_refuses_without_its_upstream_run_and_upstream_runs_it(tmp_path, capsys, monkeypatch):
    config = write_study(tmp_path)
    study = StudyDefinition.from_yaml(config)
    cell, run = study.cells()[0], study.upstream_runs()[0]
    monkeypatch.setattr("study.runner.run_upstream", fake_cells()[0])
    assert main(["cell", str(config), cell.name]) == 1
    assert f"{cell.name}: FAILED (UpstreamNotReady: {cell.name}: its upstream run {run.name} has not finished" in capsys.readouterr().err
    assert main(["upstream", str(config), run.name]) == 0
    assert upstream_status(UpstreamPaths(tmp_path / "runs", run.name)).state == DONE
    holder = claims.try_claim(CellPaths(tmp_path / "runs", cell.name).claim)  # someone else runs the cell
    assert main(["cell", str(config), cell.name]) == 3
    assert "another process runs it now" in capsys.readouterr().err
    holder.release()


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
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "8 cells: 8 pending, 0 running, 0 preempted, 0 done, 0 failed"


@pytest.mark.slow
def test_worker_processes_report_a_failing_upstream_run_with_its_log(tmp_path):
    """Spawned workers run the real CLI; a missing beton fails the upstream run with one clear line."""
    missing = tmp_path / "nowhere/upstream.beton"
    extra = tmp_path / "missing_beton.yaml"
    extra.write_text(yaml.safe_dump({"data": {"init_args": {"beton": str(missing)}}}))
    study = StudyDefinition.from_dict(study_dict(tmp_path, models=["resnetv2_tiny_bit"], data_sizes=[100], steps=[10],
                                                 upstream_extra_configs=[str(extra)], workers=2))
    lines: list[str] = []
    failures = run_study(study, echo=lines.append)
    [run] = study.upstream_runs()
    log = UpstreamPaths(tmp_path / "runs", run.name).log
    assert len(failures) == 1 and failures[0].startswith(f"upstream {run.name}: SystemExit: error: {missing}")
    assert failures[0].endswith(f"log: {log}") and str(missing) in log.read_text()
    assert [s.state for _, s in upstream_statuses(study)] == [FAILED]
    assert [s.state for _, s in cell_statuses(study)] == [PENDING]


def test_result_that_does_not_describe_its_cell_is_moved_out_and_fails_the_cell(tmp_path):
    study = StudyDefinition.from_dict(study_dict(tmp_path))
    cell = study.cells()[0]
    paths = CellPaths(tmp_path / "runs", cell.name)
    run_upstream(study, study.upstream_of(cell), cli=FakeStages())

    class WrongSeed(FakeStages):
        def __call__(self, args):
            out = super().__call__(args)
            record = json.loads(paths.result.read_text())
            sidecar_path(paths.result).write_bytes(b"outcomes")  # stands for the evaluation's sidecar
            write_result(paths.result, {**record, "seed": 9})
            return out

    error = attempt(study, cell, lambda s, c: run_downstream(s, c, cli=WrongSeed()))
    assert error.startswith(f"RuntimeError: {cell.name}: the result file does not describe this cell (seed=9 (cell: 0))")
    assert not paths.result.exists() and (paths.cell_dir / "rejected_result.json").exists()
    assert not sidecar_path(paths.result).exists()  # its outcomes went with it
    assert (paths.cell_dir / sidecar_path(paths.result).name).read_bytes() == b"outcomes"
    assert cell_status(paths).state == FAILED


def test_an_upstream_run_on_data_since_regenerated_is_refused_before_its_cells_run(tmp_path, capsys):
    """done.json records the sha256 each beton's manifest stated; a changed manifest (the data
    regenerated or reconverted) keeps the run's cells from starting, in one line that says what to delete."""
    beton = tmp_path / "data" / "upstream.beton"
    beton.parent.mkdir()
    beton.write_bytes(b"\0" * 8)
    beton.with_suffix(".json").write_text(json.dumps({"sha256": "a" * 64}))
    study = StudyDefinition.from_dict(study_dict(
        tmp_path, models=["small_net"], data_sizes=[100], steps=[10],
        model_overrides={"small_net": {"upstream": {"data.init_args.beton": str(beton)}}}))
    [cell] = study.cells()
    run = study.upstream_of(cell)
    run_upstream(study, run, cli=FakeStages())
    paths = UpstreamPaths(tmp_path / "runs", run.name)
    assert json.loads(paths.done.read_text())["data"] == {str(beton): "a" * 64}
    ready_upstream(study, cell)  # same data: fine
    assert plan(study)[0][0].target == cell

    beton.with_suffix(".json").write_text(json.dumps({"sha256": "b" * 64}))
    with pytest.raises(UpstreamNotReady, match=rf"upstream run {run.name} was pre-trained on other data .*"
                                               rf"held sha256 aaaaaaaaaaaa, now sha256 bbbbbbbbbbbb.*delete {paths.unit_dir}"):
        ready_upstream(study, cell)
    units, notes, _ = plan(study)
    assert units == [] and len(notes) == 1 and notes[0].startswith(f"{cell.name}: left alone: its upstream run")
    [(_, status)] = upstream_statuses(study)
    assert status.state == DONE and "pre-trained on other data" in status.warning

    beton.with_suffix(".json").unlink()  # the data gone altogether
    with pytest.raises(UpstreamNotReady, match="now no manifest"):
        ready_upstream(study, cell)
