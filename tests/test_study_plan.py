"""The cost planner, `python -m study plan`: numbers computed by hand on a small study, the paper's
grid end to end, and the throughput table (its refusals, its agreement with the OOD registry).

The small study (written into tmp_path): one model, data sizes 1,000 and 4,000, 100 steps, a
2-value resolution axis that sets only downstream values, so 2 upstream runs and 4 cells, each
upstream run shared by 2 cells. Every expected number below is worked out in the comments.
"""
from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conversion.beton import MANIFEST_FORMAT
from study.cli import main
from study.definition import StudyConfigError, StudyDefinition
from study.plan import Job, ThroughputTable, makespan, plan_study

REPO = Path(__file__).resolve().parents[1]
BIT = "configs/bit/study.yaml"
CHECKPOINT = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"save_last": True}}
OOD_EVAL = {"class_path": "callbacks.ood_evaluation.OODEvaluation"}

# The test table: eval_cost_fraction 0.25; on device gpu-x, net_a trains at 32 px at 1 img/s
# (published), at 64 px derived from it (GMACs x (64/32)^2 = x4, so 1/4 = 0.25 img/s), at 128 px
# 0.5 img/s (measured).
TABLE = {
    "eval_cost_fraction": 0.25,
    "gmacs_at_224": {"net_a": 2.0},
    "devices": {"gpu-x": {"net_a": {
        32: {"source": "published", "img_per_s": 1.0, "ref": "a vendor's table"},
        64: {"source": "derived", "from": "net_a@32"},
        128: {"source": "measured", "img_per_s": 0.5, "ref": "perf/gpu_steps.py on gpu-x"},
    }}},
    "evaluation_images": {"imagenet_a": 2400, "imagenet_v2": 600},
}


def beton(tmp_path: Path, name: str, images: int) -> str:
    """A stand-in beton (10 bytes) with the manifest the training CLI reads its size from."""
    path = tmp_path / f"{name}.beton"
    path.write_bytes(b"0123456789")
    path.with_suffix(".json").write_text(json.dumps({"format": MANIFEST_FORMAT, "bytes": 10, "num_images": images}))
    return str(path)


def small_study(tmp_path: Path, slurm: dict | None = None, table: dict = TABLE) -> tuple[StudyDefinition, ThroughputTable]:
    pretrain = {
        "trainer": {"devices": 2, "num_nodes": 1, "max_steps": 7, "val_check_interval": 50, "callbacks": [CHECKPOINT]},
        "model": {"init_args": {"backbone": "placeholder"}},
        "data": {"init_args": {"global_batch": 36, "resolution": 32, "holdout": 720, "subset_size": 5}},
    }
    finetune = {
        "trainer": {"devices": 2, "max_steps": -1, "val_check_interval": 250, "callbacks": [CHECKPOINT, OOD_EVAL]},
        "model": {"init_args": {"schedule_scale": 0.05}},
        "data": {"init_args": {"global_batch": 12, "train_beton": beton(tmp_path, "train", 30_000),
                               "val_beton": beton(tmp_path, "val", 600), "benchmarks": ["imagenet_c"]}},
    }
    for name, config in (("pretrain", pretrain), ("finetune", finetune)):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    raw = dict(name="small", models=["net_a"], data_sizes=[1000, 4000], steps=[100], seeds=[0],
               resolutions={64: {"downstream": {"data.init_args.crop": 64}}, 128: {"downstream": {"data.init_args.crop": 128}}},
               upstream_config=str(tmp_path / "pretrain.yaml"), downstream_config=str(tmp_path / "finetune.yaml"),
               benchmarks=["imagenet_a", "imagenet_v2"],  # replaces the stage config's list, as the runner does
               runs_dir=str(tmp_path / "runs"), slurm=slurm if slurm is not None else {"nodes": 1, "gpus_per_node": 4})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "throughput.yaml").write_text(yaml.safe_dump(table))
    return StudyDefinition.from_yaml(tmp_path / "study.yaml"), ThroughputTable.from_yaml(tmp_path / "throughput.yaml")


