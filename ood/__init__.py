"""OOD benchmarks: one module per release layout and scoring rule, one registry entry each.

``get_benchmark(name, **kwargs)`` builds a benchmark by registry name; see
``ood.base`` for the contract (scan → outcomes → summarize) and
docs/benchmarks-layouts.md for each release's layout, files and scoring choices.
"""
from __future__ import annotations

from ood.base import Benchmark, BenchmarkIndex, IncompleteReleaseWarning
from ood.imagenet_a import ImageNetA
from ood.imagenet_c import ImageNetC
from ood.imagenet_v2 import ImageNetV2
from ood.objectnet import ObjectNet
from ood.video_robust import ImageNetVidRobust, YTBBRobust

# Figure 3's order: ImageNet-A, -C, -V2, ObjectNet, ImageNet-Vid(-W), YouTube-BB(-W).
REGISTRY: dict[str, type[Benchmark]] = {
    cls.name: cls for cls in (ImageNetA, ImageNetC, ImageNetV2, ObjectNet, ImageNetVidRobust, YTBBRobust)
}


def get_benchmark(name: str, **kwargs) -> Benchmark:
    """Construct the benchmark registered as ``name`` with constructor ``kwargs``."""
    if name not in REGISTRY:
        raise ValueError(f"unknown benchmark {name!r}; valid names: {', '.join(REGISTRY)}")
    return REGISTRY[name](**kwargs)


__all__ = ["REGISTRY", "get_benchmark", "Benchmark", "BenchmarkIndex", "IncompleteReleaseWarning",
           "ImageNetA", "ImageNetC", "ImageNetV2", "ObjectNet", "ImageNetVidRobust", "YTBBRobust"]
