"""ImageNet-C (Hendrycks & Dietterich 2019): 15 corruptions x 5 severities of the 50,000
ImageNet validation images, read from the released JPEGs (never regenerated in memory:
that shifts accuracy by points).

Release layout (``noise.tar``, ``blur.tar``, ``weather.tar``, ``digital.tar`` unpacked into
one folder, here ``imagenet-c/``)::

    imagenet-c/<corruption>/<severity 1..5>/<wnid>/*.JPEG

Results: ``imagenet_c`` = mean top-1 error over the configured (corruption, severity) sets
(each set weighs the same); ``imagenet_c/<corruption>/<severity>`` per set;
``imagenet_c/<corruption>`` per corruption (mean over severities); ``imagenet_c/<c>/ce`` and
``imagenet_c/mce``: the corruption error normalised by AlexNet's (mean over severities of
the model's error / AlexNet's mean error, as robustness_metrics computes it, equal to
Hendrycks' sum-over-severities ratio); with a clean ImageNet error, ``imagenet_c/<c>/relative_ce``
and ``imagenet_c/relative_mce`` = (E_c - E_clean) / (A_c - A_clean), A_clean = 0.4348.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ood.base import WNID_RE, BenchmarkIndex, SingleLabelBenchmark, _check_lengths, list_dirs, list_images

IMAGENET_C_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

# AlexNet top-1 errors averaged over the 5 severities (Hendrycks & Dietterich 2019, App. C;
# the same numbers as robustness_metrics' ALEXENET_AVERAGE_ERRORS).
ALEXNET_ERRORS: dict[str, float] = {
    "gaussian_noise": 0.886, "shot_noise": 0.894, "impulse_noise": 0.923,
    "defocus_blur": 0.820, "glass_blur": 0.826, "motion_blur": 0.786, "zoom_blur": 0.798,
    "snow": 0.867, "frost": 0.827, "fog": 0.819,
    "brightness": 0.565, "contrast": 0.853, "elastic_transform": 0.646,
    "pixelate": 0.718, "jpeg_compression": 0.607,
}
ALEXNET_CLEAN_ERROR = 0.4348
EXPECTED_PER_SET = 50_000


class ImageNetC(SingleLabelBenchmark):
    """ImageNet-C. ``labels`` are model output indices; ``meta`` has ``set_id``
    (= corruption_idx * len(severities) + severity_idx), ``corruption`` (index into
    ``corruptions``) and ``severity`` (1..5). Result key ``imagenet_c``.

    Args:
        corruptions, severities: the sets to read (default: all 15 x 5).
        clean_error: clean ImageNet top-1 error of the same model, for relative mCE
            (or pass ``clean_error=`` to ``summarize``; ``set_clean_error`` also works).
        alexnet_errors: per-corruption normaliser for CE (default: AlexNet's published errors).
        strict, expected_size: see ``Benchmark``; here ``expected_size`` is images per
            (corruption, severity) set (default 50,000). Every configured set must exist.
    """

    name = "imagenet_c"
    result_key = "imagenet_c"
    result_keys = ("imagenet_c",)
    release_folder = "imagenet-c"
    layout = "<corruption>/<severity 1..5>/<wnid>/*.JPEG"
    landmarks = tuple(f"{c}/" for c in IMAGENET_C_CORRUPTIONS)

    def __init__(self, *, corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS, severities: Sequence[int] = SEVERITIES,
                 clean_error: float | None = None, alexnet_errors: Mapping[str, float] | None = None,
                 strict: bool = True, expected_size: int | None = None):
        super().__init__(strict=strict, expected_size=expected_size)
        self.corruptions = tuple(corruptions)
        self.severities = tuple(int(s) for s in severities)
        if not self.corruptions or len(set(self.corruptions)) != len(self.corruptions):
            raise ValueError(f"imagenet_c: corruptions must be non-empty and distinct, got {self.corruptions}")
        if not self.severities or any(s < 1 or s > 5 for s in self.severities):
            raise ValueError(f"imagenet_c: severities must be in 1..5, got {self.severities}")
        self.clean_error = None if clean_error is None else float(clean_error)
        self.alexnet_errors = dict(ALEXNET_ERRORS if alexnet_errors is None else alexnet_errors)

    def set_clean_error(self, clean_error: float | None) -> None:
        self.clean_error = None if clean_error is None else float(clean_error)

    def _settings(self):
        return {"corruptions": ",".join(self.corruptions), "severities": ",".join(map(str, self.severities)),
                "clean_error": self.clean_error}

    def set_name(self, set_id: int) -> str:
        c, s = divmod(int(set_id), len(self.severities))
        return f"{self.corruptions[c]}/{self.severities[s]}"

    def _scan(self, root: Path, strict: bool) -> BenchmarkIndex:
        per_set = EXPECTED_PER_SET if self.expected_size is None else self.expected_size
        missing = [f"{c}/{s}" for c in self.corruptions for s in self.severities if not (root / c / str(s)).is_dir()]
        n_sets = len(self.corruptions) * len(self.severities)
        if missing:
            self._incomplete(f"{self.name}: expected {n_sets} (corruption, severity) sets, found {n_sets - len(missing)} "
                             f"under {root} (missing {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})", strict)
        paths, labels, set_ids, corr, sev = [], [], [], [], []
        found = excluded = 0
        excluded_wnids: set[str] = set()
        short: list[str] = []
        for ci, c in enumerate(self.corruptions):
            for si, s in enumerate(self.severities):
                folder = root / c / str(s)
                if not folder.is_dir():
                    continue
                n_set = 0
                for d in list_dirs(folder):
                    if not WNID_RE.match(d.name):
                        continue
                    images = list_images(d)
                    n_set += len(images)
                    if d.name not in self._out_index:
                        excluded += len(images)
                        excluded_wnids.add(d.name)
                        continue
                    paths.extend(images)
                    labels.extend([self._out_index[d.name]] * len(images))
                    set_ids.extend([ci * len(self.severities) + si] * len(images))
                    corr.extend([ci] * len(images))
                    sev.extend([s] * len(images))
                found += n_set
                if n_set != per_set:
                    short.append(f"{c}/{s}: {n_set}")
        if short:
            self._incomplete(f"{self.name}: expected {per_set} images per set, found {short[0]}"
                             f"{f' (and {len(short) - 1} more sets off)' if len(short) > 1 else ''} under {root}", strict)
        meta = {"set_id": np.asarray(set_ids), "corruption": np.asarray(corr), "severity": np.asarray(sev)}
        return BenchmarkIndex(paths, np.asarray(labels, dtype=np.int64), meta, self.result_keys,
                              {"found": found, "kept": len(paths), "excluded": excluded, "excluded_classes": len(excluded_wnids)})

    def summarize(self, correct, confidence, index, *, clean_error: float | None = None) -> dict[str, float]:
        correct = np.asarray(correct, dtype=bool)
        confidence = np.asarray(confidence, dtype=np.float64)
        _check_lengths(self.name, correct, confidence, index)
        clean = self.clean_error if clean_error is None else float(clean_error)
        set_ids = index.meta["set_id"]
        n_sev = len(self.severities)
        out: dict[str, float] = {}
        set_errors: dict[int, float] = {}
        for sid in np.unique(set_ids):
            sel = set_ids == sid
            set_errors[int(sid)] = float(1.0 - correct[sel].mean())
            out[f"imagenet_c/{self.set_name(sid)}"] = set_errors[int(sid)]
        out["imagenet_c"] = float(np.mean(list(set_errors.values())))
        ces, rel_ces = [], []
        complete = True
        for ci, c in enumerate(self.corruptions):
            errs = [set_errors[ci * n_sev + si] for si in range(n_sev) if ci * n_sev + si in set_errors]
            if not errs:
                complete = False
                continue
            mean_err = float(np.mean(errs))
            out[f"imagenet_c/{c}"] = mean_err
            if len(errs) != n_sev or c not in self.alexnet_errors:
                complete = False  # a CE over fewer severities, or without a normaliser, is not comparable
                continue
            ces.append(mean_err / self.alexnet_errors[c])
            out[f"imagenet_c/{c}/ce"] = ces[-1]
            if clean is not None:
                rel_ces.append((mean_err - clean) / (self.alexnet_errors[c] - ALEXNET_CLEAN_ERROR))
                out[f"imagenet_c/{c}/relative_ce"] = rel_ces[-1]
        if complete and ces:
            out["imagenet_c/mce"] = float(np.mean(ces))
            if clean is not None:
                out["imagenet_c/relative_mce"] = float(np.mean(rel_ces))
        out["imagenet_c/n_images"] = float(correct.size)
        return out
