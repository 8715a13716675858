"""FFCV decode/augment pipelines.

Every loader of this project yields ``(images, labels, indices)``: ``images`` are uint8
``(B, 3, H, W)`` tensors, ``labels`` int64 ``(B,)``, ``indices`` int64 ``(B,)`` (the row of
the image in its beton, used to count each evaluation example exactly once).
Scaling to float and normalisation happen on the device inside the LightningModule,
so a batch crosses the host/device boundary once, as uint8.
"""
from __future__ import annotations

import numpy as np
from ffcv.fields.decoders import IntDecoder, RandomResizedCropRGBImageDecoder
from ffcv.fields.rgb_image import ResizedCropRGBImageDecoder
from ffcv.transforms import RandomHorizontalFlip, Squeeze, ToTensor, ToTorchImage


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


class SquashRandomCropDecoder(ResizedCropRGBImageDecoder):
    """BiT's fine-tuning train crop: squash to ``resize`` x ``resize``, random ``crop`` x ``crop``.

    Done in one decode step by cropping the equivalent window of the original image.
    """

    def __init__(self, resize: int, crop: int):
        if crop > resize:
            raise ValueError(f"crop ({crop}) must not exceed resize ({resize})")
        super().__init__((crop, crop))
        self.scale = (crop / resize, crop / resize)
        self.ratio = (1.0, 1.0)

    @property
    def get_crop_generator(self):
        return _random_fixed_fraction_crop


def _int_pipeline() -> list:
    return [IntDecoder(), ToTensor(), Squeeze(1)]


def _image_tail() -> list:
    return [ToTensor(), ToTorchImage()]


def inception_train_pipelines(resolution: int, min_scale: float = 0.08) -> dict[str, list]:
    """Upstream training: Inception-style random resized crop + horizontal flip (BiT-M)."""
    decoder = RandomResizedCropRGBImageDecoder((resolution, resolution), scale=(min_scale, 1.0))
    return {
        "image": [decoder, RandomHorizontalFlip(), *_image_tail()],
        "label": _int_pipeline(),
        "index": _int_pipeline(),
    }


def hyperrule_train_pipelines(resize: int, crop: int) -> dict[str, list]:
    """Downstream training (BiT HyperRule): squash to ``resize``, random ``crop``, flip."""
    return {
        "image": [SquashRandomCropDecoder(resize, crop), RandomHorizontalFlip(), *_image_tail()],
        "label": _int_pipeline(),
        "index": _int_pipeline(),
    }


def eval_pipelines(resolution: int) -> dict[str, list]:
    """Evaluation: squash the whole image to ``resolution`` x ``resolution``."""
    return {
        "image": [SquashResizeDecoder((resolution, resolution)), *_image_tail()],
        "label": _int_pipeline(),
        "index": _int_pipeline(),
    }
