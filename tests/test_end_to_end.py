"""One study cell through the real CLI: pre-train → fine-tune → OOD suite → result → grid → TensorBoard."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lightning_modules.cli import cli_main

pytestmark = pytest.mark.slow


def test_checkpoints_carry_no_study_identity(cell):
    """What a run is, the study says (the OOD callback's ``record``), not the weights file."""
    world, ckpt, log_dir, _ = cell
    for path in (ckpt, world / "runs/finetuned.ckpt"):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        assert not any("cell" in key for key in saved), sorted(saved)


def test_result_file_has_every_benchmark_key(cell):
    world, _, log_dir, _ = cell
    path = world / "runs/results/resnetv2_tiny_bit-size=40-steps=4-seed=0.json"
    record = json.loads(path.read_text())
    # the record the study passed, merged; the same record in the run folder
    assert (record["model"], record["data_size"], record["steps"], record["seed"]) == ("resnetv2_tiny_bit", 40, 4, 0)
    assert record["run_name"] == path.stem and record["schema_version"] == 1
    assert json.loads((log_dir / "ood_result.json").read_text())["errors"] == record["errors"]
    expected = {"imagenet_a", "imagenet_c", "imagenet_v2", "objectnet", "imagenet_vid", "ytbb", "imagenet_vid_w", "ytbb_w"}
    assert set(record["errors"]) == expected
    assert all(0.0 <= v <= 1.0 for v in record["errors"].values())
    # pm10 demands the anchor and all neighbours: never easier than the anchor alone
    assert record["errors"]["imagenet_vid_w"] >= record["errors"]["imagenet_vid"]
    assert record["errors"]["ytbb_w"] >= record["errors"]["ytbb"]
    assert record["downstream"]["hparams"]["effective_schedule"]["steps"] == 5


def test_config_is_saved_in_the_run_folder(cell):
    _, _, log_dir, _ = cell
    assert log_dir.name.startswith("run-") and (log_dir / "config.yaml").exists()


def test_tensorboard_has_ood_scalars_and_grid_images(cell):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, _, log_dir, _ = cell
    events = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0}).Reload()
    scalars, images = set(events.Tags()["scalars"]), set(events.Tags()["images"])
    for key in ("imagenet_a", "imagenet_c", "imagenet_v2", "objectnet", "imagenet_vid", "ytbb", "imagenet_vid_w", "ytbb_w"):
        assert f"ood/{key}/error" in scalars
    assert {"ood/imagenet_vid/pm0", "ood/imagenet_vid/pm10", "ood/ytbb/pm0", "ood/ytbb/pm10"} <= scalars
    assert "train/loss" in scalars
    # a single cell has no reference-vs-other pair yet, but the grid's top panel exists (all zeros)
    assert any(tag.startswith("grid/") for tag in images)


def test_grid_files_written(cell):
    world, _, _, _ = cell
    csv = (world / "runs/grid/grid.csv").read_text().splitlines()
    assert csv[0] == "panel,model,benchmark,steps,data_size,reduction_pct,ci_low,ci_high"
    assert any(line.startswith("top,resnetv2_tiny_bit,imagenet_a,4,40,0") for line in csv[1:])


def test_missing_beton_is_one_clear_error(tmp_path):
    missing = tmp_path / "nowhere" / "downstream_train.beton"
    with pytest.raises(SystemExit, match=rf"error: {missing}.*python -m conversion"):
        cli_main(["fit", "--config", "configs/miniature/finetune.yaml", "--data.init_args.train_beton", str(missing),
                  "--model.init_args.backbone", "resnetv2_tiny_bit"])


def test_hparams_tab_has_the_cells_axes_and_its_errors_and_no_placeholder(cell):
    """TensorBoard's HParams plugin data in the fine-tuning run: the cell's axes as hparams, the OOD
    errors as its metrics, and no ``hp_metric`` (Lightning's -1 placeholder) anywhere."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    world, _, log_dir, _ = cell
    record = json.loads((log_dir / "ood_result.json").read_text())
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0}).Reload()
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    hparams = {k: (v.string_value or v.number_value) for k, v in start.hparams.items()}
    assert hparams == {"model": "resnetv2_tiny_bit", "data_size": 40, "steps": 4, "seed": 0}
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert metric_tags == {f"hparams/{k}" for k in record["errors"]} | {"hparams/clean"}
    scalars = events.Tags()["scalars"]
    for key, error in record["errors"].items():
        assert events.Scalars(f"hparams/{key}")[-1].value == pytest.approx(error, abs=1e-6)
    assert "hp_metric" not in scalars
    for run in (world / "runs/tb").rglob("events.out.tfevents.*"):  # the pre-training run too
        assert "hp_metric" not in EventAccumulator(str(run)).Reload().Tags()["scalars"]
