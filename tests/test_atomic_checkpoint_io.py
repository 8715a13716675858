"""A checkpoint save is all or nothing: a save that dies leaves the previous file intact."""
from __future__ import annotations

import pytest
import torch

from callbacks.atomic_checkpoint_io import AtomicCheckpointIO


class Unpicklable:
    """Fails while ``torch.save`` writes it: a save interrupted half-way."""

    def __reduce__(self):
        raise RuntimeError("interrupted while writing")


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_temp_file(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "ckpt" / "last.ckpt"
    io.save_checkpoint({"global_step": 10, "w": torch.arange(1000.0)}, path)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="interrupted"):
        io.save_checkpoint({"global_step": 20, "w": torch.zeros(100_000), "x": Unpicklable()}, path)
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["global_step"] == 10
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no .last.ckpt.*.tmp left


def test_a_save_replaces_the_file_whole(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    io.save_checkpoint({"global_step": 2, "w": torch.ones(3)}, path)
    loaded = io.load_checkpoint(path, weights_only=True)
    assert loaded["global_step"] == 2 and torch.equal(loaded["w"], torch.ones(3))
