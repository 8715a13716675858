"""A torchmetrics object that gathers per-example outcomes keyed by example index."""
from __future__ import annotations

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


class IndexedOutcomes(Metric):
    """Collects ``(index, correct, confidence)`` per example and returns them once per index.

    ``compute()`` gathers across ranks (``dist_reduce_fx="cat"``), then keeps one entry per
    index, ordered by index: a sampler that pads ranks with duplicates cannot make an
    example count twice. The caller checks the number of unique indices against the set size.
    """

    full_state_update = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("index", default=[], dist_reduce_fx="cat")
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("confidence", default=[], dist_reduce_fx="cat")

    def update(self, index: torch.Tensor, correct: torch.Tensor, confidence: torch.Tensor) -> None:
        # copies: FFCV reuses its batch buffers, so a kept view would be overwritten
        self.index.append(index.detach().flatten().to(torch.long, copy=True))
        self.correct.append(correct.detach().flatten().to(torch.float32, copy=True))
        self.confidence.append(confidence.detach().flatten().to(torch.float32, copy=True))

    def compute(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(unique sorted indices, correct (bool), confidence)`` — one row per example."""
        index, correct, confidence = (dim_zero_cat(s) if len(s) else torch.zeros(0, device=self.device)
                                      for s in (self.index, self.correct, self.confidence))
        index = index.long()
        unique, first = _first_occurrence(index)
        return unique, correct[first].bool(), confidence[first]


def _first_occurrence(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique values of ``index`` and the position of one occurrence of each."""
    order = torch.argsort(index, stable=True)
    sorted_index = index[order]
    keep = torch.ones_like(sorted_index, dtype=torch.bool)
    keep[1:] = sorted_index[1:] != sorted_index[:-1]
    return sorted_index[keep], order[keep]
