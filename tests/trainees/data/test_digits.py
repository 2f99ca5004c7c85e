import numpy as np

from trainees.data.digits import load_digits


def test_digits_fixed_disjoint_split():
    a, b = load_digits(), load_digits()
    assert a.train_x.shape == (1200, 1, 8, 8)
    assert (len(a.val_x), len(a.test_x)) == (300, 297)
    np.testing.assert_array_equal(a.val_x, b.val_x)  # fixed, not seeded per run
    assert a.train_x.max() == 255 and a.train_x.dtype == np.uint8
    rows = {x.tobytes() for x in a.val_x} & {x.tobytes() for x in a.test_x}
    assert len(rows) < 5  # the split shares no images (a few digits are exact duplicates)
    assert 0.25 < a.mean < 0.35 and sorted(set(a.train_y.tolist())) == list(range(10))
