"""Data sets: binarized MNIST (Section 5.2) and MovieLens ratings (Section 5.3).

See :mod:`refvpng.data.mnist` and :mod:`refvpng.data.movielens`.
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
from refvpng.data.movielens import MovieLens, load_movielens, read_ratings

__all__ = [
    "BinarizedMNIST",
    "MNISTArrays",
    "binarize",
    "load_binarized_mnist",
    "load_mnist_idx",
    "load_mnist_packaged",
    "packaged_mnist_path",
    "read_idx",
    "write_idx",
    "MovieLens",
    "load_movielens",
    "read_ratings",
]
