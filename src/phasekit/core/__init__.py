"""Core conventions: device and dtype policy, randomness, centred unitary FFTs, errors."""
from .errors import PhasekitError, InputError, FileFormatError, ConfigError
from .device import resolve_device, as_tensor, to_numpy, complex_dtype, real_dtype
from .rng import make_rng, spawn_rngs
from .fft import fftc, ifftc, fftw, ifftw, to_work, from_work

__all__ = [
    "PhasekitError", "InputError", "FileFormatError", "ConfigError",
    "resolve_device", "as_tensor", "to_numpy", "complex_dtype", "real_dtype",
    "make_rng", "spawn_rngs",
    "fftc", "ifftc", "fftw", "ifftw", "to_work", "from_work",
]
