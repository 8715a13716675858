"""OOD releases are checked at start-up, not after fine-tuning.

Every configured release is scanned in the DataModule's ``setup``: a release that is
missing, unpacked a level too deep or too shallow, partial, or with a broken metadata file
is refused with one ``InputError`` line naming the benchmark and the folder, before the
first training step. The releases are generated in their real layouts, then broken the way
a download or an ``tar x`` in the wrong folder breaks them.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import yaml

from conversion.errors import InputError
from synthetic.miniature_classes import MINIATURE_WNIDS

WNIDS = list(MINIATURE_WNIDS[:8])  # touches every benchmark (see tests/test_ood_sets.py)
SIZE = 16
SUITE = dict(per_class=1, c_per_class=1, videos_per_class=1, neighbours=2)
ALL = ["imagenet_a", "imagenet_c", "imagenet_v2", "objectnet", "imagenet_vid_robust", "ytbb_robust"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Downstream train/val betons of the 8 classes and an intact OOD suite for them."""
    from conversion.beton import BetonSettings, convert_folder
    from tests.conftest import write_generated_suite

    root = tmp_path_factory.mktemp("setup_checks")
    down, _, sizes = write_generated_suite(root, WNIDS, SIZE, **SUITE)
    settings = BetonSettings(max_resolution=SIZE)
    train = convert_folder(down / "train", root / "train.beton", settings, num_workers=1)
    convert_folder(down / "val", root / "val.beton", settings, num_workers=1, classes=train["classes"])
    options = {name: {"expected_size": n} for name, n in sizes.items()}
    return SimpleNamespace(root=root, ood=root / "ood", train=root / "train.beton", val=root / "val.beton", options=options)


def _copy(data, tmp_path: Path) -> Path:
    """A private copy of the intact suite to break (without the generator's marker file)."""
    ood = tmp_path / "ood"
    shutil.copytree(data.ood, ood, ignore=shutil.ignore_patterns(".*"))
    return ood


def _datamodule(data, ood_root: Path, benchmarks=ALL):
    from datamodules.downstream import DownstreamDataModule

    return DownstreamDataModule(str(data.train), str(data.val), batch_size=4, resize=SIZE, crop=SIZE, num_workers=1,
                                ood_root=str(ood_root), benchmarks=list(benchmarks),
                                benchmark_options={n: data.options[n] for n in benchmarks}, ood_cache=str(ood_root.parent / "cache"))


def _nest(folder: Path) -> None:
    """Unpack ``folder`` one level too deep: its contents move into ``folder/<folder.name>``."""
    aside = folder.with_name(folder.name + ".aside")
    folder.rename(aside)
    folder.mkdir()
    aside.rename(folder / folder.name)


# Each break: (what it does to the ood root, the benchmark refused, the folder the message must name,
# words of the diagnosis and of the fix the message must hold).
def _a_too_deep(ood):
    _nest(ood / "imagenet-a")
    return "imagenet_a", ood / "imagenet-a", ["one level too deep", f"up into {ood / 'imagenet-a'}"]


def _vid_without_pmsets(ood):
    (ood / "imagenet_vid_ytbb_robust/imagenet-vid-robust/metadata/pmsets.json").unlink()
    return "imagenet_vid_robust", ood / "imagenet_vid_ytbb_robust/imagenet-vid-robust/metadata/pmsets.json", ["missing", "re-download"]


def _objectnet_missing(ood):
    shutil.rmtree(ood / "objectnet-1.0")
    return "objectnet", ood / "objectnet-1.0", ["does not exist", "unpack it there"]


def _vid_too_shallow(ood):
    # the outer imagenet_vid_ytbb_robust/ folder left out: the release lands directly in the root
    (ood / "imagenet_vid_ytbb_robust/imagenet-vid-robust").rename(ood / "imagenet-vid-robust")
    return "imagenet_vid_robust", ood / "imagenet_vid_ytbb_robust/imagenet-vid-robust", [
        "too shallow", f"move {ood / 'imagenet-vid-robust'} to"]


def _c_set_missing(ood):
    shutil.rmtree(ood / "imagenet-c/fog/3")  # a partial download: one of the 75 sets absent
    return "imagenet_c", ood / "imagenet-c", ["expected 75 (corruption, severity) sets, found 74", "fog/3", "re-download"]


def _ytbb_annotations_cut(ood):
    path = ood / "imagenet_vid_ytbb_robust/ytbb-robust/metadata/anchor_labels.json"
    path.write_text(json.dumps({"labels": json.loads(path.read_text())["labels"]}))  # was a bare KeyError
    return "ytbb_robust", path, ["lacks 'annotations'"]


def _v2_other_content(ood):
    # something else unpacked where ImageNet-V2 belongs
    v2 = ood / "imagenetv2-matched-frequency-format-val"
    shutil.rmtree(v2)
    (v2 / "images").mkdir(parents=True)
    return "imagenet_v2", v2, ["does not hold the imagenet_v2 release", "<class index 0..999>"]


BREAKS = [_a_too_deep, _vid_without_pmsets, _objectnet_missing, _vid_too_shallow, _c_set_missing,
          _ytbb_annotations_cut, _v2_other_content]


