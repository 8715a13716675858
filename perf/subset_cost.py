"""What nested subsets of a 13M-image beton cost: index size in memory and on disk, creation time and peak RAM.

Uses synthetic labels of ImageNet-21k's size (no beton needed: the index files depend only on
the label column) and the project's own ``load_or_create_subset``. Each measurement runs in a
fresh process so its peak RSS is its own.

    .venv/bin/python -m perf.subset_cost [--images 13153500 --classes 19167]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _measure(images: int, classes: int, size: int | None, balanced: bool, folder: str) -> dict:
    from conversion.subsets import load_or_create_subset

    labels = np.random.default_rng(0).integers(0, classes, images).astype(np.int64)
    names = [f"c{k}" for k in range(classes)]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    train, val = load_or_create_subset(Path(folder) / "in21k.beton", labels, names, size, 0, 51_200, balanced)
    created = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    again, _ = load_or_create_subset(Path(folder) / "in21k.beton", labels, names, size, 0, 51_200, balanced)
    return {"size": len(train), "balanced": balanced, "index_mib": train.nbytes / 2**20, "create_s": round(created, 1),
            "create_peak_extra_mib": round((peak - base) / 1024), "load_s": round(time.perf_counter() - t, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=13_153_500)
    parser.add_argument("--classes", type=int, default=19_167)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        size, balanced, folder, _ = args.child
        print(json.dumps(_measure(args.images, args.classes, None if size == "full" else int(size), balanced == "1", folder)))
        return
    print("| subset | mode | index in RAM | create (s) | extra peak RAM while creating | load (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for size in ("1000000", "5000000", "full"):
            for balanced in ("0", "1"):
                out = subprocess.run([sys.executable, "-m", "perf.subset_cost", "--images", str(args.images), "--classes",
                                      str(args.classes), "--child", size, balanced, folder, "x"], capture_output=True, text=True, check=True)
                r = json.loads(out.stdout)
                print(f"| {r['size']:,} | {'balanced' if r['balanced'] else 'uniform'} | {r['index_mib']:.0f} MiB | {r['create_s']} "
                      f"| {r['create_peak_extra_mib']} MiB | {r['load_s']} |")


if __name__ == "__main__":
    main()
