"""ImageNet class lists, read from the files timm installs (``timm/data/_info/``).

The project keeps no copies: timm ships the ImageNet-1k wnid order, ImageNet-A's 200
wnids and the WordNet lemmas, and these functions read them from the installed package.

- ``imagenet1k_wnids()``: the 1,000 ImageNet-1k wnids in index order (sorted wnids: the
  order of torchvision's ``ImageFolder`` and of every standard 1k head; ImageNet-V2's folder
  ``k`` and the ``*_class_idx_map.json`` files of the video benchmarks index this list).
- ``imagenet_a_wnids()``: ImageNet-A's 200 wnids (sorted, as its release folders).
- ``wnid_lemmas()``: wnid → WordNet lemma string (e.g. ``"rocking chair, rocker"``); these
  are the ImageNet-1k label strings that ObjectNet's ``imagenet_to_label_2012_v2`` uses.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources


def _info_lines(name: str) -> list[str]:
    path = resources.files("timm.data") / "_info" / name
    if not path.is_file():
        raise FileNotFoundError(f"timm's class list {name} not found in the installed timm package ({path}); upgrade timm")
    return [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]


@lru_cache(maxsize=None)
def imagenet1k_wnids() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k wnids in output-index order (``imagenet_synsets.txt``)."""
    wnids = tuple(line.strip() for line in _info_lines("imagenet_synsets.txt"))
    if len(wnids) != 1000 or len(set(wnids)) != 1000:
        raise ValueError(f"timm's imagenet_synsets.txt has {len(wnids)} entries ({len(set(wnids))} distinct); expected 1000")
    return wnids


@lru_cache(maxsize=None)
def imagenet_a_wnids() -> tuple[str, ...]:
    """ImageNet-A's 200 wnids (``imagenet_a_synsets.txt``)."""
    wnids = tuple(line.strip() for line in _info_lines("imagenet_a_synsets.txt"))
    if len(wnids) != 200:
        raise ValueError(f"timm's imagenet_a_synsets.txt has {len(wnids)} entries; expected 200")
    return wnids


@lru_cache(maxsize=None)
def wnid_lemmas() -> dict[str, str]:
    """wnid → lemma string for every synset timm knows (``imagenet_synset_to_lemma.txt``)."""
    out = {}
    for line in _info_lines("imagenet_synset_to_lemma.txt"):
        wnid, _, lemma = line.partition("\t")
        out[wnid.strip()] = lemma.strip()
    return out
