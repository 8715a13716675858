"""Images filed under several classes: merged into one row with all their labels, trained on
with multi-hot targets (datamodules.multilabel, PretrainModule.loss_fn)."""
from __future__ import annotations

import json
import shutil

import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from datamodules.multilabel import PAD, multi_hot
from tests.conftest import WNIDS, copy_beton, write_colour_folder


@pytest.fixture(scope="module")
def multi_label_beton(tmp_path_factory):
    """The colour folder with one photograph also filed under a second class (a byte-identical copy)."""
    from conversion.convert import main

    root = tmp_path_factory.mktemp("multilabel")
    src = write_colour_folder(root / "src")
    shutil.copy(src / WNIDS[0] / f"{WNIDS[0]}_2.JPEG", src / WNIDS[3] / "copy_of_another.JPEG")
    main(["folder", str(src), str(root / "up.beton"), "--multi-label", "--num-workers", "1"])
    return root / "up.beton"


def _rows(beton, pipelines):
    from ffcv.loader import Loader, OrderOption

    loader = Loader(str(beton), batch_size=64, order=OrderOption.SEQUENTIAL, pipelines=pipelines, num_workers=1, drop_last=False)
    return [tuple(t.clone() for t in batch) for batch in loader][0]


def test_a_duplicate_becomes_one_row_with_both_labels(multi_label_beton):
    from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
    from ffcv.transforms import ToTensor

    manifest = json.loads(multi_label_beton.with_suffix(".json").read_text())
    assert manifest["num_images"] == 24  # 25 files, one of them a copy
    assert manifest["extra"]["duplicates_merged"] == 1
    assert manifest["fields"] == ["image", "label", "index", "labels"]
    assert manifest["multi_label"] == {"max_labels": 2, "images_with_several": 1}
    label, labels = _rows(multi_label_beton, {"image": None, "index": None, "label": [IntDecoder(), ToTensor()],
                                              "labels": [NDArrayDecoder(), ToTensor()]})
    several = [tuple(r) for r in labels.tolist() if r[1] != PAD]
    assert several == [(0, 3)]  # the class-0 photograph, also found under class 3
    assert (labels[:, 0] == label.flatten()).all()  # `label` stays the first class


def test_multi_hot_targets_ignore_the_padding():
    labels = torch.tensor([[2, PAD], [0, 3], [PAD, PAD], [1, 0]])
    expected = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.float32)
    assert torch.equal(multi_hot(labels, 4), expected)


@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_losses_against_several_labels(loss):
    from lightning_modules.pretrain import PretrainModule

    module = PretrainModule("resnetv2_tiny_bit", num_classes=4, loss=loss)
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.3, 0.2, -0.4, 1.0]])
    labels = torch.tensor([[0, 2], [3, PAD]])
    got = module.loss_fn(logits, labels)
    if loss == "softmax":  # uniform over an image's classes
        log_p = F.log_softmax(logits, 1)
        expected = (-(log_p[0, 0] + log_p[0, 2]) / 2 - log_p[1, 3]) / 2
        # one label per row, given as (B,) or as (B, 1): the same as plain cross-entropy
        assert module.loss_fn(logits, torch.tensor([[1], [3]])) == pytest.approx(F.cross_entropy(logits, torch.tensor([1, 3])).item())
    else:
        targets = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])
        expected = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum") / 2
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_training_reads_every_label(multi_label_beton, tmp_path):
    from datamodules.upstream import UpstreamDataModule
    from lightning_modules.pretrain import PretrainModule

    seen = []

    class Recording(PretrainModule):
        def training_step(self, batch, batch_idx):
            seen.append((batch[1].clone(), batch[2].clone()))
            return super().training_step(batch, batch_idx)

    beton = copy_beton(multi_label_beton, tmp_path)
    data = UpstreamDataModule(str(beton), holdout=4, batch_size=10, resolution=12, num_workers=1, multi_label=True)
    model = Recording("resnetv2_tiny_bit", num_classes=4, loss="sigmoid", warmup_steps=0)
    trainer = L.Trainer(max_steps=2, max_epochs=-1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1)
    trainer.fit(model, datamodule=data)
    labels = torch.cat([lab for lab, _ in seen])
    assert labels.shape == (20, 2)  # two batches of (B, max_labels)
    assert np.isfinite(trainer.callback_metrics["val/loss"].item())  # validation reads the single `label`

    plain = UpstreamDataModule(str(beton), holdout=4, batch_size=10, resolution=12, num_workers=1)
    images, single, index = next(iter(plain.train_dataloader()))  # the `labels` field is left out
    assert single.shape == (10,)


def test_multi_label_on_a_single_label_beton_is_refused(colour_beton):
    from datamodules.upstream import UpstreamDataModule

    with pytest.raises(ValueError, match=r"data.multi_label=true but .*colour.beton holds one label per image .*--multi-label"):
        UpstreamDataModule(str(colour_beton), multi_label=True)
