"""MNIST from the four standard gzipped IDX files.

The IDX format (LeCun et al.): a big-endian header ``0x00 0x00 <dtype> <ndim>``
followed by ``ndim`` uint32 sizes and the raw data. Files are verified by the
digest of their *decompressed* bytes, so both the canonical downloads and
re-packed ``.gz`` copies verify.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from trainees.data.images import ImageDataset
from trainees.data.resolve import DatasetError, resolve_file

IMAGES_MAGIC = 2051  # unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # unsigned byte, 1 dimension

MIRRORS = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
# sha256 of the decompressed files, as published for the original LeCun files.
SHA256 = {
    "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
NUM_VAL = 5_000  # the last 5,000 of the 60,000 training images form the validation split
MEAN, STD = 0.1307, 0.3081


def read_idx_bytes(raw: bytes, *, source: str = "<bytes>") -> np.ndarray:
    """Parse an uncompressed IDX file of unsigned bytes into an array.

    Raises:
        DatasetError: bad magic number, or a length that disagrees with the header.
    """
    if len(raw) < 4:
        raise DatasetError(f"{source}: {len(raw)} bytes is too short for an IDX header")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    magic = struct.unpack(">I", raw[:4])[0]
    if zero != 0 or dtype_code != 0x08 or ndim not in (1, 3):
        raise DatasetError(
            f"{source}: bad IDX magic number {magic} (0x{magic:08x}); expected "
            f"{LABELS_MAGIC} (labels) or {IMAGES_MAGIC} (images)"
        )
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DatasetError(f"{source}: truncated IDX header ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    expected = header_len + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DatasetError(
            f"{source}: file {what}: header says shape {shape} ({expected} bytes), "
            f"file has {len(raw)} bytes"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(shape)


def read_idx(path: str | Path, *, sha256: str | None = None) -> np.ndarray:
    """Read a (optionally gzipped) IDX file, verifying the decompressed ``sha256``."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetError(f"{path}: not a readable gzip file ({e}); it may be truncated") from e
    if sha256 is not None and (got := hashlib.sha256(raw).hexdigest()) != sha256:
        raise DatasetError(
            f"{path}: checksum mismatch: decompressed sha256 {got}, expected {sha256}. "
            "The file is corrupt or not the original MNIST; delete it and try again."
        )
    return read_idx_bytes(raw, source=str(path))


def _load_pair(kind: str, root: str | Path | None, verify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, 28, 28) and int64 labels of one split, ``train`` or ``t10k``."""
    arrays = []
    for part in ("images-idx3", "labels-idx1"):
        name = f"{kind}-{part}-ubyte.gz"
        urls = [m + name for m in MIRRORS]
        path = resolve_file("mnist", name, explicit=root, urls=urls)
        arrays.append(read_idx(path, sha256=SHA256[name] if verify else None))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(
            f"MNIST {kind}: images {images.shape} and labels {labels.shape} do not match"
        )
    return images[:, None], labels.astype(np.int64)


def load_mnist(
    root: str | Path | None = None, *, verify: bool = True, num_val: int = NUM_VAL
) -> ImageDataset:
    """Load MNIST: 55,000 train / 5,000 validation (last of the 60k) / 10,000 test.

    Args:
        root: a folder holding the four ``.gz`` files. It is authoritative: a file
            missing there raises ``DatasetNotFoundError`` naming its path, with no
            fallback. Without it: ``$LRGYM_DATA_DIR/mnist``, the user cache, a download.
        verify: check each file's decompressed sha256 against the published value.
        num_val: how many of the training images (from the end) form the validation split.
    """
    train_x, train_y = _load_pair("train", root, verify)
    test_x, test_y = _load_pair("t10k", root, verify)
    if not 0 < num_val < len(train_x):
        raise ValueError(f"num_val={num_val} must be in (0, {len(train_x)})")
    cut = len(train_x) - num_val
    return ImageDataset(
        name="mnist",
        train_x=train_x[:cut],
        train_y=train_y[:cut],
        val_x=train_x[cut:],
        val_y=train_y[cut:],
        test_x=test_x,
        test_y=test_y,
        num_classes=10,
        mean=MEAN,
        std=STD,
    )
