"""The CDI problem: measured amplitudes, detector mask, support and object constraints, as tensors
on one device in the work layout (see :mod:`phasekit.core.fft`)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.device import complex_dtype, real_dtype, resolve_device, to_numpy
from ..core.errors import InputError
from ..core.fft import fftw, from_work, ifftw, irfftw, rfftw, to_work

log = logging.getLogger("phasekit")

#: a given support above this fraction of the array is reported: the area oversampling ratio
#: N / |S| is then below 2, where the phases are not determined by the modulus and the support
#: (Miao, Sayre & Chapman, J. Opt. Soc. Am. A 15, 1662 (1998))
MAX_SUPPORT_FRACTION = 0.5


#: on the CPU, a batch of starts of images larger than this (pixels) runs its FFTs image by image
#: (:meth:`CDIProblem.batch_by_image`): the batch's arrays no longer stay in cache between the FFT
#: and the elementwise passes (measured on one AMD EPYC core: a batch of 8 512^2 complex64 HIO
#: starts 0.86-0.94x the throughput of sequential starts with batched FFTs)
BATCH_FFT_MAX_PIXELS = 1 << 17
#: the largest image (pixels) whose starts the automatic choice batches on the complex path on the
#: CPU (:meth:`CDIProblem.prefers_batch`): 8 starts of 256^2 complex64 ran at 0.72-0.83x the
#: sequential throughput on an Intel Xeon core and 0.91-1.06x on an AMD EPYC core; 128^2 at
#: 0.89-0.93x and 1.2-1.3x (benchmarks/cdi_batched_starts.py)
BATCH_COMPLEX_MAX_PIXELS = 1 << 14


def _check_array(name, a, *, ndim=None):
    arr = to_numpy(a)
    if arr.size == 0:
        raise InputError(f"{name} is empty")
    if ndim is not None and arr.ndim not in ndim:
        raise InputError(f"{name} must be {' or '.join(f'{n}-D' for n in ndim)}, got shape {arr.shape}")
    return arr


@dataclass
class CDIProblem:
    """A single-pattern CDI problem.

    Build it with :meth:`from_arrays`.  All tensors are in the work layout on ``device``.

    Attributes
    ----------
    amp : real tensor
        Measured amplitudes ``b = sqrt(I)``; zero on unmeasured pixels.
    measured : bool tensor
        True on measured pixels.
    support : bool tensor
        Object support (may be changed by shrink-wrap).
    real, positive : bool
        Object constraints (realness; ``Re >= 0``).
    rfft : bool
        With ``real``: the algorithms that keep the iterate real (ER, HIO, RAAR, OSS) run on the
        real FFT pair and the Hermitian half spectrum (:mod:`phasekit.cdi.halfspectrum`; same
        iterates as the complex path within rounding, about half the time).  False forces the
        complex path (for comparison and tests).  See :attr:`use_rfft`.
    """

    amp: torch.Tensor
    measured: torch.Tensor
    support: torch.Tensor
    real: bool = False
    positive: bool = False
    shape: tuple = ()
    device: torch.device = torch.device("cpu")
    precision: str = "single"
    amp_sum: float = 0.0
    meta: dict = field(default_factory=dict)
    rfft: bool = True
    _half_cache: tuple | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_arrays(cls, intensity, support=None, mask=None, *, real: bool = False,
                    positive: bool = False, device=None, precision: str = "single",
                    clip_negative: bool = False, support_threshold: float | None = None,
                    rfft: bool = True):
        """Validate centred NumPy (or torch) arrays and build the problem.

        Parameters
        ----------
        intensity : array (2-D or 3-D)
            Measured intensities, zero frequency at ``N // 2``.  Must be finite and, on measured
            pixels, non-negative (unless ``clip_negative``).
        support : bool array, optional
            Object support, centred.  If omitted, the thresholded autocorrelation is used
            (:func:`phasekit.cdi.shrinkwrap.autocorrelation_support`).
        mask : bool array, optional
            True = measured.  Omitted means every pixel is measured.
        real, positive : bool
            Constrain the object to be real / to have a non-negative real part.
        rfft : bool
            With ``real``: run the real-iterate algorithms on real FFTs (default True; False
            forces the complex path).
        """
        I = _check_array("intensity", intensity, ndim=(2, 3))
        if not np.issubdtype(I.dtype, np.number) or np.iscomplexobj(I):
            raise InputError(f"intensity must be real numbers, got dtype {I.dtype}")
        if mask is None:
            m = np.ones(I.shape, bool)
        else:
            m = _check_array("mask", mask)
            if m.shape != I.shape:
                raise InputError(f"mask shape {m.shape} != intensity shape {I.shape}")
            m = m.astype(bool)
        if not m.any():
            raise InputError("mask marks no pixel as measured")
        bad = ~np.isfinite(I) & m
        if bad.any():
            raise InputError(f"intensity has {int(bad.sum())} NaN/Inf values on measured pixels "
                             "(mark them unmeasured in the mask)")
        I = np.where(m, I, 0.0)
        neg = (I < 0) & m
        if neg.any():
            if not clip_negative:
                raise InputError(f"intensity has {int(neg.sum())} negative values (min {I[neg].min():.3g}); "
                                 "pass clip_negative=True (CLI: --clip-negative) for background-subtracted data")
            I = np.clip(I, 0, None)
        if not (I[m] > 0).any():
            raise InputError("intensity is zero on every measured pixel")
        if support is None:
            from .shrinkwrap import AC_THRESHOLD, autocorrelation_support

            s = autocorrelation_support(I, m, threshold=AC_THRESHOLD if support_threshold is None
                                        else support_threshold)
        else:
            s = _check_array("support", support)
            if s.shape != I.shape:
                raise InputError(f"support shape {s.shape} != intensity shape {I.shape}")
            if not np.all(np.isfinite(s.astype(float))):
                raise InputError("support contains NaN")
            s = s.astype(bool)
            frac = float(np.count_nonzero(s)) / s.size
            if frac > MAX_SUPPORT_FRACTION:
                log.warning("the support covers %.0f %% of the array (area oversampling ratio "
                            "%.2f < 2): it constrains too little for the phases to be determined, "
                            "and a low R-factor then says nothing about the image", 100 * frac,
                            1 / frac)
        if not s.any():
            raise InputError("support is empty")
        dev = resolve_device(device)
        rdt = real_dtype(precision)
        amp = to_work(torch.from_numpy(np.sqrt(I)).to(dev, rdt)).contiguous()
        meas = to_work(torch.from_numpy(m).to(dev)).contiguous()
        sup = to_work(torch.from_numpy(s).to(dev)).contiguous()
        return cls(amp=amp, measured=meas, support=sup, real=bool(real), positive=bool(positive),
                   shape=tuple(I.shape), device=dev, precision=precision,
                   amp_sum=float(amp[meas].sum()), rfft=bool(rfft))

    #: the engine's Problem protocol (phasekit.engine.problem)
    modality = "cdi"
    objective_name = "R_F"

    # ------------------------------------------------------------------ Problem protocol
    def objective(self, x) -> float:
        """The R-factor of a work-layout image (the driver's figure of merit)."""
        return self.rfactor(x)

    def to_output(self, x) -> np.ndarray:
        """Work-layout tensor -> centred NumPy array; real for a real-constrained problem."""
        a = self.to_centred(x)
        if self.real and np.iscomplexobj(a):
            a = np.ascontiguousarray(a.real)
        return a

    def from_input(self, a) -> torch.Tensor:
        """A centred start image -> work-layout tensor (shape checked)."""
        arr = a if isinstance(a, torch.Tensor) else np.asarray(a)
        if tuple(arr.shape) != tuple(self.shape):
            raise InputError(f"start image shape {tuple(arr.shape)} != data shape {tuple(self.shape)}")
        return self.from_centred(arr)

    # ------------------------------------------------------------------ helpers
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def cdtype(self):
        return complex_dtype(self.precision)

    @property
    def rdtype(self):
        return real_dtype(self.precision)

    def fft(self, x, out=None):
        """Unitary forward FFT (work layout); ``out`` (``x`` itself for an in-place transform)
        receives it (:func:`phasekit.core.fft.fftw`)."""
        return fftw(x, self.ndim, out=out)

    def ifft(self, z, out=None):
        """Unitary inverse FFT (work layout); ``out`` (``z`` itself for an in-place transform)
        receives it (:func:`phasekit.core.fft.ifftw`)."""
        return ifftw(z, self.ndim, out=out)

    # ------------------------------------------------------------------ real objects, real FFTs
    @property
    def use_rfft(self) -> bool:
        """True when real-iterate algorithms run on the real FFT pair (``real`` and ``rfft``)."""
        return bool(self.real and self.rfft)

    def rfft_half(self, x):
        """Half spectrum of a real work-layout image (unitary ``rfftn``)."""
        return rfftw(x, self.ndim)

    def irfft_half(self, z, *, overwrite: bool = False):
        """Real work-layout image from its half spectrum (unitary ``irfftn``); ``overwrite``
        lets it use ``z`` as scratch (faster, see :func:`phasekit.core.fft.irfftw`)."""
        return irfftw(z, self.shape, self.ndim, overwrite=overwrite)

    def half(self):
        """The data folded onto the half spectrum (:func:`phasekit.cdi.halfspectrum.fold`),
        built once and rebuilt if ``amp`` or ``measured`` is replaced or modified."""
        from .halfspectrum import fold

        key = (id(self.amp), self.amp._version, id(self.measured), self.measured._version)
        if self._half_cache is None or self._half_cache[0] != key:
            self._half_cache = (key, fold(self.amp, self.measured, self.ndim))
        return self._half_cache[1]

    def as_iterate(self, x) -> torch.Tensor:
        """``x`` in the dtype of a real-iterate algorithm's state on this problem: real on the
        real-FFT path (the real part of a complex start or hand-over: the realness projection
        applied to the start, see docs/cdi.md "Real objects on real FFTs"), complex otherwise."""
        if self.use_rfft:
            return (x.real if x.is_complex() else x).to(self.rdtype).contiguous()
        return x.to(self.cdtype).contiguous()

    def to_centred(self, x) -> np.ndarray:
        """Work-layout tensor -> centred NumPy array."""
        return to_numpy(from_work(x, self.ndim))

    def from_centred(self, a, dtype=None) -> torch.Tensor:
        """Centred array -> work-layout tensor on the problem's device."""
        t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
        return to_work(t.to(self.device, dtype or self.cdtype), self.ndim).contiguous()

    def rfactor_fourier(self, z) -> float:
        """R-factor of a Fourier-space field against the data over measured pixels
        (thesis eq. (2.21) with the absolute value restored)."""
        from .kernels import rfactor_numerator

        return rfactor_numerator(z, self.amp, self.measured) / self.amp_sum

    def rfactor(self, x) -> float:
        """R-factor of a real-space (work-layout) image (from the half spectrum when the image
        is a real tensor: equal to the full-grid value within rounding)."""
        return self.rfactor_transform(x)[0]

    def rfactor_transform(self, x) -> tuple[float, torch.Tensor]:
        """:meth:`rfactor` of ``x`` and the transform it was taken from: the half spectrum
        (``rfftn``) of a real tensor, else the full ``fftn``.  ER reuses it as its next step's
        first FFT (:meth:`ErrorReduction.metrics <phasekit.cdi.er.ErrorReduction.metrics>`).

        Examples
        --------
        >>> import numpy as np, torch
        >>> p = CDIProblem.from_arrays(np.ones((8, 8)), np.ones((8, 8), bool))
        >>> rf, z = p.rfactor_transform(torch.zeros((8, 8), dtype=torch.complex64))
        >>> rf, tuple(z.shape)
        (1.0, (8, 8))
        """
        if not x.is_complex():
            z = self.rfft_half(x.to(self.rdtype).contiguous())
            return self.rfactor_half(z), z
        z = self.fft(x)
        return self.rfactor_fourier(z), z

    def rfactor_project(self, x) -> tuple[float, torch.Tensor]:
        """:meth:`rfactor_transform` of ``x`` with the transform then modulus-projected in place
        (:func:`~phasekit.cdi.kernels.fourier_project` or, for a real tensor, the half-spectrum
        projection), in one pass over it: the R-factor of ``x`` and the first half of a
        projection step from ``x`` (ER's metrics and its next step, see
        :meth:`ErrorReduction.metrics <phasekit.cdi.er.ErrorReduction.metrics>`).

        Examples
        --------
        >>> import numpy as np, torch
        >>> p = CDIProblem.from_arrays(np.ones((8, 8)), np.ones((8, 8), bool))
        >>> rf, z = p.rfactor_project(torch.zeros((8, 8), dtype=torch.complex64))
        >>> rf, float(z.abs().min())
        (1.0, 1.0)
        """
        from .kernels import fourier_project_half_rfactor, fourier_project_rfactor

        if not x.is_complex():
            z = self.rfft_half(x.to(self.rdtype).contiguous())
            return fourier_project_half_rfactor(z, self.half()) / self.amp_sum, z
        z = self.fft(x)
        return fourier_project_rfactor(z, self.amp, self.measured) / self.amp_sum, z

    def rfactor_half(self, z) -> float:
        """R-factor from the half spectrum of a real image (paired columns weighted twice)."""
        from .kernels import rfactor_numerator_half

        return rfactor_numerator_half(z, self.half()) / self.amp_sum

    def rfactor_batch(self, x) -> list[float]:
        """R-factors of a batch of work-layout images ``x`` of shape ``(N, *shape)``: one batched
        (real or complex) FFT, then the per-image numerator of :meth:`rfactor` (the same value
        as ``[rfactor(x[i]) ...]`` within the FFT's rounding).

        Examples
        --------
        >>> import numpy as np, torch
        >>> p = CDIProblem.from_arrays(np.ones((8, 8)), np.ones((8, 8), bool))
        >>> len(p.rfactor_batch(torch.zeros((3, 8, 8), dtype=torch.complex64)))
        3
        """
        return self.rfactor_batch_transform(x)[0]

    def rfactor_batch_transform(self, x) -> tuple[list[float], torch.Tensor | list[torch.Tensor]]:
        """:meth:`rfactor_batch` and the transform it was taken from: the batched transform, or
        the list of per-image transforms where the batch is transformed image by image
        (:meth:`batch_by_image`); see :meth:`rfactor_transform`.

        Examples
        --------
        >>> import numpy as np, torch
        >>> p = CDIProblem.from_arrays(np.ones((8, 8)), np.ones((8, 8), bool))
        >>> rf, z = p.rfactor_batch_transform(torch.zeros((3, 8, 8), dtype=torch.complex64))
        >>> rf, tuple(z.shape)
        ([1.0, 1.0, 1.0], (3, 8, 8))
        """
        from .kernels import rfactor_numerator_batch, rfactor_numerator_half_batch

        if x.ndim == self.ndim:
            rf, z = self.rfactor_transform(x)
            return [rf], z
        if self.batch_by_image():
            rfs, zs = zip(*(self.rfactor_transform(xi) for xi in x))
            return list(rfs), list(zs)
        if not x.is_complex():
            z = self.rfft_half(x.to(self.rdtype).contiguous())
            return [v / self.amp_sum for v in rfactor_numerator_half_batch(z, self.half())], z
        z = self.fft(x)
        return [v / self.amp_sum for v in rfactor_numerator_batch(z, self.amp, self.measured)], z

    def batch_by_image(self) -> bool:
        """Whether a batch of starts runs its FFTs image by image (large images on the CPU, see
        :data:`BATCH_FFT_MAX_PIXELS`) instead of as one batched transform."""
        return self.device.type == "cpu" and int(np.prod(self.shape)) > BATCH_FFT_MAX_PIXELS

    def prefers_batch(self, n: int) -> bool:
        """Whether ``n`` starts gain from running as one batch (the engine's automatic choice):
        not where the batch would step image by image (:meth:`batch_by_image`: measured 0.90-1.00x
        the sequential throughput at 512^2 on one AMD EPYC core, benchmarks/cdi_batched_starts.py),
        nor on the CPU when its FFTs call MKL directly (:meth:`fft_direct`: batching then measured
        0.58-1.03x the sequential throughput on an Intel Xeon core), nor, on the CPU through
        ``torch.fft``, complex-path images above :data:`BATCH_COMPLEX_MAX_PIXELS` (128^2); there
        the starts run one after another unless ``batch_starts=True``.  Any size on a GPU.

        Examples
        --------
        >>> import numpy as np
        >>> from phasekit.core.mkl_fft import use_direct
        >>> I, s = np.ones((256, 256)), np.ones((256, 256), bool)
        >>> with use_direct(False):  # CPU FFTs through torch.fft
        ...     CDIProblem.from_arrays(I, s).prefers_batch(4), CDIProblem.from_arrays(I, s, real=True).prefers_batch(4)
        (False, True)
        """
        if int(n) <= 1 or self.batch_by_image():
            return False
        cpu = self.device.type == "cpu"
        if cpu and self.fft_direct():
            # with MKL called directly the per-call set-up a batch used to share is gone: 8
            # starts ran at 0.58-1.03x the sequential throughput at 128^2 and 256^2 on an Intel
            # Xeon core (benchmarks/cdi_batched_starts.py, 2026-12-06 night)
            return False
        return not (cpu and not self.use_rfft and int(np.prod(self.shape)) > BATCH_COMPLEX_MAX_PIXELS)

    def fft_direct(self) -> bool:
        """Whether this problem's FFTs call MKL directly (:mod:`phasekit.core.mkl_fft`: a CPU
        problem on a torch with MKL, the direct path switched on)."""
        from ..core import mkl_fft

        return self.device.type == "cpu" and mkl_fft.available()

    def batch_memory(self, n: int) -> int:
        """Peak bytes of ``n`` starts run as one batch (the engine's batched path compares it
        with the free memory): ``n`` copies of the working set of one start
        (:func:`phasekit.core.resources.estimate_cdi_reconstruction`)."""
        from ..core.resources import estimate_cdi_reconstruction

        return int(n) * estimate_cdi_reconstruction(self.shape, 1, self.precision)

    def constrain(self, x):
        """``P_C x``: support, and realness / positivity if the problem asks for them."""
        from .kernels import constrain

        return constrain(x, self.support, real=self.real, positive=self.positive)

    def random_start(self, rng) -> torch.Tensor:
        """Random start (work layout): measured amplitudes with uniform random phases in
        ``[0, 2 pi)`` transformed back to real space and constrained (thesis Alg. 1 init; on
        unmeasured pixels the amplitude is the mean measured amplitude)."""
        g = rng
        phase = g.uniform(0, 2 * np.pi, size=self.shape)
        fill = float(self.amp[self.measured].mean())
        a = torch.where(self.measured, self.amp, torch.full_like(self.amp, fill))
        ph = torch.from_numpy(phase).to(self.device, self.rdtype)
        z = torch.polar(a, ph)
        return self.constrain(self.ifft(z)).contiguous()
