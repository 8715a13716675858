"""Where the FFCV training loader's time goes beyond decoding: per-image costs and a ladder of loaders.

Two measurements on the images and beton of ``perf.loader_throughput`` (same options):

1. **Per-image costs, one thread** (``serial_costs``): over the first ``--limit`` rows'
   stored JPEGs, best of ``--passes`` passes, each operation of the training pipeline alone
   in a numba loop compiled as FFCV compiles its pipelines: cv2's decode of the stored bytes
   (what the ``decode_stored`` limit does), FFCV's ``imdecode`` of the same bytes, seeding
   numba's generator (``np.random.seed``, twice per image: crop and flip), the crop draw, FFCV's
   ``resize_crop`` (the system OpenCV's ``cv::resize``, INTER_AREA, to R x R) with 1 OpenCV
   thread and with its default, and the flip: FFCV's copy into a buffer of its own vs in place.
   Their sum against cv2's decode is the ceiling the pipeline could reach with perfect
   parallelism and no loader overhead.
2. **The ladder** (``LADDER``): ``train_loader`` over the same beton with the same threads,
   batch and order, one operation added per rung, timed in the same rounds as the
   ``decode_stored`` limit (ratios within rounds, as ``perf.loader_throughput``):
   ``read`` (the loader reading each image's bytes, no decode: per-batch Python, thread
   hand-off, buffers), ``decode`` (+ FFCV's imdecode), ``crop`` (+ FFCV's unseeded random
   resized crop), ``seeded_crop`` (+ the per-image seeding), ``copy_flip`` (+ the seeded flip as
   it was: a copy per image), ``train`` (the training pipeline as it is: in-place flip); then
   options on ``train``, one each: ``fresh`` (FFCV's fresh batch buffers every epoch, as
   its own ``Loader`` allocates them, instead of the training loader's kept ones), ``chunk`` (numba's ``--chunksize`` for the decoder's
   loop instead of one static block per thread), ``cv1`` (the system OpenCV at 1 thread
   during that loader's epochs), and ``stock`` (FFCV's own unseeded crop and flip, for
   reference). Each rung's cost is the median within-round difference of wall microseconds
   per image from the rung before it (options: from ``train``). The last column is how much
   longer each of an epoch's first ``batches_ahead + 2`` batches takes than a later one (the
   epoch's thread starting; with ``fresh``, the new buffers' pages faulted in too); needs
   epochs of more than that many batches.

    .venv/bin/python -m perf.loader_profile                       # 3,000 images, 256-px beton, 2 threads, 6 rounds
    .venv/bin/python -m perf.loader_profile --max-resolution 512  # the originals kept (400 px)
    .venv/bin/python -m perf.loader_profile --serial-only
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import statistics
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np

from perf.loader_throughput import (VARIANTS, DecodeStored, FFCVLoader, _warm_up, add_data_arguments, prepare,
                                    ratio, ready_beton, stored_images, time_rounds)

# rung: what it adds; the rungs before "train" each add one operation to the previous one
LADDER = {
    "decode_stored": "the limit: cv2.imdecode of the stored bytes, processes",
    "read": "FFCV loader, each image's bytes read, nothing decoded (1-pixel output)",
    "decode": "+ FFCV's imdecode into its scratch buffer (1-pixel output)",
    "crop": "+ random resized crop: FFCV's RandomResizedCropRGBImageDecoder, unseeded",
    "seeded_crop": "+ the crop seeded per image (SeededRandomResizedCrop)",
    "copy_flip": "+ seeded flip as it was (FFCV's flip code: a copy of every image)",
    "train": "the training pipeline as it is (seeded crop + in-place seeded flip)",
}
OPTIONS = {
    "fresh": "train, batch buffers allocated afresh every epoch as FFCV's Loader does (the training loader keeps them)",
    "chunk": "train, the decoder's loop in numba chunks of --chunksize images (default: one block per thread)",
    "cv1": "train, the system OpenCV (FFCV's resize) at 1 thread during its epochs",
    "stock": "FFCV's own RandomResizedCrop + RandomHorizontalFlip (unseeded), for reference",
}


# ---------------------------------------------------------------- the system OpenCV FFCV links


def system_opencv() -> ctypes.CDLL | None:
    """The ``libopencv_core`` FFCV's C extension is linked against (not the pip ``cv2``'s own), or None."""
    import ffcv.libffcv  # noqa: F401  (loads it)

    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if "libopencv_core" in path:
            return ctypes.CDLL(path)
    return None


@contextmanager
def opencv_threads(n: int | None):
    """The system OpenCV's thread count set to ``n`` inside the block (None: unchanged)."""
    lib = system_opencv() if n is not None else None
    if lib is None:
        yield
        return
    previous = lib._ZN2cv13getNumThreadsEv()  # cv::getNumThreads()
    lib._ZN2cv13setNumThreadsEi(n)
    try:
        yield
    finally:
        lib._ZN2cv13setNumThreadsEi(previous)


