import hashlib

import pytest

from trainees.data.resolve import DatasetNotFoundError, resolve_file


def test_lookup_order_explicit_then_env_then_cache(tmp_path, monkeypatch):
    explicit, env, cache = (tmp_path / n for n in ("explicit", "env", "cache"))
    for root in (explicit, env / "ds", cache / "ds"):
        root.mkdir(parents=True)
        (root / "f.bin").write_bytes(root.name.encode())
    monkeypatch.setenv("LRGYM_DATA_DIR", str(env))
    monkeypatch.setenv("LRGYM_CACHE_DIR", str(cache))
    assert resolve_file("ds", "f.bin", explicit=explicit) == explicit / "f.bin"
    assert resolve_file("ds", "f.bin") == env / "ds" / "f.bin"
    monkeypatch.delenv("LRGYM_DATA_DIR")
    assert resolve_file("ds", "f.bin") == cache / "ds" / "f.bin"


def test_missing_file_error_names_file_places_and_remedy(tmp_path, monkeypatch):
    monkeypatch.setenv("LRGYM_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DatasetNotFoundError) as err:
        resolve_file("mnist", "train-images-idx3-ubyte.gz", urls=["https://example.org/x"])
    msg = str(err.value)
    assert "mnist/train-images-idx3-ubyte.gz" in msg
    assert str(tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz") in msg
    assert "LRGYM_DATA_DIR" in msg and "downloads are disabled" in msg


def test_download_verifies_checksum_and_is_atomic(tmp_path, monkeypatch):
    monkeypatch.delenv("LRGYM_DATA_DIR", raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("LRGYM_CACHE_DIR", str(cache))
    src = tmp_path / "remote.bin"
    src.write_bytes(b"payload" * 100)
    good = hashlib.md5(src.read_bytes()).hexdigest()
    url = src.as_uri()  # file:// exercises the real download path without a network
    with pytest.raises(DatasetNotFoundError, match="checksum mismatch"):
        resolve_file("ds", "remote.bin", urls=[url], md5="0" * 32, download=True)
    assert list((cache / "ds").iterdir()) == []  # a failed download leaves nothing behind
    got = resolve_file("ds", "remote.bin", urls=[url], md5=good, download=True)
    assert got == cache / "ds" / "remote.bin"
    assert got.read_bytes() == src.read_bytes()
    assert [p.name for p in got.parent.iterdir()] == ["remote.bin"]  # no partial files left


def test_explicit_path_is_authoritative(tmp_path, monkeypatch):
    env, cache, mine = (tmp_path / n for n in ("env", "cache", "mine"))
    for root in (env / "ds", cache / "ds"):
        root.mkdir(parents=True)
        (root / "f.bin").write_bytes(b"elsewhere")
    mine.mkdir()
    monkeypatch.setenv("LRGYM_DATA_DIR", str(env))
    monkeypatch.setenv("LRGYM_CACHE_DIR", str(cache))
    monkeypatch.delenv("LRGYM_OFFLINE")
    monkeypatch.setattr("trainees.data.resolve._download", lambda *a: pytest.fail("download"))
    for explicit, missing in [
        (mine, mine / "f.bin"),
        (tmp_path / "typo", tmp_path / "typo" / "f.bin"),
        (mine / "f.bin", mine / "f.bin"),
    ]:
        with pytest.raises(DatasetNotFoundError) as err:
            resolve_file("ds", "f.bin", explicit=explicit, urls=["https://example.org/f.bin"])
        assert f"dataset file {missing} not found" in str(err.value)
        assert "nothing was downloaded" in str(err.value)
    (mine / "f.bin").write_bytes(b"mine")
    assert resolve_file("ds", "f.bin", explicit=mine).read_bytes() == b"mine"
    assert resolve_file("ds", "f.bin", explicit=mine / "f.bin") == mine / "f.bin"
