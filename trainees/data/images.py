"""Image-classification datasets as uint8 arrays: the container the image trainees use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageDataset:
    """Train / validation / test splits of a grey-scale image classification dataset.

    Images are ``uint8`` arrays of shape ``(n, 1, H, W)``; labels are ``int64`` ``(n,)``.
    ``mean`` and ``std`` are the training-pixel statistics (on the 0-1 scale) used to
    normalise inputs. The test split is for final reporting only, never for rewards.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    mean: float
    std: float

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            x, y = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
            if x.ndim != 4 or x.dtype != np.uint8 or len(x) != len(y):
                raise ValueError(
                    f"{self.name} {split} split: expected uint8 images (n, 1, H, W) and n "
                    f"labels, got {x.dtype} {x.shape} and {len(y)} labels"
                )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)``."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


PERMUTATION_SEED = 0  # the one pixel order of a permuted dataset (it defines the dataset)


def permuted(data: ImageDataset, name: str) -> ImageDataset:
    """``data`` with the pixels of every image in one fixed random order.

    The order is drawn from ``np.random.default_rng(PERMUTATION_SEED)``: the same for every
    image, split and run, so it is a fixed dataset, not an augmentation. Pixel statistics
    are unchanged.
    """
    shape = data.train_x.shape[1:]
    order = np.random.default_rng(PERMUTATION_SEED).permutation(int(np.prod(shape)))

    def shuffle(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.reshape(len(x), -1)[:, order].reshape(len(x), *shape))

    return ImageDataset(
        name, shuffle(data.train_x), data.train_y, shuffle(data.val_x), data.val_y,
        shuffle(data.test_x), data.test_y, data.num_classes, data.mean, data.std,
    )  # fmt: skip


def downsampled(data: ImageDataset, factor: int, name: str) -> ImageDataset:
    """``data`` with each ``factor`` x ``factor`` block of pixels averaged (rounded to uint8).

    Raises:
        ValueError: ``factor`` does not divide the image sides.
    """
    _, h, w = data.image_shape
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"factor={factor!r} is invalid; expected an integer >= 1 dividing {h}x{w}")

    def pool(x: np.ndarray) -> np.ndarray:
        blocks = x.reshape(len(x), 1, h // factor, factor, w // factor, factor)
        return np.rint(blocks.mean(axis=(3, 5), dtype=np.float64)).astype(np.uint8)

    train_x = pool(data.train_x)
    pixels = train_x.astype(np.float64) / 255.0
    return ImageDataset(
        name, train_x, data.train_y, pool(data.val_x), data.val_y, pool(data.test_x),
        data.test_y, data.num_classes, float(pixels.mean()), float(pixels.std()),
    )  # fmt: skip
