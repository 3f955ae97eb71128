"""Labelled evaluation data that ships with packages (no downloads at run time).

The digits split is fixed once here and used everywhere: training (models/make_zoo.py),
int8 calibration and accuracy evaluation, so calibration never sees evaluation digits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLIT_SEED = 0
N_TEST = 360
N_CALIBRATION = 200


@dataclass(frozen=True)
class Split:
    x: np.ndarray  # float32, (n, 64), pixel values scaled to [0, 1]
    y: np.ndarray  # int64, (n,)


def digits_split() -> dict[str, Split]:
    """scikit-learn's 8x8 digits as train / calibration / test.

    The test part is never used for training or calibration; the calibration part is a
    slice of the training part (post-training quantization must not see test digits).
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(y))
    test, train = order[:N_TEST], order[N_TEST:]
    calibration = train[:N_CALIBRATION]
    return {
        "train": Split(x[train], y[train]),
        "calibration": Split(x[calibration], y[calibration]),
        "test": Split(x[test], y[test]),
    }


DATASETS = {"digits": digits_split}


def load(name: str, part: str) -> Split:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]()[part]
