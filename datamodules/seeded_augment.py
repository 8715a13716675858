"""Random crops and flips for FFCV that a seed makes reproducible, image by image.

FFCV 1.0.2 draws its crops (``get_random_crop``) and flips from numba's ``np.random``: one
state per thread, seeded from OS entropy and never by the loader's ``seed``, so two runs
over the same order see different augmentations, and a run resumed from a checkpoint
cannot repeat what the uninterrupted run would have drawn (``docs/data-loading.md``).

Here every draw is seeded from ``(seed, the batch's rows, the image's place in the batch)``
right before it is made. The batch's rows are a function of the loader's seed and epoch
(FFCV's order), so a resumed run, a run with another number of decoding threads, or the
same rows on another machine all get the same crop and flip for each image. FFCV's own
``MixUp`` seeds the same way, from the batch's indices. Seeding inside the parallel loop
makes the draws independent of which thread decodes which image.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder, get_random_crop
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.compiler import Compiler
from ffcv.transforms import RandomHorizontalFlip

_PRIME = 2147483647  # 2^31 - 1: keeps every product below 2^63 in numba's int64 arithmetic
_FLIP_SALT = 7919  # the flip's stream differs from the crop's for the same batch


def batch_key(seed, batch_indices):
    """A number in [0, 2^31 - 1) determined by ``seed`` and the ordered rows of a batch."""
    key = seed % _PRIME
    for k in range(len(batch_indices)):
        key = (key * 48271 + np.int64(batch_indices[k]) + 1) % _PRIME
    return key


def image_seed(key, position):
    """The seed of the draws for the image at ``position`` of the batch with ``key``."""
    return (key * 69069 + position * 40503 + 1) % _PRIME


class SeededCropDecoder(ResizedCropRGBImageDecoder):
    """An FFCV resized-crop decoder whose crop draws are seeded per image (see the module doc).

    Subclasses choose the window through ``get_crop_generator`` as FFCV's decoders do;
    decoding and resizing are FFCV's (``imdecode``, ``resize_crop``), unchanged.
    """

    def __init__(self, output_size: tuple[int, int], seed: int):
        super().__init__(output_size)
        self.seed = int(seed)

    def generate_code(self) -> Callable:
        # FFCV's ResizedCropRGBImageDecoder.generate_code (1.0.2) plus the per-image seed
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        get_crop_c = Compiler.compile(self.get_crop_generator)
        batch_key_c = Compiler.compile(batch_key)
        image_seed_c = Compiler.compile(image_seed)
        scale, ratio, seed = np.array(self.scale), np.array(self.ratio), self.seed

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            key = batch_key_c(seed, batch_indices)
            for dst_ix in my_range(len(batch_indices)):
                field = metadata[batch_indices[dst_ix]]
                image_data = mem_read(field["data_ptr"], storage_state)
                height = np.uint32(field["height"])
                width = np.uint32(field["width"])
                if field["mode"] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    imdecode_c(image_data, temp_buffer, height, width, height, width, 0, 0, 1, 1, False, False)
                    temp_buffer = temp_buffer.reshape(-1)[:3 * height * width].reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)
                np.random.seed(image_seed_c(key, dst_ix))
                i, j, h, w = get_crop_c(height, width, scale, ratio)
                resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            return destination[:len(batch_indices)]

        decode.is_parallel = True
        return decode


class SeededRandomResizedCrop(SeededCropDecoder):
    """Inception-style random resized crop (FFCV's ``get_random_crop``), seeded per image."""

    def __init__(self, output_size: tuple[int, int], seed: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        super().__init__(output_size, seed)
        self.scale, self.ratio = scale, ratio

    @property
    def get_crop_generator(self):
        return get_random_crop


class SeededHorizontalFlip(RandomHorizontalFlip):
    """FFCV's ``RandomHorizontalFlip`` with its one draw per batch seeded from the batch's rows."""

    def __init__(self, seed: int, flip_prob: float = 0.5):
        super().__init__(flip_prob)
        self.seed = int(seed)

    def generate_code(self) -> Callable:
        my_range = Compiler.get_iterator()
        batch_key_c = Compiler.compile(batch_key)
        flip_prob, seed = self.flip_prob, self.seed + _FLIP_SALT

        def flip(images, dst, indices):
            np.random.seed(batch_key_c(seed, indices))
            should_flip = np.random.rand(images.shape[0]) < flip_prob
            for i in my_range(images.shape[0]):
                if should_flip[i]:
                    dst[i] = images[i, :, ::-1]
                else:
                    dst[i] = images[i]
            return dst

        flip.is_parallel = True
        flip.with_indices = True
        return flip
