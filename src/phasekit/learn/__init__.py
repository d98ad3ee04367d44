"""Optimisation methods of the Pham thesis (ch. 4-5) and the smoothing operator they share with
GPS.

* :mod:`phasekit.operators.smoothing`: ``(I + (-1)^n sigma L^n)^{-1}`` by FFT (GPS-R, LS-SGD);
* :mod:`.kmeans`: stochastic backward Euler k-means (:class:`SBEKMeans`), Lloyd
  (:class:`KMeans`) and mini-batch k-means (:class:`MiniBatchKMeans`);
* :mod:`.lsgd`: :class:`LSSGD` and :class:`LSRMSprop` optimisers.

The k-means and optimiser names are imported lazily (the smoothing lives in :mod:`phasekit.operators.smoothing`, shared with GPS).
"""
from ..operators.smoothing import (laplacian_eigenvalues, laplacian_smooth, laplacian_smoothing_divisor,
                        smooth_vector, smoothed_noise_variance_factor)

_LAZY = {
    "SBEKMeans": "kmeans", "KMeans": "kmeans", "MiniBatchKMeans": "kmeans", "kmeans_objective": "kmeans",
    "KMeansProblem": "kmeans", "NotFittedError": "kmeans", "load_iris": "kmeans",
    "LSSGD": "lsgd", "LSRMSprop": "lsgd",
}

__all__ = ["laplacian_eigenvalues", "laplacian_smooth", "laplacian_smoothing_divisor", "smooth_vector",
           "smoothed_noise_variance_factor", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
