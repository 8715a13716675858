"""ImageNet-Vid-Robust and YouTube-BB-Robust (Shankar et al., "Do Image Classifiers
Generalize Across Time?", 2019/2021): sets of perceptually similar video frames.

Both come in one tarball, ``imagenet_vid_ytbb_robust.tar.gz``, which unpacks to
``imagenet_vid_ytbb_robust/{imagenet-vid-robust,ytbb-robust}``.

Scoring, shared (after modestyachts/imagenet-testbed's ``validate_vid_robust`` /
``validate_ytbb_robust``): a benchmark class's score is the max over the logits of the
ImageNet classes mapped to it (``aggregate="max"``, default), or the sum of their softmax
probabilities (``aggregate="sum"``, softmax over the mapped outputs: the testbed's option
for smoothed models); the prediction is the argmax over benchmark classes; a frame is
correct if the prediction is one of its labels (frames carry label *sets*).

- ``pm0`` = accuracy on the anchor frames ("benign" accuracy).
- ``pm10`` = fraction of pm-sets whose anchor and every (reviewed) neighbour within 10
  frames are correct: the worst case over the set.

Result keys: ``imagenet_vid`` = 1 - pm0 and ``imagenet_vid_w`` = 1 - pm10 (``ytbb``, ``ytbb_w``);
``<key>/pm0``, ``<key>/pm10`` report the accuracies themselves.

Benchmark classes with no model output (``unmapped``):

- ``"testbed"`` (default): imagenet-testbed's rule since its "float -inf fix" (commit
  ``f4083a2``, Sept. 2021, in ``validate_ytbb_robust``): an unmapped class scores ``-inf``, so it
  is never predicted, and every pm-set is kept. A frame whose labels are all unmapped therefore
  always counts as an error. With an ImageNet-1k model this concerns YouTube-BB-Robust's cow,
  giraffe, skateboard, toilet and ``none`` (``person`` maps to ImageNet 981-983: ballplayer,
  groom, scuba diver); ImageNet-Vid-Robust maps all 30 classes, so nothing changes there. With a
  smaller class list (the miniature's) every class without an output follows the same rule.
- ``"exclude"``: such a class is never predicted either, but a pm-set whose anchor has no label
  with a model output is dropped whole (counted in ``stats``, logged): an error rate over the
  classes the model can name, for class lists far from ImageNet-1k's. Not the published protocol.
- ``"zero"`` (old name ``"reference"``): the testbed before that fix: an unmapped class scores a
  constant 0 (its projection array was zero-initialised), every pm-set is kept, and a frame
  labelled only with unmapped classes counts as correct exactly when 0 beats every mapped score
  (confidence 0 then). Kept to compare with numbers computed before September 2021.

Published BiT-M numbers are the same under "testbed" and "zero" (the testbed's stored results
for them did not change with the fix); see docs/ood-parity.md.
"""
from __future__ import annotations

import csv
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ood.base import Benchmark, BenchmarkIndex, UnitOutcomes, _check_lengths, read_json, require_file, require_keys
from ood.class_lists import imagenet1k_wnids

log = logging.getLogger(__name__)

AGGREGATES = ("max", "sum")
UNMAPPED_POLICIES = ("testbed", "exclude", "zero")
_UNMAPPED_ALIASES = {"reference": "zero"}  # the pre-fix rule's old name


