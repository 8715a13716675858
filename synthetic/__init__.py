"""Synthetic data: the generated stand-ins for every release layout (the quickstart's data).

- `synthetic.generator`         — deterministic procedural images (classes, distribution shifts).
- `synthetic.folders`           — ImageNet-21k / ImageNet-1k release layouts, written atomically.
- `synthetic.ood_sets`          — the OOD suite, each benchmark in its release layout (read by `ood`).
- `synthetic.miniature_classes` — the real ImageNet-1k classes of the miniature study.
"""
