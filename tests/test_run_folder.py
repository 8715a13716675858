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