class _PmSetBenchmark(Benchmark):
    """Shared pm-k logic. Subclasses implement ``_read_release`` returning the benchmark's
    class → wnids mapping and the pm-sets as (anchor key, anchor labels, [(neighbour key,
    neighbour labels)]) with paths relative to ``_frames_root``.

    Index rows are (frame, pm-set) memberships (a frame in two pm-sets appears twice):
    ``labels`` = id of the frame's label set, ``meta["pmset"]`` = pm-set ordinal,
    ``meta["is_anchor"]`` = 1 for the anchor row of each set.
    """

    key: ClassVar[str]
    expected_anchors: ClassVar[int | None] = None
    expected_frames: ClassVar[int | None] = None

    def __init__(self, *, aggregate: str = "max", unmapped: str = "testbed", strict: bool = True,
                 expected_size: int | None = None):
        super().__init__(strict=strict, expected_size=expected_size)
        unmapped = _UNMAPPED_ALIASES.get(unmapped, unmapped)
        if aggregate not in AGGREGATES:
            raise ValueError(f"{self.name}: aggregate must be one of {AGGREGATES}, got {aggregate!r}")
        if unmapped not in UNMAPPED_POLICIES:
            raise ValueError(f"{self.name}: unmapped must be one of {UNMAPPED_POLICIES}, got {unmapped!r}")
        self.aggregate = aggregate
        self.unmapped = unmapped
        self._class_outputs: list[list[int]] = []
        self._targets = np.zeros((0, 0), dtype=bool)
        self._n_metadata_frames = 0  # frames the metadata labels (set by _read_release)
        self._frames_root_seen: Path | None = None  # the scanned release's frame folder (unit names)

    def _settings(self):
        return {"aggregate": self.aggregate, "unmapped": self.unmapped}

    # ------------------------------------------------------------------ scan
    def _read_release(self, root: Path) -> tuple[list[list[str]], list[tuple[str, frozenset, list[tuple[str, frozenset]]]]]:
        raise NotImplementedError

    def _frames_root(self, root: Path) -> Path:
        return root

    def _scan(self, root: Path, strict: bool) -> BenchmarkIndex:
        class_wnids, pmsets = self._read_release(root)
        frames_root = self._frames_root_seen = self._frames_root(root)
        self._class_outputs = [[self._out_index[w] for w in ws if w in self._out_index] for ws in class_wnids]
        mapped = {k for k, outs in enumerate(self._class_outputs) if outs}
        if not mapped:
            raise ValueError(f"{self.name}: no class of the benchmark has an output among the model's {len(self.class_list)} classes; "
                             f"nothing to evaluate (leave {self.name} out of data.benchmarks)")

        referenced = sorted({a for a, _, _ in pmsets} | {n for _, _, ns in pmsets for n, _ in ns})
        present = {key for key in referenced if (frames_root / key).is_file()}
        n_anchor_sets = len(pmsets)
        if self.expected_size is None:
            # The published totals describe the metadata; the files are checked against it below.
            if self.expected_anchors is not None:
                self._check_count("pm-sets (anchors) in the metadata", self.expected_anchors, n_anchor_sets, root, strict)
            if self.expected_frames is not None:
                self._check_count("labelled frames in the metadata", self.expected_frames, self._n_metadata_frames, root, strict)
        else:
            self._check_count("frames", self.expected_size, len(present), frames_root, strict)
        if len(present) < len(referenced):
            missing = sorted(set(referenced) - present)
            self._incomplete(f"{self.name}: expected {len(referenced)} frames named by the metadata, found {len(present)} "
                             f"under {frames_root} (missing e.g. {missing[0]})", strict)

        label_sets: dict[frozenset, int] = {}
        paths, labels, pmset_ids, is_anchor = [], [], [], []
        excluded_frames: set[str] = set()
        kept_anchors = 0
        for anchor, anchor_labels, neighbours in pmsets:
            if anchor not in present:
                continue
            if self.unmapped == "exclude" and not (anchor_labels & mapped):
                excluded_frames.add(anchor)
                excluded_frames.update(n for n, _ in neighbours if n in present)
                continue
            rows = [(anchor, anchor_labels, 1)] + [(n, lab, 0) for n, lab in neighbours if n in present]
            for key, lab, flag in rows:
                paths.append(frames_root / key)
                labels.append(label_sets.setdefault(lab, len(label_sets)))
                pmset_ids.append(kept_anchors)
                is_anchor.append(flag)
            kept_anchors += 1
        k = len(class_wnids)
        targets = np.zeros((len(label_sets), k), dtype=bool)
        for lab, i in label_sets.items():
            targets[i, [x for x in sorted(lab) if 0 <= x < k]] = True  # a label outside the class index can never be predicted
        self._targets = targets
        self._device_cache = {}
        kept_frames = set(paths)
        excluded_frames -= {p.relative_to(frames_root).as_posix() for p in kept_frames}  # also in a kept set
        unmapped_anchors = sum(1 for anchor, lab, _ in pmsets if anchor in present and not (lab & mapped))
        stats = {"found": len(present), "kept": len(kept_frames), "excluded": len(excluded_frames),
                 "excluded_classes": k - len(mapped), "anchors": n_anchor_sets, "anchors_kept": kept_anchors,
                 "anchors_unmapped": unmapped_anchors, "rows": len(paths)}
        if unmapped_anchors and self.unmapped != "exclude":
            log.info("%s: %d of %d pm-sets have an anchor with no label among the model's classes; scored as errors "
                     "(unmapped=%s)", self.name, unmapped_anchors, kept_anchors, self.unmapped)
        meta = {"pmset": np.asarray(pmset_ids), "is_anchor": np.asarray(is_anchor)}
        return BenchmarkIndex(paths, np.asarray(labels, dtype=np.int64), meta, self.result_keys, stats)

    # ------------------------------------------------------------------ scoring
    def _class_matrix(self) -> torch.Tensor:
        m = torch.zeros(len(self.class_list), len(self._class_outputs), dtype=torch.bool)
        for k, outs in enumerate(self._class_outputs):
            m[outs, k] = True
        return m

    def class_scores(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C) model logits → (scores, probabilities) over benchmark classes, both (B, K).

        ``probabilities`` is what ``outcomes`` reports as confidence: the max (``"max"``) or the
        sum (``"sum"``) of the softmax over the mapped outputs, per benchmark class."""
        m = self._on_device("class_matrix", self._class_matrix, logits.device)  # (C, K)
        logits = logits.float()
        sub = m.any(dim=1)
        probs = torch.softmax(logits.masked_fill(~sub, -math.inf), dim=1)  # softmax over the mapped outputs
        b, k = logits.shape[0], m.shape[1]
        fill = 0.0 if self.unmapped == "zero" else -math.inf
        scores = torch.full((b, k), fill, device=logits.device)
        class_prob = torch.zeros((b, k), device=logits.device)
        for j, outs in enumerate(self._class_outputs):
            if not outs:
                continue
            idx = torch.as_tensor(outs, device=logits.device)
            if self.aggregate == "max":
                scores[:, j] = logits[:, idx].max(dim=1).values
                class_prob[:, j] = probs[:, idx].max(dim=1).values
            else:
                class_prob[:, j] = probs[:, idx].sum(dim=1)
                scores[:, j] = class_prob[:, j]
        return scores, class_prob

    def outcomes(self, logits, labels):
        self._require_bound()
        scores, class_prob = self.class_scores(logits)
        pred = scores.argmax(dim=1)
        targets = self._on_device("targets", lambda: torch.from_numpy(self._targets), logits.device)
        # a row of -inf only (no benchmark class has an output) predicts nothing: argmax's 0 is no answer
        correct = targets[labels.to(logits.device).long(), pred] & torch.isfinite(scores.gather(1, pred[:, None]).squeeze(1))
        confidence = class_prob.gather(1, pred[:, None]).squeeze(1)
        return correct, confidence

    def _per_set(self, correct, index) -> tuple[np.ndarray, np.ndarray]:
        """``(anchor right, anchor and every neighbour right)`` per pm-set, in set order."""
        pmset = index.meta["pmset"]
        anchor = index.meta["is_anchor"].astype(bool)
        n_sets = int(pmset.max()) + 1 if len(pmset) else 0
        wrong_in_set = np.bincount(pmset, weights=(~correct).astype(np.float64), minlength=n_sets)
        anchor_correct = np.zeros(n_sets, dtype=bool)
        anchor_correct[pmset[anchor]] = correct[anchor]
        return anchor_correct, wrong_in_set == 0

    def unit_outcomes(self, correct, index) -> dict[str, UnitOutcomes]:
        """Units are the pm-sets, named by their anchor frame: pm0 counts the anchor, pm10 the set."""
        correct = np.asarray(correct, dtype=bool)
        anchor_correct, set_correct = self._per_set(correct, index)
        root = self._frames_root_seen
        anchors = index.meta["is_anchor"].astype(bool)
        names = [None] * len(anchor_correct)
        for p, s in zip(np.asarray(index.paths, dtype=object)[anchors], index.meta["pmset"][anchors]):
            names[int(s)] = Path(p).relative_to(root).as_posix() if root is not None else Path(p).name
        return {self.key: UnitOutcomes(anchor_correct, names, "anchor"),
                f"{self.key}_w": UnitOutcomes(set_correct, names, "anchor")}

    def summarize(self, correct, confidence, index):
        correct = np.asarray(correct, dtype=bool)
        confidence = np.asarray(confidence, dtype=np.float64)
        _check_lengths(self.name, correct, confidence, index)
        anchor_correct, set_correct = self._per_set(correct, index)
        n_sets = len(anchor_correct)
        pm0 = float(anchor_correct.mean())
        pm10 = float(set_correct.mean())  # anchor and every neighbour right
        key = self.key
        return {key: 1.0 - pm0, f"{key}_w": 1.0 - pm10, f"{key}/pm0": pm0, f"{key}/pm10": pm10,
                f"{key}/n_anchors": float(n_sets), f"{key}/n_frames": float(len(correct))}


class ImageNetVidRobust(_PmSetBenchmark):
    """ImageNet-Vid-Robust: 1,109 pm-sets (22,179 frames), 30 classes, every class mapped to
    ImageNet-1k. Release layout (``imagenet_vid_ytbb_robust/imagenet-vid-robust/``)::

        val/ILSVRC2015_val_<snippet>/<frame>.JPEG
        metadata/labels.json    {"val/<snippet>/<frame>.JPEG": [vid class index, ...]}  (22,179 frames)
        metadata/pmsets.json    {"<anchor key>": ["<neighbour key>", ...]}  (1,109 anchors, <= 20 neighbours)
        misc/imagenet_vid_class_index.json  {"0": ["<vid wnid>", "airplane"], ...}
        misc/rev_wnid_map.json  {"<vid wnid>": ["<ImageNet wnid>", ...]}
        misc/wnid_map.json, misc/imagenet_class_index.json, ...  (not needed here)

    Neighbours are judged against their own labels (as the testbed does). Result keys
    ``imagenet_vid`` (1 - pm0) and ``imagenet_vid_w`` (1 - pm10). ``expected_size`` counts frames.
    """

    name = "imagenet_vid_robust"
    key = "imagenet_vid"
    result_keys = ("imagenet_vid", "imagenet_vid_w")
    release_folder = "imagenet_vid_ytbb_robust/imagenet-vid-robust"
    layout = "val/ILSVRC2015_val_<snippet>/*.JPEG and metadata/{labels,pmsets}.json"
    landmarks = ("metadata/labels.json", "metadata/pmsets.json", "val/ILSVRC2015_val_*/")
    expected_anchors = 1109
    expected_frames = 22_179

    def _read_release(self, root: Path):
        labels = read_json(root / "metadata" / "labels.json", self.name)
        pmsets = read_json(root / "metadata" / "pmsets.json", self.name)
        class_index = read_json(root / "misc" / "imagenet_vid_class_index.json", self.name)
        rev_wnid = read_json(root / "misc" / "rev_wnid_map.json", self.name)
        k = max(int(i) for i in class_index) + 1
        class_wnids: list[list[str]] = [[] for _ in range(k)]
        for i, (vid_wnid, _name) in class_index.items():
            class_wnids[int(i)] = list(rev_wnid.get(vid_wnid, []))

        def labels_of(key: str) -> frozenset:
            if key not in labels:
                raise ValueError(f"{self.name}: frame {key} of a pm-set has no entry in {root / 'metadata' / 'labels.json'}")
            return frozenset(int(x) for x in labels[key])

        sets = [(a, labels_of(a), [(n, labels_of(n)) for n in pmsets[a]]) for a in sorted(pmsets)]
        self._n_metadata_frames = len(labels)
        return class_wnids, sets


# YTBB annotation label names (the testbed's ``load_pmk_annotations`` / ``load_anchor_annotations``).
_PMK_PROBLEMS = frozenset({"dissimilar", "problematic", "incorrect", "dont know", "deformation",
                           "background-change", "occlusion-increased", "blur-increase", "bad-anchor"})


def _frame_key(path: str) -> str:
    """'.../<video>_<ms>/frame-<i>.jpg' → '<video>_<ms>/frame-<i>.jpg' (the testbed's path_to_key)."""
    p = Path(path)
    return f"{p.parent.name}/{p.name}"


def _parse_frame_key(key: str) -> tuple[str, int, int]:
    parent, name = key.split("/")
    video, anchor_ms = parent.rsplit("_", 1)
    return video, int(name.split("-")[1].split(".")[0]), int(anchor_ms)


def _latest_by_key(annotation_file: dict) -> tuple[list[str], dict[str, dict]]:
    names = list(annotation_file["labels"])
    latest: dict[str, dict] = {}
    for row in annotation_file["annotations"]:
        latest[row["key"]] = row  # a key labelled twice: the later label wins (as the testbed)
    return names, latest


class YTBBRobust(_PmSetBenchmark):
    """YouTube-BB-Robust: 24 classes; cow, giraffe, skateboard, toilet and ``none`` have no
    ImageNet mapping (scored by ``unmapped``, see the module doc), ``person`` maps to 981-983.

    Release layout assumed (``imagenet_vid_ytbb_robust/ytbb-robust/``; frames confirmed,
    metadata names as the testbed's copies, folder ``metadata/`` by analogy with
    ImageNet-Vid-Robust — see docs/benchmarks-layouts.md)::

        ytbb_videos/<youtube id>_<anchor ms>/frame-<i>.jpg
        metadata/anchor_labels.json   {"labels": [names], "annotations": [{"key": path, "labels": [name idx]}]}
        metadata/pmk_labels.json      same shape, key "<anchor path>,<neighbour path>"
        metadata/ytbb_class_index.json        {"0": "person", ...}
        metadata/rev_class_idx_map.json       {"<ytbb idx>": [ImageNet-1k index, ...]}
        metadata/ytbb_robustness_test_anchors_full.csv   columns ytid, time_ms, label, ...

    Reviewed sets, as the testbed builds them: an anchor is valid if annotated ``good`` and
    not ``bad``/``unsure`` and no neighbour annotation marks it ``bad-anchor``; a neighbour
    at offset 1..``pm_k`` (either side) is kept if annotated ``similar`` and none of the
    problem labels. An anchor's labels are the YTBB class names among its annotation labels
    plus its CSV label (YT-BB ids 22 and 23 swapped, as the testbed does); neighbours are
    judged against the anchor's labels. Every frame the metadata names must exist. The
    reviewed pm-set count is not enforced but compared with the testbed's: its published
    YTBB accuracies are all multiples of 1/2,030 (and 57,897 frames in 3,139 sets for both
    datasets, minus ImageNet-Vid-Robust's 22,179 / 1,109, gives 35,718 / 2,030), so another
    count is logged as a warning: the numbers are then not comparable with published ones.
    """

    name = "ytbb_robust"
    key = "ytbb"
    published_anchors: ClassVar[int] = 2030
    result_keys = ("ytbb", "ytbb_w")
    release_folder = "imagenet_vid_ytbb_robust/ytbb-robust"
    layout = "ytbb_videos/<youtube id>_<ms>/frame-<i>.jpg and metadata/"
    landmarks = ("ytbb_videos/", "metadata/anchor_labels.json", "metadata/pmk_labels.json")

    def __init__(self, *, pm_k: int = 10, aggregate: str = "max", unmapped: str = "testbed", strict: bool = True,
                 expected_size: int | None = None):
        super().__init__(aggregate=aggregate, unmapped=unmapped, strict=strict, expected_size=expected_size)
        self.pm_k = int(pm_k)

    def _settings(self):
        return {**super()._settings(), "pm_k": self.pm_k}

    def _frames_root(self, root: Path) -> Path:
        return root / "ytbb_videos"

    def _read_release(self, root: Path):
        meta = root / "metadata"
        anchors_file = read_json(meta / "anchor_labels.json", self.name)
        pmk_file = read_json(meta / "pmk_labels.json", self.name)
        for name, obj in (("anchor_labels.json", anchors_file), ("pmk_labels.json", pmk_file)):
            require_keys(obj, ("labels", "annotations"), meta / name, self.name)
        class_index = {int(k): v for k, v in read_json(meta / "ytbb_class_index.json", self.name).items()}
        rev_map = read_json(meta / "rev_class_idx_map.json", self.name)
        csv_path = require_file(meta / "ytbb_robustness_test_anchors_full.csv", self.name)
        wnids = imagenet1k_wnids()
        k = max(class_index) + 1
        class_wnids: list[list[str]] = [[] for _ in range(k)]
        for i, idxs in rev_map.items():
            class_wnids[int(i)] = [wnids[int(x)] for x in idxs]
        name_to_class = {v: i for i, v in class_index.items()}

        a_names, a_rows = _latest_by_key(anchors_file)
        p_names, p_rows = _latest_by_key(pmk_file)
        bad_anchors, valid_pairs = set(), defaultdict(set)
        for key, row in p_rows.items():
            names = {p_names[i] for i in row["labels"]}
            a_path, n_path = key.split(",")
            a_key, n_key = _frame_key(a_path), _frame_key(n_path)
            if "bad-anchor" in names:
                bad_anchors.add(a_key)
            if "similar" in names and not (names & _PMK_PROBLEMS):
                valid_pairs[a_key].add(n_key)
        initial = {}
        with open(csv_path, newline="") as f:
            reader = csv.DictReader(f)
            require_keys(reader.fieldnames or [], ("ytid", "time_ms", "label"), csv_path, self.name)
            for row in reader:
                label = int(row["label"])
                # The CSV uses YT-BB's class ids, where 22 and 23 are the other way round
                # from ytbb_class_index.json; the testbed swaps them, so do we.
                label = {22: 23, 23: 22}.get(label, label)
                initial[f"{row['ytid']}_{row['time_ms']}"] = label

        sets = []
        for raw_key in sorted(a_rows):
            row = a_rows[raw_key]
            names = {a_names[i] for i in row["labels"]}
            a_key = _frame_key(raw_key)
            if "good" not in names or names & {"bad", "unsure"} or a_key in bad_anchors:
                continue
            labels = {name_to_class[n] for n in names if n in name_to_class}
            if a_key.split("/")[0] in initial:
                labels.add(initial[a_key.split("/")[0]])
            lab = frozenset(labels)
            video, idx, ms = _parse_frame_key(a_key)
            neighbours = []
            for off in range(-self.pm_k, self.pm_k + 1):
                n_key = f"{video}_{ms}/frame-{idx + off}.jpg"
                if off != 0 and n_key in valid_pairs[a_key]:
                    neighbours.append((n_key, lab))  # judged against the anchor's labels
            sets.append((a_key, lab, neighbours))
        self._n_metadata_frames = len(sets) + sum(len(n) for _, _, n in sets)
        if self.expected_size is None and self.pm_k == 10 and len(sets) != self.published_anchors:
            log.warning("%s: %d reviewed pm-sets in %s, but imagenet-testbed scores %d; results will not be comparable "
                        "with published ones (is the metadata the release's?)", self.name, len(sets), meta, self.published_anchors)
        return class_wnids, sets
