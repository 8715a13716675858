"""A training loader resumed part-way through an epoch yields the rest of that epoch's order."""
from __future__ import annotations

import numpy as np
import pytest

from datamodules.pipelines import inception_train_pipelines
from datamodules.resumable import ResumableLoader


def _loader(beton, epoch, start_batch=0, rank=0, world=1, batch_size=4):
    from ffcv.loader import OrderOption

    loader = ResumableLoader(str(beton), batch_size=batch_size, num_workers=1, order=OrderOption.RANDOM, seed=11,
                             indices=np.arange(24, dtype=np.uint32), pipelines=inception_train_pipelines(12), drop_last=True,
                             start_batch=start_batch, rank=rank, world_size=world)
    loader.next_epoch = epoch
    return loader


def _epochs(loader, n):
    return [[index.tolist() for _, _, index in loader] for _ in range(n)]


@pytest.mark.parametrize("start", [1, 4])
def test_resumed_epoch_is_the_tail_of_the_uninterrupted_one(colour_beton, start):
    whole = _epochs(_loader(colour_beton, epoch=0), 3)
    resumed = _epochs(_loader(colour_beton, epoch=1, start_batch=start), 2)
    assert whole[1] != whole[2]  # epochs differ, so the comparison can fail
    assert resumed[0] == whole[1][start:]  # the rest of the interrupted epoch, nothing repeated
    assert resumed[1] == whole[2]  # the next epoch is whole again
    assert len(_loader(colour_beton, epoch=1, start_batch=start)) == 6  # the epoch's length is unchanged


def test_state_names_the_epoch(colour_beton):
    loader = _loader(colour_beton, epoch=3)
    _epochs(loader, 1)
    assert loader.state_dict() == {"epoch": 3}


def _batches(loader):
    # clone: FFCV reuses its batch buffers
    return [(images.clone(), index.clone()) for images, _, index in loader]


def test_global_batches_and_pixels_are_the_same_on_one_rank_or_two(colour_beton):
    import torch
    from torch.utils.data import DistributedSampler

    one = _batches(_loader(colour_beton, epoch=2, batch_size=8))
    ranks = [_batches(_loader(colour_beton, epoch=2, rank=r, world=2, batch_size=4)) for r in range(2)]
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 3
    for (images, index), (im0, ix0), (im1, ix1) in zip(one, *ranks):
        assert sorted(index.tolist()) == sorted(ix0.tolist() + ix1.tolist())  # step k: the same 8 rows
        by_row = dict(zip(index.tolist(), images))
        for img, row in zip(torch.cat([im0, im1]), torch.cat([ix0, ix1]).tolist()):
            assert torch.equal(img, by_row[row])  # and the same crop and flip of each
    assert not set(torch.cat([i for _, i in ranks[0]]).tolist()) & set(torch.cat([i for _, i in ranks[1]]).tolist())
    # rank r's rows are DistributedSampler's for that rank: FFCV's distributed order is unchanged
    sampler = DistributedSampler(range(24), num_replicas=2, rank=1, shuffle=True, seed=11)
    sampler.set_epoch(2)
    assert torch.cat([i for _, i in ranks[1]]).tolist() == list(sampler)
