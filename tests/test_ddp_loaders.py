"""The loaders under 2 real CPU ranks (gloo): disjoint training data, every eval example counted once."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.slow


def _rank_main(rank: int, world: int, beton: str, port: int, out: str) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1]))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from torchmetrics import SumMetric

    from callbacks.indexed_outcomes import IndexedOutcomes
    from datamodules.ffcv_loaders import eval_loader, train_loader
    from datamodules.pipelines import eval_pipelines, inception_train_pipelines

    # evaluation over 23 rows: 2 ranks cannot split it evenly
    seen, counted, outcomes = [], SumMetric(), IndexedOutcomes()
    for images, labels, index in eval_loader(Path(beton), np.arange(23, dtype=np.uint32), 4, lambda: eval_pipelines(12), "eval:12",
                                             num_workers=1, rank=rank, world_size=world):
        seen.extend(index.tolist())
        counted.update(torch.tensor(float(len(index))))
        outcomes.update(index, labels == index // 6, torch.ones(len(index)))
    total = counted.compute().item()  # synced across ranks: the count a logged eval metric is built on
    unique, correct, _ = outcomes.compute()

    # training: FFCV's distributed sampler, one epoch, same seed on both ranks
    train = []
    loader = train_loader(Path(beton), np.arange(24, dtype=np.uint32), 4, inception_train_pipelines(12), num_workers=1, seed=3,
                          world_size=world, epoch=0, os_cache=True)
    for _, _, index in loader:
        train.extend(index.tolist())
    Path(out, f"rank{rank}.json").write_text(json.dumps({"eval": seen, "total": total, "unique": unique.tolist(),
                                                         "correct": int(correct.sum()), "train": train}))
    dist.barrier()
    dist.destroy_process_group()


def test_two_ranks_split_train_data_and_count_eval_examples_once(colour_beton, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank_main, args=(2, str(colour_beton), port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))

    assert not set(r0["eval"]) & set(r1["eval"]) and sorted(r0["eval"] + r1["eval"]) == list(range(23))
    assert len(r0["eval"]) + len(r1["eval"]) == 23  # no rank was padded with a duplicate
    assert r0["total"] == r1["total"] == 23
    assert r0["unique"] == r1["unique"] == list(range(23)) and r0["correct"] == 23  # labels are row // 6 in the fixture

    assert not set(r0["train"]) & set(r1["train"])
    assert sorted(r0["train"] + r1["train"]) == list(range(24)) and len(r0["train"]) == len(r1["train"]) == 12
