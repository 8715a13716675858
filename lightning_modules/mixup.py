"""MixUp as BiT applies it: one lambda per step, the batch mixed with a permutation of itself."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def mix_batch(images: torch.Tensor, alpha: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """``(lam * x + (1 - lam) * x[perm], perm, lam)`` with ``lam ~ Beta(alpha, alpha)`` drawn once.

    ``generator`` is a CPU generator owned by the module (its state is checkpointed), so
    the draws do not depend on, or disturb, the global RNG.
    """
    lam = _beta(alpha, generator)
    perm = torch.randperm(images.shape[0], generator=generator).to(images.device)
    mixed = lam * images + (1.0 - lam) * images[perm]
    return mixed, perm, lam


def _beta(alpha: float, generator: torch.Generator) -> float:
    # Beta(a, a) = Ga / (Ga + Gb) with Ga, Gb ~ Gamma(a); torch._standard_gamma takes a generator.
    gammas = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
    return float(gammas[0] / gammas.sum())


def mixup_loss(logits: torch.Tensor, labels: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    """BiT's MixUp criterion: ``lam * CE(y) + (1 - lam) * CE(y[perm])``."""
    return lam * F.cross_entropy(logits, labels) + (1.0 - lam) * F.cross_entropy(logits, labels[perm])
