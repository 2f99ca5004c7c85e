"""scikit-learn's bundled 8x8 handwritten digits: real data that works offline."""

from __future__ import annotations

import numpy as np

from trainees.data.images import ImageDataset

SPLIT_SEED = 0  # the split is part of the dataset's definition, not of an experiment
NUM_VAL = 300
NUM_TEST = 297


def load_digits() -> ImageDataset:
    """Load the 1,797 digits with a fixed 1,200 / 300 / 297 train / val / test split.

    Pixel values 0-16 are rescaled to 0-255 so that the images share MNIST's uint8 format.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    images, labels = images[order], labels[order]
    n_train = len(images) - NUM_VAL - NUM_TEST
    val_end = n_train + NUM_VAL
    train = images[:n_train].astype(np.float64) / 255.0
    return ImageDataset(
        name="digits",
        train_x=images[:n_train],
        train_y=labels[:n_train],
        val_x=images[n_train:val_end],
        val_y=labels[n_train:val_end],
        test_x=images[val_end:],
        test_y=labels[val_end:],
        num_classes=10,
        mean=float(train.mean()),
        std=float(train.std()),
    )
