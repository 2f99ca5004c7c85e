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
