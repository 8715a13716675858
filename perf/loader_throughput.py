"""Loader throughput on natural JPEGs: torchvision vs this project's FFCV loader vs decode alone.

On one set of natural-looking JPEGs (``perf.natural_jpegs``: crops of scikit-image's
photographs, ~400 px on the longer side, quality 90, ImageFolder layout), in one run and with
the same number of worker processes/threads (``--workers``), measures images/s of

1. ``tv``: torchvision ImageFolder + DataLoader, RandomResizedCrop(R) + RandomHorizontalFlip
   + PILToTensor (uint8, what our loaders yield), ``--workers`` worker processes;
2. ``ffcv``: ``datamodules.ffcv_loaders.train_loader`` + ``inception_train_pipelines(R)``
   (same augmentation) from a beton written with ``BetonSettings()`` defaults (256 px longer
   side, JPEG quality 90), ``--workers`` numba threads;
3. ``decode_stored``: the FFCV loader's decode-only limit: ``cv2.imdecode`` (OpenCV's bundled
   libjpeg-turbo) of exactly the JPEG bytes that loader reads (each row's stored image, found
   by FFCV's own memory-manager reader in the beton's metadata and allocation table), in
   ``--workers`` processes each reading its share from the beton through the page cache
   (``mmap``, as ``os_cache=True`` does), no augmentation. Every other beton of a variant
   (``full``: the originals kept) gets its own, ``decode_stored_<max_resolution>``; a raw
   beton is compared with the JPEG beton of the same size;
4. ``decode``: for reference, the same decode of the original files (what the loader would
   decode without the beton's 256-px storage); ``decode_pil``: PIL's decode of them.

plus the tuning variants named by ``--variants`` (stored size, ``os_cache``,
``batches_ahead``, thread count: see ``VARIANTS``). Every loader is warmed up first (one epoch:
FFCV's compiles numba, torchvision's starts its workers), then ``--rounds`` rounds each time
``--epochs`` epochs of every loader in turn; rates are medians over rounds and ratios medians of
the within-round ratios, so load from other jobs on a shared machine hits all of them alike.
The headline ratio is FFCV / decode_stored (its own beton's bytes). Also prints what the
256-px storage costs in resolution and what decoding at reduced size (libjpeg-turbo DCT
scaling) would save. Ends with the headline Markdown row for ``docs/perf.md``. Where the
time between the decode limit and the loader goes: ``perf.loader_profile``.

    .venv/bin/python -m perf.loader_throughput                # 3,000 images, 2 workers
    .venv/bin/python -m perf.loader_throughput --variants all # + every tuning variant
    .venv/bin/python -m perf.loader_throughput --memory       # RAM per loader configuration
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Variant:
    """One FFCV configuration: beton storage + loader settings."""

    label: str
    max_resolution: int = 256  # beton storage: longer side cap (BetonSettings default)
    write_mode: str = "jpg"  # beton storage: BetonSettings default
    os_cache: bool = True
    batches_ahead: int = 3  # FFCV's default
    threads: int | None = None  # None: --workers
    order: str = "random"  # random | quasi_random


# The headline configuration is "ffcv"; the others each change one thing from it.
VARIANTS = {
    "ffcv": Variant("FFCV, beton defaults (256 px, q90), os_cache, batches_ahead 3"),
    "full": Variant("FFCV, originals stored unresized (max_resolution 512 > 400 px)", max_resolution=512),
    "raw": Variant("FFCV, 256 px stored raw (no JPEG decode; ~8x the bytes)", write_mode="raw"),
    "proc_cache": Variant("FFCV, os_cache=False (process cache), random order", os_cache=False),
    "quasi": Variant("FFCV, os_cache=False, QUASI_RANDOM order", os_cache=False, order="quasi_random"),
    "ahead1": Variant("FFCV, batches_ahead 1", batches_ahead=1),
    "ahead8": Variant("FFCV, batches_ahead 8", batches_ahead=8),
    "threads1": Variant("FFCV, 1 thread", threads=1),
}


class _PeakRSS:
    """Peak anonymous and file-backed RSS of this process (MiB), sampled every 50 ms while active."""

    def __init__(self):
        self.anon = self.file = 0.0

    @staticmethod
    def sample() -> tuple[float, float]:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                key, value = line.split(":")
                fields[key] = int(value.split()[0]) / 1024
        return fields.get("RssAnon", 0.0), fields.get("RssFile", 0.0) + fields.get("RssShmem", 0.0)

    def __enter__(self):
        self._stop = threading.Event()

        def run():
            while not self._stop.wait(0.05):
                anon, file = self.sample()
                self.anon, self.file = max(self.anon, anon), max(self.file, file)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@dataclass
class Result:
    label: str
    rates: list[float] = field(default_factory=list)
    warmup_s: float = 0.0

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


# ---------------------------------------------------------------- torchvision


class TorchvisionLoader:
    def __init__(self, root: Path, resolution: int, batch: int, workers: int):
        import torch
        from torchvision import datasets, transforms

        tf = transforms.Compose([transforms.RandomResizedCrop(resolution), transforms.RandomHorizontalFlip(),
                                 transforms.PILToTensor()])
        # spawn: the workers must not inherit FFCV's numba thread pool from a fork
        self.loader = torch.utils.data.DataLoader(
            datasets.ImageFolder(str(root), tf), batch_size=batch, shuffle=True, num_workers=workers,
            persistent_workers=workers > 0, multiprocessing_context="spawn" if workers > 0 else None)

    def epoch(self) -> int:
        n = 0
        for images, _ in self.loader:
            n += len(images)
        return n


# ---------------------------------------------------------------- decode-only limit


def _decode_files(args: tuple[list[str], str]) -> int:
    paths, decoder = args
    if decoder == "cv2":
        import cv2

        cv2.setNumThreads(1)
        for p in paths:
            with open(p, "rb") as f:
                if cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR) is None:
                    raise ValueError(f"cannot decode {p}")
    else:
        from PIL import Image

        for p in paths:
            with Image.open(p) as im:
                im.convert("RGB").load()
    return len(paths)


class DecodeOnly:
    """Each of ``workers`` processes decodes an interleaved share of the files (nothing is sent back)."""

    def __init__(self, root: Path, workers: int, decoder: str):
        from multiprocessing import get_context

        self.paths = sorted(str(p) for p in Path(root).glob("*/*.jpg"))
        self.workers, self.decoder = workers, decoder
        self.pool = get_context("spawn").Pool(workers)

    def epoch(self) -> int:
        shards = [(self.paths[k::self.workers], self.decoder) for k in range(self.workers)]
        return sum(self.pool.map(_decode_files, shards, chunksize=1))

    def close(self):
        self.pool.close()
        self.pool.join()


def stored_images(beton: Path, field: str = "image") -> dict[str, np.ndarray]:
    """Where each row's stored image lies in ``beton``: ``offset``, ``size`` (bytes, int64),
    ``height``, ``width``, ``mode`` (FFCV's: 0 jpg, 1 raw), in row order.

    The bytes are found as the loader finds them: FFCV's ``OSCacheManager`` reader (numba;
    the metadata's ``data_ptr`` looked up in the allocation table) over the memory-mapped
    file, so ``file[offset:offset + size]`` is exactly what the decoder is handed.
    """
    from ffcv.memory_managers import OSCacheManager
    from ffcv.reader import Reader

    reader = Reader(str(beton))
    meta = reader.metadata[f"f{reader.field_names.index(field)}"]
    manager = OSCacheManager(reader)
    read = manager.compile_reader()
    with manager.schedule_epoch(None) as context:
        state = context.state
        base = state[0].ctypes.data
        offset, size = np.empty(len(meta), np.int64), np.empty(len(meta), np.int64)
        for row, ptr in enumerate(meta["data_ptr"]):
            data = read(np.uint64(ptr), state)
            offset[row], size[row] = data.ctypes.data - base, data.size
    return {"offset": offset, "size": size, "height": meta["height"].astype(np.int64),
            "width": meta["width"].astype(np.int64), "mode": meta["mode"].astype(np.int64)}


_MAPPED: dict[str, np.ndarray] = {}  # per worker process: the beton mapped once, as FFCV's os_cache keeps it


def _decode_stored(args: tuple[str, np.ndarray, np.ndarray, np.ndarray]) -> int:
    """Decodes each ``(offset, size)`` JPEG of the beton with cv2; refuses one whose size is not ``shapes``'s."""
    import cv2

    beton, offsets, sizes, shapes = args
    cv2.setNumThreads(1)
    if beton not in _MAPPED:
        _MAPPED[beton] = np.memmap(beton, np.uint8, mode="r")
    data = _MAPPED[beton]
    for o, n, (h, w) in zip(offsets.tolist(), sizes.tolist(), shapes.tolist()):
        image = cv2.imdecode(data[o:o + n], cv2.IMREAD_COLOR)
        if image is None or image.shape[:2] != (h, w):
            raise ValueError(f"{beton}: the {n} bytes at {o} do not decode to a {h}x{w} image")
    return len(offsets)


class DecodeStored:
    """The decode-only limit of a beton's loader: each of ``workers`` processes decodes an
    interleaved share of the rows' stored JPEGs (``stored_images``), nothing sent back."""

    def __init__(self, beton: Path, workers: int):
        from multiprocessing import get_context

        images = stored_images(beton)
        jpg = np.flatnonzero(images["mode"] == 0)
        if len(jpg) == 0:
            raise ValueError(f"{beton} stores no JPEG: nothing to decode")
        shapes = np.stack([images["height"], images["width"]], 1)
        self.shards = [(str(beton), images["offset"][rows], images["size"][rows], shapes[rows])
                       for rows in (jpg[k::workers] for k in range(workers))]
        self.mean_bytes = float(images["size"][jpg].mean())
        self.pool = get_context("spawn").Pool(workers)

    def epoch(self) -> int:
        return sum(self.pool.map(_decode_stored, self.shards, chunksize=1))

    def close(self):
        self.pool.close()
        self.pool.join()


def limit_name(variant: Variant) -> str:
    """The decode-only limit a variant is compared with: that of the JPEG beton of its size."""
    default = VARIANTS["ffcv"].max_resolution
    return "decode_stored" if variant.max_resolution == default else f"decode_stored_{variant.max_resolution}"


# ---------------------------------------------------------------- FFCV


def beton_for(root: Path, betons: Path, variant: Variant, workers: int) -> Path:
    """The beton of ``root`` with ``variant``'s storage (other settings: BetonSettings defaults), written once."""
    from conversion.beton import BetonSettings, convert_folder

    out = betons / f"natural_{variant.write_mode}{variant.max_resolution}.beton"
    settings = replace(BetonSettings(), max_resolution=variant.max_resolution, write_mode=variant.write_mode)
    convert_folder(root, out, settings, num_workers=workers)
    return out


class FFCVLoader:
    """``train_loader`` over every row of ``beton`` with ``variant``'s settings; ``pipelines``
    default to the training pipeline (``inception_train_pipelines(resolution)``)."""

    def __init__(self, beton: Path, variant: Variant, resolution: int, batch: int, workers: int,
                 pipelines: dict | None = None):
        from conversion.beton import read_manifest
        from datamodules.ffcv_loaders import train_loader
        from datamodules.pipelines import inception_train_pipelines

        rows = np.arange(read_manifest(beton)["num_images"], dtype=np.uint32)
        pipelines = pipelines if pipelines is not None else inception_train_pipelines(resolution)
        self.loader = train_loader(
            beton, rows, batch, pipelines, num_workers=variant.threads or workers, seed=0,
            world_size=1, epoch=0, os_cache=variant.os_cache, drop_last=False, batches_ahead=variant.batches_ahead,
            order=variant.order)

    def epoch(self) -> int:
        n = 0
        for images, _, _ in self.loader:  # whole epochs only: leaving an FFCV epoch early can abort at exit
            n += len(images)
        return n


# ---------------------------------------------------------------- fidelity


def fidelity(root: Path, max_resolution: int, resolution: int, min_scale: float) -> dict[str, float]:
    """What storing at ``max_resolution`` costs: stored vs original side, and the pixels an
    ``min_scale``-area Inception crop (aspect 1) is upsampled from to reach ``resolution``."""
    from PIL import Image

    longer, shorter = [], []
    for p in sorted(Path(root).glob("*/*.jpg")):
        with Image.open(p) as im:
            longer.append(max(im.size))
            shorter.append(min(im.size))
    longer, shorter = np.array(longer, float), np.array(shorter, float)
    scale = np.minimum(1.0, max_resolution / longer)
    out = {"orig_longer": float(np.median(longer)), "orig_shorter": float(np.median(shorter)),
           "stored_longer": float(np.median(longer * scale)), "stored_shorter": float(np.median(shorter * scale))}
    for name, s in (("orig", 1.0), ("stored", scale)):
        area = (longer * s) * (shorter * s)
        side = np.sqrt(min_scale * area)  # side of a square crop of that area
        out[f"{name}_min_crop_side"] = float(np.median(side))
        out[f"{name}_full_crop_upsample"] = float(np.median(resolution / (shorter * s)))
        # area fraction ~ U(min_scale, 1): the share of crops smaller than resolution^2, i.e. upsampled
        below = np.clip((resolution ** 2 / area - min_scale) / (1 - min_scale), 0, 1)
        out[f"{name}_upsampled_share"] = float(np.mean(below))
    return out


def scaled_decode_ms(root: Path, scales=((8, 8), (7, 8), (6, 8), (5, 8), (4, 8)), limit: int = 600,
                     passes: int = 5) -> dict[str, float]:
    """ms per image of FFCV's own ``imdecode`` (libjpeg-turbo ``tjDecompress2``, FASTDCT) of the
    original files at each scaling factor: what decoding at reduced size could save.

    FFCV 1.0.2's C ``imdecode`` takes a scaling numerator/denominator (libjpeg-turbo's DCT
    scaling); its decoders always pass 1/1. One process, best of ``passes`` passes over ``limit`` files.
    """
    from PIL import Image

    from ffcv.libffcv import imdecode

    files = sorted(Path(root).glob("*/*.jpg"))[:limit]
    data = [np.frombuffer(f.read_bytes(), np.uint8) for f in files]
    sizes = []
    for f in files:
        with Image.open(f) as im:
            sizes.append((im.height, im.width))
    out = np.empty(max(h * w for h, w in sizes) * 3, np.uint8)
    best = {f"{num}/{den}": float("inf") for num, den in scales}
    for _ in range(passes):  # scales interleaved within each pass: load on the machine hits all alike
        for num, den in scales:
            t = time.perf_counter()
            for d, (h, w) in zip(data, sizes):
                if imdecode(d, out, h, w, h, w, 0, 0, num, den, False, False) != 0:
                    raise RuntimeError("imdecode failed")
            best[f"{num}/{den}"] = min(best[f"{num}/{den}"], time.perf_counter() - t)
    return {k: v / len(data) * 1e3 for k, v in best.items()}


# ---------------------------------------------------------------- memory


def _loader_memory(job: tuple[Path, Variant, int, int, int]) -> tuple[float, float, float, float]:
    """In a fresh process, anonymous RSS (MiB) over the pre-loader baseline: after building the
    loader, peak of the first epoch (numba compiles then), peak of epochs 2-3 (steady state:
    the batch buffers); and the file-backed RSS peak (the beton's pages mapped by os_cache)."""
    import gc

    beton, variant, resolution, batch, workers = job
    import ffcv.loader  # noqa: F401  (imports are not the loader's cost)
    import torch  # noqa: F401

    base_anon, base_file = _PeakRSS.sample()
    loader = FFCVLoader(beton, variant, resolution, batch, workers)
    built = _PeakRSS.sample()[0] - base_anon
    peaks, file = [], 0.0
    for _ in range(3):
        with _PeakRSS() as rss:
            loader.epoch()
        gc.collect()
        peaks.append(rss.anon - base_anon)
        file = max(file, rss.file - base_file)
    return built, peaks[0], max(peaks[1:]), file


def index_overhead(n: int) -> tuple[float, float]:
    """(seconds, bytes per sample) FFCV 1.0.2's memory manager spends on its per-sample Python
    index (``MemoryManager.__init__``: dicts of sets sample<->page, built by every loader of
    every process, whatever ``os_cache`` or ``indices``) for a beton of ``n`` images."""
    from types import SimpleNamespace

    from ffcv.memory_managers import OSCacheManager
    from ffcv.types import ALLOC_TABLE_TYPE

    table = np.zeros(n, ALLOC_TABLE_TYPE)
    table["sample_id"] = np.arange(n)
    table["ptr"] = np.arange(n, dtype=np.uint64) * np.uint64(110_000) + np.uint64(1 << 20)  # ~ImageNet's mean JPEG
    table["size"] = 110_000
    reader = SimpleNamespace(alloc_table=table, page_size=1 << 23, file_name=os.devnull)
    before = _PeakRSS.sample()[0]
    t = time.perf_counter()
    manager = OSCacheManager(reader)
    seconds = time.perf_counter() - t
    grown = _PeakRSS.sample()[0] - before
    del manager
    return seconds, grown * 2**20 / n


def memory_study(root: Path, betons: Path, resolution: int, batch: int, workers: int) -> None:
    from multiprocessing import get_context

    configs = {k: VARIANTS[k] for k in ("ffcv", "ahead1", "ahead8", "proc_cache", "quasi", "full")}
    print(f"\n| loader (batch {batch}, {workers} threads, crop {resolution}) | built | first epoch (JIT) | later epochs "
          f"| file-backed (page cache mapped) |")
    print("| --- | --- | --- | --- | --- |")
    for v in configs.values():
        beton = beton_for(root, betons, v, workers)
        with get_context("spawn").Pool(1) as pool:
            built, first, steady, file = pool.apply(_loader_memory, ((beton, v, resolution, batch, workers),))
        print(f"| {v.label} | +{built:.0f} MiB | +{first:.0f} MiB | +{steady:.0f} MiB | {file:.0f} MiB |", flush=True)
    for n in (100_000, 1_000_000):
        seconds, per_sample = index_overhead(n)
        print(f"FFCV memory-manager index for {n:,} images: {seconds:.1f} s, {per_sample:.0f} B/image "
              f"(13M images: ~{per_sample * 13e6 / 2**30:.1f} GiB per loader)", flush=True)


# ---------------------------------------------------------------- driver


def _warm_up(name: str, make, results: dict, loaders: dict) -> None:
    """Build a loader and run its first epoch (FFCV: numba compilation; torchvision: worker start)."""
    t = time.perf_counter()
    loader = make()
    loader.epoch()
    results[name] = Result(name, warmup_s=time.perf_counter() - t)
    loaders[name] = loader


def time_rounds(loaders: dict, results: dict, rounds: int, epochs: int, around: dict | None = None) -> None:
    """``rounds`` rounds, each timing ``epochs`` epochs of every loader in turn; appends images/s to
    ``results[name].rates``. ``around[name]``: a context manager factory entered around that loader's epochs."""
    from contextlib import nullcontext

    around = around or {}
    for r in range(rounds):
        for name, loader in loaders.items():
            with around.get(name, nullcontext)():
                t, n = time.perf_counter(), 0
                for _ in range(epochs):
                    n += loader.epoch()
                results[name].rates.append(n / (time.perf_counter() - t))
        print(f"round {r + 1}: " + ", ".join(f"{k} {res.rates[-1]:.0f}" for k, res in results.items()), flush=True)


def ratio(results: dict, name: str, ref: str) -> float:
    """Median over rounds of ``name``'s rate / ``ref``'s within each round (measured seconds apart)."""
    return statistics.median(x / y for x, y in zip(results[name].rates, results[ref].rates))


def prepare(args) -> tuple[Path, Path]:
    """The generated image folder and the folder its betons go to."""
    from perf.natural_jpegs import generate

    root = generate(args.root, args.count, args.size)
    return root, args.betons or args.root.with_name(args.root.name + "-betons")


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, batch and timing options shared with ``perf.loader_profile``."""
    parser.add_argument("--root", type=Path, default=Path("data/bench/natural"),
                        help="image folder (generated here if missing)")
    parser.add_argument("--betons", type=Path, default=None, help="where betons go (default: <root>-betons)")
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--size", type=int, default=400, help="longer side of the generated images")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per loader per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds; each times every loader in turn")


def ready_beton(root: Path, betons: Path, variant: Variant, workers: int) -> Path:
    t = time.perf_counter()
    path = beton_for(root, betons, variant, workers)
    print(f"beton {variant.write_mode}, max_resolution {variant.max_resolution}: {path.stat().st_size / 2**20:.0f} MiB "
          f"(ready in {time.perf_counter() - t:.0f} s: written, or reused if it exists)", flush=True)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--variants", default="", help=f"comma-separated extra FFCV variants or 'all': {', '.join(VARIANTS)}")
    parser.add_argument("--machine", default="CPU-2", help="machine name for the Markdown row")
    parser.add_argument("--memory", action="store_true",
                        help="instead of throughput: each loader's memory (fresh process each) and FFCV's per-image index cost")
    args = parser.parse_args(argv)

    root, betons = prepare(args)
    extra = [v for v in VARIANTS if v != "ffcv"] if args.variants == "all" else [v for v in args.variants.split(",") if v]
    unknown = set(extra) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    variants = {"ffcv": VARIANTS["ffcv"], **{k: VARIANTS[k] for k in extra}}
    if args.memory:
        memory_study(root, betons, args.resolution, args.batch, args.workers)
        return
    files = list(root.glob("*/*.jpg"))
    print(f"{len(files)} JPEGs in {root} ({sum(f.stat().st_size for f in files) / len(files) / 1024:.0f} KiB mean), "
          f"crop {args.resolution}, batch {args.batch}, {args.workers} workers, {args.rounds} rounds x {args.epochs} epochs",
          flush=True)

    # every variant's beton, and the JPEG beton of every variant's size (its decode limit's bytes)
    beton_paths = {}
    for v in [*variants.values(), *(replace(v, write_mode="jpg") for v in variants.values())]:
        key = (v.write_mode, v.max_resolution)
        if key not in beton_paths:
            beton_paths[key] = ready_beton(root, betons, v, args.workers)
    limits = {limit_name(v): beton_paths[("jpg", v.max_resolution)] for v in variants.values()}

    # Processes first (spawned), then the FFCV loaders (threads in this process).
    results, loaders = {}, {}
    _warm_up("tv", lambda: TorchvisionLoader(root, args.resolution, args.batch, args.workers), results, loaders)
    _warm_up("decode", lambda: DecodeOnly(root, args.workers, "cv2"), results, loaders)
    _warm_up("decode_pil", lambda: DecodeOnly(root, args.workers, "pil"), results, loaders)
    for name, beton in limits.items():
        _warm_up(name, lambda beton=beton: DecodeStored(beton, args.workers), results, loaders)
    for name, v in variants.items():
        _warm_up(name, lambda v=v: FFCVLoader(beton_paths[(v.write_mode, v.max_resolution)], v, args.resolution, args.batch, args.workers),
                 results, loaders)
    print("warm-up done: " + ", ".join(f"{k} {r.warmup_s:.1f}s" for k, r in results.items()), flush=True)

    time_rounds(loaders, results, args.rounds, args.epochs)
    for loader in loaders.values():
        if hasattr(loader, "close"):
            loader.close()

    labels = {"tv": "torchvision ImageFolder + DataLoader (PIL)",
              "decode": "decode only, cv2.imdecode (libjpeg-turbo), the original files",
              "decode_pil": "decode only, PIL, the original files",
              **{name: f"decode only, cv2.imdecode, the bytes stored in {beton.name} "
                       f"({loaders[name].mean_bytes / 1024:.0f} KiB mean)" for name, beton in limits.items()},
              **{k: v.label for k, v in variants.items()}}
    print(f"\n| loader | img/s, median of {args.rounds} rounds (range) | vs torchvision | vs its decode-only limit "
          f"(the stored bytes) | vs decode-only of the originals |")
    print("| --- | --- | --- | --- | --- |")
    for name, res in results.items():
        limit = f"{ratio(results, name, limit_name(variants[name])):.2f} ({limit_name(variants[name])})" if name in variants else "—"
        print(f"| {labels[name]} | {res.rate:,.0f} ({min(res.rates):,.0f}-{max(res.rates):,.0f}) | "
              f"{ratio(results, name, 'tv'):.2f}x | {limit} | {ratio(results, name, 'decode'):.2f} |")
    print("(ratios: median over rounds of the ratio within each round; a raw beton is compared with the JPEG beton of its size)")

    fid = fidelity(root, VARIANTS["ffcv"].max_resolution, args.resolution, 0.08)
    print(f"\nstorage fidelity (medians): originals {fid['orig_longer']:.0f}x{fid['orig_shorter']:.0f}, stored "
          f"{fid['stored_longer']:.0f}x{fid['stored_shorter']:.0f}; an 8%-area crop is {fid['orig_min_crop_side']:.0f} px "
          f"square in the original, {fid['stored_min_crop_side']:.0f} px in the beton (x{args.resolution / fid['stored_min_crop_side']:.1f} "
          f"upsampling to {args.resolution}); a full-image crop upsamples the shorter side x{fid['orig_full_crop_upsample']:.2f} "
          f"from the original, x{fid['stored_full_crop_upsample']:.2f} from the beton; crops with less area than "
          f"{args.resolution}^2 (upsampled): {fid['orig_upsampled_share']:.0%} from the originals, "
          f"{fid['stored_upsampled_share']:.0%} from the beton")

    costs = scaled_decode_ms(root)
    print("decode at reduced size (FFCV's imdecode, one process, ms/image of the originals): "
          + ", ".join(f"{k} {v:.2f}" for k, v in costs.items()))

    tv, ff, stored, dec = (results[k].rate for k in ("tv", "ffcv", "decode_stored", "decode"))
    print("\n| date | machine | images | torchvision | FFCV train loader | decode-only, stored bytes (cv2) "
          "| decode-only, originals (cv2) | FFCV / torchvision | FFCV / decode-only (stored) | FFCV / decode-only (originals) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {datetime.date.today()} | {args.machine}, {args.workers} workers | {len(files):,} x ~{args.size} px | {tv:,.0f} img/s "
          f"| {ff:,.0f} img/s | {stored:,.0f} img/s | {dec:,.0f} img/s | {ratio(results, 'ffcv', 'tv'):.2f}x "
          f"| **{ratio(results, 'ffcv', 'decode_stored'):.2f}** | {ratio(results, 'ffcv', 'decode'):.2f} |")
    if "full" in variants:
        name = limit_name(variants["full"])
        print(f"originals kept (`full`): {results['full'].rate:,.0f} img/s against its own decode-only limit "
              f"{results[name].rate:,.0f} img/s: {ratio(results, 'full', name):.2f}")


if __name__ == "__main__":
    main()