# ---------------------------------------------------------------- per-image costs, one thread


@functools.cache  # kept for the process: numba's finaliser fails on closures collected mid-run (KeyError noise)
def _kernels():
    """The serial loops, compiled as FFCV compiles its pipeline code (``Compiler.compile``)."""
    from ffcv.fields.rgb_image import get_random_crop
    from ffcv.libffcv import imdecode, resize_crop
    from ffcv.pipeline.compiler import Compiler

    from datamodules.seeded_augment import image_seed, mirror_columns

    imdecode_c, resize_c = Compiler.compile(imdecode), Compiler.compile(resize_crop)
    crop_c, seed_c, mirror_c = Compiler.compile(get_random_crop), Compiler.compile(image_seed), Compiler.compile(mirror_columns)

    def decode(data, offsets, sizes, heights, widths, out, out_offsets):
        for k in range(len(offsets)):
            h, w = heights[k], widths[k]
            imdecode_c(data[offsets[k]:offsets[k] + sizes[k]], out[out_offsets[k]:out_offsets[k] + h * w * 3],
                       h, w, h, w, 0, 0, 1, 1, False, False)

    def seed_each(rows, seed, epoch):
        for k in range(len(rows)):
            np.random.seed(seed_c(seed, epoch, rows[k]))

    def draw(heights, widths, scale, ratio, windows):
        for k in range(len(heights)):
            i, j, h, w = crop_c(heights[k], widths[k], scale, ratio)
            windows[k, 0], windows[k, 1], windows[k, 2], windows[k, 3] = i, j, h, w

    def resize(decoded, out_offsets, heights, widths, windows, out):
        for k in range(len(heights)):
            h, w = heights[k], widths[k]
            image = decoded[out_offsets[k]:out_offsets[k] + h * w * 3].reshape(h, w, 3)
            i, j, hh, ww = windows[k, 0], windows[k, 1], windows[k, 2], windows[k, 3]
            resize_c(image, i, i + hh, j, j + ww, out[k])

    def flip_copy(images, dst, flips):  # FFCV's RandomHorizontalFlip body
        for k in range(images.shape[0]):
            if flips[k]:
                dst[k] = images[k, :, ::-1]
            else:
                dst[k] = images[k]

    def flip_in_place(images, flips):  # SeededHorizontalFlip's body
        for k in range(images.shape[0]):
            if flips[k]:
                mirror_c(images[k])

    return {f.__name__: Compiler.compile(f) for f in (decode, seed_each, draw, resize, flip_copy, flip_in_place)}


SERIAL = {  # key: what serial_costs times
    "cv2": "cv2.imdecode of the stored bytes (the decode_stored limit's decoder)",
    "decode": "FFCV imdecode of the stored bytes (system libturbojpeg, FASTDCT)",
    "seed": "seeding numba's generator (np.random.seed(image_seed(...))), one call",
    "draw": "crop draw (get_random_crop)",
    "resize1": "resize_crop to R px (FFCV's cv::resize, INTER_AREA), system OpenCV at 1 thread",
    "resize": "resize_crop to R px, system OpenCV at its default thread count",
    "flip_copy": "flip as FFCV's code does it: every image copied (half of them mirrored)",
    "flip_in_place": "flip in place (SeededHorizontalFlip now; the same half mirrored)",
}


