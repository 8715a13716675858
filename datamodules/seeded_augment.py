"""Random crops and flips for FFCV that a seed makes reproducible, image by image.

FFCV 1.0.2 draws its crops (``get_random_crop``) and flips from numba's ``np.random``: one
state per thread, seeded from OS entropy and never by the loader's ``seed``, so two runs
over the same order see different augmentations, and a run resumed from a checkpoint
cannot repeat what the uninterrupted run would have drawn (``docs/data-loading.md``).

Here each image's draws are seeded from ``(seed, epoch, row)`` right before they are made,
inside the parallel loop. So an image gets the same crop and flip in a given epoch whatever
the thread count, the batch size, the number of ranks or the batch it lands in, and a
resumed run repeats what the uninterrupted run drew. The epoch lives in a one-element array
that the loader sets when an epoch starts (``set_epoch``; ``datamodules.resumable`` does);
the compiled code reads it through its address, because numba freezes the arrays a
function closes over as constants.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numba
import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder, get_random_crop
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.compiler import Compiler
from ffcv.pipeline.state import State
from ffcv.transforms import RandomHorizontalFlip
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_FLIP_SALT = 0x5EED  # the flip's stream differs from the crop's for the same image


def _splitmix(x):
    # splitmix64's finaliser (uint64 arithmetic wraps): a well-mixed 64-bit function of x
    z = x + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


_splitmix_c = numba.njit(_splitmix)


def image_seed(seed, epoch, row):
    """The seed (< 2^31) of the draws for beton row ``row`` in ``epoch`` of a loader seeded ``seed``."""
    h = _splitmix_c(np.uint64(seed))
    h = _splitmix_c(h ^ np.uint64(epoch))
    h = _splitmix_c(h ^ np.uint64(row))
    return np.int64(h >> np.uint64(33))


@intrinsic
def _as_pointer(typingctx, address):
    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)
    return types.voidptr(types.uint64), codegen


class EpochAware:
    """Holds the epoch its compiled code reads (a one-element array read through its address)."""

    def _init_epoch(self, seed: int) -> None:
        self.seed = int(seed)
        self._epoch = np.zeros(1, dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def _epoch_reader(self):
        address = np.uint64(self._epoch.ctypes.data)  # self._epoch lives as long as this operation

        @numba.njit
        def read_epoch():
            return numba.carray(_as_pointer(address), 1, np.int64)[0]

        return read_epoch


class SeededCropDecoder(EpochAware, ResizedCropRGBImageDecoder):
    """An FFCV resized-crop decoder whose crop draws are seeded per image (see the module doc).

    Subclasses choose the window through ``get_crop_generator`` as FFCV's decoders do;
    decoding and resizing are FFCV's (``imdecode``, ``resize_crop``), unchanged. The loader
    must call ``set_epoch`` as each epoch starts (``ResumableLoader`` does).

    ``parallel_chunksize``, read when the code is generated: numba's chunk size for the loop
    over a batch's images (``numba.set_parallel_chunksize``; 0, the default, is numba's static
    split into one block per thread). Which thread decodes an image never changes its pixels.
    """

    parallel_chunksize = 0

    def __init__(self, output_size: tuple[int, int], seed: int):
        super().__init__(output_size)
        self._init_epoch(seed)

    def generate_code(self) -> Callable:
        # FFCV's ResizedCropRGBImageDecoder.generate_code (1.0.2) plus the per-image seed
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        get_crop_c = Compiler.compile(self.get_crop_generator)
        image_seed_c = Compiler.compile(image_seed)
        read_epoch = self._epoch_reader()
        scale, ratio, seed = np.array(self.scale), np.array(self.ratio), self.seed
        chunksize = self.parallel_chunksize

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            epoch = read_epoch()
            previous_chunksize = numba.set_parallel_chunksize(chunksize)  # this thread's setting, restored below
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
                np.random.seed(image_seed_c(seed, epoch, batch_indices[dst_ix]))
                i, j, h, w = get_crop_c(height, width, scale, ratio)
                resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            numba.set_parallel_chunksize(previous_chunksize)
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


def mirror_columns(image):
    """Reverse the columns of one ``(H, W, C)`` image in place (``image[:, ::-1]``, without a copy)."""
    width, channels = image.shape[1], image.shape[2]
    for r in range(image.shape[0]):
        row = image[r]
        for left in range(width // 2):
            right = width - 1 - left
            if channels == 3:  # RGB, unrolled: ~1.6x faster under numba
                a0, a1, a2 = row[left, 0], row[left, 1], row[left, 2]
                row[left, 0], row[left, 1], row[left, 2] = row[right, 0], row[right, 1], row[right, 2]
                row[right, 0], row[right, 1], row[right, 2] = a0, a1, a2
            else:
                for c in range(channels):
                    a = row[left, c]
                    row[left, c] = row[right, c]
                    row[right, c] = a


class SeededHorizontalFlip(EpochAware, RandomHorizontalFlip):
    """FFCV's ``RandomHorizontalFlip`` with each image's draw seeded from ``(seed, epoch, row)``.

    The same draws and pixels as FFCV's flip, but in place: the images drawn for a flip have
    their columns reversed where the decoder wrote them, and the others are left alone. FFCV's
    flip copies every image into a buffer of its own (``dst[i] = images[i]`` or
    ``images[i, :, ::-1]``), which under numba cost ~80 us per 224-px image on CPU-2 against
    ~12 us for this, and one more batch-sized buffer per prefetch slot.
    """

    def __init__(self, seed: int, flip_prob: float = 0.5):
        super().__init__(flip_prob)
        self._init_epoch(seed)

    def declare_state_and_memory(self, previous_state: State) -> tuple[State, None]:
        return replace(previous_state, jit_mode=True), None  # in place: no buffer of its own

    def generate_code(self) -> Callable:
        my_range = Compiler.get_iterator()
        image_seed_c = Compiler.compile(image_seed)
        mirror_c = Compiler.compile(mirror_columns)
        read_epoch = self._epoch_reader()
        flip_prob, seed = self.flip_prob, self.seed + _FLIP_SALT

        def flip(images, dst, indices):
            # images: the decoder's (B, H, W, 3) uint8 output, modified in place; dst: None
            epoch = read_epoch()
            for i in my_range(images.shape[0]):
                np.random.seed(image_seed_c(seed, epoch, indices[i]))
                if np.random.rand() < flip_prob:
                    mirror_c(images[i])
            return images

        flip.is_parallel = True
        flip.with_indices = True
        return flip
