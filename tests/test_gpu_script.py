"""perf/gpu_steps.py off the GPU: its options parse, it refuses to run without CUDA in one line,
and its timed step trains (a tiny model on the CPU through the same code)."""
from __future__ import annotations

import pytest
import torch

from perf import gpu_steps


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_steps.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(option in out for option in ("--steps", "--batch", "--warmup", "--models"))


def test_without_cuda_one_line_and_nonzero_exit(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_steps.main(["--steps", "2", "--batch", "8"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "CUDA" in captured.err


def test_measured_steps_train_and_the_rate_matches_the_step_time():
    torch.manual_seed(0)
    module, optimizer = gpu_steps.build("resnetv2_tiny_bit", torch.device("cpu"), num_classes=10)
    before = [p.detach().clone() for p in module.parameters()]
    result = gpu_steps.measure(module, optimizer, batch=4, steps=2, warmup=1, resolution=32)
    assert result["peak_gib"] is None  # CUDA's allocator peak only exists on a GPU
    assert result["batch"] == 4 and result["ms_per_step"] > 0
    assert result["images_per_s"] == pytest.approx(4 / (result["ms_per_step"] / 1e3))
    # 3 SGD steps moved the weights (the head's bias at least: its gradient is softmax - one-hot)
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
