"""OOD-suite evaluation throughput against a bare forward loop over the same tensors.

For each benchmark of a generated suite (the quickstart's generator, real release layouts),
in one run, same model, same batch size, one process:

1. the project's evaluation path: the FFCV loader of the cached benchmark beton, the forward
   pass, the benchmark's scoring and the index-deduplicating metric — the loop the
   ``OODEvaluation`` callback runs (its ``_outcomes``) plus ``summarize``;
2. a bare ``model(x)`` loop over the very batches of (1), materialised in memory beforehand.

Reports images/s of each and the ratio (1)/(2) (target >= 0.9). The first pass of (1)
compiles FFCV's pipelines and is not timed.

    .venv/bin/python -m perf.eval_throughput [--backbone resnetv2_50x1_bit --resolution 64 --batch 128]
"""
from __future__ import annotations

import argparse
import time
import types
from pathlib import Path

import torch

SPEC = {
    "seed": 0, "image_size": 64, "upstream_classes": 4, "upstream_images_per_class": 4,
    "downstream_train_per_class": 4, "downstream_val_per_class": 8,
    "ood": {"per_class": 12, "c_per_class": 1, "videos_per_class": 2},
}


def _suite(root: Path, resolution: int):
    from ood.class_lists import imagenet1k_wnids
    from datamodules.ood import OODSuite
    from synthetic.miniature_classes import MINIATURE_WNIDS
    from synthetic.ood_sets import expected_sizes
    from study.quickstart import generate_data

    if not (root / "ood_options.yaml").exists():
        generate_data({**SPEC, "root": str(root)})
    ood = {k: v for k, v in SPEC["ood"].items()}
    sizes = expected_sizes(MINIATURE_WNIDS, **ood)
    # a 1,000-way model, as on real runs: scoring restricts/maps outputs like it would for ImageNet-1k
    return OODSuite(root / "ood", list(sizes), list(imagenet1k_wnids()), resolution,
                    {name: {"expected_size": n} for name, n in sizes.items()}, root / "ood" / f".betons-{resolution}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path("data/bench/eval"))
    parser.add_argument("--backbone", default="resnetv2_50x1_bit")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    import lightning_modules.backbones  # noqa: F401 - registers the tiny models
    from lightning.pytorch.plugins.precision import Precision

    from callbacks.ood_evaluation import OODEvaluation
    from lightning_modules.classifier import ImageClassifier

    torch.manual_seed(0)
    suite = _suite(args.root, args.resolution)
    module = ImageClassifier(args.backbone, 1000).eval()
    trainer = types.SimpleNamespace(precision_plugin=Precision())  # fp32: forward_context is a no-op
    sets = suite.evaluation_sets(args.batch, args.workers, rank=0, world_size=1)
    print(f"{args.backbone} at {args.resolution}px, batch {args.batch}, {args.workers} FFCV threads, "
          f"torch threads {torch.get_num_threads()}")
    print("| benchmark | images | evaluation img/s | bare forward img/s | ratio |")
    print("| --- | --- | --- | --- | --- |")
    total_eval = total_bare = total_n = 0.0
    with torch.inference_mode():
        for s in sets:
            OODEvaluation._outcomes(trainer, module, s.loader, s.size, s.name, s.benchmark.outcomes)  # compiles; untimed
            t = time.perf_counter()
            _, correct, confidence = OODEvaluation._outcomes(trainer, module, s.loader, s.size, s.name, s.benchmark.outcomes)
            s.benchmark.summarize(correct.numpy(), confidence.numpy(), s.index)
            evaluated = time.perf_counter() - t
            batches = [images.clone() for images, _, _ in s.loader]  # clone: FFCV reuses its buffers
            t = time.perf_counter()
            for images in batches:
                module(images)
            bare = time.perf_counter() - t
            total_eval, total_bare, total_n = total_eval + evaluated, total_bare + bare, total_n + s.size
            print(f"| {s.name} | {s.size} | {s.size / evaluated:,.0f} | {s.size / bare:,.0f} | {bare / evaluated:.3f} |")
    print(f"| **all** | {int(total_n)} | {total_n / total_eval:,.0f} | {total_n / total_bare:,.0f} | **{total_bare / total_eval:.3f}** |")


if __name__ == "__main__":
    main()
