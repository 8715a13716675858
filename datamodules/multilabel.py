"""Reading the multi-label field of an ImageNet-21k beton, and its targets.

A beton converted with ``--multi-label`` (``conversion.multilabel``) has a ``labels`` field:
``max_labels`` class indices per image, padded with ``PAD``. Training reads it in place of
``label`` (``multi_label_pipeline``) and the loss turns it into multi-hot targets
(``multi_hot``): sigmoid cross-entropy against them, or softmax cross-entropy against their
uniform distribution (``lightning_modules.pretrain``).
"""
from __future__ import annotations

import torch

from conversion.multilabel import PAD

__all__ = ["PAD", "multi_hot", "multi_label_pipeline"]


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
