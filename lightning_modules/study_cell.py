"""The identity of a run inside a study: which cell of the grid it fills."""
from __future__ import annotations

import os


def current_seed() -> int | None:
    """The seed LightningCLI's ``seed_everything`` set for this process (None if unset)."""
    value = os.environ.get("PL_GLOBAL_SEED")
    return int(value) if value is not None else None


def make_cell(model: str, data_size: int | None, steps: int | None, seed: int | None) -> dict:
    """``{"model", "data_size", "steps", "seed"}``: upstream model, images and steps of the cell."""
    return {"model": model, "data_size": data_size, "steps": steps, "seed": seed}
