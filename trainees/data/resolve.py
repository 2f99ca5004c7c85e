"""Finding dataset files: explicit path, else ``$LRGYM_DATA_DIR``, user cache, download.

Every loader goes through :func:`resolve_file`, so the lookup order, the error
for a missing file and the checksum check of a download are the same everywhere.
An explicit path given by the caller is authoritative: a file missing there is an
error, never a fallback to another copy or a download.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

DATA_DIR_ENV = "LRGYM_DATA_DIR"
CACHE_DIR_ENV = "LRGYM_CACHE_DIR"
OFFLINE_ENV = "LRGYM_OFFLINE"


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupt, truncated or fails its checksum."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """No copy of a dataset file was found and none could be downloaded."""


def cache_dir() -> Path:
    """The user cache: ``$LRGYM_CACHE_DIR``, else ``$XDG_CACHE_HOME/lrschedule-gym``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "lrschedule-gym"


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def explicit_path(explicit: str | Path, filename: str) -> Path:
    """The file an explicit ``explicit`` path names: ``explicit/filename`` for a folder.

    An existing file is taken as is. A path that does not exist is read as a folder,
    unless its last part is ``filename`` itself.
    """
    p = Path(explicit).expanduser()
    if p.is_file() or (not p.exists() and p.name == filename):
        return p
    return p / filename


def candidate_paths(subdir: str, filename: str, explicit: str | Path | None) -> list[Path]:
    """Where ``subdir/filename`` is looked for, in order (the download target is last).

    An explicit path is authoritative: it is then the only candidate, and it is never
    downloaded to.
    """
    if explicit is not None:
        return [explicit_path(explicit, filename)]
    paths: list[Path] = []
    if os.environ.get(DATA_DIR_ENV):
        root = Path(os.environ[DATA_DIR_ENV]).expanduser()
        paths += [root / subdir / filename, root / filename]
    paths.append(cache_dir() / subdir / filename)
    return paths


def resolve_file(
    subdir: str,
    filename: str,
    *,
    explicit: str | Path | None = None,
    urls: Sequence[str] = (),
    md5: str | None = None,
    download: bool | None = None,
) -> Path:
    """Return a local path to ``filename``, downloading it into the cache if needed.

    Args:
        subdir: the dataset's folder name (``mnist``, ``enwik8`` ...).
        filename: the file inside it.
        explicit: a file or folder given by the caller. It is authoritative: when given,
            no other place is looked at and nothing is downloaded.
        urls: canonical source and mirrors, tried in order when no copy exists.
        md5: digest a download must have (a local copy is checked by its loader).
        download: allow downloading; ``None`` means yes unless ``$LRGYM_OFFLINE`` is set.

    Raises:
        DatasetNotFoundError: naming the file, every place looked, and how to provide it.
    """
    if explicit is not None:
        return _resolve_explicit(explicit, filename)
    paths = candidate_paths(subdir, filename, None)
    for p in paths:
        if p.is_file():
            return p
    if download is None:
        download = os.environ.get(OFFLINE_ENV, "") in ("", "0")
    errors: list[str] = []
    if download and urls:
        target = paths[-1]
        for url in urls:
            try:
                _download(url, target, md5)
                return target
            except (urllib.error.URLError, OSError, DatasetError) as e:
                errors.append(f"{url}: {e}")
    looked = "\n  ".join(str(p) for p in paths)
    tried = ("\ndownload attempts:\n  " + "\n  ".join(errors)) if errors else ""
    if not download:
        tried = "\ndownloads are disabled ($LRGYM_OFFLINE is set or download=False)"
    raise DatasetNotFoundError(
        f"dataset file {subdir}/{filename} not found. Looked in:\n  {looked}{tried}\n"
        f"Provide it by setting ${DATA_DIR_ENV} to a folder holding {subdir}/{filename}, "
        f"by passing its path explicitly, or by allowing a download from "
        f"{urls[0] if urls else 'its canonical source'}."
    )


def _resolve_explicit(explicit: str | Path, filename: str) -> Path:
    """The explicit copy of ``filename``, or an error naming the missing path.

    Raises:
        DatasetNotFoundError: the file is not there; no fallback is tried.
    """
    path = explicit_path(explicit, filename)
    if path.is_file():
        return path
    raise DatasetNotFoundError(
        f"dataset file {path} not found. The explicit path {explicit} was given, so no "
        f"other place (${DATA_DIR_ENV}, the cache) was looked at and nothing was "
        f"downloaded. Put {filename} there, or pass no explicit path to use "
        f"${DATA_DIR_ENV}, the cache or a download."
    )


def _download(url: str, target: Path, md5: str | None) -> None:
    """Download ``url`` to ``target`` atomically, verifying ``md5`` when given."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
        if md5 is not None and (got := file_digest(Path(tmp), "md5")) != md5:
            raise DatasetError(f"checksum mismatch: md5 {got}, expected {md5}")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
