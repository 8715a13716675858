"""Crops and flips are a function of (seed, epoch, row): reproducible across loaders, thread
counts, batch sizes and a resume part-way through an epoch (datamodules.seeded_augment)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from datamodules.ffcv_loaders import train_loader
from datamodules.pipelines import hyperrule_train_pipelines, inception_train_pipelines

ROWS = np.arange(24, dtype=np.uint32)
PIPELINES = {
    "inception": lambda seed: inception_train_pipelines(12, seed=seed),
    "hyperrule": lambda seed: hyperrule_train_pipelines(20, 12, seed=seed),
}


def _epochs(beton, build, *, seed=0, order_seed=5, threads=1, epochs=2, start_batch=0, batch_size=4):
    loader = train_loader(beton, ROWS, batch_size, build(seed), num_workers=threads, seed=order_seed, world_size=1, epoch=0,
                          os_cache=True, start_batch=start_batch)
    out = []
    for _ in range(epochs):
        # clone: FFCV reuses its batch buffers
        out.append([(images.clone(), index.clone()) for images, _, index in loader])
    return out


def _images(epoch):
    return torch.cat([images for images, _ in epoch])


@pytest.mark.parametrize("name", PIPELINES)
def test_same_seed_same_augmentation_whatever_the_thread_count(colour_beton, name):
    one = _epochs(colour_beton, PIPELINES[name], threads=1)
    two = _epochs(colour_beton, PIPELINES[name], threads=2)
    for a, b in zip(one, two):
        assert torch.equal(torch.cat([i for _, i in a]), torch.cat([i for _, i in b]))
        assert torch.equal(_images(a), _images(b))


def _by_row(epoch):
    return dict(zip(torch.cat([i for _, i in epoch]).tolist(), _images(epoch)))


@pytest.mark.parametrize("name", PIPELINES)
def test_an_image_gets_the_same_augmentation_in_any_batch(colour_beton, name):
    # batches of 4 and of 8 group the rows differently (and order_seed 6 orders them differently)
    small = _epochs(colour_beton, PIPELINES[name], batch_size=4, epochs=1)[0]
    large = _epochs(colour_beton, PIPELINES[name], batch_size=8, epochs=1, order_seed=6)[0]
    a, b = _by_row(small), _by_row(large)
    assert a.keys() == b.keys() and all(torch.equal(a[row], b[row]) for row in a)


@pytest.mark.parametrize("name", PIPELINES)
def test_another_seed_or_epoch_draws_other_crops(colour_beton, name):
    base = _epochs(colour_beton, PIPELINES[name], seed=0)
    other = _epochs(colour_beton, PIPELINES[name], seed=1)
    # same order (order_seed fixed), other augmentation seed: most images differ
    assert torch.equal(torch.cat([i for _, i in base[0]]), torch.cat([i for _, i in other[0]]))
    differs = (_images(base[0]) != _images(other[0])).flatten(1).any(1)
    assert differs.float().mean() > 0.5
    # the same image in the next epoch gets another crop (another batch key)
    first, second = (_by_row(e) for e in base)
    changed = [not torch.equal(first[row], second[row]) for row in first]
    assert np.mean(changed) > 0.5


def test_flips_are_drawn_per_image(colour_beton):
    # one batch of 24 of the same seed: with a fixed crop (resize == crop), only flips vary
    loader = train_loader(colour_beton, ROWS, 24, hyperrule_train_pipelines(24, 24, seed=3), num_workers=1, seed=0,
                          world_size=1, epoch=0, os_cache=True)
    plain = train_loader(colour_beton, ROWS, 24, hyperrule_train_pipelines(24, 24, seed=3), num_workers=1, seed=0,
                         world_size=1, epoch=0, os_cache=True)
    (images, _, index), = [(i.clone(), l, x.clone()) for i, l, x in loader]
    (again, _, _), = [(i.clone(), l, x) for i, l, x in plain]
    assert torch.equal(images, again)
    flipped = torch.tensor([torch.equal(img, ref.flip(-1)) and not torch.equal(img, ref)
                           for img, ref in zip(images, _unflipped(colour_beton, index))])
    assert 0 < flipped.sum() < len(flipped)  # some flipped, some not


def _unflipped(beton, index):
    from ffcv.loader import Loader, OrderOption

    from datamodules.pipelines import eval_pipelines

    loader = Loader(str(beton), batch_size=len(index), order=OrderOption.SEQUENTIAL, indices=index.numpy().astype(np.uint32),
                    pipelines=eval_pipelines(24), num_workers=1)
    (images, _, rows), = [(i.clone(), l, r.clone()) for i, l, r in loader]
    by_row = dict(zip(rows.tolist(), images))
    return [by_row[r] for r in index.tolist()]


def test_resumed_epoch_repeats_the_same_augmented_batches(colour_beton):
    whole = _epochs(colour_beton, PIPELINES["inception"], epochs=1)[0]
    resumed = _epochs(colour_beton, PIPELINES["inception"], epochs=1, start_batch=2)[0]
    assert len(resumed) == len(whole) - 2
    for (a, ia), (b, ib) in zip(whole[2:], resumed):
        assert torch.equal(ia, ib) and torch.equal(a, b)