def serial_costs(beton: Path, resolution: int, limit: int, passes: int) -> tuple[dict[str, float], int]:
    """Microseconds per image of each operation of ``SERIAL`` alone, one thread, and the number of images."""
    import cv2

    stored = stored_images(beton)
    rows = np.flatnonzero(stored["mode"] == 0)[:limit]
    mapped = np.memmap(beton, np.uint8, mode="r")
    chunks = [np.asarray(mapped[o:o + n]) for o, n in zip(stored["offset"][rows], stored["size"][rows])]
    data = np.concatenate(chunks)
    sizes = np.array([len(c) for c in chunks], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    heights, widths = stored["height"][rows].astype(np.uint32), stored["width"][rows].astype(np.uint32)
    pixels = heights.astype(np.int64) * widths * 3
    out_offsets = np.concatenate([[0], np.cumsum(pixels)[:-1]]).astype(np.int64)
    decoded = np.empty(int(pixels.sum()), np.uint8)
    windows = np.empty((len(rows), 4), np.int64)
    out = np.empty((len(rows), resolution, resolution, 3), np.uint8)  # (N, R, R, 3)
    dst = np.empty_like(out)
    scale, aspect = np.array((0.08, 1.0)), np.array((3 / 4, 4 / 3))
    flips = np.random.default_rng(0).random(len(rows)) < 0.5
    k = _kernels()
    cv2.setNumThreads(1)

    def cv2_decode():
        for o, n in zip(offsets.tolist(), sizes.tolist()):
            cv2.imdecode(data[o:o + n], cv2.IMREAD_COLOR)

    def resize_with(threads):
        def run():
            with opencv_threads(threads):
                k["resize"](decoded, out_offsets, heights, widths, windows, out)
        return run

    ops = {  # in SERIAL's order: decode before resize, the draw before resize
        "cv2": cv2_decode,
        "decode": lambda: k["decode"](data, offsets, sizes, heights, widths, decoded, out_offsets),
        "seed": lambda: k["seed_each"](rows.astype(np.int64), 0, 0),
        "draw": lambda: k["draw"](heights, widths, scale, aspect, windows),
        "resize1": resize_with(1),
        "resize": resize_with(None),
        "flip_copy": lambda: k["flip_copy"](out, dst, flips),
        "flip_in_place": lambda: k["flip_in_place"](out, flips),
    }
    best = dict.fromkeys(ops, float("inf"))
    for run in ops.values():  # compile, and give resize its input
        run()
    for _ in range(passes):  # operations interleaved within each pass: load hits all alike
        for name, run in ops.items():
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    return {name: seconds / len(rows) * 1e6 for name, seconds in best.items()}, len(rows)


def print_serial(costs: dict[str, float], images: int, passes: int, resolution: int) -> None:
    print(f"\n| operation, one thread, best of {passes} passes over {images} images | us per image |")
    print("| --- | --- |")
    for name, us in costs.items():
        print(f"| {SERIAL[name].replace('R px', f'{resolution} px')} | {us:.1f} |")
    parts = {"decode": costs["decode"], "seeding (x2)": 2 * costs["seed"], "draw": costs["draw"],
             "resize": costs["resize1"], "flip": costs["flip_in_place"]}
    train = sum(parts.values())
    before = train - costs["flip_in_place"] + costs["flip_copy"]
    print(f"| training pipeline: FFCV decode + 2 seedings + draw + resize (1 thread) + in-place flip | {train:.1f} |")
    print(f"| the same with the copying flip (as it was) | {before:.1f} |")
    print(f"serial ceiling (cv2 decode / pipeline): {costs['cv2'] / train:.2f} now, {costs['cv2'] / before:.2f} with the "
          "copying flip; the pipeline's time: " + ", ".join(f"{k} {v / train:.0%}" for k, v in parts.items()))


# ---------------------------------------------------------------- the ladder


def _probe_decoder(decode_jpeg: bool):
    """A decoder that reads each image's bytes and, if ``decode_jpeg``, decodes them with FFCV's
    imdecode into its scratch buffer; it writes only one pixel per image (output 1 x 1)."""
    from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder
    from ffcv.libffcv import imdecode
    from ffcv.pipeline.compiler import Compiler

    class Probe(ResizedCropRGBImageDecoder):
        def __init__(self):
            super().__init__((1, 1))

        @property
        def get_crop_generator(self):
            return None

        def generate_code(self):
            mem_read, my_range, jpg = self.memory_read, Compiler.get_iterator(), IMAGE_MODES["jpg"]
            imdecode_c = Compiler.compile(imdecode)

            def decode(batch_indices, my_storage, metadata, storage_state):
                destination, temp_storage = my_storage
                for dst_ix in my_range(len(batch_indices)):
                    field = metadata[batch_indices[dst_ix]]
                    image_data = mem_read(field["data_ptr"], storage_state)
                    height, width = np.uint32(field["height"]), np.uint32(field["width"])
                    if decode_jpeg and field["mode"] == jpg:
                        imdecode_c(image_data, temp_storage[dst_ix], height, width, height, width, 0, 0, 1, 1, False, False)
                        destination[dst_ix, 0, 0, :] = temp_storage[dst_ix, :3]
                    else:
                        destination[dst_ix, 0, 0, :] = image_data[:3]
                return destination[:len(batch_indices)]

            decode.is_parallel = True
            return decode

    return Probe()


def copying_seeded_flip(seed: int):
    """The seeded flip as it was before it worked in place: FFCV's flip code (a copy of every image
    into a buffer of its own) with the same per-image draws. Also the reference that
    tests/test_seeded_flip.py holds the in-place flip to."""
    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler

    from datamodules.seeded_augment import _FLIP_SALT, SeededHorizontalFlip, image_seed

    class CopyingSeededFlip(SeededHorizontalFlip):
        def declare_state_and_memory(self, previous_state):
            return replace(previous_state, jit_mode=True), AllocationQuery(previous_state.shape, previous_state.dtype)

        def generate_code(self):
            my_range, image_seed_c = Compiler.get_iterator(), Compiler.compile(image_seed)
            read_epoch = self._epoch_reader()
            flip_prob, salted = self.flip_prob, self.seed + _FLIP_SALT

            def flip(images, dst, indices):
                epoch = read_epoch()
                for i in my_range(images.shape[0]):
                    np.random.seed(image_seed_c(salted, epoch, indices[i]))
                    if np.random.rand() < flip_prob:
                        dst[i] = images[i, :, ::-1]
                    else:
                        dst[i] = images[i]
                return dst

            flip.is_parallel = True
            flip.with_indices = True
            return flip

    return CopyingSeededFlip(seed)


def ladder_pipelines(name: str, resolution: int, chunksize: int) -> dict[str, list]:
    """The pipelines of one rung or option (``LADDER``, ``OPTIONS``); seed 0 as the benchmark's."""
    from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
    from ffcv.transforms import RandomHorizontalFlip

    from datamodules.pipelines import _pipelines, inception_train_pipelines
    from datamodules.seeded_augment import SeededRandomResizedCrop

    size = (resolution, resolution)
    image = {
        "read": lambda: [_probe_decoder(False)],
        "decode": lambda: [_probe_decoder(True)],
        "crop": lambda: [RandomResizedCropRGBImageDecoder(size)],
        "seeded_crop": lambda: [SeededRandomResizedCrop(size, 0)],
        "copy_flip": lambda: [SeededRandomResizedCrop(size, 0), copying_seeded_flip(0)],
        "stock": lambda: [RandomResizedCropRGBImageDecoder(size), RandomHorizontalFlip()],
    }
    if name in image:
        return _pipelines(image[name](), None)
    pipelines = inception_train_pipelines(resolution)
    if name == "chunk":
        pipelines["image"][0].parallel_chunksize = chunksize
    return pipelines


class TimedFFCVLoader(FFCVLoader):
    """``FFCVLoader`` that also records each epoch's batch times (from asking for the epoch or the previous batch)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batch_s: list[list[float]] = []

    def epoch(self) -> int:
        n, times = 0, [time.perf_counter()]
        for images, _, _ in self.loader:
            n += len(images)
            times.append(time.perf_counter())
        self.batch_s.append(np.diff(times).tolist())
        return n

    def first_slots_extra_ms(self) -> float | None:
        """Median over epochs of how much longer each of the epoch's first ``batches_ahead + 2`` batches took
        than a later one (ms): the epoch's start (and with fresh buffers, their first writes). None: too
        few batches per epoch to tell."""
        slots = self.loader.batches_ahead + 2
        extra = [np.mean(b[:slots]) - np.mean(b[slots:]) for b in self.batch_s if len(b) > slots]
        return statistics.median(extra) * 1e3 if extra else None


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--max-resolution", type=int, default=VARIANTS["ffcv"].max_resolution,
                        help="the beton's storage cap (256: the default beton; 512: the 400-px originals kept)")
    parser.add_argument("--stages", default=",".join([*LADDER, *OPTIONS]), help="comma-separated rungs and options to time")
    parser.add_argument("--chunksize", type=int, default=8, help="numba chunk size of the 'chunk' option")
    parser.add_argument("--limit", type=int, default=400, help="images of the per-image (serial) measurement")
    parser.add_argument("--passes", type=int, default=5, help="passes of the per-image measurement (best counts)")
    parser.add_argument("--serial-only", action="store_true", help="only the per-image costs")
    args = parser.parse_args(argv)

    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(LADDER) - set(OPTIONS)
    if unknown:
        raise SystemExit(f"unknown stages {sorted(unknown)}; choose from {', '.join([*LADDER, *OPTIONS])}")
    root, betons = prepare(args)
    variant = replace(VARIANTS["ffcv"], max_resolution=args.max_resolution)
    beton = ready_beton(root, betons, variant, args.workers)

    costs, images = serial_costs(beton, args.resolution, args.limit, args.passes)
    print_serial(costs, images, args.passes, args.resolution)
    if args.serial_only:
        return

    print(f"\nladder: {beton.name}, crop {args.resolution}, batch {args.batch}, {args.workers} processes/threads, "
          f"{args.rounds} rounds x {args.epochs} epochs", flush=True)
    results, loaders, around = {}, {}, {}
    _warm_up("decode_stored", lambda: DecodeStored(beton, args.workers), results, loaders)
    for name in stages:
        if name == "decode_stored":
            continue

        def make(name=name):
            loader = TimedFFCVLoader(beton, variant, args.resolution, args.batch, args.workers,
                                     pipelines=ladder_pipelines(name, args.resolution, args.chunksize))
            if name == "fresh":  # undo ResumableLoader's kept buffers: FFCV's own allocation each epoch
                loader.loader.graph.allocate_memory = loader.loader._allocate_fresh
            return loader

        if name == "cv1":
            around[name] = lambda: opencv_threads(1)
        _warm_up(name, make, results, loaders)
        loaders[name].batch_s.clear()
    print("warm-up done: " + ", ".join(f"{k} {r.warmup_s:.1f}s" for k, r in results.items()), flush=True)

    time_rounds(loaders, results, args.rounds, args.epochs, around)
    loaders["decode_stored"].close()

    def us(name: str) -> list[float]:
        return [1e6 / rate for rate in results[name].rates]

    def delta(name: str, ref: str) -> float:
        return statistics.median(a - b for a, b in zip(us(name), us(ref)))

    print(f"\n| rung | img/s, median of {args.rounds} rounds | wall us/image | vs decode_stored | adds (us/image, vs) "
          f"| first batches of an epoch |")
    print("| --- | --- | --- | --- | --- | --- |")
    previous = None
    for name in [s for s in [*LADDER, *OPTIONS] if s in results]:
        res = results[name]
        ref = previous if name in LADDER else "train"
        adds = f"{delta(name, ref):+.0f} (vs {ref})" if ref in results and name != "decode_stored" else "—"
        extra = loaders[name].first_slots_extra_ms() if isinstance(loaders[name], TimedFFCVLoader) else None
        start = "—" if extra is None else f"{extra:+.1f} ms per batch, first {loaders[name].loader.batches_ahead + 2}"
        print(f"| {name}: {LADDER.get(name) or OPTIONS[name]} | {res.rate:,.0f} | {statistics.median(us(name)):.0f} "
              f"| {ratio(results, name, 'decode_stored'):.2f} | {adds} | {start} |")
        if name in LADDER:
            previous = name
    print("(wall us/image = 1e6 / img/s with all threads working: a rung's serial cost shows divided by the threads it ran on)")


if __name__ == "__main__":
    main()
