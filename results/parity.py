"""Our OOD numbers beside imagenet-testbed's published ones for the same weights.

The published numbers are imagenet-testbed's ``robustness_top1s.csv`` (modestyachts/
imagenet-testbed, last changed in commit ``f4083a2``, 2021-09-15; the BiT rows are the same at
``b9067fc``, 2020-11-20): top-1 accuracy in %, for BiT-M models fine-tuned on ImageNet-1k
(``BiT-M-R50x1-ILSVRC2012``, ``BiT-M-R101x3-ILSVRC2012``), evaluated with the testbed's BiT
preprocessing: the whole image squashed to 480 x 480 with PIL's bilinear filter, no crop,
inputs scaled to [-1, 1] (``src/models/bit_m.py``). Columns and our result keys:

- ImageNet-A (``imagenet-a``, 200-class restricted logits)            ← ``imagenet_a``
- ImageNet-C: mean of the 15 corruptions x 5 severities of the
  ``imagenet-c.<corruption>.<severity>_on-disk`` columns (the testbed
  keeps no single ImageNet-C number; this mean is ours to compute)     ← ``imagenet_c``
- ImageNet-V2 matched-frequency (``imagenetv2-matched-frequency-format-val``,
  the public release and the column the testbed's paper plots use)    ← ``imagenet_v2``
- ObjectNet (``objectnet-1.0-beta``, 113 classes, 2 px border crop)   ← ``objectnet``
- ImageNet-Vid-Robust pm0 / pm10                                      ← ``imagenet_vid`` / ``imagenet_vid_w``
- YouTube-BB-Robust pm0 / pm10 (unmapped classes never predicted)     ← ``ytbb`` / ``ytbb_w``
- ImageNet val (``val``)                                              ← ``clean/error`` (our val beton)

Command: ``python -m results.parity RESULT.json [--model BiT-M-R50x1]`` prints the table for a
result file (``ood_result.json`` of an evaluation run); ``callbacks.parity_report.ParityReport``
prints it at the end of ``train.py test --config configs/bit/parity.yaml`` (docs/ood-parity.md).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

SOURCE = "imagenet-testbed robustness_top1s.csv (modestyachts/imagenet-testbed @ f4083a2)"
PREPROCESSING = "squash to 480x480, PIL bilinear, no crop, mean = std = 0.5"

# (label, our key: an error in [0, 1] in the result's "errors" or "metrics", published column)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("ImageNet (val)", "clean/error", "val"),
    ("ImageNet-A", "imagenet_a", "imagenet-a"),
    ("ImageNet-C (15 x 5 mean)", "imagenet_c", "imagenet-c (15 corruptions x 5 severities, on-disk)"),
    ("ImageNet-V2 (matched-frequency)", "imagenet_v2", "imagenetv2-matched-frequency-format-val"),
    ("ObjectNet", "objectnet", "objectnet-1.0-beta"),
    ("ImageNet-Vid-Robust pm0", "imagenet_vid", "imagenet-vid-robust_pm0"),
    ("ImageNet-Vid-Robust pm10", "imagenet_vid_w", "imagenet-vid-robust_pm10"),
    ("YTBB-Robust pm0", "ytbb", "ytbb-robust_pm0"),
    ("YTBB-Robust pm10", "ytbb_w", "ytbb-robust_pm10"),
)

# top-1 accuracy, %: the CSV's values (ImageNet-C: our mean of its 75 on-disk columns)
PUBLISHED: dict[str, dict[str, float]] = {
    "BiT-M-R50x1": {
        "clean/error": 80.402, "imagenet_a": 25.2667, "imagenet_c": 42.1939, "imagenet_v2": 68.50,
        "objectnet": 34.8547, "imagenet_vid": 76.4653, "imagenet_vid_w": 61.4968, "ytbb": 63.3005, "ytbb_w": 50.7882,
    },
    "BiT-M-R101x3": {
        "clean/error": 84.782, "imagenet_a": 52.1467, "imagenet_c": 55.9730, "imagenet_v2": 73.46,
        "objectnet": 45.7762, "imagenet_vid": 83.6790, "imagenet_vid_w": 71.5059, "ytbb": 71.5764, "ytbb_w": 60.5419,
    },
}
# timm names of those weights (``resnetv2_50x1_bit.goog_in21k_ft_in1k``, and the older aliases)
_TIMM = re.compile(r"^resnetv2_(50x1|101x3)_bit(m|\.goog_in21k_ft_in1k)?$")
DEFAULT_TOLERANCE = 1.0  # points of top-1: beyond it a row is flagged (FFCV decoding, JPEG caches, bf16)


def published_model(backbone: str | None) -> str | None:
    """The published model whose numbers ``backbone`` (a timm name) should reproduce, or None."""
    match = _TIMM.match(backbone or "")
    return f"BiT-M-R{match.group(1)}" if match else None


@dataclass(frozen=True)
class ParityRow:
    """One benchmark: our top-1 % (None when the result lacks it), the published one, ours - published."""

    label: str
    key: str
    column: str
    ours: float | None
    published: float

    @property
    def diff(self) -> float | None:
        return None if self.ours is None else self.ours - self.published

    def off(self, tolerance: float) -> bool:
        return self.diff is not None and abs(self.diff) > tolerance


def compare(result: dict, model: str) -> list[ParityRow]:
    """Rows for a result record (``errors`` and ``metrics`` hold errors in [0, 1])."""
    if model not in PUBLISHED:
        raise ValueError(f"no published numbers for {model!r}; known: {', '.join(PUBLISHED)}")
    values = {**result.get("metrics", {}), **result.get("errors", {})}
    rows = []
    for label, key, column in ROWS:
        error = values.get(key)
        ours = None if error is None or not math.isfinite(float(error)) else 100.0 * (1.0 - float(error))
        rows.append(ParityRow(label, key, column, ours, PUBLISHED[model][key]))
    return rows


def format_table(rows: Sequence[ParityRow], model: str, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The comparison as text: one line per benchmark, flagged beyond ``tolerance`` points."""
    lines = [f"parity with {SOURCE}: {model}, top-1 accuracy %",
             f"published preprocessing: {PREPROCESSING}",
             f"{'benchmark':<32} {'ours':>7} {'published':>9} {'diff':>7}"]
    for row in rows:
        ours = "-" if row.ours is None else f"{row.ours:.2f}"
        diff = "-" if row.diff is None else f"{row.diff:+.2f}"
        flag = "  <-- off by more than {:g}".format(tolerance) if row.off(tolerance) else ("  (not in the result)" if row.ours is None else "")
        lines.append(f"{row.label:<32} {ours:>7} {row.published:>9.2f} {diff:>7}{flag}")
    compared = [r for r in rows if r.ours is not None]
    off = [r for r in compared if r.off(tolerance)]
    lines.append(f"{len(compared)} of {len(rows)} compared; {len(off)} off by more than {tolerance:g} points"
                 + (f" ({', '.join(r.label for r in off)})" if off else ""))
    return "\n".join(lines)


