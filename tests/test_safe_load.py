"""Checkpoints and weight files that would run code while loading are refused, in one line."""
from __future__ import annotations

import os

import pytest
import torch
import yaml

from lightning_modules.safe_load import UnsafeCheckpointError
from tests.conftest import copy_beton


class _RunsCode:
    """Unpickling this makes a directory: the stand-in for a payload."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture
def booby_trapped(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "trapped.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "payload": _RunsCode(marker)}, path)
    return path, marker


def test_weight_files_and_upstream_checkpoints_are_refused(booby_trapped):
    from lightning_modules.backbones import read_state_dict
    from lightning_modules.finetune import FinetuneModule

    path, marker = booby_trapped
    with pytest.raises(UnsafeCheckpointError, match=rf"refusing to load {path}: .* would run code .*GLOBAL posix.mkdir") as refused:
        read_state_dict(path)
    assert "\n" not in str(refused.value)
    with pytest.raises(UnsafeCheckpointError, match=f"refusing to load {path}"):
        FinetuneModule(num_classes=4, dataset_size=16, upstream_checkpoint=str(path))
    assert not marker.exists()


def test_ckpt_path_is_loaded_weights_only(booby_trapped, tmp_path, colour_beton):
    from lightning_modules.cli import cli_main

    path, marker = booby_trapped
    config = yaml.safe_load(open("configs/miniature/pretrain.yaml"))
    config["data"]["init_args"].update(beton=str(copy_beton(colour_beton, tmp_path)), subset_size=16, holdout=4, global_batch=4,
                                       resolution=12)
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "tb")
    config["trainer"]["callbacks"][0]["init_args"]["dirpath"] = str(tmp_path / "ckpt")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit, match=rf"^error: refusing to load {path}: .* would run code") as refused:
        cli_main(["fit", "--config", str(tmp_path / "c.yaml"), "--ckpt_path", str(path), "--trainer.enable_progress_bar", "false"])
    assert "\n" not in str(refused.value.code)
    assert not marker.exists()
