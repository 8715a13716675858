"""The BiT HyperRule (Kolesnikov et al. 2020; big_transfer's ``bit_hyperrule.py``), spec §3.

Pure functions of the downstream dataset size and image size; every number of the rule
lives here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass

from recipes.schedules import warmup_step_decay

LR = 0.003
MOMENTUM = 0.9
BATCH_SIZE = 512
WEIGHT_DECAY = 0.0
SMALL, LARGE = 20_000, 500_000  # dataset-size boundaries of the three regimes

# (resize, crop): "paper" is the BiT paper's 448/384; "code" is big_transfer's released 512/480.
RESOLUTIONS = {"paper": (448, 384), "code": (512, 480)}
SMALL_IMAGE_RESOLUTION = (160, 128)  # images under 96x96 in area
SMALL_IMAGE_AREA = 96 * 96


@dataclass(frozen=True)
class Schedule:
    """Fine-tuning length in optimizer steps, warmup and the x0.1 decay boundaries."""

    steps: int
    warmup_steps: int
    decay_steps: tuple[int, ...]

    def scaled(self, factor: float) -> "Schedule":
        """The same shape with every boundary multiplied by ``factor`` (miniature runs only)."""
        if factor == 1.0:
            return self
        scale = lambda s: max(1, int(round(s * factor)))  # noqa: E731
        return Schedule(scale(self.steps), scale(self.warmup_steps), tuple(scale(s) for s in self.decay_steps))


def schedule(dataset_size: int) -> Schedule:
    if dataset_size < SMALL:
        return Schedule(500, 100, (200, 300, 400))
    if dataset_size < LARGE:
        return Schedule(10_000, 500, (3_000, 6_000, 9_000))
    return Schedule(20_000, 500, (6_000, 12_000, 18_000))


def mixup_alpha(dataset_size: int) -> float:
    return 0.0 if dataset_size < SMALL else 0.1


def resolution(image_area: float, variant: str = "paper") -> tuple[int, int]:
    """``(resize, crop)`` for images of ``image_area`` pixels (BiT: below 96x96 → 160/128)."""
    if variant not in RESOLUTIONS:
        raise ValueError(f"resolution variant {variant!r} unknown; choose one of {sorted(RESOLUTIONS)}")
    if image_area < SMALL_IMAGE_AREA:
        return SMALL_IMAGE_RESOLUTION
    return RESOLUTIONS[variant]


def learning_rate(step: int, dataset_size: int, base_lr: float = LR) -> float:
    s = schedule(dataset_size)
    return warmup_step_decay(step, base_lr, s.warmup_steps, s.decay_steps)
