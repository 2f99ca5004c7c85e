"""Byte-level corpora: the Python standard library's own sources, and any character corpus as bytes.

The standard library's sources are a text corpus that exists offline on every machine
with Python: :func:`stdlib_corpus` concatenates its ``.py`` files in sorted path order
and keeps the first ``n_bytes``. The selection is fixed and deterministic for one Python
version (another version has other sources, hence another SHA-256, which is recorded and
keys anything built from it). Tokens are bytes (a 256-token vocabulary), so a model
pretrained on it reads any target text, e.g. tiny Shakespeare through
:func:`as_byte_corpus`.
"""

from __future__ import annotations

import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.checks import check
from trainees.data.chars import CharCorpus

BYTE_VOCAB: tuple[str, ...] = tuple(bytes([b]).decode("latin-1") for b in range(256))
STDLIB_NAME = "python_stdlib"
HELDOUT_FRACTION = 0.05  # the last 5% of the selected bytes (alphabetically last modules)
# not sources of the library itself: tests, demos, vendored packages, and the one module
# generated for the machine at build time (_sysconfigdata_*), which differs between hosts
_EXCLUDED_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "test",
        "tests",
        "idlelib",
        "turtledemo",
        "lib2to3",
        "ensurepip",
        "__pycache__",
    }
)


@dataclass(frozen=True)
class ByteCorpus:
    """A byte-level text corpus split into a training and a held-out part.

    Attributes:
        name: what the text is.
        train: ``(n,)`` uint8 token ids (the bytes).
        heldout: ``(m,)`` uint8 token ids that no training reads.
        sha256: digest of the whole text (train then held-out).
        n_files: source files the text was taken from.
    """

    name: str
    train: np.ndarray
    heldout: np.ndarray
    sha256: str
    n_files: int

    def as_char_corpus(self) -> CharCorpus:
        """The corpus as a ``CharCorpus`` (256 tokens) whose validation split is ``heldout``.

        The held-out text is both the validation and the "test" region: a base model is
        scored on it and nothing ever trains on it.
        """
        return CharCorpus(self.name, self.train, self.heldout, self.heldout, BYTE_VOCAB)

    def text(self, part: str) -> str:
        """The ``train`` or ``heldout`` part as text (UTF-8, invalid bytes replaced)."""
        check(part in ("train", "heldout"), "part", part, "'train' or 'heldout'")
        return getattr(self, part).tobytes().decode("utf-8", errors="replace")


def stdlib_root() -> Path:
    """The folder of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The library's ``.py`` sources under ``root``, sorted by their relative POSIX path."""
    root = root or stdlib_root()
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _EXCLUDED_DIRS]  # pruned, never walked
        files += [
            Path(folder, n)
            for n in names
            if n.endswith(".py") and not n.startswith("_sysconfigdata")
        ]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def stdlib_corpus(n_bytes: int = 2_000_000, *, root: Path | None = None) -> ByteCorpus:
    """The first ``n_bytes`` of the standard library's sources, split train / held-out.

    Files are read in sorted path order and joined by a newline; the last
    ``HELDOUT_FRACTION`` of the bytes is held out (whole modules late in the alphabet, so
    held-out code is not a neighbour of training code).

    Raises:
        ValueError: ``n_bytes`` < 1,000, or the library holds fewer bytes than asked.
    """
    check(n_bytes >= 1000, "n_bytes", n_bytes, "an integer >= 1000")
    root = root or stdlib_root()
    parts, size = [], 0
    for path in stdlib_files(root):
        if size >= n_bytes:
            break
        data = path.read_bytes() + b"\n"
        parts.append(data)
        size += len(data)
    raw = b"".join(parts)[:n_bytes]
    if len(raw) < n_bytes:
        raise ValueError(
            f"n_bytes={n_bytes!r} is invalid; the standard library at {root} holds only "
            f"{len(raw):,} bytes of sources"
        )
    tokens = np.frombuffer(raw, dtype=np.uint8)
    cut = len(raw) - int(len(raw) * HELDOUT_FRACTION)
    return ByteCorpus(
        STDLIB_NAME, tokens[:cut], tokens[cut:], hashlib.sha256(raw).hexdigest(), len(parts)
    )


def as_byte_corpus(corpus: CharCorpus) -> CharCorpus:
    """``corpus`` re-tokenised to bytes (256 tokens), with the same splits.

    A character corpus's token ids index its own sorted vocabulary of bytes
    (``trainees.data.chars``); here every token becomes the byte it stands for, so a model
    with a byte vocabulary reads it.

    Raises:
        ValueError: a vocabulary entry that is not one byte.
    """
    if any(len(c) != 1 or ord(c) > 255 for c in corpus.itos):
        raise ValueError(f"corpus {corpus.name!r} has tokens that are not single bytes")
    lut = np.array([ord(c) for c in corpus.itos], dtype=np.uint8)

    def remap(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else lut[np.asarray(a)]

    return CharCorpus(
        corpus.name, remap(corpus.train), remap(corpus.val), remap(corpus.test), BYTE_VOCAB
    )
