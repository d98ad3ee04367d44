"""Learned denoisers for PINE (Yamada et al., J. Appl. Cryst. 57 (2024)): dead-leaves data,
RealSN DnCNN, complex wrapper, Lipschitz estimation, training and shipped weights.

* :mod:`.deadleaves` -- formula-driven training images (DL-Diverse, DL-Textured);
* :mod:`.patches` -- training patches and augmentation;
* :mod:`.realsn` -- real spectral normalisation of convolutions;
* :mod:`.dncnn` -- :class:`DnCNN` (train) and :class:`FoldedDnCNN` (shipped, BN folded);
* :mod:`.complex` -- :class:`ComplexDenoiser` (real and imaginary parts, min-max rescaling);
* :mod:`.lipschitz` -- :func:`jacobian_norm`, :func:`lipschitz_constant`;
* :mod:`.training` -- :func:`train_denoiser` (``phasekit train-denoiser``);
* :mod:`.pretrained` -- :func:`load_denoiser`, :func:`load_complex_denoiser` (``"default"``,
  ``"nonexpansive"``).
"""
from .complex import ComplexDenoiser
from .deadleaves import dead_leaves, dead_leaves_dataset, power_law_texture, radius_pmf
from .dncnn import DnCNN, FoldedDnCNN
from .lipschitz import jacobian_norm, lipschitz_constant
from .pretrained import load_complex_denoiser, load_denoiser, weights_info
from .realsn import RealSNConv2d, conv_operator_norm

__all__ = [
           "ComplexDenoiser",
           "DnCNN",
           "FoldedDnCNN",
           "RealSNConv2d",
           "conv_operator_norm",
           "dead_leaves",
           "dead_leaves_dataset",
           "jacobian_norm",
           "lipschitz_constant",
           "load_complex_denoiser",
           "load_denoiser",
           "power_law_texture",
           "radius_pmf",
           "weights_info",
]
