"""The in-place seeded flip and the decoder's chunk size change no pixel (datamodules.seeded_augment)."""
from __future__ import annotations


import numba
import numpy as np
import pytest
import torch

from datamodules.ffcv_loaders import train_loader
from datamodules.pipelines import inception_train_pipelines
from datamodules.seeded_augment import SeededRandomResizedCrop, mirror_columns
from perf.loader_profile import copying_seeded_flip  # the flip as it was: the reference

ROWS = np.arange(24, dtype=np.uint32)


@pytest.mark.parametrize("shape", [(5, 7, 3), (4, 6, 3), (3, 5, 1), (2, 1, 3)])
def test_mirror_columns_reverses_the_columns_in_place(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    expected = image[:, ::-1].copy()
    for mirror in (mirror_columns, numba.njit(mirror_columns)):
        out = image.copy()
        mirror(out)
        assert np.array_equal(out, expected)


def _epochs(beton, pipelines, threads, epochs=2):
    loader = train_loader(beton, ROWS, 8, pipelines, num_workers=threads, seed=5, world_size=1, epoch=0, os_cache=True)
    return [torch.cat([images.clone() for images, _, _ in loader]) for _ in range(epochs)]


def test_in_place_flip_gives_the_copying_flips_pixels(colour_beton):
    new = _epochs(colour_beton, inception_train_pipelines(12, seed=3), threads=2)
    old_pipelines = inception_train_pipelines(12, seed=3)
    old_pipelines["image"][1] = copying_seeded_flip(3)
    old = _epochs(colour_beton, old_pipelines, threads=2)
    for a, b in zip(new, old):
        assert torch.equal(a, b)
    assert not torch.equal(new[0], new[1])  # the epochs drew different crops: the comparison has teeth


def test_parallel_chunksize_changes_no_pixel(colour_beton):
    default = _epochs(colour_beton, inception_train_pipelines(12, seed=3), threads=2)
    chunked_pipelines = inception_train_pipelines(12, seed=3)
    decoder = chunked_pipelines["image"][0]
    assert isinstance(decoder, SeededRandomResizedCrop)
    decoder.parallel_chunksize = 1  # images handed out one at a time to whichever thread is free
    chunked = _epochs(colour_beton, chunked_pipelines, threads=2)
    for a, b in zip(default, chunked):
        assert torch.equal(a, b)
