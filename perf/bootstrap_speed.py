"""Time the grid's paired bootstrap intervals on paper-sized outcomes (docs/perf.md).

    python -m perf.bootstrap_speed [--resamples 1000] [--repeats 3] [--incomplete] [--io]

Fabricates the outcomes of the paper's grid: 2 models x 3 data sizes x 3 step budgets, one seed,
each scored on ImageNet-C (50,000 base images x 75 sets), ImageNet-A (7,500 images), ImageNet-V2
(10,000), ObjectNet (18,514), ImageNet-Vid (1,109 anchors) and YouTube-BB (2,030 anchors) with
their ``_w`` keys on the same anchors: 18 records x 8 keys = 144 cells, 216 grid rows. Builds the
grid and times `results.bootstrap.add_intervals` (the unit draws, the products, the seed draws and
the percentiles). ``--incomplete`` marks 1 % of every ImageNet-C entry invalid (a partial
release), which takes the slower per-column path. ``--io`` also writes the 18 result files with
their sidecars to a temporary folder and times reading them back as the report does
(`results.report.read_all_outcomes`: locate, sha256, unpack, check every error).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from results.bootstrap import BootstrapSettings, add_intervals
from results.grid import build_grid
from results.outcomes import StoredOutcomes, units_digest, write_outcomes
from results.report import read_all_outcomes
from results.schema import result_path, write_result

# result key -> (units, columns); the _w keys share their benchmark's anchors
SETS = {"imagenet_a": (7_500, 1), "imagenet_c": (50_000, 75), "imagenet_v2": (10_000, 1), "objectnet": (18_514, 1),
        "imagenet_vid": (1_109, 1), "ytbb": (2_030, 1), "imagenet_vid_w": (1_109, 1), "ytbb_w": (2_030, 1)}
MODELS = {"resnetv2_50x1": (25_000_000, 0.55), "resnetv2_101x3": (380_000_000, 0.45)}  # params, base error
SIZES, STEPS = (1_000_000, 5_000_000, 13_000_000), (112_000, 457_000, 1_120_000)


def unit_names(key: str) -> list[str]:
    """Unit names of a key's set; a ``_w`` key shares its benchmark's anchors."""
    return [f"{key.removesuffix('_w')}/{i}" for i in range(SETS[key][0])]


def fabricate(incomplete: bool, seed: int = 0) -> tuple[list[dict], list[dict[str, StoredOutcomes]]]:
    """18 records and their outcomes; errors fall with data size and steps, larger model lower."""
    rng = np.random.default_rng(seed)
    digests = {k: units_digest(unit_names(k)) for k in SETS}
    records, outcomes = [], []
    for model, (params, base) in MODELS.items():
        for i, size in enumerate(SIZES):
            for j, steps in enumerate(STEPS):
                error = base - 0.04 * i - 0.03 * j
                stored = {}
                for key, (u, c) in SETS.items():
                    correct = rng.random((u, c)) > error
                    valid = rng.random((u, c)) > 0.01 if incomplete and c > 1 else None
                    stored[key] = StoredOutcomes(correct, valid, digests[key], "unit")
                records.append(dict(model=model, data_size=size, steps=steps, seed=0, num_params=params,
                                    errors={k: s.error() for k, s in stored.items()}))
                outcomes.append(stored)
    return records, outcomes


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m perf.bootstrap_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--resamples", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="timed runs; the best and all are printed")
    p.add_argument("--incomplete", action="store_true", help="1 %% of ImageNet-C entries invalid (per-column path)")
    p.add_argument("--io", action="store_true", help="also time reading the 18 sidecars back as the report does")
    args = p.parse_args(argv)
    started = time.perf_counter()
    records, outcomes = fabricate(args.incomplete)
    print(f"fabricated {len(records)} records x {len(SETS)} keys in {time.perf_counter() - started:.1f} s")
    times = []
    for _ in range(args.repeats):
        grid = build_grid(records)
        started = time.perf_counter()
        add_intervals(grid, records, outcomes, BootstrapSettings(args.resamples, 0))
        times.append(time.perf_counter() - started)
    if args.io:
        time_reading(records, outcomes)
    with_ci = sum(r.ci_low is not None for r in grid.rows)
    print(f"{len(grid.cells)} cells, {len(grid.rows)} rows ({with_ci} with an interval), {args.resamples} resamples"
          f"{', ImageNet-C incomplete' if args.incomplete else ''}: best {min(times):.2f} s "
          f"(runs: {', '.join(f'{t:.2f}' for t in times)} s)")


def time_reading(records: list[dict], outcomes: list[dict[str, StoredOutcomes]]) -> None:
    """Write the records with their sidecars to a temporary folder; print how long reading them back takes."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for record, stored in zip(records, outcomes):
            units = {k: SimpleNamespace(correct=o.correct, valid=o.valid, units=unit_names(k), unit=o.unit)
                     for k, o in stored.items()}
            path = result_path(folder, record)
            write_result(path, {**record, "outcomes": write_outcomes(path, units)})
        size = sum(p.stat().st_size for p in folder.glob("*.npz"))
        started = time.perf_counter()
        records = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]  # read_results' order
        read = read_all_outcomes(folder, records)
        elapsed = time.perf_counter() - started
    bad = [r for r in read if isinstance(r, str)]
    print(f"read {len(read)} sidecars ({size / 2**20:.1f} MiB) in {elapsed:.2f} s" + (f"; {len(bad)} refused: {bad[0]}" if bad else ""))


if __name__ == "__main__":
    main()
