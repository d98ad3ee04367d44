"""Single-particle imaging: many diffraction patterns of (nominally) identical particles.

Simulation of XFEL single-particle patterns, preprocessing, batch phasing (one process or a Dask
cluster) and single-hit classification.  See docs/spi.md.
"""
