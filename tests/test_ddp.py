"""Evaluation under DDP: 2 CPU ranks (gloo) count every OOD example exactly once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import _stage_config

pytestmark = pytest.mark.slow


def _test_run(cell, results: Path, devices: int) -> dict:
    world, ckpt, _, ft_cfg = cell

    def to_results(c):
        c["trainer"]["callbacks"][0]["init_args"]["result_file"] = str(results / "cell.json")  # the cell's record kept
        c["trainer"]["callbacks"][1]["init_args"].update(results_dir=str(results), out_dir=str(results / "grid"))

    cfg = _stage_config(ft_cfg, results.with_suffix(".yaml"), to_results)
    cmd = [sys.executable, "train.py", "test", "--config", str(cfg), "--config", str(world / "data/ood_options.yaml"),
           "--model.init_args.upstream_checkpoint", str(ckpt), "--trainer.enable_progress_bar", "false",
           "--trainer.devices", str(devices), "--trainer.strategy", "ddp" if devices > 1 else "auto",
           "--trainer.logger.init_args.name", f"ddp{devices}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = results.glob("*.json")
    return json.loads(path.read_text())


def test_two_ranks_match_one_rank_exactly(cell, tmp_path):
    world, _, _, _ = cell
    one = _test_run(cell, tmp_path / "one", devices=1)
    two = _test_run(cell, tmp_path / "two", devices=2)
    # some set sizes are odd, so FFCV's padding sampler would have duplicated an example on one rank
    assert any(t["images"] % 2 for t in two["timings"].values())
    assert two["errors"] == pytest.approx(one["errors"], abs=1e-6)
    assert two["metrics"] == pytest.approx(one["metrics"], abs=1e-5)
