"""Registration of the k-means algorithms (loaded by :mod:`phasekit.engine.registry`)."""
from __future__ import annotations

from ..engine.registry import AlgorithmSpec, register
from . import kmeans

register(AlgorithmSpec("sbe-kmeans", kmeans.SBEStep, kmeans.SBEConfig,
                       "k-means by stochastic backward Euler (Pham thesis Alg. 4)",
                       modality="ml", default_n_iter=100, aliases=("sbe",)))
register(AlgorithmSpec("lloyd", kmeans.LloydStep, kmeans.LloydConfig,
                       "Lloyd's k-means, full batch ('EM' of Pham thesis ch. 4)",
                       modality="ml", default_n_iter=50, aliases=("kmeans-lloyd",)))
register(AlgorithmSpec("minibatch-kmeans", kmeans.MiniBatchStep, kmeans.MiniBatchConfig,
                       "mini-batch k-means (Sculley 2010; 'mb-EM' of Pham thesis ch. 4)",
                       modality="ml", default_n_iter=100, aliases=("mb-kmeans",)))
