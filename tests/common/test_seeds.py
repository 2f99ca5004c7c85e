"""Seed ranges: disjoint, named, and read by name."""

import pytest

from common.seeds import RANGES, take


def test_seed_ranges_are_disjoint_and_named():
    names = list(RANGES)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not set(RANGES[a]) & set(RANGES[b]), (a, b)
    assert take("model_selection", 3) == [500, 501, 502]
    assert take("held_out", 2) == [1000, 1001]
    with pytest.raises(ValueError, match=r"unknown seed range 'tuning'; valid: demonstrations"):
        take("tuning", 1)
    with pytest.raises(ValueError, match=r"501 seeds asked from 'demonstrations', which holds 500"):
        take("demonstrations", 501)
