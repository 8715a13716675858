"""The HyperRule against spec §3's table, and the schedule arithmetic by hand."""
import pytest

from recipes import hyperrule
from recipes.schedules import decays_at_fractions, linear_scaled_lr, warmup_step_decay


@pytest.mark.parametrize(
    "n, steps, warmup, decays, alpha",
    [
        (1, 500, 100, (200, 300, 400), 0.0),
        (19_999, 500, 100, (200, 300, 400), 0.0),
        (20_000, 10_000, 500, (3_000, 6_000, 9_000), 0.1),
        (499_999, 10_000, 500, (3_000, 6_000, 9_000), 0.1),
        (500_000, 20_000, 500, (6_000, 12_000, 18_000), 0.1),
        (1_281_167, 20_000, 500, (6_000, 12_000, 18_000), 0.1),  # ImageNet-1k train
    ],
)
def test_schedule_and_mixup_follow_the_table(n, steps, warmup, decays, alpha):
    assert hyperrule.schedule(n) == hyperrule.Schedule(steps, warmup, decays)
    assert hyperrule.mixup_alpha(n) == alpha


def test_fixed_values_of_the_rule():
    assert (hyperrule.LR, hyperrule.MOMENTUM, hyperrule.BATCH_SIZE, hyperrule.WEIGHT_DECAY) == (0.003, 0.9, 512, 0.0)


@pytest.mark.parametrize(
    "area, variant, expected",
    [(95 * 95, "paper", (160, 128)), (96 * 96, "paper", (448, 384)), (96 * 96, "code", (512, 480)), (500 * 375, "code", (512, 480))],
)
def test_resolution_rule(area, variant, expected):
    assert hyperrule.resolution(area, variant) == expected


def test_unknown_resolution_variant_is_named():
    with pytest.raises(ValueError, match="'bogus'"):
        hyperrule.resolution(10_000, "bogus")


@pytest.mark.parametrize(
    "step, lr",
    [(0, 0.0), (50, 0.0015), (100, 0.003), (200, 0.003), (201, 0.0003), (301, 0.00003), (450, 0.000003)],
)
def test_learning_rate_small_dataset(step, lr):
    # n < 20k: warmup 100, decays after 200, 300, 400 (big_transfer's get_lr compares boundary < step)
    assert hyperrule.learning_rate(step, 5_000) == pytest.approx(lr)


def test_scaled_schedule_keeps_its_shape():
    assert hyperrule.schedule(1000).scaled(0.1) == hyperrule.Schedule(50, 10, (20, 30, 40))


def test_upstream_schedule_helpers():
    assert decays_at_fractions(90, (1 / 3, 2 / 3, 8 / 9)) == [30, 60, 80]
    assert linear_scaled_lr(0.03, 4096) == pytest.approx(0.48)
    assert warmup_step_decay(5, 1.0, 10, [20]) == 0.5
