"""Small file utilities: atomic writes and checksums."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file whose bytes replace ``path`` when the ``with`` block ends cleanly:
    readers see the old file or the whole new one, never a part.

    The bytes go to a hidden temp file in the same folder (same file system, so
    ``os.replace`` is atomic), are fsynced, then renamed; an exception (or a kill) leaves
    ``path`` as it was. Any number of processes may write different files into one folder at
    once. The file gets the usual 0666 & ~umask mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # hidden and ending in .tmp, so readers globbing *.json or *.ckpt never pick it up
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are shared on clusters
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see `atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()
