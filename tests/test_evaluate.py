"""Evaluation without training: `train.py test` on a checkpoint, a weight file, or --ckpt_path."""
from __future__ import annotations

import json

import pytest
import torch

from lightning_modules.cli import cli_main

pytestmark = pytest.mark.slow


def _evaluate(world, tmp_path, *args):
    cli_main(["test", "--config", "configs/miniature/evaluate.yaml", "--config", str(world / "data/ood_options.yaml"),
                    "--data.init_args.val_beton", str(world / "data/betons/downstream_val.beton"),
                    "--data.init_args.ood_root", str(world / "data/ood"),
                    "--trainer.logger.init_args.save_dir", str(tmp_path / "tb"),
                    "--trainer.enable_progress_bar", "false", *args])
    (path,) = (tmp_path / "tb").glob("evaluate/run-*/ood_result.json")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def finetuned(cell):
    world, _, _, _ = cell
    record = json.loads((world / "runs/results/resnetv2_tiny_bit-size=40-steps=4-seed=0.json").read_text())
    return world, world / "runs/finetuned.ckpt", record


def test_checkpoint_is_evaluated_and_filed_where_told(finetuned, tmp_path):
    """The caller says what the run is and where its result goes; the model's name comes from the checkpoint."""
    world, ckpt, trained = finetuned
    record = _evaluate(world, tmp_path, "--model.init_args.checkpoint", str(ckpt),
                       "--trainer.callbacks.init_args.result_file", str(tmp_path / "results/cell.json"),
                       "--trainer.callbacks.init_args.record", json.dumps({"data_size": 40, "steps": 4, "seed": 0}))
    assert record["errors"] == pytest.approx(trained["errors"], abs=1e-6)  # same weights, same sets: same numbers
    assert (record["model"], record["data_size"], record["steps"], record["seed"]) == ("resnetv2_tiny_bit", 40, 4, 0)
    filed = json.loads((tmp_path / "results/cell.json").read_text())
    assert filed["errors"] == record["errors"] and filed["run_name"] == "resnetv2_tiny_bit-size=40-steps=4-seed=0"
    # the clean val error is measured too and feeds ImageNet-C's relative mCE
    assert 0.0 <= record["metrics"]["clean/error"] <= 1.0 and "imagenet_c/relative_mce" in record["metrics"]
    assert record["timings"]["clean"]["images"] == 36  # 18 classes x 2 val images, each counted once
    # per-example outcomes beside both result files, reproducing every error
    from results.outcomes import read_outcomes

    for path, rec in ((tmp_path / "results/cell.json", filed), (next((tmp_path / "tb").glob("evaluate/run-*/ood_result.json")), record)):
        stored = read_outcomes(path, rec)
        assert set(stored) == set(rec["errors"]) and path.with_name(rec["outcomes"]["file"]).is_file()
        assert {k: s.error() for k, s in stored.items()} == pytest.approx(rec["errors"], abs=1e-9)
    assert filed["outcomes"]["keys"]["imagenet_c"]["columns"] == 75 and filed["outcomes"]["keys"]["ytbb"]["unit"] == "anchor"


def test_a_safetensors_weight_file_gives_the_same_numbers(finetuned, tmp_path):
    from safetensors.torch import save_file

    world, ckpt, trained = finetuned
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    save_file({k[len("model."):]: v.contiguous() for k, v in state.items() if k.startswith("model.")}, str(tmp_path / "w.safetensors"))
    record = _evaluate(world, tmp_path, "--model.init_args.backbone", "resnetv2_tiny_bit",
                       "--model.init_args.weights", str(tmp_path / "w.safetensors"))
    assert record["errors"] == pytest.approx(trained["errors"], abs=1e-6)
    assert "data_size" not in record and record["model"] == "resnetv2_tiny_bit"
    assert not (tmp_path / "results").exists()  # no result_file: the run folder only


