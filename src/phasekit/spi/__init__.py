"""Single-particle imaging: many diffraction patterns of (nominally) identical particles.

Simulation of XFEL single-particle patterns, preprocessing, batch phasing (one process or a Dask
cluster) and single-hit classification.  See docs/spi.md.
"""

# simulation, detector, particle models and preprocessing (docs/spi.md)
from .detector import AMO86615, DetectorGeometry, amo86615_geometry, pnccd_mask  # noqa: E402
from .models import SphereModel, icosahedron_model, make_model, virus_model  # noqa: E402
from .preprocess import (  # noqa: E402
    crop_patterns,
    find_centres,
    find_hits,
    fit_sphere,
    hit_scores,
    preprocess_stack,
    scale_255,
    size_filter,
)
from .simulate import SUBCLASSES, SpiSimulator, simulate_spi, simulate_spi_file  # noqa: E402

# batch phasing, Dask runs, features and classification (docs/spi_batch.md)
from .classify import compare, cross_validated_auc, evaluate  # noqa: E402
from .distributed import run_batch  # noqa: E402
from .features import feature_sets  # noqa: E402
from .phasing import STATUS, BatchResult, PhasingConfig, phase_batch  # noqa: E402
