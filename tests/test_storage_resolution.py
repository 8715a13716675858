"""A beton stored below the crop a run trains or evaluates at is refused at start-up: the
converter's ``--max-resolution`` shrank every image, and training would upsample it again.

Betons here are converted from folders of 24 px images with the converter's own code; the
refusal is one line naming the beton, the stored size, the crop and the flag that fixes it.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conversion.beton import BetonSettings, convert_folder
from conversion.convert import FINETUNE_STORAGE, PRETRAIN_STORAGE, build_parser
from conversion.errors import InputError
from recipes import hyperrule
from tests.conftest import write_colour_folder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def betons(tmp_path_factory):
    """The same 24 px images stored with caps 16 (shrunk), 24 (kept) and 64 (never reached)."""
    base = tmp_path_factory.mktemp("storage")
    src = write_colour_folder(base / "src", size=24)
    return {cap: convert_folder(src, base / f"cap{cap}.beton", BetonSettings(max_resolution=cap), num_workers=1) and base / f"cap{cap}.beton"
            for cap in (16, 24, 64)}


def _refusal(beton, cap, crop):
    return (rf"{re.escape(str(beton))} stores images at most {cap} px .* this run crops {crop} px.*"
            rf"--max-resolution {crop} --overwrite.*allow_upsampling: true")


def test_finetuning_refuses_a_crop_above_the_stored_size_unless_allowed(betons):
    from datamodules.downstream import DownstreamDataModule

    with pytest.raises(InputError, match=_refusal(betons[16], 16, 20)) as err:
        DownstreamDataModule(str(betons[16]), str(betons[24]), resize=22, crop=20)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match=_refusal(betons[16], 16, 20)):  # the val beton is checked too
        DownstreamDataModule(str(betons[24]), str(betons[16]), resize=22, crop=20)
    assert DownstreamDataModule(str(betons[16]), str(betons[16]), resize=22, crop=20, allow_upsampling=True).crop == 20
    assert DownstreamDataModule(str(betons[24]), str(betons[24]), resize=28, crop=24).crop == 24  # crop = stored size


def test_a_cap_no_image_reached_shrank_nothing_and_passes(betons):
    from datamodules.downstream import DownstreamDataModule

    # 24 px originals under a 64 px cap: stored as they are; a 96 px crop upsamples them, as the
    # reference pipeline does with small originals, but storage lost nothing
    assert DownstreamDataModule(str(betons[64]), str(betons[64]), resize=110, crop=96).crop == 96


def test_the_hyperrule_resolution_is_checked_when_the_crop_comes_from_it(betons):
    from datamodules.downstream import DownstreamDataModule

    # 24 px images are "small" for the HyperRule (under 96x96): 160/128, above the 16 px store
    with pytest.raises(InputError, match=_refusal(betons[16], 16, hyperrule.SMALL_IMAGE_RESOLUTION[1])):
        DownstreamDataModule(str(betons[16]), str(betons[16]))


def test_pretraining_and_evaluation_check_their_crop_too(betons, tmp_path):
    from datamodules.ood import OODDataModule
    from datamodules.upstream import UpstreamDataModule

    with pytest.raises(InputError, match=_refusal(betons[16], 16, 20)):
        UpstreamDataModule(str(betons[16]), resolution=20)
    assert UpstreamDataModule(str(betons[16]), resolution=16).num_classes == 4
    assert UpstreamDataModule(str(betons[16]), resolution=20, allow_upsampling=True).num_classes == 4
    with pytest.raises(InputError, match=_refusal(betons[16], 16, 20)):
        OODDataModule(str(betons[16]), str(tmp_path), ["imagenet_a"], resolution=20)


def test_the_refusal_comes_before_a_run_folder_from_the_real_command(betons, tmp_path):
    logs = tmp_path / "tb"
    result = subprocess.run(
        [sys.executable, "train.py", "fit", "--config", "configs/miniature/finetune.yaml",
         "--data.init_args.train_beton", str(betons[16]), "--data.init_args.val_beton", str(betons[16]),
         "--data.init_args.benchmarks", "[]", "--data.init_args.resize", "22", "--data.init_args.crop", "20",
         "--trainer.logger.init_args.save_dir", str(logs), "--trainer.callbacks", "[]"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert re.search(_refusal(betons[16], 16, 20), lines[-1]), result.stderr[-2000:]
    assert not logs.exists()


def test_converter_defaults_follow_their_use():
    parser = build_parser()
    default = lambda *argv: parser.parse_args([*argv, "src", "out.beton"]).max_resolution  # noqa: E731
    crops = [crop for _resize, crop in hyperrule.RESOLUTIONS.values()]
    resizes = [resize for resize, _crop in hyperrule.RESOLUTIONS.values()]
    for command in ("imagenet1k-train", "imagenet1k-val"):  # fine-tuning squashes to 448 or 512 before its crop
        assert default(command) == FINETUNE_STORAGE >= max(resizes) > max(crops)
    assert default("imagenet21k", "--release", "winter21") == PRETRAIN_STORAGE >= 224
    assert parser.parse_args(["imagenet1k-train", "src", "out", "--max-resolution", "300"]).max_resolution == 300
