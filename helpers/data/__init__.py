"""Data for the course: shipped real data, optional downloads, and seeded synthetic sets.

Importing this package is cheap: it loads no data, downloads nothing, seeds nothing and does
not import torch (only the functions that return torch objects do, when called).

Shipped with the course (offline, checked by sha256; see helpers/datasets/PROVENANCE.md):
- ``load_digits``, ``digits_dataset``, ``digits_loader``  -- 9,000 real MNIST digits (train/val)
- ``load_names``, ``CharVocab``, ``make_context_pairs``, ``make_padded_batch`` -- 5,163 names
Downloaded on request, into a checked cache (module ``helpers.data.download``, whose
``download(url, path, checksum)`` fetches any single file the same careful way):
- ``load_mnist``, ``load_fashion_mnist``, ``load_cifar10``, ``load_tiny_shakespeare``
Synthetic, from a seed:
- 2-D: ``make_separable``, ``make_xor``, ``make_moons``, ``make_circles``, ``make_spirals``
- 1-D regression: ``make_function_1d``
- time series: ``noisy_sines``, ``make_windows``
- sequence tasks: ``make_sequence_task``, ``sequence_loader`` (copy, reverse, sort, adding)
"""
from helpers.data.digits import digits_dataset, digits_loader, digits_mean_std, load_digits
from helpers.data.download import (
    CIFAR10_CLASSES,
    FASHION_MNIST_CLASSES,
    DownloadError,
    default_cache_dir,
    fetch_dataset,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    load_tiny_shakespeare,
)
from helpers.data.names import CharVocab, load_names, make_context_pairs, make_padded_batch
from helpers.data.sequences import make_sequence_task, sequence_loader
from helpers.data.shipped import ShippedDataError
from helpers.data.synthetic import (
    make_circles,
    make_function_1d,
    make_moons,
    make_separable,
    make_spirals,
    make_xor,
)
from helpers.data.timeseries import make_windows, noisy_sines

__all__ = [
    "CIFAR10_CLASSES", "FASHION_MNIST_CLASSES", "CharVocab", "DownloadError", "ShippedDataError",
    "default_cache_dir", "digits_dataset", "digits_loader", "digits_mean_std",
    "fetch_dataset", "load_cifar10", "load_digits", "load_fashion_mnist", "load_mnist",
    "load_names", "load_tiny_shakespeare", "make_circles", "make_context_pairs",
    "make_function_1d", "make_moons", "make_padded_batch", "make_separable",
    "make_sequence_task", "make_spirals", "make_windows", "make_xor", "noisy_sines",
    "sequence_loader",
]
