"""Shared fixtures: tiny labelled image folders and betons built in the real layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")


def write_colour_folder(root: Path, wnids=WNIDS, per_class: int = 6, size: int = 24, seed: int = 0) -> Path:
    """``root/<wnid>/<wnid>_<n>.JPEG``: each class a distinct colour plus noise."""
    rng = np.random.default_rng(seed)
    for k, wnid in enumerate(wnids):
        folder = root / wnid
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            base = np.array([(k * 67) % 256, (k * 131 + 40) % 256, (k * 29 + 90) % 256], dtype=np.float64)
            img = np.clip(base + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(folder / f"{wnid}_{n}.JPEG", quality=90)
    return root


@pytest.fixture(scope="session")
def colour_beton(tmp_path_factory) -> Path:
    """A beton of 4 classes x 6 images (24 rows) with its manifest."""
    from conversion.beton import convert_folder

    root = tmp_path_factory.mktemp("colour")
    write_colour_folder(root / "src")
    convert_folder(root / "src", root / "colour.beton", num_workers=1)
    return root / "colour.beton"


def _stage_config(src: str, dst: Path, edit) -> Path:
    config = yaml.safe_load(Path(src).read_text())
    edit(config)
    dst.write_text(yaml.safe_dump(config))
    return dst


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """Generated data in the real layouts (tiny), converted by the quickstart's own code."""
    from study.quickstart import generate_data

    root = tmp_path_factory.mktemp("world")
    spec = {
        "root": str(root / "data"), "seed": 0, "image_size": 32,
        "upstream_classes": 6, "upstream_images_per_class": 10,
        "downstream_train_per_class": 3, "downstream_val_per_class": 2,
        "ood": {"per_class": 1, "c_per_class": 1, "videos_per_class": 1, "neighbours": 2, "hard_pool": 4},
    }
    generate_data(spec)
    return root


CELL_NAME = "resnetv2_tiny_bit-size=40-steps=4-seed=0"  # the `cell` fixture's run


@pytest.fixture(scope="session")
def cell(world):
    """Run one cell; returns (root, upstream checkpoint, finetune log dir)."""
    data, runs = world / "data", world / "runs"

    def pre(c):
        c["trainer"]["logger"]["init_args"]["save_dir"] = str(runs / "tb")
        c["data"]["init_args"].update(beton=str(data / "betons/upstream.beton"), holdout=10, subset_size=40, global_batch=8)

    def fine(c):
        c["trainer"]["logger"]["init_args"]["save_dir"] = str(runs / "tb")
        c["trainer"]["log_every_n_steps"] = 1
        # what a study passes: where the result goes and what the run is (the checkpoint does not say)
        c["trainer"]["callbacks"][0]["init_args"] = {
            "result_file": str(runs / "results" / f"{CELL_NAME}.json"),
            "record": {"model": "resnetv2_tiny_bit", "data_size": 40, "steps": 4, "seed": 0, "run_name": CELL_NAME}}
        c["trainer"]["callbacks"][1]["init_args"].update(results_dir=str(runs / "results"), out_dir=str(runs / "grid"))
        c["data"]["init_args"].update(train_beton=str(data / "betons/downstream_train.beton"), val_beton=str(data / "betons/downstream_val.beton"),
                                      ood_root=str(data / "ood"), global_batch=8, eval_batch_size=32)
        c["model"]["init_args"]["schedule_scale"] = 0.01  # 5 steps

    from lightning_modules.cli import cli_main

    up_cfg = _stage_config("configs/miniature/pretrain.yaml", world / "pre.yaml", pre)
    ft_cfg = _stage_config("configs/miniature/finetune.yaml", world / "ft.yaml", fine)
    quiet = ["--trainer.enable_progress_bar", "false"]
    up = cli_main(["fit", "--config", str(up_cfg), "--trainer.max_steps", "4", *quiet])
    ckpt = up.trainer.checkpoint_callback.last_model_path
    ft = cli_main(["fit", "--config", str(ft_cfg), "--config", str(data / "ood_options.yaml"), *quiet,
                   "--model.init_args.upstream_checkpoint", ckpt])
    ft.trainer.save_checkpoint(runs / "finetuned.ckpt")  # what tests of evaluation-only runs load
    return world, Path(ckpt), Path(ft.trainer.log_dir), ft_cfg



def copy_beton(beton: Path, folder: Path) -> Path:
    """A private copy of ``beton`` and its manifest in ``folder`` (subset index files get written beside it)."""
    import shutil

    from conversion.beton import manifest_path

    copy = folder / "up.beton"
    shutil.copy(beton, copy)
    shutil.copy(manifest_path(beton), manifest_path(copy))
    return copy


def write_generated_suite(root: Path, wnids, size: int, val_per_class: int = 1, **suite):
    """Generated downstream folders (2 train / ``val_per_class`` val images a class) and the OOD
    suite over them in the real release layouts; returns ``(downstream root, release paths,
    {benchmark: expected_size})``."""
    from synthetic.folders import write_imagenet1k_folders
    from synthetic.ood_sets import expected_sizes, write_ood_suite

    down = write_imagenet1k_folders(root / "imagenet1k", wnids, 2, val_per_class, seed=1, size=size)
    paths = write_ood_suite(root / "ood", down, wnids, seed=2, size=size, hard_pool=4, **suite)
    return down, paths, expected_sizes(wnids, **suite)
