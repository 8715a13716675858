"""Which data an upstream run was pre-trained on, and whether that data is still there.

A finished upstream run is reused by every cell that shares it, in later sessions too. If
the data under its beton paths has since been regenerated or reconverted (another generator
version, another ``--max-resolution``, a fixed download), its cells would fine-tune from a
model of other data, and the grid would mix the two without a trace. So ``done.json``
records, for every beton the run's resolved config reads (any ``*beton`` key of
``data.init_args``), the sha256 its conversion manifest states; before a cell uses the run,
and when the runner plans, the manifests are read again (a small JSON file each: no
hashing of the betons) and a changed or vanished one refuses the run's cells in one line
that says what to delete.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def beton_paths(config: dict[str, Any]) -> list[str]:
    """The beton paths a resolved stage config reads: string ``*beton`` values of ``data.init_args``."""
    args = ((config or {}).get("data") or {}).get("init_args") or {}
    return [v for k, v in sorted(args.items()) if k.endswith("beton") and isinstance(v, str) and v]


def manifest_sha256(beton: str | Path) -> str | None:
    """The sha256 the beton's conversion manifest states, or None (no manifest, or none stated)."""
    from conversion.beton import manifest_path  # conversion's naming rule, read lazily: `study list` stays light

    path = manifest_path(Path(beton))
    try:
        return json.loads(path.read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None


def data_identity(config: dict[str, Any] | None) -> dict[str, str | None]:
    """``{beton path: manifest sha256}`` for every beton of a resolved stage config."""
    return {path: manifest_sha256(path) for path in beton_paths(config or {})}


def data_changes(recorded: dict[str, str | None] | None) -> list[str]:
    """What differs between the data a run recorded and what its paths hold now, one phrase each.

    A run finished before identities were recorded (no ``data`` in ``done.json``) has nothing
    to compare and passes.
    """
    problems = []
    for path, sha in (recorded or {}).items():
        now = manifest_sha256(path)
        if now != sha:
            was = f"sha256 {sha[:12]}" if sha else "no manifest"
            problems.append(f"{path} held {was}, now {'sha256 ' + now[:12] if now else 'no manifest'}")
    return problems
