"""ImageNet-A (Hendrycks et al. 2021): 7,500 natural adversarial examples in 200 classes.

Release layout (``imagenet-a.tar`` unpacks to)::

    imagenet-a/
      README.txt
      n01498041/*.jpg     one folder per wnid, 200 folders

Scoring: by default the logits are restricted to ImageNet-A's 200 classes (those the model
has), as Hendrycks et al. and robustness_metrics (``appearing_classes``) do; ``restrict=False``
takes the plain argmax over all model outputs, which the literature also reports. The
choice is in ``describe()["scoring"]``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ood.base import WNID_RE, BenchmarkIndex, SingleLabelBenchmark, list_dirs, masked_argmax, plain_argmax
from ood.class_lists import imagenet_a_wnids

EXPECTED_IMAGES = 7500
EXPECTED_FOLDERS = 200


class ImageNetA(SingleLabelBenchmark):
    """ImageNet-A. ``labels`` are model output indices. Result key ``imagenet_a`` (top-1 error).

    Args:
        restrict: restrict logits to ImageNet-A's 200 classes ∩ the model's (default True).
        strict, expected_size: see ``Benchmark``. With ``expected_size=None`` the release must
            hold 200 wnid folders and 7,500 images; an explicit ``expected_size`` checks the
            image count only (a generated set has only the study's classes).
    """

    name = "imagenet_a"
    result_key = "imagenet_a"
    result_keys = ("imagenet_a",)
    release_folder = "imagenet-a"
    layout = "<wnid>/*.jpg"
    landmarks = ("n[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]/",)

    def __init__(self, *, restrict: bool = True, strict: bool = True, expected_size: int | None = None):
        super().__init__(strict=strict, expected_size=expected_size)
        self.restrict = bool(restrict)

    def _settings(self):
        return {"scoring": "restricted" if self.restrict else "full"}

    def _scan(self, root: Path, strict: bool) -> BenchmarkIndex:
        a_wnids = set(imagenet_a_wnids())
        folders = [d for d in list_dirs(root) if WNID_RE.match(d.name)]
        unknown = [d.name for d in folders if d.name not in a_wnids]
        if unknown:
            raise ValueError(f"{self.name}: folders {unknown[:5]} under {root} are not ImageNet-A classes; is this the imagenet-a release?")
        if self.expected_size is None:
            self._check_count("class folders", EXPECTED_FOLDERS, len(folders), root, strict)
        expected = EXPECTED_IMAGES if self.expected_size is None else self.expected_size
        return self._index_from_folders(root, [(d.name, d) for d in folders], strict, expected)

    def outcomes(self, logits, labels):
        self._require_bound()
        if not self.restrict:
            pred, conf = plain_argmax(logits)
        else:
            allowed = self._on_device("a_mask", self._a_mask, logits.device)
            pred, conf = masked_argmax(logits, allowed)
        return pred == labels.to(pred.device).long(), conf

    def _a_mask(self) -> torch.Tensor:
        mask = torch.zeros(len(self.class_list), dtype=torch.bool)
        for w in imagenet_a_wnids():
            if w in self._out_index:
                mask[self._out_index[w]] = True
        return mask
