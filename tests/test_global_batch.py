"""A fixed global batch on any hardware: per-device batch x devices x accumulation."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest

from lightning_modules.global_batch import split_global_batch
from tests.conftest import copy_beton


@pytest.mark.parametrize("global_batch,world,cap,expected", [
    (4096, 8, None, (512, 1)),
    (4096, 8, 128, (128, 4)),
    (4096, 32, 32, (32, 4)),
    (1024, 8, 100, (64, 2)),      # 128 per device does not fit 100: two micro-batches of 64
    (512, 1, 512, (512, 1)),
    (96, 2, 20, (16, 3)),         # 48 per device: 3 x 16 (not 2 x 24 > 20, not 4 x 12: fewest steps)
])
def test_split(global_batch, world, cap, expected):
    split = split_global_batch(global_batch, world, cap)
    assert (split.per_device, split.accumulation) == expected
    assert split.per_device * split.accumulation * world == global_batch
    assert cap is None or split.per_device <= cap


def test_a_global_batch_that_does_not_divide_is_refused():
    with pytest.raises(ValueError, match=r"data.global_batch=1000 does not divide over 24 devices .*multiple of 24"):
        split_global_batch(1000, 24)


def test_device_count_is_lightnings():
    from lightning_modules.cli import device_count

    assert device_count("cpu", "auto") == 1  # CPUAccelerator.auto_device_count()
    assert device_count("cpu", 3) == 3 and device_count("cpu", "2") == 2
    assert device_count("gpu", [0, 3]) == 2  # a list of ids: that many, whatever is installed
    assert device_count("auto", 8) == 8


def _pretrain_args(tmp_path, beton, *extra: str) -> list[str]:
    """The miniature pre-training config on a 16-row subset, with nothing written outside ``tmp_path``."""
    return ["--config", str(_no_callbacks("configs/miniature/pretrain.yaml", tmp_path)),
            "--data.init_args.beton", str(beton), "--data.init_args.subset_size", "16", "--data.init_args.holdout", "4",
            "--data.init_args.resolution", "12", "--data.init_args.num_workers", "1", "--model.init_args.warmup_steps", "0",
            "--trainer.enable_progress_bar", "false", *extra]


def _no_callbacks(config: str, tmp_path) -> Path:
    """``config`` logging under ``tmp_path`` and without callbacks (no grid or result written into the repo's runs/)."""
    from tests.conftest import _stage_config

    def edit(c):
        c["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "tb")
        c["trainer"]["callbacks"] = []

    return _stage_config(config, tmp_path / Path(config).name, edit)


def test_the_cli_builds_the_trainer_with_the_derived_batch(tmp_path, colour_beton, monkeypatch):
    """global batch 8 on 1 device with at most 2 per device: 4 micro-batches of 2 per step, set when
    the Trainer is built (before ``fit``, nothing written into it later), validation "every 3 steps"
    as 12 micro-batches, the lr scaled by the global batch, and every derived value in config.yaml."""
    import yaml

    import lightning_modules.cli as cli

    said = []
    monkeypatch.setattr(cli, "rank_zero_info", said.append)
    beton = copy_beton(colour_beton, tmp_path)
    built = cli.cli_main(_pretrain_args(tmp_path, beton, "--data.init_args.global_batch", "8", "--data.init_args.max_device_batch", "2",
                                        "--trainer.val_check_interval", "3", "--trainer.max_steps", "2",
                                        "--data.init_args.eval_batch_size", "2", "--model.init_args.base_lr", "0.256"), run=False)
    trainer, data, model = built.trainer, built.datamodule, built.model
    assert (trainer.accumulate_grad_batches, trainer.val_check_interval, data.batch_size) == (4, 12, 2)  # before fit
    assert [line for line in said if line.startswith("derived: ")] == [
        "derived: global batch 8 = 1 device(s) x 4 accumulation step(s) x 2 per device (data.init_args.batch_size=2, "
        "trainer.accumulate_grad_batches=4); trainer.val_check_interval=12 micro-batches (every 3 steps)"]
    trainer.fit(model, datamodule=data)
    assert (trainer.accumulate_grad_batches, trainer.val_check_interval, data.batch_size) == (4, 12, 2)
    assert trainer.val_check_batch == 12
    assert model.global_batch() == 8
    assert trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(0.256 * 8 / 256)
    assert trainer.fit_loop.epoch_loop.batch_progress.total.completed == 8  # 2 steps x 4 micro-batches
    saved = yaml.safe_load((Path(trainer.log_dir) / "config.yaml").read_text())
    assert saved["data"]["init_args"]["batch_size"] == 2 and saved["data"]["init_args"]["global_batch"] == 8
    assert saved["trainer"]["accumulate_grad_batches"] == 4 and saved["trainer"]["val_check_interval"] == 12


@pytest.mark.parametrize("devices,nodes,expected", [(2, 1, (2, 2)), (2, 2, (2, 1)), (4, 1, (2, 1))])
def test_devices_times_nodes_set_the_split(tmp_path, colour_beton, devices, nodes, expected):
    from lightning_modules.cli import cli_main

    built = cli_main(_pretrain_args(tmp_path, copy_beton(colour_beton, tmp_path), "--data.init_args.global_batch", "8",
                                    "--data.init_args.max_device_batch", "2", "--trainer.devices", str(devices),
                                    "--trainer.num_nodes", str(nodes), "--trainer.strategy", "ddp"), run=False)
    assert (built.datamodule.batch_size, built.trainer.accumulate_grad_batches) == expected
    assert built.trainer.world_size == devices * nodes


def test_a_global_batch_that_does_not_divide_is_refused_at_start_up(tmp_path, colour_beton):
    from lightning_modules.cli import cli_main

    with pytest.raises(SystemExit) as refused:
        cli_main(["fit", *_pretrain_args(tmp_path, copy_beton(colour_beton, tmp_path), "--data.init_args.global_batch", "9",
                                "--trainer.devices", "2", "--trainer.strategy", "ddp")])
    message = str(refused.value.code)
    assert message == "error: data.global_batch=9 does not divide over 2 devices (devices x nodes); choose a multiple of 2"
    assert not (tmp_path / "tb").exists()  # refused before any run folder


def test_a_per_device_batch_that_disagrees_with_the_global_batch_is_refused(tmp_path, colour_beton):
    from lightning_modules.cli import cli_main

    beton = copy_beton(colour_beton, tmp_path)
    with pytest.raises(SystemExit) as refused:
        cli_main(_pretrain_args(tmp_path, beton, "--data.init_args.batch_size", "4"), run=False)
    message = str(refused.value.code)
    assert message.startswith("error: data.init_args.batch_size=4 per device makes a global batch of 4 on 1 device(s), "
                              "but data.init_args.global_batch=64") and "\n" not in message
    # agreeing values (a saved config.yaml reused) are fine
    built = cli_main(_pretrain_args(tmp_path, beton, "--data.init_args.batch_size", "64"), run=False)
    assert (built.datamodule.batch_size, built.trainer.accumulate_grad_batches) == (64, 1)


def test_a_datamodule_leaves_the_trainer_alone(tmp_path, colour_beton):
    """Built by hand, a DataModule uses its per-device batch as given and writes nothing into the Trainer."""
    from datamodules.upstream import UpstreamDataModule
    from lightning_modules.pretrain import PretrainModule

    data = UpstreamDataModule(str(copy_beton(colour_beton, tmp_path)), subset_size=16, holdout=4, batch_size=2, global_batch=8,
                              max_device_batch=2, resolution=12, num_workers=1)
    trainer = L.Trainer(max_steps=1, max_epochs=-1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_checkpointing=False, enable_model_summary=False, limit_val_batches=0,
                        val_check_interval=3, check_val_every_n_epoch=None)
    trainer.fit(PretrainModule("resnetv2_tiny_bit", num_classes=4, dataset_size=16, warmup_steps=0), datamodule=data)
    assert (data.batch_size, trainer.accumulate_grad_batches, trainer.val_check_interval) == (2, 1, 3)


def _finetune_args(tmp_path, beton, *extra: str) -> list[str]:
    return ["--config", str(_no_callbacks("configs/miniature/finetune.yaml", tmp_path)),
            "--data.init_args.train_beton", str(beton), "--data.init_args.val_beton", str(beton),
            "--data.init_args.resize", "16", "--data.init_args.crop", "12", "--data.init_args.num_workers", "1",
            "--data.init_args.benchmarks", "[]", "--data.init_args.ood_root", "null",
            "--model.init_args.backbone", "resnetv2_tiny_bit", "--trainer.enable_progress_bar", "false", *extra]


@pytest.mark.parametrize("extra,steps", [
    ([], 50),                                                  # 24 images < 20K: the HyperRule's 500 steps, x 0.1 (miniature)
    (["--model.init_args.schedule_scale", "1.0"], 500),
    (["--model.init_args.steps", "7"], 7),                     # the module's explicit length wins over the rule
])
def test_finetuning_length_is_set_before_the_trainer_exists(tmp_path, colour_beton, extra, steps):
    from lightning_modules.cli import cli_main

    built = cli_main(_finetune_args(tmp_path, copy_beton(colour_beton, tmp_path), *extra), run=False)
    assert built.trainer.max_steps == steps == built.model.schedule.steps
    assert built.config.trainer.max_steps == steps


def test_an_explicit_max_steps_is_kept_and_said(tmp_path, colour_beton):
    from lightning_modules.cli import cli_main

    with pytest.warns(UserWarning, match="trainer.max_steps=3 overrides the 50 steps of the schedule for 24 training images"):
        built = cli_main(_finetune_args(tmp_path, copy_beton(colour_beton, tmp_path), "--trainer.max_steps", "3"), run=False)
    assert built.trainer.max_steps == 3


def test_finetuning_records_the_derived_values_in_config_yaml(tmp_path, colour_beton):
    """A real fine-tuning fit: the HyperRule's length (scaled to 2 steps) and the global batch's
    split are what the Trainer ran with, and what the run folder's config.yaml says."""
    import yaml

    from lightning_modules.cli import cli_main

    built = cli_main(["fit", *_finetune_args(tmp_path, copy_beton(colour_beton, tmp_path), "--model.init_args.schedule_scale", "0.004",
                                             "--data.init_args.global_batch", "8", "--data.init_args.max_device_batch", "4")])
    assert built.trainer.global_step == 2 and built.model.effective_schedule["steps"] == 2
    saved = yaml.safe_load((Path(built.trainer.log_dir) / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2  # 500 x 0.004
    assert (saved["data"]["init_args"]["batch_size"], saved["trainer"]["accumulate_grad_batches"]) == (4, 2)
    assert saved["trainer"]["val_check_interval"] == 200000  # the config's 100000 steps, in micro-batches
