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


def _counting_allocations(loader):
    calls = []
    fresh = loader._allocate_fresh

    def counted(*args):
        calls.append(args)
        return fresh(*args)

    loader._allocate_fresh = counted
    return calls


def test_buffers_are_allocated_once_and_every_epoch_matches_a_fresh_loader(colour_beton):
    import torch

    loader = _loader(colour_beton, epoch=0)
    calls = _counting_allocations(loader)
    kept = [_batches(loader) for _ in range(3)]
    assert len(calls) == 1  # one allocation for three epochs (FFCV's Loader makes one per epoch)
    for epoch, batches in enumerate(kept):
        fresh = _batches(_loader(colour_beton, epoch=epoch))  # a new loader: new buffers
        assert [i.tolist() for _, i in batches] == [i.tolist() for _, i in fresh]
        assert all(torch.equal(a, b) for (a, _), (b, _) in zip(batches, fresh))


def test_an_epoch_left_early_stops_its_thread_and_the_next_is_whole(colour_beton):
    import torch

    loader = _loader(colour_beton, epoch=0)
    first = iter(loader)
    next(first)  # leave epoch 0 after one batch: its thread decodes ahead into the kept buffers
    running = loader._running
    second = _batches(loader)
    assert not running.is_alive()  # stopped before epoch 1 was handed the same buffers
    fresh = _batches(_loader(colour_beton, epoch=1))
    assert [i.tolist() for _, i in second] == [i.tolist() for _, i in fresh]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(second, fresh))


def test_the_last_batch_of_an_epoch_survives_the_next_epochs_first(colour_beton):
    import torch

    loader = _loader(colour_beton, epoch=0)  # 6 batches, 5 slots: epoch 0 ends in slot 0
    *_, (last_images, _, last_index) = list(loader)
    held = last_images.clone(), last_index.clone()
    next(iter(loader))  # epoch 1 starts: its thread fills up to batches_ahead + 1 slots
    assert torch.equal(last_images, held[0]) and torch.equal(last_index, held[1])
