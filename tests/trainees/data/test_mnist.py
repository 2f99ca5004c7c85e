import gzip
import struct

import numpy as np
import pytest

from tests.conftest import needs_real_data, real_data
from trainees.data.mnist import load_mnist, read_idx, read_idx_bytes
from trainees.data.resolve import DatasetError, DatasetNotFoundError, cache_dir


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file of unsigned bytes, as LeCun's format defines it."""
    magic = magic if magic is not None else 0x0800 + array.ndim
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_mnist(root, n_train=40, n_test=10, size=28, seed=0):
    rng = np.random.default_rng(seed)
    files = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, size, size)),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, size, size)),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in files.items():
        (root / name).write_bytes(gzip.compress(idx_bytes(arr)))
    return files


def test_idx_round_trip(tmp_path):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    (tmp_path / "x.gz").write_bytes(gzip.compress(idx_bytes(images)))
    got = read_idx(tmp_path / "x.gz")
    assert got.shape == (2, 3, 4) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx_bytes(idx_bytes(np.array([7, 1, 3]))), [7, 1, 3])


def test_bad_magic_number_is_rejected():
    raw = idx_bytes(np.zeros((2, 2, 2)), magic=0x00000D03)  # float data, not unsigned bytes
    with pytest.raises(DatasetError, match="bad IDX magic number 3331"):
        read_idx_bytes(raw)


def test_truncated_file_is_rejected(tmp_path):
    raw = idx_bytes(np.zeros((5, 28, 28)))
    with pytest.raises(DatasetError, match=r"truncated.*shape \(5, 28, 28\)"):
        read_idx_bytes(raw[:-100])
    (tmp_path / "cut.gz").write_bytes(gzip.compress(raw)[:-30])  # a cut gzip stream
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "cut.gz")


def test_load_mnist_splits_small_files(tmp_path):
    files = write_mnist(tmp_path, n_train=40, n_test=10)
    ds = load_mnist(tmp_path, verify=False, num_val=8)
    assert ds.train_x.shape == (32, 1, 28, 28) and ds.val_x.shape == (8, 1, 28, 28)
    assert ds.test_x.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(ds.val_y, files["train-labels-idx1-ubyte.gz"][32:])


def test_load_mnist_verifies_decompressed_checksum(tmp_path):
    write_mnist(tmp_path)
    with pytest.raises(DatasetError, match="checksum mismatch: decompressed sha256"):
        load_mnist(tmp_path)


def test_mismatched_image_and_label_counts(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(3))))
    with pytest.raises(DatasetError, match="do not match"):
        load_mnist(tmp_path, verify=False)


@needs_real_data("mnist")
def test_real_mnist():
    ds = load_mnist(real_data("mnist"))  # verifies all four decompressed sha256 pins
    assert len(ds.train_x) + len(ds.val_x) == 60_000 and len(ds.val_x) == 5_000
    assert ds.test_x.shape == (10_000, 1, 28, 28)
    full = np.concatenate([ds.train_x, ds.val_x])
    assert full.mean() / 255 == pytest.approx(0.1307, abs=1e-4)
    counts = np.bincount(np.concatenate([ds.train_y, ds.val_y]))
    assert counts.tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_explicit_root_missing_files_never_falls_back(tmp_path, monkeypatch, no_download):
    env = tmp_path / "env"
    write_mnist(env / "mnist")  # valid data under $LRGYM_DATA_DIR must not be used
    write_mnist(cache_dir() / "mnist")  # nor the cache's copy
    monkeypatch.setenv("LRGYM_DATA_DIR", str(env))
    assert len(load_mnist(verify=False, num_val=8).test_x) == 10  # the env copy is valid
    empty = tmp_path / "typo"
    empty.mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        load_mnist(empty, verify=False, num_val=8)
    msg = str(err.value)
    assert str(empty / "train-images-idx3-ubyte.gz") in msg
    assert "explicit path" in msg and "nothing was downloaded" in msg
    assert str(env) not in msg
    assert list(empty.iterdir()) == []


def test_explicit_root_is_used_over_data_dir_env(tmp_path, monkeypatch, no_download):
    write_mnist(tmp_path / "env" / "mnist", n_train=40, seed=1)
    monkeypatch.setenv("LRGYM_DATA_DIR", str(tmp_path / "env"))
    files = write_mnist(tmp_path / "mine", n_train=30, seed=2)
    ds = load_mnist(tmp_path / "mine", verify=False, num_val=5)
    got_x = np.concatenate([ds.train_x, ds.val_x])[:, 0]
    np.testing.assert_array_equal(got_x, files["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(ds.test_y, files["t10k-labels-idx1-ubyte.gz"])
