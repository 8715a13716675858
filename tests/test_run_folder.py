"""Run folders are named by what a run computes: the same command finds the same folder."""
from __future__ import annotations

import copy

from lightning_modules.run_folder import last_checkpoint, run_version

CONFIG = {
    "seed_everything": 0,
    "trainer": {"max_steps": 50, "devices": 1, "logger": {"init_args": {"save_dir": "runs"}},
                "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint"}], "enable_progress_bar": True},
    "model": {"class_path": "lightning_modules.pretrain.PretrainModule", "init_args": {"base_lr": 0.03}},
    "data": {"init_args": {"subset_size": 1000, "num_workers": 1}},
    "ckpt_path": None,
}


def _changed(path: str, value) -> dict:
    config = copy.deepcopy(CONFIG)
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value
    return config


def test_same_settings_same_folder_whatever_the_key_order():
    reordered = dict(reversed(list(copy.deepcopy(CONFIG).items())))
    assert run_version(reordered, "fit") == run_version(CONFIG, "fit")
    assert run_version(CONFIG, "fit").startswith("run-") and len(run_version(CONFIG, "fit")) == 14


def test_settings_that_change_the_computation_change_the_folder():
    base = run_version(CONFIG, "fit")
    for path, value in [("seed_everything", 1), ("trainer.max_steps", 51), ("model.init_args.base_lr", 0.01),
                        ("data.init_args.subset_size", 4000), ("trainer.devices", 2)]:
        assert run_version(_changed(path, value), "fit") != base, path
    assert run_version(CONFIG, "test") != base


def test_how_a_run_is_run_or_recorded_does_not():
    base = run_version(CONFIG, "fit")
    for path, value in [("ckpt_path", "last"), ("trainer.callbacks", []), ("trainer.logger", {"init_args": {"save_dir": "x"}}),
                        ("trainer.enable_progress_bar", False), ("data.init_args.num_workers", 12)]:
        assert run_version(_changed(path, value), "fit") == base, path


def test_last_checkpoint_is_the_newest_last_file(tmp_path):
    import os

    assert last_checkpoint(tmp_path) is None
    for i, name in enumerate(["last.ckpt", "last-v1.ckpt", "epoch=0-step=5.ckpt"]):
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    assert last_checkpoint(tmp_path) == tmp_path / "last-v1.ckpt"


def test_a_fresh_start_over_an_earlier_run_is_refused(tmp_path, colour_beton, monkeypatch):
    """The same command again without ``--ckpt_path`` would silently restart a run that has
    checkpoints: refused in one line; with ``--ckpt_path last`` it continues in the same folder."""
    from pathlib import Path

    import pytest

    from lightning_modules.cli import cli_main
    from tests.conftest import copy_beton

    beton = copy_beton(colour_beton, tmp_path)
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", str(Path(__file__).parents[1] / "configs/miniature/pretrain.yaml"),
            "--data.init_args.beton", str(beton), "--data.init_args.subset_size", "16", "--data.init_args.holdout", "4",
            "--data.init_args.global_batch", "4", "--data.init_args.resolution", "12", "--trainer.max_steps", "2",
            "--trainer.enable_progress_bar", "false"]
    first = cli_main(args)
    folder = Path(first.trainer.logger.log_dir)
    assert folder.name.startswith("run-") and (folder / "checkpoints/last.ckpt").exists()
    with pytest.raises(SystemExit) as refused:
        cli_main(args)
    message = str(refused.value.code)
    assert message.startswith(f"error: {folder} holds an earlier run of this command") and "\n" not in message
    assert "--ckpt_path last" in message
    again = cli_main([*args, "--ckpt_path", "last"])
    assert Path(again.trainer.logger.log_dir) == folder and again.trainer.global_step == 2
    assert len([p for p in folder.parent.iterdir() if p.is_dir()]) == 1
