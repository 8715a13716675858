"""ImageNet-C (Hendrycks & Dietterich 2019): 15 corruptions x 5 severities of the 50,000
ImageNet validation images, read from the released JPEGs (never regenerated in memory:
that shifts accuracy by points).

Release layout: five category tars (``noise``, ``blur``, ``weather``, ``digital`` and
``extra``, the last with the four held-out corruptions). Each tar holds its corruption folders
at its top level, so users unpack them either all into one folder or each into a folder of its
own; both are read (``find_corruption_folders``)::

    imagenet-c/<corruption>/<severity 1..5>/<wnid>/*.JPEG              all in one folder
    imagenet-c/<category>/<corruption>/<severity 1..5>/<wnid>/*.JPEG   one folder per tar

A tree that mixes the two depths, or holds a corruption twice, is refused in one line. The
``extra`` corruptions (speckle_noise, gaussian_blur, spatter, saturate) are never part of the
15-corruption metrics; they are read only when configured by name.

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

from ood.base import WNID_RE, BenchmarkIndex, SingleLabelBenchmark, UnitOutcomes, _check_lengths, list_dirs, list_images, relative_name

IMAGENET_C_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
# The release's held-out corruptions (extra.tar): not in the 15-set mean, mCE or the paper.
IMAGENET_C_EXTRA: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
# Which tar ships which corruption (Hendrycks' release): a per-tar folder holds one category.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": IMAGENET_C_EXTRA,
}
KNOWN_CORRUPTIONS = frozenset(IMAGENET_C_CORRUPTIONS + IMAGENET_C_EXTRA)
_CATEGORY_OF = {c: category for category, members in CATEGORIES.items() for c in members}
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


def find_corruption_folders(root: Path) -> dict[str, Path]:
    """Every corruption folder of the release under ``root``: ``{corruption: folder}``.

    A corruption folder is a directory named after one of the release's 19 corruptions, either
    directly in ``root`` (the tars unpacked into one folder) or one level down (each tar in a
    folder of its own, whatever that folder is called). Hidden folders are skipped. Refuses
    (one-line ``ValueError``) a tree with corruptions at both depths, or one corruption twice.
    """
    flat: dict[str, Path] = {}
    nested: dict[str, list[Path]] = {}
    for d in list_dirs(root):  # hidden folders (e.g. caches) are not listed
        if d.name in KNOWN_CORRUPTIONS:
            flat[d.name] = d
            continue
        for inner in list_dirs(d):
            if inner.name in KNOWN_CORRUPTIONS:
                nested.setdefault(inner.name, []).append(inner)
    if flat and nested:
        one_flat, one_nested = next(iter(flat.values())), next(iter(nested.values()))[0]
        raise ValueError(f"imagenet_c: {root} mixes two unpackings ({one_flat.relative_to(root)} and {one_nested.relative_to(root)}); "
                         f"unpack every tar into {root} itself, or each into its own folder under it, not both")
    by_folder: dict[Path, set[str]] = {}
    for c, ds in nested.items():
        for d in ds:
            by_folder.setdefault(d.parent, set()).add(_CATEGORY_OF[c])
    for folder, categories in sorted(by_folder.items()):
        if len(categories) > 1:  # not one tar's folder: the one-folder unpacking, a level too deep
            raise ValueError(f"imagenet_c: {folder} holds corruptions of {len(categories)} tars ({', '.join(sorted(categories))}), "
                             f"so it is not one tar's folder; move its corruption folders up into {root}")
    twice = {c: ds for c, ds in nested.items() if len(ds) > 1}
    if twice:
        c, ds = next(iter(twice.items()))
        raise ValueError(f"imagenet_c: corruption {c} appears twice under {root} ({', '.join(str(d.relative_to(root)) for d in ds)}); "
                         f"keep one copy")
    return flat or {c: ds[0] for c, ds in nested.items()}


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
    layout = "<corruption>/<severity 1..5>/<wnid>/*.JPEG (or <category>/<corruption>/..., one folder per tar)"
    landmarks = tuple(f"{c}/" for c in IMAGENET_C_CORRUPTIONS)  # the one-folder unpacking; per-tar folders below

    def looks_like_release(self, folder: str | Path) -> bool:
        """Corruption folders directly inside ``folder``, or a sub-folder holding one tar's
        corruptions (only one category: a folder with several is the one-folder unpacking, so
        its parent is not the release)."""
        folder = Path(folder)
        if super().looks_like_release(folder):
            return True
        if not folder.is_dir():
            return False
        for d in list_dirs(folder):
            categories = {_CATEGORY_OF[c.name] for c in list_dirs(d) if c.name in _CATEGORY_OF}
            if len(categories) == 1:
                return True
        return False

    def __init__(self, *, corruptions: Sequence[str] = IMAGENET_C_CORRUPTIONS, severities: Sequence[int] = SEVERITIES,
                 clean_error: float | None = None, alexnet_errors: Mapping[str, float] | None = None,
                 strict: bool = True, expected_size: int | None = None):
        super().__init__(strict=strict, expected_size=expected_size)
        self.corruptions = tuple(corruptions)
        self.severities = tuple(int(s) for s in severities)
        if not self.corruptions or len(set(self.corruptions)) != len(self.corruptions):
            raise ValueError(f"imagenet_c: corruptions must be non-empty and distinct, got {self.corruptions}")
        unknown = [c for c in self.corruptions if c not in KNOWN_CORRUPTIONS]
        if unknown:
            raise ValueError(f"imagenet_c: unknown corruption {unknown[0]!r}; the release has {', '.join(IMAGENET_C_CORRUPTIONS)} "
                             f"and the extra {', '.join(IMAGENET_C_EXTRA)}")
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
        folders = find_corruption_folders(root)
        missing = [f"{c}/{s}" for c in self.corruptions for s in self.severities if not (folders.get(c, root / c) / str(s)).is_dir()]
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
                folder = folders.get(c, root / c) / str(s)
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

    def unit_outcomes(self, correct, index) -> dict[str, UnitOutcomes]:
        """Units are the base images (``<wnid>/<file>``: one val image, the same in every set),
        columns the configured sets present; resampling a base image resamples it in all 75."""
        correct = np.asarray(correct, dtype=bool)
        names = [relative_name(p, 2) for p in index.paths]
        units = sorted(set(names))
        row_of = {u: i for i, u in enumerate(units)}
        sets = np.unique(index.meta["set_id"])
        column_of = {int(s): j for j, s in enumerate(sets)}
        matrix = np.zeros((len(units), len(sets)), dtype=bool)
        valid = np.zeros_like(matrix)
        rows = np.fromiter((row_of[n] for n in names), dtype=np.int64, count=len(names))
        cols = np.fromiter((column_of[int(s)] for s in index.meta["set_id"]), dtype=np.int64, count=len(names))
        matrix[rows, cols] = correct
        valid[rows, cols] = True
        return {"imagenet_c": UnitOutcomes(matrix, units, "base image", valid)}

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
