"""One folder per run, named by what the run computes, so that a rerun of the same command
finds it again (``--ckpt_path last``) and continues the same TensorBoard run.

Lightning's TensorBoardLogger numbers its folders ``version_0, version_1, ...``: every rerun
gets a new one, and ModelCheckpoint (which saves under the logger's folder) then finds no
``last.ckpt`` to resume from. Here the logger's version is ``run-<hash>`` of the resolved
config instead, where the hash covers every setting that changes what is computed and leaves
out what only changes how it is run or recorded (``IGNORED``): callbacks, the logger, progress
bars, worker counts, and ``--ckpt_path`` itself. Pure functions; the CLI applies them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# dotted keys of a subcommand's config that do not change what a run computes
IGNORED = (
    "ckpt_path", "config", "weights_only",
    "trainer.callbacks", "trainer.logger", "trainer.enable_progress_bar", "trainer.enable_model_summary",
    "trainer.default_root_dir", "data.init_args.num_workers",
)


def run_version(config: dict[str, Any], subcommand: str) -> str:
    """``run-<10 hex digits>``: sha256 of ``config`` (a subcommand's resolved config as plain
    data) without the ``IGNORED`` keys, and of the subcommand. Key order does not matter."""
    kept = json.loads(json.dumps(config, default=str))
    for dotted in IGNORED:
        *parents, last = dotted.split(".")
        node = kept
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    text = json.dumps({"subcommand": subcommand, "config": kept}, sort_keys=True)
    return "run-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def last_checkpoint(folder: Path) -> Path | None:
    """The newest ``last*.ckpt`` in ``folder`` (what Lightning's ``--ckpt_path last`` picks), or None."""
    candidates = [p for p in Path(folder).glob("last*.ckpt") if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def checkpoint_step(path: Path | str) -> int:
    """The ``global_step`` a checkpoint was saved at (memory-mapped: a multi-GB state is not read)."""
    import torch  # here: the study's coordinating process stays torch-free

    return int(torch.load(path, mmap=True, weights_only=True, map_location="cpu").get("global_step", -1))
