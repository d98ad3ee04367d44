"""Simulation: phantoms, detector masks, noise models and simulated CDI data sets.

* :mod:`phasekit.sim.phantoms`: test objects (vesicle, blobs, icosahedral virus, complex,
  scikit-image images) and centred padding and cropping.
* :mod:`phasekit.sim.masks`: beamstop and detector-gap masks (True = measured).
* :mod:`phasekit.sim.noise`: Poisson and read noise, R_noise and photon calibration
  (Pham thesis eqs. 2.29-2.30).
* :mod:`phasekit.sim.cdi`: :func:`simulate_cdi`, returning a :class:`SimulatedCDI`.
"""
from .phantoms import (
    OBJECT_NAMES,
    SKIMAGE_NAMES,
    blobs,
    complex_object,
    complex_phantom,
    crop_center,
    embed,
    make_object,
    skimage_image,
    vesicle,
    virus,
)
from .masks import beamstop, combine, detector_gaps
from .noise import add_read_noise, calibrate_photons, poisson_counts, rnoise, scale_to_photons
from .cdi import SimulatedCDI, oversampling_ratio, simulate_cdi

__all__ = [
    "OBJECT_NAMES",
    "SKIMAGE_NAMES",
    "vesicle",
    "blobs",
    "virus",
    "complex_object",
    "complex_phantom",
    "skimage_image",
    "make_object",
    "embed",
    "crop_center",
    "beamstop",
    "detector_gaps",
    "combine",
    "poisson_counts",
    "scale_to_photons",
    "add_read_noise",
    "rnoise",
    "calibrate_photons",
    "SimulatedCDI",
    "simulate_cdi",
    "oversampling_ratio",
]
