"""Data sets: binarized MNIST for the VAE experiment of Section 5.2 (:mod:`refvpng.data.mnist`)."""

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
]
