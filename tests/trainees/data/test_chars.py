import hashlib
import pickle
import zipfile

import numpy as np
import pytest

from tests.conftest import needs_real_data, real_data
from trainees.data.chars import load_char_corpus, load_prepared, prepare_bytes, val_test_cut
from trainees.data.resolve import DatasetError, DatasetNotFoundError, cache_dir

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20


def write_zip(path, member, data: bytes):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, data)


def test_shakespeare_style_prepare(tmp_path):
    (tmp_path / "input.txt").write_text(TEXT)
    c = load_char_corpus("shakespeare_char", data_dir=tmp_path, verify=False)
    n = len(TEXT)
    assert (len(c.train), len(c.val), c.test) == (int(0.9 * n), n - int(0.9 * n), None)
    assert c.vocab_size == len(set(TEXT)) and list(c.itos) == sorted(set(TEXT))
    assert c.decode(np.concatenate([c.train, c.val])) == TEXT
    assert c.train.dtype == np.uint16


def test_enwik8_style_zip_three_splits_and_byte_vocab(tmp_path):
    rng = np.random.default_rng(0)
    text = "<page><title>Zürich</title> naïve café — 東京 </page>\n" * 30
    data = text.encode("utf-8") + bytes(rng.integers(0, 256, 101, dtype=np.uint8))
    write_zip(tmp_path / "enwik8.zip", "enwik8", data)
    c = load_char_corpus("enwik8", data_dir=tmp_path, verify=False)
    n = len(data)
    sizes = (len(c.train), len(c.val), len(c.test))
    assert sizes == (int(0.9 * n), int(0.05 * n), n - int(0.9 * n) - int(0.05 * n))
    assert c.vocab_size == len(set(data))  # byte-level vocabulary
    ids = np.concatenate([c.train, c.val, c.test])
    assert "".join(c.itos[i] for i in ids).encode("latin-1") == data  # lossless
    assert c.decode(c.train[:10]) == text[:10]


def test_text8_style_zip_and_published_checksum(tmp_path):
    alphabet = " abcdefghijklmnopqrstuvwxyz"
    data = "".join(np.random.default_rng(1).choice(list(alphabet), 2000)).encode()
    write_zip(tmp_path / "text8.zip", "text8", data)
    c = load_char_corpus("text8", data_dir=tmp_path, verify=False)
    assert (len(c.train), len(c.val), len(c.test)) == (1800, 100, 100)
    assert "".join(c.itos) == alphabet
    with pytest.raises(DatasetError, match="checksum mismatch: md5"):
        load_char_corpus("text8", data_dir=tmp_path)  # not the published archive


def test_enwik8_verify_rejects_wrong_size(tmp_path):
    write_zip(tmp_path / "enwik8.zip", "enwik8", b"abc" * 100)
    with pytest.raises(DatasetError, match="expected 100,000,000 bytes of text, found 300"):
        load_char_corpus("enwik8", data_dir=tmp_path)


def test_truncated_and_wrong_archives_are_clear_errors(tmp_path):
    write_zip(tmp_path / "enwik8.zip", "enwik8", bytes(range(256)) * 200)
    raw = (tmp_path / "enwik8.zip").read_bytes()
    (tmp_path / "enwik8.zip").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated zip"):
        load_char_corpus("enwik8", data_dir=tmp_path, verify=False)
    write_zip(tmp_path / "enwik8.zip", "other", b"x" * 10)
    with pytest.raises(DatasetError, match="no member 'enwik8'"):
        load_char_corpus("enwik8", data_dir=tmp_path, verify=False)


def test_prepared_once_and_cached(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("LRGYM_CACHE_DIR", str(cache))
    (tmp_path / "input.txt").write_text(TEXT)
    load_char_corpus("shakespeare_char", data_dir=tmp_path, verify=False)
    (meta,) = cache.glob("shakespeare_char/*/meta.pkl")
    stamp = meta.stat().st_mtime_ns
    c = load_char_corpus("shakespeare_char", data_dir=tmp_path, verify=False)
    assert meta.stat().st_mtime_ns == stamp and len(c.train) > 0
    (tmp_path / "input.txt").write_text(TEXT + "new text")  # new source -> new preparation
    load_char_corpus("shakespeare_char", data_dir=tmp_path, verify=False)
    assert len(list(cache.glob("shakespeare_char/*/meta.pkl"))) == 2


def test_nanogpt_prepared_folder_is_used_directly(tmp_path):
    (tmp_path / "train.bin").write_bytes(np.array([0, 1, 2, 1] * 10, np.uint16).tobytes())
    (tmp_path / "val.bin").write_bytes(np.array([2, 1, 0] * 5, np.uint16).tobytes())
    meta = {"vocab_size": 3, "itos": {0: "a", 1: "b", 2: "c"}, "stoi": {"a": 0, "b": 1, "c": 2}}
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps(meta))
    c = load_char_corpus("shakespeare_char", data_dir=tmp_path)
    assert c.decode(c.val[:3]) == "cba" and len(c.train) == 40


