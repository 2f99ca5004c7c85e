"""Character-level corpora in nanoGPT's layout: ``train.bin``/``val.bin`` (uint16) + ``meta.pkl``.

Tokens are the distinct bytes of the corpus, sorted. ``itos`` maps a token id to a
one-character string (the byte read as Latin-1), which for ASCII corpora such as tiny
Shakespeare is exactly nanoGPT's ``shakespeare_char`` vocabulary.

Sources are prepared once into the user cache, in a folder named after the source
file's sha256, so a different source never reuses a stale preparation.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from common.files import atomic_write_bytes
from trainees.data.resolve import (
    DATA_DIR_ENV,
    DatasetError,
    DatasetNotFoundError,
    cache_dir,
    file_digest,
    resolve_file,
)

CorpusName = Literal["shakespeare_char", "enwik8", "text8"]
CORPORA: tuple[str, ...] = get_args(CorpusName)


@dataclass(frozen=True)
class CorpusSpec:
    """Where a corpus comes from and how it is split."""

    source: str  # file name of the raw source
    urls: tuple[str, ...]
    fractions: tuple[float, ...]  # train, val[, test] fractions of the bytes, in order
    member: str | None = None  # the member to read when the source is a zip archive
    size: int | None = None  # expected size of the raw text (bytes)
    md5: str | None = None  # digest of the raw text (the zip member for archives)
    sha256: str | None = None  # likewise
    archive_md5: str | None = None  # digest of the archive itself


SPECS: dict[str, CorpusSpec] = {
    "shakespeare_char": CorpusSpec(
        source="input.txt",
        urls=(
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
            "tinyshakespeare/input.txt",
        ),
        fractions=(0.9, 0.1),
        size=1_115_394,
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    # enwik8 / text8: first 90M bytes train, next 5M validation, last 5M test.
    "enwik8": CorpusSpec(
        source="enwik8.zip",
        urls=("http://mattmahoney.net/dc/enwik8.zip",),
        fractions=(0.9, 0.05, 0.05),
        member="enwik8",
        size=100_000_000,
        md5="a1fa5ffddb56f4953e226637dabbb36a",
    ),
    "text8": CorpusSpec(
        source="text8.zip",
        urls=("http://mattmahoney.net/dc/text8.zip",),
        fractions=(0.9, 0.05, 0.05),
        member="text8",
        size=100_000_000,
        archive_md5="f26f94c5209bc6159618bad4a559ff81",
    ),
}
SPLIT_NAMES = ("train", "val", "test")


def val_test_cut(n_val: int) -> int:
    """Where a validation region of ``n_val`` tokens with no ``test.bin`` behind it is cut.

    The cut is ``n_val // 2``: a corpus without a test split (tiny Shakespeare) validates
    on ``val[:cut]`` and holds ``val[cut:]`` out as its test split, which no episode reads
    (tiny Shakespeare: 111,540 validation tokens, 55,770 on each side).
    """
    return n_val // 2


@dataclass(frozen=True)
class CharCorpus:
    """A prepared corpus: token arrays per split and the vocabulary.

    ``val`` and ``test`` are the files' regions (``val.bin``, ``test.bin``); read the
    splits through ``val_tokens`` and ``test_tokens``, which cut ``val`` in two
    (:func:`val_test_cut`) when there is no ``test.bin``.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None
    itos: tuple[str, ...]

    @property
    def val_tokens(self) -> np.ndarray:
        """The validation split: ``val``, or its first half when there is no ``test``."""
        return self.val if self.test is not None else self.val[: val_test_cut(len(self.val))]

    @property
    def test_tokens(self) -> np.ndarray:
        """The held-out test split: ``test``, or the second half of ``val`` without it."""
        return self.test if self.test is not None else self.val[val_test_cut(len(self.val)) :]

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens."""
        return len(self.itos)

    def decode(self, ids: np.ndarray | list[int]) -> str:
        """Token ids to text (bytes decoded as UTF-8, invalid sequences replaced)."""
        raw = "".join(self.itos[int(i)] for i in ids).encode("latin-1")
        return raw.decode("utf-8", errors="replace")


def prepare_bytes(raw: bytes, out_dir: Path, fractions: tuple[float, ...]) -> None:
    """Tokenise ``raw`` and write ``{train,val[,test]}.bin`` + ``meta.pkl`` into ``out_dir``.

    Split sizes are ``int(n * fraction)`` for all but the last split, which takes the rest.
    ``meta.pkl`` is written last: its presence marks a complete preparation.
    """
    if len(raw) == 0:
        raise DatasetError("cannot prepare an empty corpus")
    data = np.frombuffer(raw, dtype=np.uint8)
    present = np.flatnonzero(np.bincount(data, minlength=256))
    lut = np.zeros(256, dtype=np.uint16)
    lut[present] = np.arange(len(present), dtype=np.uint16)
    ids = lut[data]
    bounds = np.cumsum([int(len(raw) * f) for f in fractions[:-1]]).tolist()
    for name, part in zip(SPLIT_NAMES, np.split(ids, bounds), strict=False):
        atomic_write_bytes(out_dir / f"{name}.bin", part.tobytes())
    itos = {i: bytes([b]).decode("latin-1") for i, b in enumerate(present)}
    meta = {"vocab_size": len(present), "itos": itos, "stoi": {c: i for i, c in itos.items()}}
    atomic_write_bytes(out_dir / "meta.pkl", pickle.dumps(meta))


def load_prepared(name: str, folder: Path) -> CharCorpus:
    """Open a prepared folder (nanoGPT layout) without reading it all into memory."""
    with open(folder / "meta.pkl", "rb") as f:
        meta = pickle.load(f)
    itos = tuple(meta["itos"][i] for i in range(meta["vocab_size"]))
    arrays = {}
    for split in SPLIT_NAMES:
        path = folder / f"{split}.bin"
        if path.is_file() and path.stat().st_size > 0:
            arrays[split] = np.memmap(path, dtype=np.uint16, mode="r")
    if "train" not in arrays or "val" not in arrays:
        raise DatasetError(f"{folder}: prepared corpus lacks train.bin or val.bin")
    return CharCorpus(name, arrays["train"], arrays["val"], arrays.get("test"), itos)


def read_source(spec: CorpusSpec, path: Path, *, verify: bool) -> bytes:
    """Read the raw text of a corpus source, checking integrity.

    Raises:
        DatasetError: a corrupt or truncated archive, a missing member, or (with
            ``verify``) a size or checksum that differs from the published one.
    """
    if verify and spec.archive_md5 and (got := file_digest(path, "md5")) != spec.archive_md5:
        raise DatasetError(f"{path}: checksum mismatch: md5 {got}, expected {spec.archive_md5}")
    if spec.member is None:
        raw = path.read_bytes()
    else:
        try:
            with zipfile.ZipFile(path) as zf:
                if spec.member not in zf.namelist():
                    raise DatasetError(
                        f"{path}: archive has no member {spec.member!r} "
                        f"(members: {zf.namelist()[:5]})"
                    )
                raw = zf.read(spec.member)  # checks the member's CRC-32
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as e:
            raise DatasetError(f"{path}: corrupt or truncated zip archive ({e})") from e
    if verify:
        if spec.size is not None and len(raw) != spec.size:
            raise DatasetError(
                f"{path}: expected {spec.size:,} bytes of text, found {len(raw):,} "
                "(truncated or not the original file; pass verify=False for custom data)"
            )
        for algorithm in ("md5", "sha256"):
            want = getattr(spec, algorithm)
            if want and (got := hashlib.new(algorithm, raw).hexdigest()) != want:
                raise DatasetError(f"{path}: checksum mismatch: {algorithm} {got}, expected {want}")
    return raw


def load_char_corpus(
    name: str, *, data_dir: str | Path | None = None, verify: bool = True
) -> CharCorpus:
    """Load a character corpus, preparing and caching it on first use.

    Args:
        name: one of ``shakespeare_char``, ``enwik8``, ``text8``.
        data_dir: a folder holding either a prepared corpus (``meta.pkl``, ``train.bin``,
            ``val.bin``) or the raw source (``input.txt``, ``enwik8.zip``, ``text8.zip``).
            It is authoritative: when given, only it is used, never ``$LRGYM_DATA_DIR``,
            the cache's copy of the source or a download (a raw source is still
            prepared into the cache). Without it: ``$LRGYM_DATA_DIR/<name>`` (prepared
            or raw), the cache, then a download.
        verify: check the source's size and checksum against the published values.

    Raises:
        DatasetNotFoundError: no prepared corpus nor source was found; with ``data_dir``,
            the error names the missing source file there.
    """
    if name not in SPECS:
        raise ValueError(f"unknown corpus {name!r}; valid: {', '.join(CORPORA)}")
    spec = SPECS[name]
    for folder in _prepared_candidates(name, data_dir):
        if (folder / "meta.pkl").is_file():
            return load_prepared(name, folder)
    source = _find_source(name, spec, data_dir)
    out_dir = cache_dir() / name / file_digest(source)[:16]
    verified = out_dir / "VERIFIED"  # a preparation made with verify=False is checked later
    if not (out_dir / "meta.pkl").is_file():
        prepare_bytes(read_source(spec, source, verify=verify), out_dir, spec.fractions)
    elif verify and not verified.is_file():
        read_source(spec, source, verify=True)
    if verify:
        atomic_write_bytes(verified, b"")
    return load_prepared(name, out_dir)


def _prepared_candidates(name: str, data_dir: str | Path | None) -> list[Path]:
    """Folders that may hold a prepared corpus: only ``data_dir`` when it is given."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    if os.environ.get(DATA_DIR_ENV):
        return [Path(os.environ[DATA_DIR_ENV]).expanduser() / name]
    return []


def _find_source(name: str, spec: CorpusSpec, data_dir: str | Path | None) -> Path:
    """The raw source file: in ``data_dir`` only when given, else found or downloaded.

    Raises:
        DatasetNotFoundError: with ``data_dir``, naming the missing source there and
            saying that it holds no prepared corpus either.
    """
    try:
        return resolve_file(
            name, spec.source, explicit=data_dir, urls=spec.urls, md5=spec.archive_md5
        )
    except DatasetNotFoundError as e:
        if data_dir is None:
            raise
        raise DatasetNotFoundError(
            f"{e} Nor does {Path(data_dir).expanduser()} hold a prepared corpus "
            "(meta.pkl, train.bin, val.bin)."
        ) from None
