"""Registration of the ptychography engines (loaded by :mod:`phasekit.engine.registry`)."""
from __future__ import annotations

from ..engine.registry import AlgorithmSpec, register
from . import engines as pie

register(AlgorithmSpec("epie", pie.EPIE, pie.EPIEConfig,
                       "ePIE, extended ptychographical iterative engine (Maiden & Rodenburg 2009)",
                       modality="ptycho", default_n_iter=300))
register(AlgorithmSpec("rpie", pie.RPIE, pie.RPIEConfig,
                       "rPIE, regularised PIE (Maiden, Johnson & Li 2017)",
                       modality="ptycho", default_n_iter=300))
register(AlgorithmSpec("mpie", pie.MPIE, pie.MPIEConfig,
                       "mPIE, rPIE with momentum (Maiden, Johnson & Li 2017)",
                       modality="ptycho", default_n_iter=300))
register(AlgorithmSpec("crisp", pie.CRISP, pie.CRISPConfig,
                       "CRISP, clipped subgradient-projection PIE (J. Appl. Cryst. 57, 2024)",
                       modality="ptycho", default_n_iter=300))
from .pine import PINE, PINEConfig  # noqa: E402  (from the module: ``ptycho.pine`` is the function)

register(AlgorithmSpec("pine", PINE, PINEConfig,
                       "PINE, ePIE + denoiser relaxation (Yamada et al., J. Appl. Cryst. 57, 2024)",
                       modality="ptycho", default_n_iter=200))