def test_missing_corpus_and_unknown_name(tmp_path, monkeypatch):
    monkeypatch.delenv("LRGYM_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match=r"text8/text8\.zip not found"):
        load_char_corpus("text8")
    with pytest.raises(DatasetNotFoundError) as err:
        load_char_corpus("text8", data_dir=tmp_path)
    assert f"dataset file {tmp_path / 'text8.zip'} not found" in str(err.value)
    with pytest.raises(ValueError, match="valid: shakespeare_char, enwik8, text8"):
        load_char_corpus("wikitext")


def test_without_test_bin_the_validation_region_is_cut_in_half(tmp_path):
    prepare_bytes(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWX", tmp_path, (0.9, 0.1))
    c = load_prepared("shakespeare_char", tmp_path)  # 50 bytes: 45 train, 5 validation
    assert c.test is None and c.decode(c.val) == "TUVWX" and val_test_cut(5) == 2
    assert c.decode(c.val_tokens) == "TU"  # val[:5 // 2]: evaluate()'s windows
    assert c.decode(c.test_tokens) == "VWX"  # val[5 // 2:]: the held-out test split
    assert [val_test_cut(n) for n in (0, 1, 2, 7, 8, 111_540)] == [0, 0, 1, 3, 4, 55_770]


def test_with_test_bin_the_splits_are_the_files(tmp_path):
    prepare_bytes(b"ABCDEFGHIJKLMNOPQRST", tmp_path, (0.5, 0.25, 0.25))
    c = load_prepared("enwik8", tmp_path)  # enwik8 and text8: nothing is cut
    assert c.decode(c.val_tokens) == c.decode(c.val) == "KLMNO"
    assert c.decode(c.test_tokens) == c.decode(c.test) == "PQRST"


@needs_real_data("shakespeare_char", "input.txt")
def test_real_tiny_shakespeare():
    path = real_data("shakespeare_char", "input.txt")
    c = load_char_corpus("shakespeare_char")  # via $LRGYM_DATA_DIR, sha256-verified
    assert len(c.train) + len(c.val) == 1_115_394 and c.vocab_size == 65
    assert len(c.train) == 1_003_854  # nanoGPT's 90 % split
    assert (len(c.val_tokens), len(c.test_tokens)) == (55_770, 55_770)  # 111,540 cut in half
    assert c.decode(c.train[:14]) == "First Citizen:"
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("86c4e6aa")


def test_explicit_data_dir_missing_files_never_falls_back(tmp_path, monkeypatch, no_download):
    env = tmp_path / "env"
    prepare_bytes(b"from the environment\n" * 10, env / "shakespeare_char", (0.9, 0.1))
    (env / "shakespeare_char" / "input.txt").write_text(TEXT)
    (cache_dir() / "shakespeare_char").mkdir(parents=True)
    (cache_dir() / "shakespeare_char" / "input.txt").write_text(TEXT)  # nor the cache's copy
    monkeypatch.setenv("LRGYM_DATA_DIR", str(env))
    assert load_char_corpus("shakespeare_char").decode([0]) == "\n"  # the env copy is valid
    empty = tmp_path / "typo"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        load_char_corpus("shakespeare_char", data_dir=empty, verify=False)
    msg = str(err.value)
    assert str(empty / "input.txt") in msg and "meta.pkl" in msg
    assert "explicit path" in msg and "nothing was downloaded" in msg
    assert str(env) not in msg
    assert list(empty.iterdir()) == []


def test_explicit_data_dir_is_used_over_data_dir_env(tmp_path, monkeypatch, no_download):
    prepare_bytes(b"from the environment\n" * 10, tmp_path / "env" / "enwik8", (0.9, 0.05, 0.05))
    monkeypatch.setenv("LRGYM_DATA_DIR", str(tmp_path / "env"))
    mine = b"explicit folder's own corpus " * 20
    prepare_bytes(mine, tmp_path / "mine", (0.9, 0.05, 0.05))
    c = load_char_corpus("enwik8", data_dir=tmp_path / "mine", verify=False)
    assert c.decode(np.concatenate([c.train, c.val, c.test])) == mine.decode()
    (tmp_path / "raw").mkdir()
    write_zip(tmp_path / "raw" / "enwik8.zip", "enwik8", mine)
    c = load_char_corpus("enwik8", data_dir=tmp_path / "raw", verify=False)
    assert c.decode(np.concatenate([c.train, c.val, c.test])) == mine.decode()
