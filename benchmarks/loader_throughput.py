"""Loader throughput: torchvision ImageFolder+DataLoader vs this project's FFCV train loader.

Same images, same augmentation (random resized crop + flip to ``--resolution``), same number
of worker processes/threads, in one run; reports images/s and the ratio to torchvision.
FFCV's first epoch includes its one-time numba compilation, so it is timed separately.

    .venv/bin/python -m benchmarks.loader_throughput data/miniature/imagenet21k data/miniature/betons/upstream.beton
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch


def torchvision_rate(folder: Path, resolution: int, batch: int, workers: int, epochs: int) -> float:
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.RandomResizedCrop(resolution), transforms.RandomHorizontalFlip(), transforms.PILToTensor()])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(folder), tf), batch_size=batch, shuffle=True,
                                         num_workers=workers, persistent_workers=workers > 0)
    n, started = 0, None
    for epoch in range(epochs + 1):  # epoch 0 warms up the workers
        if epoch == 1:
            n, started = 0, time.perf_counter()
        for images, _ in loader:
            n += len(images)
    return n / (time.perf_counter() - started)


def ffcv_rate(beton: Path, resolution: int, batch: int, workers: int, epochs: int) -> tuple[float, float]:
    from datamodules.beton import read_manifest
    from datamodules.ffcv_loaders import train_loader
    from datamodules.pipelines import inception_train_pipelines

    rows = np.arange(read_manifest(beton)["num_images"], dtype=np.uint32)
    loader = train_loader(beton, rows, batch, inception_train_pipelines(resolution), num_workers=workers, seed=0,
                          world_size=1, epoch=0, os_cache=True, drop_last=False)
    t = time.perf_counter()
    for _ in loader:
        pass
    first_epoch = time.perf_counter() - t
    n, t = 0, time.perf_counter()
    for _ in range(epochs):
        for images, _, _ in loader:
            n += len(images)
    return n / (time.perf_counter() - t), first_epoch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="class-folder layout (the source of the beton)")
    parser.add_argument("beton", type=Path)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    tv = torchvision_rate(args.folder, args.resolution, args.batch, args.workers, args.epochs)
    ff, first = ffcv_rate(args.beton, args.resolution, args.batch, args.workers, args.epochs)
    print(f"torchvision ImageFolder+DataLoader : {tv:9.0f} img/s")
    print(f"FFCV train loader (this project)   : {ff:9.0f} img/s  ({ff / tv:.1f}x; first epoch incl. JIT {first:.1f}s)")


if __name__ == "__main__":
    main()
