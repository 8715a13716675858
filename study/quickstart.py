"""``make quickstart`` (and ``make fidelity``): a whole study on generated data, then the grid.

``--study`` picks the study file: the miniature (default) or configs/fidelity/study.yaml.

Steps: generate the upstream/downstream/OOD sets in their release layouts (once), convert
upstream and downstream to betons (once), run every pending cell of
configs/miniature/study.yaml with the study runner (the same as ``python -m study run``:
pre-train → fine-tune → OOD evaluation → result file → grid), rebuild the report and print
where everything is. Re-running skips what is done.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

from conversion.files import atomic_write_text
from study.definition import StudyConfigError
from study.runner import StudyDefinition, run_study


def generate_data(spec: dict, benchmarks: list[str] | None = None) -> dict[str, Path]:
    """Write the generated sets (idempotent) and the upstream/downstream betons; returns paths."""
    from conversion.beton import BetonSettings, convert_folder
    from datamodules.ood import OODSuite
    from synthetic.folders import upstream_wnids, write_imagenet1k_folders, write_imagenet21k_folder
    from synthetic.miniature_classes import MINIATURE_WNIDS
    from synthetic.ood_sets import expected_sizes, write_ood_suite

    root = Path(spec["root"])
    seed, size = int(spec["seed"]), int(spec["image_size"])
    betons = root / "betons"
    settings = BetonSettings(max_resolution=size)
    t = time.time()
    upstream = write_imagenet21k_folder(root / "imagenet21k", upstream_wnids(spec["upstream_classes"]), spec["upstream_images_per_class"], seed, size)
    downstream = write_imagenet1k_folders(root / "imagenet1k", MINIATURE_WNIDS, spec["downstream_train_per_class"], spec["downstream_val_per_class"], seed + 1, size)
    print(f"data: upstream and downstream folders ready ({time.time() - t:.0f}s)", flush=True)
    t = time.time()
    ood = dict(spec.get("ood", {}))
    write_ood_suite(root / "ood", downstream, MINIATURE_WNIDS, seed + 2, size, **ood)
    sizes = expected_sizes(MINIATURE_WNIDS, **{k: v for k, v in ood.items() if k != "hard_pool"})
    # options only for what the study evaluates: options for another benchmark are refused
    sizes = {name: n for name, n in sizes.items() if benchmarks is None or name in benchmarks}
    # the generated sets are small on purpose: tell each benchmark its size (real releases: leave unset)
    options = {"data": {"init_args": {"benchmark_options": {name: {"expected_size": n} for name, n in sizes.items()}}}}
    atomic_write_text(root / "ood_options.yaml", yaml.safe_dump(options, sort_keys=True))
    print(f"data: OOD suite ready in its release layouts ({time.time() - t:.0f}s)", flush=True)
    t = time.time()
    convert_folder(upstream, betons / "upstream.beton", settings)
    train = convert_folder(downstream / "train", betons / "downstream_train.beton", settings)
    convert_folder(downstream / "val", betons / "downstream_val.beton", settings, classes=train["classes"])
    # convert the benchmark sets now, once, rather than in the first two cells at the same time
    suite = OODSuite(root / "ood", list(sizes), train["classes"], size, options["data"]["init_args"]["benchmark_options"])
    for name in sizes:
        suite.prepare(name)
    print(f"data: betons ready under {betons} and {suite.cache} ({time.time() - t:.0f}s)", flush=True)
    return {"root": root, "betons": betons}


def _criteria(results_dir: Path, grid_dir: Path) -> Path | None:
    """Print Figure 3's criteria (a)-(c) with their intervals (`results.criteria`) and write
    ``criteria.csv`` beside the grid; a grid that cannot answer them gets one line why."""
    from results.criteria import CriteriaError, write_criteria

    out = Path(grid_dir) / "criteria.csv"
    try:
        table, notes = write_criteria(Path(results_dir), out)
    except (CriteriaError, FileNotFoundError) as err:
        print(f"criteria (a)-(c): not computed ({err})")
        return None
    print(f"\nFigure 3's criteria (a)-(c) ({notes[0]}; docs/fidelity.md):\n{table}")
    return out


def write_replicate(study_file: str, seed: int) -> str:
    """Write the study file of `study_file`'s replicate under `seed` (`study.reseed.reseeded`)
    into its runs folder; returns its path."""
    from study.reseed import reseeded

    try:
        raw = yaml.safe_load(Path(study_file).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise StudyConfigError(f"study config {study_file}: cannot read it ({' '.join(str(err).split())})") from None
    replicate = reseeded(raw, seed, source=study_file)
    path = Path(replicate["runs_dir"]) / "study.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, f"# {study_file} under seed {seed}: written by `python -m study.quickstart --seed {seed}` "
                            f"(study/reseed.py)\n" + yaml.safe_dump(replicate, sort_keys=False))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--study", default="configs/miniature/study.yaml", help="study definition (axes + stage configs)")
    parser.add_argument("--seed", type=int, default=None,
                        help="run the study's replicate under this seed: generator, subsets and training seeds all "
                             "changed, data and runs in their own folders (study/reseed.py); its study file is written "
                             "to <runs_dir>-seedN/study.yaml")
    args = parser.parse_args(argv)
    started = time.time()
    study_path = args.study
    if args.seed is not None:
        study_path = write_replicate(args.study, args.seed)
        print(f"replicate under seed {args.seed}: {study_path}", flush=True)
    study = StudyDefinition.from_yaml(study_path)
    # in a child process, so this coordinating process never holds torch/FFCV in memory
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        pool.submit(generate_data, study.generate, study.benchmarks).result()
    study.check_runnable()  # now that ood_options.yaml exists: registry names, options, stage callbacks
    failures = run_study(study, retry_failed=True)  # as before: a rerun of the quickstart retries what failed

    from results.report import rebuild_report

    grid_dir = Path(study.runs_dir) / "grid"
    report = rebuild_report(study.results_dir, grid_dir, expected_steps=study.steps, expected_sizes=study.data_sizes,
                            fallback_reference=study.fallback_reference)
    for message in report.messages:
        print(f"report: {message}")
    criteria = _criteria(study.results_dir, grid_dir)
    wall = time.time() - started
    peak_child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB → GiB
    print()
    print(f"{study.name} study finished in {wall / 60:.1f} min ({study.workers} workers; peak RSS of one worker {peak_child:.2f} GiB)")
    print(f"  result files : {study.results_dir}/*.json")
    print(f"  grid CSVs    : {report.csv_path}, {report.errors_csv_path}" + (f", {criteria}" if criteria else ""))
    for png in report.png_paths:
        print(f"  figure       : {png} (+ .svg)")
    print(f"  TensorBoard  : {Path(study.runs_dir) / 'tb'}  →  .venv/bin/tensorboard --logdir {Path(study.runs_dir) / 'tb'}")
    print(f"  cell states  : .venv/bin/python -m study list {study_path}")
    if failures:
        print(f"{len(failures)} cell(s) failed (`make quickstart` again retries them):")
        for line in failures:
            print(f"  {line}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except StudyConfigError as err:  # one line, as python -m study prints it
        sys.exit(f"error: {err}")