def test_units_of_a_small_study_by_hand(tmp_path):
    plan = plan_study(*small_study(tmp_path))
    # upstream: the resolution axis sets no upstream value, so one run per data size
    assert [u.name for u in plan.upstream] == ["net_a-size=1000-steps=100-seed=0", "net_a-size=4000-steps=100-seed=0"]
    for run, epochs in zip(plan.upstream, (3.6, 0.9)):
        assert run.train_images == 3600          # 100 steps x global batch 36
        assert run.epochs == pytest.approx(epochs)  # 3,600 / 1,000 and 3,600 / 4,000
        assert run.eval_images == 1440           # 100 // 50 = 2 validations x 720 held-out images
        assert run.resolution == 32 and run.devices == 2
        assert run.gpu_hours == pytest.approx(1.1)   # (3,600 + 0.25 x 1,440) / 1 img/s = 3,960 s
        assert run.wall_hours == pytest.approx(0.55)  # on its 2 devices
    # cells: HyperRule for 30,000 images (20,000 <= n < 500,000): 10,000 steps x schedule_scale 0.05 = 500
    assert [(c.resolution, c.upstream) for c in plan.cells] == [
        (64, plan.upstream[0].name), (64, plan.upstream[1].name), (128, plan.upstream[0].name), (128, plan.upstream[1].name)]
    for cell, gpu_hours in zip(plan.cells, (8.0, 8.0, 4.0, 4.0)):
        assert cell.steps == 500 and cell.train_images == 6000  # 500 x global batch 12
        assert cell.epochs == pytest.approx(0.2)                 # 6,000 / 30,000 (the train manifest)
        # 500 // 250 = 2 validations x 600 val images, then the clean set (600), imagenet_a (2,400),
        # imagenet_v2 (600): the study's benchmarks, not the stage config's imagenet_c
        assert cell.eval_images == 1200 + 600 + 2400 + 600
        # (6,000 + 0.25 x 4,800) = 7,200 training-image equivalents; at 64 px 0.25 img/s -> 28,800 s,
        # at 128 px 0.5 img/s -> 14,400 s
        assert cell.gpu_hours == pytest.approx(gpu_hours)
        assert cell.wall_hours == pytest.approx(gpu_hours / 2)
    assert plan.rates["net_a", 64].img_per_s == pytest.approx(0.25) and plan.rates["net_a", 64].source == "derived"


def test_totals_and_the_saving_of_shared_pretraining_by_hand(tmp_path):
    plan = plan_study(*small_study(tmp_path))
    assert plan.upstream_gpu_hours == pytest.approx(2.2)    # 2 runs x 1.1
    assert plan.cells_gpu_hours == pytest.approx(24.0)      # 8 + 8 + 4 + 4
    assert plan.total_gpu_hours == pytest.approx(26.2)
    assert plan.unshared_gpu_hours == pytest.approx(28.4)   # each of 4 cells pre-trains its own: 4 x 1.1 + 24
    assert plan.saving_gpu_hours == pytest.approx(2.2)      # 28.4 - 26.2: one run per pair of cells saved
    # cluster from the study's slurm: 1 node x 4 GPUs; units hold 2 GPUs, so two at a time.
    # upstream: both 0.55 h runs at once -> 0.55 h; cells in order: the two 4 h cells, then the two 2 h ones -> 6 h
    assert (plan.cluster.nodes, plan.cluster.gpus_per_node, plan.cluster.device) == (1, 4, "gpu-x")
    assert plan.upstream_wall_hours == pytest.approx(0.55)
    assert plan.cells_wall_hours == pytest.approx(6.0)
    assert plan.wall_hours == pytest.approx(6.55)


def test_max_parallel_and_the_cluster_flags_set_the_wall_clock(tmp_path):
    study, table = small_study(tmp_path, slurm={"nodes": 1, "gpus_per_node": 4, "max_parallel": 1})
    plan = plan_study(study, table)
    # one task at a time: 0.55 + 0.55 upstream, 4 + 4 + 2 + 2 cells
    assert plan.upstream_wall_hours == pytest.approx(1.1) and plan.cells_wall_hours == pytest.approx(12.0)
    assert plan.total_gpu_hours == pytest.approx(26.2)  # the cluster changes the wall-clock, not the cost
    with pytest.raises(StudyConfigError, match=r"net_a-size=1000-steps=100-seed=0 runs on 1 node\(s\) x 2 devices, more than "
                                               r"the cluster's 1 x 1; pass --nodes / --gpus-per-node"):
        plan_study(study, table, gpus_per_node=1)


