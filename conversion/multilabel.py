"""Images filed under several classes: one row with several labels (ImageNet-21k).

In the ImageNet-21k release the same photograph can sit in the tar of more than one synset
(byte-identical files under different names), so an image may carry several labels. With
``--multi-label`` the converter hashes every image's bytes, keeps one row per distinct image
(its first occurrence in class order) and stores every class it was found under. The beton
then has a fourth field ``labels``: ``max_labels`` int32 class indices, padded with ``PAD``
(``label`` stays the first class, for the class counts, subsets and validation).

Reading that field and turning it into targets is the loaders' and the model's job
(``datamodules.multilabel``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from conversion.sources import ImageRef, LabelledImages, map_images, read_image_bytes

PAD = -1  # the padding of a ``labels`` row: part of the beton format


def image_digest(ref: ImageRef) -> bytes:
    """A 128-bit digest of the image file's bytes (byte-identical copies share it)."""
    return hashlib.blake2b(read_image_bytes(ref), digest_size=16).digest()


@dataclass(frozen=True)
class MergedImages:
    """Distinct images with the sorted classes each was found under (``label_sets``)."""

    images: LabelledImages  # one ref per distinct image; labels = the first occurrence's class
    label_sets: list[tuple[int, ...]]
    duplicates_merged: int


def merge_duplicates(images: LabelledImages, num_workers: int = 1) -> MergedImages:
    """Group byte-identical files: one row each, labelled with every class they appear under."""
    refs = list(images.refs)
    digests = map_images(image_digest, refs, num_workers, desc="hashing images")
    groups: dict[bytes, list[int]] = {}
    for i, digest in enumerate(digests):
        groups.setdefault(digest, []).append(i)
    first = [members[0] for members in groups.values()]  # dicts keep insertion order: first occurrences, in order
    labels = np.asarray(images.labels, dtype=np.int64)
    label_sets = [tuple(sorted({int(labels[i]) for i in members})) for members in groups.values()]
    merged = LabelledImages([refs[i] for i in first], labels[first], images.classes, images.source, images.check)
    return MergedImages(merged, label_sets, len(refs) - len(first))


def pad_label_sets(label_sets, max_labels: int) -> np.ndarray:
    """``(N, max_labels)`` int32, each row a label set padded with ``PAD``."""
    out = np.full((len(label_sets), max_labels), PAD, dtype=np.int32)
    for row, labels in enumerate(label_sets):
        out[row, :len(labels)] = labels[:max_labels]
    return out
