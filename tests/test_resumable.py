"""A training loader resumed part-way through an epoch yields the rest of that epoch's order."""
from __future__ import annotations

import numpy as np
import pytest

from datamodules.pipelines import inception_train_pipelines
from datamodules.resumable import ResumableLoader


def _loader(beton, epoch, start_batch=0, world=1):
    from ffcv.loader import OrderOption

    loader = ResumableLoader(str(beton), batch_size=4, num_workers=1, order=OrderOption.RANDOM, distributed=world > 1, seed=11,
                             indices=np.arange(24, dtype=np.uint32), pipelines=inception_train_pipelines(12), drop_last=True,
                             start_batch=start_batch)
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