def test_makespan_by_hand():
    # pool of 4 GPUs: J1 (3 h, 2 GPUs) starts; J2 (4 GPUs) must wait; J3 (1 h, 2 GPUs) fills the gap.
    # At 3 h J1 ends and J2 runs 1 h: 4 h.
    jobs = [Job(3.0, 2, "a"), Job(1.0, 4, "a"), Job(1.0, 2, "a")]
    assert makespan(jobs, 4, {"a": None}) == pytest.approx(4.0)
    # three 1 h tasks that fit at once, but their array runs at most 2: 2 h
    assert makespan([Job(1.0, 1, "a")] * 3, 8, {"a": 2}) == pytest.approx(2.0)
    assert makespan([Job(1.0, 1, "a")] * 3, 8, {"a": None}) == pytest.approx(1.0)


def test_a_missing_throughput_entry_is_one_line_naming_model_resolution_and_file(tmp_path, capsys):
    table = yaml.safe_load(yaml.safe_dump(TABLE))
    del table["devices"]["gpu-x"]["net_a"][128]
    study, throughput = small_study(tmp_path, table=table)
    path = tmp_path / "throughput.yaml"
    with pytest.raises(StudyConfigError) as info:
        plan_study(study, throughput)
    assert str(info.value) == (f"{path} has no throughput for net_a at 128 px on gpu-x; add devices.gpu-x.net_a.128 to "
                               f"{path} (published or measured img_per_s with its ref, or derived from a published entry)")
    assert main(["plan", str(tmp_path / "study.yaml"), "--throughput", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "net_a at 128 px" in err


@pytest.mark.parametrize("change, expected", [
    (lambda t: t["devices"]["gpu-x"]["net_a"][32].pop("ref"), "devices.gpu-x.net_a.32 (published) needs img_per_s"),
    (lambda t: t["devices"]["gpu-x"]["net_a"][32].update(source="guessed"), "devices.gpu-x.net_a.32.source must be one of"),
    (lambda t: t["devices"]["gpu-x"]["net_a"][128].update(source="derived", **{"from": "net_a@64"}), "itself derived"),
    (lambda t: t.pop("gmacs_at_224"), "must hold exactly the keys"),
])
def test_a_bad_throughput_table_is_refused_when_read(tmp_path, change, expected):
    table = yaml.safe_load(yaml.safe_dump(TABLE))
    change(table)
    with pytest.raises(StudyConfigError, match=re.escape(expected)) as info:
        small_study(tmp_path, table=table)
    assert "\n" not in str(info.value) and str(tmp_path / "throughput.yaml") in str(info.value)


def test_csv_and_json_carry_the_same_numbers(tmp_path, capsys):
    small_study(tmp_path)
    out_csv, out_json = tmp_path / "plan.csv", tmp_path / "plan.json"
    assert main(["plan", str(tmp_path / "study.yaml"), "--throughput", str(tmp_path / "throughput.yaml"),
                 "--csv", str(out_csv), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert "shared pre-training saves 2.2 GPU-h" in text and "4 cells from 2 upstream runs" in text
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["kind"] for r in rows] == ["upstream"] * 2 + ["cell"] * 4
    assert float(rows[2]["gpu_hours"]) == pytest.approx(8.0) and rows[2]["throughput_source"] == "derived"
    totals = json.loads(out_json.read_text())["totals"]
    assert totals["total_gpu_hours"] == pytest.approx(26.2) and totals["saving_gpu_hours"] == pytest.approx(2.2)


# ----------------------------------------------------------------------------- the paper's grid

def test_the_paper_grid_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # a study's paths are relative to the repository root
    assert main(["plan", BIT, "--json", str(tmp_path / "bit.json")]) == 0
    assert "totals:" in capsys.readouterr().out
    plan = json.loads((tmp_path / "bit.json").read_text())
    totals = plan["totals"]
    # 2 models x 3 sizes x 3 step budgets, no resolution axis: every cell has its own upstream run,
    # so sharing saves nothing
    assert totals["upstream_runs"] == totals["cells"] == 18
    assert totals["upstream_gpu_hours"] > 0 and totals["cells_gpu_hours"] > 0 and totals["wall_hours"] > 0
    assert totals["saving_gpu_hours"] == pytest.approx(0.0)
    up = {u["name"]: u for u in plan["upstream"]}
    r50 = up["resnetv2_50x1_bit-size=1000000-steps=112000-seed=0"]
    assert r50["train_images"] == 112_000 * 1024 and r50["epochs"] == pytest.approx(114.688)  # spec §6: ~115 epochs
    assert (r50["nodes"], r50["devices_per_node"], r50["resolution"]) == (1, 8, 224)
    r101 = up["resnetv2_101x3_bit-size=13000000-steps=1120000-seed=0"]
    assert r101["epochs"] == pytest.approx(1_120_000 * 1024 / 13e6) and (r101["nodes"], r101["devices_per_node"]) == (4, 8)
    # fine-tuning: HyperRule for ImageNet-1k (>= 500,000 images) is 20,000 steps at batch 512, crop 384 (paper)
    for cell in plan["cells"]:
        assert (cell["steps"], cell["global_batch"], cell["resolution"]) == (20_000, 512, 384)
        assert cell["epochs"] == pytest.approx(20_000 * 512 / 1_281_167)
    assert {(c["nodes"], c["devices_per_node"]) for c in plan["cells"]} == {(1, 8), (4, 8)}  # R101x3 fine-tunes on 4 nodes
    assert plan["cluster"] == {"nodes": 4, "gpus_per_node": 8, "device": "A100-80GB"}  # the study's slurm section


def test_a_resolution_axis_on_the_paper_grid_saves_one_pretraining_per_extra_value(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    raw = yaml.safe_load(Path(BIT).read_text())
    raw["resolutions"] = {384: {"downstream": {"data.init_args.resolution_variant": "paper"}},
                          480: {"downstream": {"data.init_args.resolution_variant": "code"}}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    plan = plan_study(StudyDefinition.from_yaml(tmp_path / "study.yaml"), ThroughputTable.from_yaml("configs/throughput.yaml"))
    # 36 cells from 18 upstream runs: each run would otherwise be pre-trained twice
    assert (len(plan.upstream), len(plan.cells)) == (18, 36)
    assert {c.resolution for c in plan.cells} == {384, 480}
    assert plan.saving_gpu_hours == pytest.approx(plan.upstream_gpu_hours)
    assert plan.unshared_gpu_hours == pytest.approx(2 * plan.upstream_gpu_hours + plan.cells_gpu_hours)


def test_planning_imports_no_torch_and_takes_seconds():
    code = ("import sys, contextlib, io; from study.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['plan', 'configs/bit/study.yaml'])\n"
            "print(rc, 'torch' in sys.modules, 'lightning' in sys.modules)")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.split() == ["0", "False", "False"], proc.stderr
    assert time.monotonic() - start < 30  # about a second; generous for a busy machine


def test_the_tables_published_anchor_and_evaluation_sizes():
    table = ThroughputTable.from_yaml(REPO / "configs/throughput.yaml")
    anchor = table.rate("A100-80GB", "resnet50", 224)
    assert (anchor.source, anchor.img_per_s) == ("published", 2470)  # NVIDIA DeepLearningExamples, 1x A100 80GB, AMP
    derived = table.rate("A100-80GB", "resnetv2_101x3_bit", 224)
    assert derived.source == "derived" and derived.img_per_s == pytest.approx(2470 * 4.11 / 71.23)
    # the sizes repeated in the table agree with the OOD registry's own checks (importing it imports torch)
    from ood.imagenet_a import EXPECTED_IMAGES as A
    from ood.imagenet_c import EXPECTED_PER_SET, IMAGENET_C_CORRUPTIONS, SEVERITIES
    from ood.imagenet_v2 import EXPECTED_IMAGES as V2
    from ood.objectnet import EXPECTED_IMAGES as OBJECTNET
    from ood.video_robust import ImageNetVidRobust

    assert table.evaluation_images["imagenet_a"] == A
    assert table.evaluation_images["imagenet_c"] == EXPECTED_PER_SET * len(IMAGENET_C_CORRUPTIONS) * len(SEVERITIES)
    assert table.evaluation_images["imagenet_v2"] == V2
    assert table.evaluation_images["objectnet"] == OBJECTNET
    assert table.evaluation_images["imagenet_vid_robust"] == ImageNetVidRobust.expected_frames
    assert set(table.evaluation_images) >= set(yaml.safe_load((REPO / BIT).read_text())["benchmarks"])
