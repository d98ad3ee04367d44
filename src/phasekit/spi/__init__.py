"""Single-particle imaging: many diffraction patterns of (nominally) identical particles.

Simulation of XFEL single-particle patterns, preprocessing, batch phasing (one process or a Dask
cluster) and single-hit classification.  See docs/spi.md.
"""

# simulation, detector, particle models and preprocessing (docs/spi.md)
from .detector import AMO86615, DetectorGeometry, amo86615_geometry, pnccd_mask
from .models import SphereModel, icosahedron_model, make_model, virus_model
from .preprocess import (
    crop_patterns,
    find_centres,
    find_hits,
    fit_sphere,
    hit_scores,
    preprocess_stack,
    scale_255,
    size_filter,
)
from .simulate import SUBCLASSES, SpiSimulator, simulate_spi, simulate_spi_file

# batch phasing, Dask runs, features and classification (docs/spi_batch.md)
from .classify import compare, cross_validated_auc, evaluate
from .distributed import run_batch
from .features import feature_sets
from .phasing import STATUS, BatchResult, PhasingConfig, phase_batch

__all__ = [
    # simulation, detector, models, preprocessing
    "AMO86615", "DetectorGeometry", "amo86615_geometry", "pnccd_mask", "SphereModel",
    "icosahedron_model", "make_model", "virus_model", "crop_patterns", "find_centres", "find_hits",
    "fit_sphere", "hit_scores", "preprocess_stack", "scale_255", "size_filter", "SUBCLASSES",
    "SpiSimulator", "simulate_spi", "simulate_spi_file",
    # batch phasing, Dask, features, classification
    "compare", "cross_validated_auc", "evaluate", "run_batch", "feature_sets", "STATUS",
    "BatchResult", "PhasingConfig", "phase_batch",
]
