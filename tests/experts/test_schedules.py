import math

import numpy as np
import pytest

from experts.schedules import (
    Constant,
    Cosine,
    LinearWarmupDecay,
    Polynomial,
    WarmupStableDecay,
    make_schedule,
)

GRID = np.linspace(0, 1, 201)


def test_linear_warmup_decay_known_points():
    s = LinearWarmupDecay(warmup=0.1, peak=1.0, start=0.01, end=0.01)
    assert s(0.0) == pytest.approx(0.01)
    assert s(0.05) == pytest.approx(0.505)
    assert s(0.1) == pytest.approx(1.0)  # warm-up end
    assert s(0.55) == pytest.approx(0.505)  # middle of the decay
    assert s(1.0) == pytest.approx(0.01)
    values = [s(p) for p in GRID]
    assert np.all(np.diff(values[:21]) > 0) and np.all(np.diff(values[20:]) < 0)


def test_cosine_known_points_and_monotone():
    s = Cosine(warmup=0.0, peak=1.0, floor=0.1)
    assert (s(0.0), s(0.5), s(1.0)) == pytest.approx((1.0, 0.55, 0.1))
    assert s(0.25) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert np.all(np.diff([s(p) for p in GRID]) < 0)
    w = Cosine(warmup=0.2, floor=0.1, start=0.01)
    assert (w(0.0), w(0.2), w(0.6), w(1.0)) == pytest.approx((0.01, 1.0, 0.55, 0.1))


def test_polynomial_known_points_and_power():
    s = Polynomial(power=2.0, peak=1.0, end=0.01)
    assert (s(0.0), s(0.5), s(1.0)) == pytest.approx((1.0, 0.01 + 0.99 * 0.25, 0.01))
    linear = Polynomial(power=1.0)
    assert linear(0.5) == pytest.approx(0.505)
    assert np.all(np.diff([s(p) for p in GRID]) < 0)


def test_wsd_and_constant():
    s = WarmupStableDecay(warmup=0.1, decay=0.2, peak=1.0, start=0.01, end=0.01)
    assert (s(0.0), s(0.1), s(0.5), s(0.8), s(0.9), s(1.0)) == pytest.approx(
        (0.01, 1.0, 1.0, 1.0, 0.505, 0.01)
    )
    assert Constant(0.5)(0.3) == 0.5 and Constant()(1.0) == 1.0


def test_progress_is_clamped():
    s = Cosine()
    assert s(-0.5) == s(0.0) and s(1.5) == s(1.0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: make_schedule("step"), "valid: constant, linear_warmup, cosine, polynomial, wsd"),
        (lambda: Cosine(warmup=1.5), r"warmup=1.5 is invalid"),
        (lambda: Polynomial(power=0.0), r"power=0.0 is invalid"),
        (lambda: WarmupStableDecay(warmup=0.6, decay=0.6), r"sum <= 1"),
    ],
)
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()
