"""Pipelines' device path and the train loader's tuning keywords (datamodules.pipelines / ffcv_loaders).

No GPU here: the CUDA pipelines are only inspected, never run.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ffcv.transforms import ToDevice, ToTensor, ToTorchImage

from datamodules.ffcv_loaders import train_loader
from datamodules.pipelines import eval_pipelines, hyperrule_train_pipelines, inception_train_pipelines

BUILDERS = {
    "inception": lambda **kw: inception_train_pipelines(16, **kw),
    "hyperrule": lambda **kw: hyperrule_train_pipelines(20, 16, **kw),
    "eval": lambda **kw: eval_pipelines(16, **kw),
}


def _types(ops):
    """Operation classes of one pipeline (a list) or of each pipeline of a dict."""
    if isinstance(ops, dict):
        return {k: _types(v) for k, v in ops.items()}
    return [type(op) for op in ops]


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_cuda_pipelines_end_on_the_device(build, device):
    pipelines = build(device=device)
    assert set(pipelines) == {"image", "label", "index"}
    for name, ops in pipelines.items():
        moves = [op for op in ops if isinstance(op, ToDevice)]
        assert len(moves) == 1, name
        assert moves[0].device == torch.device(device) and moves[0].device.type == "cuda"
        assert moves[0].non_blocking is True
    for name in ("label", "index"):
        assert isinstance(pipelines[name][-1], ToDevice)  # nothing left to do on the host
    image = _types(pipelines["image"])
    # the uint8 (B, H, W, 3) tensor crosses, then becomes a channels_last (B, 3, H, W) view there
    assert image[-3:] == [ToTensor, ToDevice, ToTorchImage]
    assert pipelines["image"][-1].channels_last is True


@pytest.mark.parametrize("build", BUILDERS.values(), ids=BUILDERS.keys())
@pytest.mark.parametrize("device", [None, "cpu", torch.device("cpu")])
def test_cpu_pipelines_have_no_transfer(build, device):
    pipelines = build(device=device)
    assert not any(isinstance(op, ToDevice) for ops in pipelines.values() for op in ops)
    assert _types(pipelines) == _types(build())  # unchanged from the default
    assert _types(pipelines)["image"][-2:] == [ToTensor, ToTorchImage]
    assert pipelines["image"][-1].channels_last is True


def test_train_loader_refuses_quasi_random_when_distributed(colour_beton):
    rows = np.arange(24, dtype=np.uint32)
    with pytest.raises(ValueError, match="quasi_random.*world_size"):
        train_loader(colour_beton, rows, 8, inception_train_pipelines(12), num_workers=1, seed=0, world_size=2, epoch=0,
                     os_cache=False, order="quasi_random")
    with pytest.raises(ValueError, match="order must be one of"):
        train_loader(colour_beton, rows, 8, inception_train_pipelines(12), num_workers=1, seed=0, world_size=1, epoch=0,
                     os_cache=True, order="sequential")


def test_quasi_random_process_cache_loader_sees_each_row_once(colour_beton):
    rows = np.array([0, 2, 3, 5, 7, 8, 11, 13, 17, 19, 20, 23], dtype=np.uint32)  # a subset, as upstream subsets are

    def epochs(seed):
        loader = train_loader(colour_beton, rows, 4, inception_train_pipelines(12), num_workers=1, seed=seed, world_size=1,
                              epoch=0, os_cache=False, drop_last=False, batches_ahead=1, order="quasi_random")
        assert loader.batches_ahead == 1 and type(loader.traversal_order).__name__ == "QuasiRandom"
        out = []
        for _ in range(2):
            seen = []
            for images, labels, index in loader:
                assert tuple(images.shape) == (len(index), 3, 12, 12) and images.dtype == torch.uint8
                seen.extend(index.tolist())
            out.append(seen)
        return out

    first, second = epochs(0)
    assert sorted(first) == sorted(second) == rows.tolist()
    assert epochs(0) == [first, second]  # the order is seeded