def rows_csv(rows: Sequence[ParityRow], model: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["model", "benchmark", "key", "published_column", "ours", "published", "diff"])
    for r in rows:
        writer.writerow([model, r.label, r.key, r.column, "" if r.ours is None else f"{r.ours:.4f}", f"{r.published:.4f}",
                         "" if r.diff is None else f"{r.diff:.4f}"])
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m results.parity", description=__doc__.split("\n")[0])
    parser.add_argument("result", type=Path, help="a result file (ood_result.json of an evaluation run)")
    parser.add_argument("--model", choices=sorted(PUBLISHED), help="published model (default: from the result's model name)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, help="points of top-1 before a row is flagged")
    parser.add_argument("--check", action="store_true", help="exit 1 when a row is off by more than the tolerance")
    args = parser.parse_args(argv)
    try:
        result = json.loads(args.result.read_text())
    except (OSError, ValueError) as err:
        print(f"error: cannot read result file {args.result}: {err}", file=sys.stderr)
        return 2
    model = args.model or published_model(result.get("model"))
    if model is None:
        print(f"error: {args.result} is from model {result.get('model')!r}, which has no published numbers; "
              f"pass --model ({', '.join(PUBLISHED)})", file=sys.stderr)
        return 2
    rows = compare(result, model)
    print(format_table(rows, model, args.tolerance))
    return 1 if args.check and any(r.off(args.tolerance) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
