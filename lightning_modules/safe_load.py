"""Loading checkpoints and weight files without executing code from them."""
from __future__ import annotations

import pickle
from pathlib import Path

import torch


class UnsafeCheckpointError(ValueError):
    """A file that ``torch.load(weights_only=True)`` refuses: it would need to run code to load."""


def load_plain(path: str | Path) -> dict:
    """``torch.load(path, weights_only=True)`` on the CPU; anything but plain data is refused in one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise refusal(path, err) from err


def refusal(path: str | Path, err: BaseException) -> UnsafeCheckpointError:
    """The one-line refusal for ``path`` (``err``: the unpickler's complaint; the line naming what it refused is kept)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    reason = next((line for line in lines if "global" in line.lower() and "weights only" not in line.lower()), lines[0])[:200]
    return UnsafeCheckpointError(
        f"refusing to load {path}: it holds more than tensors and plain data, and loading it would run code "
        f"from the file ({reason}); re-save its state_dict (or convert it to .safetensors) from a trusted environment")
