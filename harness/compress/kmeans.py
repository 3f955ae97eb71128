"""One-dimensional k-means for weight sharing (Deep Compression's clustering step).

Linear initialisation over [min, max], as Han et al. 2016 found best (it keeps the rare
large weights, which matter most). Pure numpy; assignment is exact nearest-centroid via
the midpoints of the sorted centroids.
"""
from __future__ import annotations

import numpy as np


def assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (centroids sorted ascending)."""
    if len(centroids) == 1:
        return np.zeros(values.shape, dtype=np.int64)
    midpoints = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(midpoints, values, side="left").astype(np.int64)


def kmeans_1d(values: np.ndarray, k: int, iterations: int = 50):
    """Cluster ``values`` into at most ``k`` shared values; returns (centroids float32, labels).

    With no more distinct values than ``k`` the codebook is the distinct values themselves,
    so clustering is exact (the identity setting).
    """
    values = np.asarray(values, dtype=np.float32).ravel()
    if values.size == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
    distinct = np.unique(values)
    if len(distinct) <= k:
        return distinct.astype(np.float32), np.searchsorted(distinct, values).astype(np.int64)
    centroids = np.linspace(values.min(), values.max(), k).astype(np.float64)
    labels = assign(values, centroids)
    for _ in range(iterations):
        sums = np.bincount(labels, weights=values, minlength=k)
        counts = np.bincount(labels, minlength=k)
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)  # empty keeps its place
        updated.sort()
        new_labels = assign(values, updated)
        centroids = updated
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    centroids = centroids.astype(np.float32)
    # drop clusters nobody uses so the codebook only holds real shared weights
    used = np.unique(labels)
    remap = np.full(k, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return centroids[used], remap[labels]
