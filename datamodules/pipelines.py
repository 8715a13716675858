"""FFCV decode/augment pipelines.

Every loader of this project yields ``(images, labels, indices)``: ``images`` are uint8
``(B, 3, H, W)`` tensors, ``labels`` int64 ``(B,)``, ``indices`` int64 ``(B,)`` (the row of
the image in its beton, used to count each evaluation example exactly once).
Scaling to float and normalisation happen on the device inside the LightningModule,
so a batch crosses the host/device boundary once, as uint8.

Images are ``channels_last`` (``ToTorchImage(channels_last=True)``: a permuted view of FFCV's
``(B, H, W, 3)`` buffer). Given a CUDA ``device``, every pipeline ends with FFCV's
``ToDevice(device, non_blocking=True)``, so batches arrive on the GPU already (the copy runs
on FFCV's own CUDA stream, the training step waits for it) and Lightning's
``transfer_batch_to_device`` has nothing left to move. On the CPU (``device`` None or a CPU
device) the pipelines are the same as without it.
"""
from __future__ import annotations

import numpy as np
import torch
from ffcv.fields.decoders import IntDecoder
from ffcv.fields.rgb_image import ResizedCropRGBImageDecoder
from ffcv.transforms import Squeeze, ToDevice, ToTensor, ToTorchImage

from datamodules.seeded_augment import SeededCropDecoder, SeededHorizontalFlip, SeededRandomResizedCrop


def _whole_image(height, width, scale, ratio):
    # (i, j, h, w) of the crop: all of it, so the resize squashes the image to a square.
    return 0, 0, height, width


def _random_fixed_fraction_crop(height, width, scale, ratio):
    # A random window covering the fraction scale[0] of each side: identical to squashing the
    # image to a square of side R and taking a random crop of side C, with scale[0] = C / R.
    h = max(1, int(round(height * scale[0])))
    w = max(1, int(round(width * scale[0])))
    i = int(np.random.uniform(0, height - h + 1))
    j = int(np.random.uniform(0, width - w + 1))
    return i, j, h, w


class SquashResizeDecoder(ResizedCropRGBImageDecoder):
    """Decode and resize the whole image to ``output_size`` without keeping its aspect ratio.

    This is BiT's evaluation transform ("square resize to the crop size, no centre crop").
    """

    def __init__(self, output_size: tuple[int, int]):
        super().__init__(output_size)
        self.scale = (1.0, 1.0)
        self.ratio = (1.0, 1.0)

    @property
    def get_crop_generator(self):
        return _whole_image


class SquashRandomCropDecoder(SeededCropDecoder):
    """BiT's fine-tuning train crop: squash to ``resize`` x ``resize``, random ``crop`` x ``crop``.

    Done in one decode step by cropping the equivalent window of the original image; the
    window is drawn from ``seed`` and the batch (``datamodules.seeded_augment``).
    """

    def __init__(self, resize: int, crop: int, seed: int = 0):
        if crop > resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        super().__init__((crop, crop), seed)
        self.scale = (crop / resize, crop / resize)
        self.ratio = (1.0, 1.0)

    @property
    def get_crop_generator(self):
        return _random_fixed_fraction_crop


def _cuda(device: torch.device | str | None) -> torch.device | None:
    """``device`` when it is a CUDA device, else None (the CPU pipelines need no transfer)."""
    if device is None:
        return None
    device = torch.device(device)
    return device if device.type == "cuda" else None


def _to_device(device: torch.device | None) -> list:
    return [] if device is None else [ToDevice(device, non_blocking=True)]


def _int_pipeline(device: torch.device | None = None) -> list:
    return [IntDecoder(), ToTensor(), Squeeze(1), *_to_device(device)]


def _image_tail(device: torch.device | None = None) -> list:
    # uint8 (B, H, W, 3) -> [device] -> (B, 3, H, W) channels_last view; FFCV's ImageNet recipe order.
    return [ToTensor(), *_to_device(device), ToTorchImage(channels_last=True)]


def _pipelines(image: list, device: torch.device | str | None) -> dict[str, list]:
    device = _cuda(device)
    return {"image": [*image, *_image_tail(device)], "label": _int_pipeline(device), "index": _int_pipeline(device)}


def inception_train_pipelines(resolution: int, min_scale: float = 0.08, *, seed: int = 0,
                              device: torch.device | str | None = None) -> dict[str, list]:
    """Upstream training: Inception-style random resized crop + horizontal flip (BiT-M).

    Crops and flips are drawn from ``seed`` and each batch's rows: the same rows in the same
    order get the same augmentation, whatever the thread count, also after a resume.
    """
    decoder = SeededRandomResizedCrop((resolution, resolution), seed, scale=(min_scale, 1.0))
    return _pipelines([decoder, SeededHorizontalFlip(seed)], device)


def hyperrule_train_pipelines(resize: int, crop: int, *, seed: int = 0,
                              device: torch.device | str | None = None) -> dict[str, list]:
    """Downstream training (BiT HyperRule): squash to ``resize``, random ``crop``, flip (seeded as above)."""
    return _pipelines([SquashRandomCropDecoder(resize, crop, seed), SeededHorizontalFlip(seed)], device)


def eval_pipelines(resolution: int, *, device: torch.device | str | None = None) -> dict[str, list]:
    """Evaluation: squash the whole image to ``resolution`` x ``resolution``."""
    return _pipelines([SquashResizeDecoder((resolution, resolution))], device)