def test_ckpt_path_with_the_finetune_config(cell, finetuned, tmp_path):
    """The issue's command: ``train.py test --config <fine-tune config> --ckpt_path <checkpoint>``."""
    from tests.conftest import _stage_config

    world, ckpt, trained = finetuned

    def to_tmp(c):  # the cell's stage config (its record kept), results under tmp_path
        c["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "tb")
        c["trainer"]["callbacks"][0]["init_args"]["result_file"] = str(tmp_path / "results/cell.json")
        c["trainer"]["callbacks"][1]["init_args"].update(results_dir=str(tmp_path / "results"), out_dir=str(tmp_path / "grid"))

    cfg = _stage_config(cell[3], tmp_path / "ft.yaml", to_tmp)
    cli_main(["test", "--config", str(cfg), "--config", str(world / "data/ood_options.yaml"), "--ckpt_path", str(ckpt),
              "--trainer.enable_progress_bar", "false"])
    record = json.loads((tmp_path / "results/cell.json").read_text())
    assert record["errors"] == pytest.approx(trained["errors"], abs=1e-6)
    assert (record["model"], record["data_size"], record["steps"]) == ("resnetv2_tiny_bit", 40, 4)


def test_a_result_file_without_the_runs_identity_is_refused_before_evaluating(finetuned, tmp_path):
    world, ckpt, _ = finetuned
    with pytest.raises(SystemExit) as refused:
        _evaluate(world, tmp_path, "--model.init_args.checkpoint", str(ckpt),
                  "--trainer.callbacks.init_args.result_file", str(tmp_path / "results/cell.json"))
    message = str(refused.value.code)
    assert message.startswith("error: OODEvaluation result_file=") and "missing required field(s): data_size, steps, seed" in message
    assert "\n" not in message and not (tmp_path / "results").exists()


def test_a_head_of_another_size_is_refused(finetuned, tmp_path):
    from safetensors.torch import save_file

    world, ckpt, _ = finetuned
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    weights = {k[len("model."):]: v.contiguous() for k, v in state.items() if k.startswith("model.")}
    weights["head.fc.weight"] = weights["head.fc.weight"][:5].contiguous()
    weights["head.fc.bias"] = weights["head.fc.bias"][:5].contiguous()
    save_file(weights, str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="head.fc.(weight|bias) has shape .*another number of classes"):
        _evaluate(world, tmp_path, "--model.init_args.backbone", "resnetv2_tiny_bit", "--model.init_args.weights", str(tmp_path / "w.safetensors"))


def test_the_parity_config_evaluates_a_weight_file_and_prints_the_comparison(finetuned, tmp_path, capsys):
    """``configs/bit/parity.yaml`` as a user runs it, on the miniature's data and a tiny model on
    the CPU: the benchmark betons are made with the testbed's preprocessing, and the table of
    our top-1 beside the published BiT-M-R50x1 numbers is printed and saved as parity.csv."""
    from safetensors.torch import save_file

    world, ckpt, _ = finetuned
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    save_file({k[len("model."):]: v.contiguous() for k, v in state.items() if k.startswith("model.")}, str(tmp_path / "w.safetensors"))
    cli_main(["test", "--config", "configs/bit/parity.yaml", "--config", str(world / "data/ood_options.yaml"),
              "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
              "--trainer.logger.init_args.save_dir", str(tmp_path / "tb"), "--trainer.enable_progress_bar", "false",
              "--data.init_args.val_beton", str(world / "data/betons/downstream_val.beton"),
              "--data.init_args.ood_root", str(world / "data/ood"), "--data.init_args.ood_cache", str(tmp_path / "cache"),
              "--data.init_args.resolution", "32", "--data.init_args.num_workers", "1",
              "--model.init_args.backbone", "resnetv2_tiny_bit", "--model.init_args.weights", str(tmp_path / "w.safetensors"),
              "--trainer.callbacks.init_args.model", "BiT-M-R50x1"])
    out = capsys.readouterr().out
    (run,) = (tmp_path / "tb").glob("parity/run-*")
    record = json.loads((run / "ood_result.json").read_text())
    assert "parity with imagenet-testbed" in out and "BiT-M-R50x1" in out
    ours_a = 100 * (1 - record["errors"]["imagenet_a"])
    (line,) = [l for l in out.splitlines() if l.startswith("ImageNet-A ")]
    assert line.split()[1:4] == [f"{ours_a:.2f}", "25.27", f"{ours_a - 25.2667:+.2f}"]
    rows = (run / "parity.csv").read_text().splitlines()
    assert len(rows) == 10 and rows[0].startswith("model,benchmark,key")
    manifests = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*.json")]
    assert len(manifests) == 6 and {m["extra"]["preprocessing"] for m in manifests} == {"testbed"}
    assert {m["settings"]["max_resolution"] for m in manifests} == {32}
