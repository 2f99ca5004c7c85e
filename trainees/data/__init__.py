"""Dataset loaders: MNIST (IDX), scikit-learn digits, and character corpora (nanoGPT layout)."""

from trainees.data.chars import CORPORA, CharCorpus, load_char_corpus
from trainees.data.digits import load_digits
from trainees.data.images import ImageDataset
from trainees.data.mnist import load_mnist, read_idx
from trainees.data.resolve import DatasetError, DatasetNotFoundError, cache_dir

__all__ = [
    "CORPORA",
    "CharCorpus",
    "DatasetError",
    "DatasetNotFoundError",
    "ImageDataset",
    "cache_dir",
    "load_char_corpus",
    "load_digits",
    "load_mnist",
    "read_idx",
]
