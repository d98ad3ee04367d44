"""Registration of the tomography algorithms (loaded by :mod:`phasekit.engine.registry`)."""
from __future__ import annotations

from importlib import import_module

from ..engine.registry import AlgorithmSpec, register

# by module path: the package may re-export functions named like these modules (tomo.fbp)
fbp, genfire, resire, sirt = (import_module(f"phasekit.tomo.{m}") for m in ("fbp", "genfire", "resire", "sirt"))

register(AlgorithmSpec("resire", resire.RESIRE, resire.RESIREConfig,
                       "RESIRE: gradient descent, FST forward + bilinear back projection (Pham thesis Alg. 3)",
                       modality="tomo", default_n_iter=400))
register(AlgorithmSpec("sirt", sirt.SIRT, sirt.SIRTConfig,
                       "SIRT with ASTRA's row/column normalisation, real-space projector pair",
                       modality="tomo", default_n_iter=400))
register(AlgorithmSpec("genfire", genfire.GENFIRE, genfire.GENFIREConfig,
                       "GENFIRE-lite: Fourier gridding (1/d weights) + alternating constraints (Pryor 2017)",
                       modality="tomo", default_n_iter=400, aliases=("genfire-lite",)))
register(AlgorithmSpec("fbp", fbp.FBP, fbp.FBPConfig,
                       "filtered (weighted) back projection, one step: ramp/Hann/Shepp-Logan/cosine filter",
                       modality="tomo", default_n_iter=1, aliases=("wbp",), iterative=False))
