"""Images filed under several classes: one row with several labels (ImageNet-21k).

In the ImageNet-21k release the same photograph can sit in the tar of more than one synset
(byte-identical files under different names), so an image may carry several labels. With
``--multi-label`` the converter hashes every image's bytes, keeps one row per distinct image
(its first occurrence in class order) and stores every class it was found under. The beton
then has a fourth field ``labels``: ``max_labels`` int32 class indices, padded with -1
(``label`` stays the first class, for the class counts, subsets and validation).

Training reads ``labels`` in place of ``label`` (``multi_label_pipeline``) and the loss turns
them into multi-hot targets (``multi_hot``): sigmoid cross-entropy against them, or softmax
cross-entropy against their uniform distribution (``lightning_modules.pretrain``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from conversion.sources import ImageRef, LabelledImages, map_images, read_image_bytes

PAD = -1


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


def multi_label_pipeline(device: torch.device | None = None):
    """An FFCV pipeline spec that reads the ``labels`` field and delivers it as the ``label`` output:
    batches stay ``(images, labels, indices)``, with labels ``(B, max_labels)`` int32."""
    from ffcv.fields.decoders import NDArrayDecoder
    from ffcv.pipeline import PipelineSpec
    from ffcv.transforms import ToDevice, ToTensor

    return PipelineSpec("labels", decoder=NDArrayDecoder(), transforms=[ToTensor(), *([ToDevice(device, non_blocking=True)] if device else [])])


def multi_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(B, num_classes)`` 0/1 targets from ``(B, K)`` class indices padded with ``PAD``."""
    labels = labels.long()
    valid = labels != PAD
    targets = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device)
    # amax: a pad (clamped to class 0) must not overwrite a real class 0 in the same row
    return targets.scatter_reduce_(1, labels.clamp(min=0), valid.to(dtype), reduce="amax")
