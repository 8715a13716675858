"""ImageNet-V2 (Recht et al. 2019): 10,000 new test images, 10 per ImageNet-1k class.

Release layout (each variant's tarball unpacks to its own folder)::

    imagenetv2-matched-frequency-format-val/<k>/*.jpeg    k = 0..999
    imagenetv2-threshold0.7-format-val/<k>/*.jpeg
    imagenetv2-top-images-format-val/<k>/*.jpeg

Folder names are ImageNet-1k class *indices* (into the sorted-wnid order), not wnids.
Sorting them as strings ("0", "1", "10", "100", ...) and enumerating, as a plain
``ImageFolder`` does, mislabels 990 of the 1,000 classes: the loader parses ``int(folder)``.
Scoring: plain top-1 over all model outputs. Result key ``imagenet_v2``.
"""
from __future__ import annotations

from pathlib import Path

from ood.base import BenchmarkIndex, SingleLabelBenchmark, list_dirs
from ood.class_lists import imagenet1k_wnids

VARIANT_FOLDERS: dict[str, str] = {
    "matched-frequency": "imagenetv2-matched-frequency-format-val",
    "threshold-0.7": "imagenetv2-threshold0.7-format-val",
    "top-images": "imagenetv2-top-images-format-val",
}
EXPECTED_IMAGES = 10_000
EXPECTED_FOLDERS = 1000


class ImageNetV2(SingleLabelBenchmark):
    """ImageNet-V2. ``labels`` are model output indices.

    Args:
        variant: ``"matched-frequency"`` (default, the one the paper reports),
            ``"threshold-0.7"`` or ``"top-images"``; selects ``release_folder``.
        strict, expected_size: see ``Benchmark``. With ``expected_size=None`` the release must
            hold folders 0..999 and 10,000 images; an explicit size checks the image count only.
    """

    name = "imagenet_v2"
    result_key = "imagenet_v2"
    result_keys = ("imagenet_v2",)
    layout = "<class index 0..999>/*.jpeg"
    landmarks = ("[0-9]/", "[0-9][0-9]/", "[0-9][0-9][0-9]/")

    def __init__(self, *, variant: str = "matched-frequency", strict: bool = True, expected_size: int | None = None):
        super().__init__(strict=strict, expected_size=expected_size)
        if variant not in VARIANT_FOLDERS:
            raise ValueError(f"imagenet_v2: unknown variant {variant!r}; expected one of {sorted(VARIANT_FOLDERS)}")
        self.variant = variant
        self.release_folder = VARIANT_FOLDERS[variant]

    def _settings(self):
        return {"variant": self.variant}

    def _scan(self, root: Path, strict: bool) -> BenchmarkIndex:
        wnids = imagenet1k_wnids()
        folders = []
        for d in list_dirs(root):
            if not d.name.isdigit() or not 0 <= int(d.name) < len(wnids):
                raise ValueError(f"{self.name}: folder {d} is not a class index 0..999; is {root} an ImageNet-V2 release?")
            folders.append((int(d.name), d))
        folders.sort()  # numeric order: the index order is the label, never the string order
        if self.expected_size is None:
            self._check_count("class folders", EXPECTED_FOLDERS, len(folders), root, strict)
        expected = EXPECTED_IMAGES if self.expected_size is None else self.expected_size
        return self._index_from_folders(root, [(wnids[k], d) for k, d in folders], strict, expected)