@pytest.mark.parametrize("breaks", BREAKS, ids=lambda f: f.__name__.strip("_"))
def test_setup_refuses_a_broken_release_in_one_line(data, tmp_path, breaks):
    ood = _copy(data, tmp_path)
    name, folder, words = breaks(ood)
    dm = _datamodule(data, ood)  # construction reads manifests only: the releases are not looked at yet
    with pytest.raises(InputError) as err:
        dm.setup("fit")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{name}: ") and str(folder) in message
    for word in words:
        assert word in message, (word, message)


def test_every_refused_release_is_named(data, tmp_path):
    ood = _copy(data, tmp_path)
    _a_too_deep(ood)
    _objectnet_missing(ood)
    with pytest.raises(InputError) as err:
        _datamodule(data, ood).setup("fit")
    message = str(err.value)
    assert message.startswith("imagenet_a: ") and message.endswith("(also refused: objectnet)")


def test_an_intact_suite_is_scanned_once(data, tmp_path, monkeypatch):
    """setup scans each release once; a second stage and the conversion at the end reuse the index."""
    import datamodules.ood as ood_module

    dm = _datamodule(data, data.ood)
    calls = {name: 0 for name in ALL}
    for name, bench in dm.ood.benchmarks.items():
        def counted(*args, _scan=bench.scan, _name=name, **kwargs):
            calls[_name] += 1
            return _scan(*args, **kwargs)
        monkeypatch.setattr(bench, "scan", counted)
    dm.setup("fit")
    assert calls == {name: 1 for name in ALL}
    dm.setup("test")  # Lightning calls setup again for trainer.test after trainer.fit
    written = []
    dm.ood.cache = tmp_path / "cache"  # nothing converted there yet
    monkeypatch.setattr(ood_module, "in_fresh_process", lambda fn, index, **job: written.append((fn, len(index))))
    index, _ = dm.ood.prepare("imagenet_a")
    assert calls == {name: 1 for name in ALL}
    assert written == [(ood_module.write_benchmark_beton, len(index))]
    assert len(index) == data.options["imagenet_a"]["expected_size"]


def test_validate_does_not_scan(data, tmp_path):
    """Only runs that end in an OOD evaluation (fit, test) are held to the releases."""
    ood = _copy(data, tmp_path)
    _objectnet_missing(ood)
    _datamodule(data, ood).setup("validate")


class _Steps(L.Callback):
    def __init__(self):
        self.batches = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches += 1


class _Tiny(L.LightningModule):
    """Trains on the uint8 batches if it gets any: without the start-up check this fit would run."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (batch[0].float().mean() * self.w).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fit_is_refused_before_the_first_training_step(data, tmp_path):
    ood = _copy(data, tmp_path)
    _a_too_deep(ood)
    steps = _Steps()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[steps])
    with pytest.raises(InputError, match="imagenet_a: .* one level too deep"):
        trainer.fit(_Tiny(), datamodule=_datamodule(data, ood))
    assert steps.batches == 0 and trainer.global_step == 0


def test_evaluation_only_run_is_refused_at_setup(data, tmp_path):
    from datamodules.ood import OODDataModule

    ood = _copy(data, tmp_path)
    _vid_without_pmsets(ood)
    dm = OODDataModule(str(data.val), str(ood), ALL, resolution=SIZE, benchmark_options=data.options, ood_cache=str(tmp_path / "cache"))
    with pytest.raises(InputError, match=r"imagenet_vid_robust: metadata file .*pmsets\.json is missing"):
        dm.setup("test")


def test_the_cli_refuses_at_setup(data, tmp_path):
    """``train.py fit --config configs/miniature/finetune.yaml`` with a misplaced release: one
    ``error: ...`` line before the trainer starts: no run folder, config or result written."""
    from lightning_modules.cli import cli_main

    ood = _copy(data, tmp_path)
    _a_too_deep(ood)
    config = yaml.safe_load(Path("configs/miniature/finetune.yaml").read_text())
    config["trainer"]["logger"]["init_args"]["save_dir"] = str(tmp_path / "tb")
    for callback in config["trainer"]["callbacks"]:  # by argument, not position: the list changes
        args = callback.get("init_args", {})
        args.update({key: str(tmp_path / folder) for key, folder in (("results_dir", "results"), ("out_dir", "grid")) if key in args})
    config["data"]["init_args"].update(train_beton=str(data.train), val_beton=str(data.val), ood_root=str(ood),
                                       ood_cache=str(tmp_path / "cache"), resize=SIZE, crop=SIZE, global_batch=4,
                                       benchmark_options=data.options)
    (tmp_path / "finetune.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(SystemExit) as err:
        cli_main(["fit", "--config", str(tmp_path / "finetune.yaml"), "--model.init_args.backbone", "resnetv2_tiny_bit",
                  "--trainer.enable_progress_bar", "false"])
    message = str(err.value.code)
    assert "\n" not in message
    assert message.startswith("error: imagenet_a: ") and "one level too deep" in message and str(ood / "imagenet-a") in message
    assert not (tmp_path / "tb").exists() and not list(tmp_path.rglob("*.ckpt"))  # not even a run folder
    assert not (tmp_path / "results").exists() and not (tmp_path / "grid").exists()
    assert not (tmp_path / "cache").exists()  # no beton converted either
