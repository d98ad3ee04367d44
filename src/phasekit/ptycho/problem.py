r"""The ptychography problem: measured amplitudes, detector mask, scan positions, initial object
and probe, as tensors on one device; it implements the engine's
:class:`~phasekit.engine.Problem` protocol (``objective``, ``random_start``, ``to_output``,
``from_input``) and :class:`~phasekit.engine.problem.ExtraOutputs` (the probe).

**The iterate.**  The driver passes one tensor between the stages of a chain; for ptychography it
is the object and the probe *packed* into one flat complex tensor
(:meth:`PtychoProblem.pack`; :meth:`PtychoProblem.views` returns ``(O, P)`` views into it).  So a
chain ``ePIE:50,CRISP:250`` hands object and probe on, checkpoints hold both, and ``x.clone()``
copies both.  :meth:`to_centred` returns the object (the driver's ``image``); :meth:`probe_of`
the probe (``ReconResult.probe``).

**FFT normalisation and units.**  phasekit's propagator is the unitary FFT (docs/conventions.md).
The CRISP/PINE group uses MATLAB's unnormalised forward FFT (their public PINE code; the CRISP
paper, sec. 2.1, does not state a normalisation).  The two
models differ only by the scale :math:`\sqrt{M_yM_x}` of the probe; ``fft_norm="backward"``
reproduces the paper's units exactly by dividing the measured amplitudes by
:math:`\sqrt{M_yM_x}` at set-up, so that :math:`|\mathbf P|_{\max}`, the costs
:math:`g_n=\kappa\|\mathbf R_n\|^2`, fixed :math:`\xi` values and the scale-adaptive clipping
have the paper's values.  Scale-invariant settings (ePIE, rPIE, CRISP with automatic
:math:`\xi` and :math:`\nu=(1,1)`) give the same object either way (our derivation, tested).

**Propagation, modes, positions, background.**  ``propagation`` selects the detector model
(:mod:`phasekit.operators.propagation`): ``"farfield"`` (the default; frames centred in
reciprocal space, shifted once to the work layout) or the near-field ``"fresnel"`` /
``"angular"`` (frames are real-space images at the object's pixel, kept as they are).  In near
field the detector frame moves with the beam, not with the integer window, so a position's
fractional part also shifts the predicted frame back (the transfer function times the
conjugate ramp; our derivation, docs/ptychography.md).  ``n_modes`` probe modes
(:mod:`.modes`), per-position shifts (:mod:`.positions`) and a fitted background
(:mod:`.background`) are further segments of the packed iterate, so chains, checkpoints and
``x.clone()`` carry them: ``[object | probe modes | position shifts (N, complex dy + i dx) |
background (My Mx, real part)]``, the last two only when enabled.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.device import complex_dtype, real_dtype, resolve_device, to_numpy
from ..core.errors import ConfigError, InputError
from ..core.fft import fftw, ifftw
from ..operators.propagation import PROPAGATIONS, make_propagator
from .background import check_background, start_background
from .modes import initial_modes
from .operators import check_positions, exit_waves, shift_ramps, split_positions
from .positions import check_overlap, refine_start as _refine_start
from .probe import bump, energy_match as _energy_match
from .scan import object_shape_for

#: most probe modes accepted (PtyLab and PtyPy users rarely exceed 10-20)
MAX_MODES = 64


@dataclass
class PtychoProblem:
    """A ptychography data set ready to iterate on.  Build it with :meth:`from_arrays`.

    Attributes
    ----------
    amp : real tensor (N, My, Mx)
        Measured amplitudes ``sqrt(I)`` (divided by ``sqrt(My Mx)`` for ``fft_norm="backward"``),
        zero frequency at index 0 (work layout), zero on unmeasured pixels.
    measured : bool tensor (N, My, Mx) (a broadcast view of one frame mask when shared)
    ints, frac : ndarray
        Integer and fractional parts of the positions (pixels, (y, x) top-left corners).
    ramps : (ry, rx) or None
        Separable Fourier ramps of the fractional shifts (None when every position is integer).
    probe0, obj0 : complex tensors
        The starting probe and object (centred real-space arrays).
    illuminated : bool tensor (Ny, Nx)
        Object pixels illuminated with at least ``illumination_threshold`` of the maximum of
        :math:`\\sum_n|\\mathcal T_n\\mathbf P^{(0)}|^2` (used for display and metrics).
    """

    amp: torch.Tensor
    measured: torch.Tensor
    ints: np.ndarray
    frac: np.ndarray
    ramps: tuple | None
    probe0: torch.Tensor
    obj0: torch.Tensor
    illuminated: torch.Tensor
    shape: tuple = ()
    probe_shape: tuple = ()
    device: torch.device = torch.device("cpu")
    precision: str = "single"
    fft_norm: str = "ortho"
    amp_sum: float = 0.0
    meta: dict = field(default_factory=dict)
    propagation: str = "farfield"
    wavelength: float | None = None
    pixel_size: float | None = None
    distance: float | None = None
    prop: object = None
    n_modes: int = 1
    refine_from: int | None = None
    fit_background: bool = False
    bg_fixed: torch.Tensor | None = None
    bg0: torch.Tensor | None = None
    pos0: np.ndarray | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, intensities, positions, *, probe=None, obj=None, object_shape=None,
                    mask=None, fft_norm: str = "ortho", probe_energy_match: bool | None = None,
                    device=None, precision: str = "single", clip_negative: bool = False,
                    illumination_threshold: float = 0.01, propagation: str = "farfield",
                    wavelength: float | None = None, pixel_size=None,
                    distance: float | None = None, n_modes: int | None = None,
                    refine_positions=False, background=False):
        """Validate NumPy arrays and build the problem.

        Parameters
        ----------
        intensities : array (N, My, Mx)
            Measured frames (counts), zero frequency at ``M // 2`` (centred).
        positions : array (N, 2)
            Scan positions in object pixels, (y, x) top-left corners of the probe window; may be
            fractional (sub-pixel probe shifts).
        probe : complex array (My, Mx), optional
            Starting probe (centred), in unitary-FFT units (as simulated and as
            ``ReconResult.probe`` returns it, whatever ``fft_norm``).  Default: the PINE raised-cosine bump (support ~ M/2)
            energy-matched to the data.
        obj : complex array (Ny, Nx), optional
            Starting object.  Default: vacuum (ones), as in the PINE/CRISP code.
        object_shape : (int, int), optional
            Default: the smallest that holds every window (or ``obj.shape``).
        mask : bool array (My, Mx) or (N, My, Mx), optional
            True = measured; unmeasured pixels keep the model value in the modulus projection
            and are left out of R_F.
        fft_norm : {"ortho", "backward"}
            Units of the model (see the module docstring).
        probe_energy_match : bool, optional
            Rescale the starting probe so that ``||P||^2`` equals the mean measured frame
            energy (our option, not in the papers: an unscaled start probe can stall CRISP;
            docs/ptychography.md).  Default: True for the default bump, False
            for a given probe.
        clip_negative : bool
            Set negative intensities to 0 (otherwise they are an error); frames written by the
            PINE code mark bad pixels with negative values -- pass a mask instead.
        propagation : {"farfield", "fresnel", "angular"}
            Detector model (:mod:`phasekit.operators.propagation`).  Near field needs
            ``wavelength``, ``pixel_size`` (the object pixel) and ``distance`` (the effective,
            Fresnel-scaled one for a diverging beam), all in metres; its frames are real-space
            images (not shifted) and its default start probe is the back-propagated mean
            measured amplitude (our choice: the bump fits a focused far-field beam, not a
            full-field near-field illumination).
        n_modes : int, optional
            Probe modes (mixed state, :mod:`.modes`); default 1, or the length of a given
            ``(K, My, Mx)`` probe.  Extra modes start as small perturbed copies of the first.
        refine_positions : bool or int
            Refine the scan positions (:mod:`.positions`) from this sweep on (``True``: sweep
            10); needs overlapping views.
        background : bool or array (My, Mx)
            ``True``: fit an additive background (:mod:`.background`); an array: a known
            background (counts, centred like the frames), subtracted in the model.

        Examples
        --------
        >>> import numpy as np
        >>> from phasekit.ptycho import PtychoProblem
        >>> I = np.ones((4, 16, 16)); pos = [[0, 0], [0, 4], [4, 0], [4, 4]]
        >>> PtychoProblem.from_arrays(I, pos, n_modes=2).probe0.shape
        torch.Size([2, 16, 16])
        """
        I = to_numpy(intensities)
        if I.ndim != 3:
            raise InputError(f"intensities must be a stack (N, My, Mx), got shape {I.shape}")
        if not np.issubdtype(I.dtype, np.number) or np.iscomplexobj(I):
            raise InputError(f"intensities must be real numbers, got dtype {I.dtype}")
        if not np.all(np.isfinite(I)):
            raise InputError("intensities contain NaN or Inf")
        n, my, mx = I.shape
        if mask is None:
            m = np.ones((my, mx), bool)
        else:
            m = to_numpy(mask)
            if m.dtype != bool:
                if not np.all(np.isin(m, (0, 1))):
                    raise InputError("mask must be boolean (True = measured)")
                m = m.astype(bool)
            if m.shape not in ((my, mx), (n, my, mx)):
                raise InputError(f"mask shape {m.shape} != frame shape {(my, mx)} (or {I.shape})")
        mb = np.broadcast_to(m, I.shape)
        if np.any(I[mb] < 0):
            if not clip_negative:
                raise InputError("intensities have negative values on measured pixels (pass "
                                 "clip_negative=True, or mark those pixels unmeasured in a mask)")
        I = np.clip(I, 0, None)
        if not np.any(I[mb] > 0):
            raise InputError("every measured intensity is zero")
        pos = to_numpy(positions)
        if pos.shape != (n, 2):
            raise InputError(f"positions shape {pos.shape} != ({n}, 2) for {n} frames")
        ints, frac = split_positions(pos)
        if ints.min() < 0:
            raise InputError(f"positions must be >= 0 (top-left corners in the object), got a "
                             f"minimum of {ints.min(axis=0).tolist()}; shift them first")
        if fft_norm not in ("ortho", "backward"):
            raise ConfigError(f"fft_norm must be 'ortho' or 'backward', got {fft_norm!r}")
        if propagation not in PROPAGATIONS:
            raise ConfigError(f"propagation must be one of {', '.join(PROPAGATIONS)}, got "
                              f"{propagation!r}")
        near = propagation != "farfield"
        if near and fft_norm != "ortho":
            raise ConfigError("fft_norm='backward' applies to far-field propagation only")
        refine_from = _refine_start(refine_positions)
        if refine_from is not None:
            check_overlap(pos, (my, mx))
        if n_modes is not None and (isinstance(n_modes, bool) or not isinstance(n_modes, (int, np.integer))
                                    or not 1 <= int(n_modes) <= MAX_MODES):
            raise ConfigError(f"n_modes must be an integer from 1 to {MAX_MODES}, got {n_modes!r}")
        fit_bg = background is True
        bg_given = None
        if background is not None and background is not False and background is not True:
            bg_given = check_background(to_numpy(background), (my, mx))
        if obj is not None:
            o = to_numpy(obj)
            if o.ndim != 2:
                raise InputError(f"obj must be 2-D, got shape {o.shape}")
            if object_shape is not None and tuple(object_shape) != o.shape:
                raise InputError(f"obj shape {o.shape} != object_shape {tuple(object_shape)}")
            object_shape = o.shape
        if object_shape is None:
            object_shape = object_shape_for(pos, (my, mx))
        shape_ok = np.ndim(object_shape) == 1 and len(object_shape) == 2
        if shape_ok:
            try:
                shape_ok = all(int(s) == s and s >= 1 for s in object_shape)
            except (TypeError, ValueError):
                shape_ok = False
        if not shape_ok:
            raise InputError(f"object_shape must be two positive integers (Ny, Nx), got {object_shape!r}")
        object_shape = tuple(int(s) for s in object_shape)
        # a sub-pixel shift is circular within the window, so the integer windows must fit
        check_positions(ints, (my, mx), object_shape)
        dev = resolve_device(device)
        cdt, rdt = complex_dtype(precision), real_dtype(precision)
        prop = make_propagator(propagation, (my, mx), wavelength=wavelength,
                               pixel_size=pixel_size, distance=distance, dtype=cdt, device=dev)
        scale = 1.0 if fft_norm == "ortho" else float(np.sqrt(my * mx))
        # far field: centred frames -> work layout; near field: real-space images as they are
        to_work = (lambda a: a) if near else (lambda a: np.fft.ifftshift(a, axes=(-2, -1)))
        amp = np.sqrt(I) / scale * mb
        amp_t = torch.as_tensor(to_work(amp).copy(), dtype=rdt, device=dev)
        meas_w = to_work(m).copy()
        meas_t = torch.as_tensor(meas_w, device=dev)
        if meas_t.ndim == 2:
            meas_t = meas_t[None].expand(n, my, mx)
        if probe is None:
            if near:  # the back-propagated mean measured amplitude, flat phase
                a0 = torch.as_tensor(np.sqrt(np.mean(I, axis=0)), dtype=torch.complex128)
                p = make_propagator(propagation, (my, mx), wavelength=wavelength,
                                    pixel_size=pixel_size, distance=distance,
                                    dtype=torch.complex128).adjoint(a0).numpy()
            else:
                p = bump((my, mx))
            if probe_energy_match is None:
                probe_energy_match = True
        else:
            p = to_numpy(probe)
            if p.shape[-2:] != (my, mx) or p.ndim not in (2, 3):
                raise InputError(f"probe shape {p.shape} != frame shape {(my, mx)} (or (K, {my}, "
                                 f"{mx}) for K modes)")
            if not np.all(np.isfinite(p)):
                raise InputError("probe contains NaN or Inf")
            if not np.any(p):
                raise InputError("probe is zero everywhere (it would illuminate nothing)")
            if p.ndim == 3:
                if n_modes is not None and int(n_modes) != p.shape[0]:
                    raise ConfigError(f"n_modes={n_modes} but the probe has {p.shape[0]} modes")
                if not 1 <= p.shape[0] <= MAX_MODES:
                    raise ConfigError(f"a probe of {p.shape[0]} modes: from 1 to {MAX_MODES} accepted")
                n_modes = p.shape[0]
        n_modes = 1 if n_modes is None else int(n_modes)
        if n_modes > 1:
            _check_mode_memory(n_modes, (my, mx), precision)
        if probe_energy_match:  # (a stack of modes: its total power)
            p = _energy_match(p, I, m)
        p = np.asarray(p) / scale  # probes are given in unitary-FFT units (see probe_of)
        if n_modes > 1:
            if p.ndim == 2:
                p = initial_modes(p, n_modes)
        elif p.ndim == 3:
            p = p[0]
        o = np.ones(object_shape, np.complex128) if obj is None else to_numpy(obj)
        if not np.all(np.isfinite(o)):
            raise InputError("obj contains NaN or Inf")
        probe0 = torch.as_tensor(np.asarray(p, np.complex128), device=dev).to(cdt)
        obj0 = torch.as_tensor(np.asarray(o, np.complex128), device=dev).to(cdt)
        ramps = shift_ramps(frac, (my, mx), device=dev, dtype=cdt) if np.any(frac > 0) else None
        bg_fixed = bg0 = None
        if bg_given is not None:
            bg_fixed = torch.as_tensor(to_work(bg_given / scale ** 2).copy(), dtype=rdt, device=dev)
        if fit_bg:
            bg0 = torch.as_tensor(to_work(start_background(I, mb) / scale ** 2).copy(),
                                  dtype=rdt, device=dev)
        prob = cls(amp=amp_t, measured=meas_t, ints=ints, frac=frac, ramps=ramps, probe0=probe0,
                   obj0=obj0, illuminated=torch.zeros(object_shape, dtype=torch.bool, device=dev),
                   shape=object_shape, probe_shape=(my, mx), device=dev, precision=precision,
                   fft_norm=fft_norm, amp_sum=float(amp_t.sum(dtype=torch.float64)),
                   propagation=propagation, wavelength=wavelength, pixel_size=pixel_size,
                   distance=distance, prop=prop, n_modes=n_modes, refine_from=refine_from,
                   fit_background=fit_bg, bg_fixed=bg_fixed, bg0=bg0,
                   pos0=np.asarray(pos, np.float64).copy())
        cov = prob.illumination(probe0)
        prob.illuminated = cov >= illumination_threshold * cov.max()
        return prob

    # ------------------------------------------------------------------ sizes and packing
    @property
    def n_positions(self) -> int:
        return int(self.amp.shape[0])

    @property
    def cdtype(self) -> torch.dtype:
        return self.probe0.dtype

    @property
    def n_object(self) -> int:
        return int(self.shape[0] * self.shape[1])

    @property
    def n_probe(self) -> int:
        """Elements of the probe segment (all modes)."""
        return int(self.probe0.numel())

    @property
    def parallel_elements(self) -> int:
        """Elements of one per-position operation (the frame's FFTs over every probe mode): the
        driver runs on one CPU thread below ``phasekit.core.threads.PARALLEL_MIN_ELEMENTS``
        (128^2 frames: 2.2x faster than two threads on an Intel Xeon)."""
        return self.n_probe

    @property
    def refine(self) -> bool:
        """Positions are refined (the iterate has a shift segment)."""
        return self.refine_from is not None

    @property
    def n_packed(self) -> int:
        """Length of the packed iterate."""
        n = self.n_object + self.n_probe
        if self.refine:
            n += self.n_positions
        if self.fit_background:
            n += int(np.prod(self.probe_shape))
        return n

    @property
    def fused_compatible(self) -> bool:
        """The fused single-mode kernels apply (far or near field; no modes, background or
        position refinement)."""
        return (self.n_modes == 1 and not self.refine and not self.fit_background
                and self.bg_fixed is None)

    def pack(self, obj: torch.Tensor, probe: torch.Tensor, shifts: torch.Tensor | None = None,
             background: torch.Tensor | None = None) -> torch.Tensor:
        """Object, probe (modes) and, where enabled, position shifts (default 0) and background
        (default the start) in one flat tensor (the driver's iterate)."""
        parts = [obj.reshape(-1).to(self.cdtype), probe.reshape(-1).to(self.cdtype)]
        if self.refine:
            parts.append(torch.zeros(self.n_positions, dtype=self.cdtype, device=self.device)
                         if shifts is None else shifts.reshape(-1).to(self.cdtype))
        if self.fit_background:
            b = self.bg0 if background is None else background
            parts.append(b.reshape(-1).to(self.cdtype))
        return torch.cat(parts)

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(O, P)`` views into a packed iterate (in-place updates change ``x``); ``P`` is
        (My, Mx) for one mode, (K, My, Mx) for K."""
        no = self.n_object
        return x[:no].view(self.shape), x[no:no + self.n_probe].view(self.probe0.shape)

    def modes_view(self, x: torch.Tensor) -> torch.Tensor:
        """The probe modes of a packed iterate as a (K, My, Mx) view."""
        no = self.n_object
        return x[no:no + self.n_probe].view(self.n_modes, *self.probe_shape)

    def shifts_view(self, x: torch.Tensor) -> torch.Tensor | None:
        """The position shifts (N,) as complex ``dy + i dx`` (pixels), a view; None when off."""
        if not self.refine:
            return None
        s = self.n_object + self.n_probe
        return x[s:s + self.n_positions]

    def background_view(self, x: torch.Tensor) -> torch.Tensor | None:
        """The fitted background (work layout, complex view, the real part is used); None
        when not fitted."""
        if not self.fit_background:
            return None
        s = self.n_object + self.n_probe + (self.n_positions if self.refine else 0)
        return x[s:s + int(np.prod(self.probe_shape))].view(self.probe_shape)

    def background_of(self, x: torch.Tensor) -> torch.Tensor | None:
        """The background the model adds (real, work layout, data units): fitted, given or None."""
        b = self.background_view(x)
        return b.real if b is not None else self.bg_fixed

    def positions_of(self, x: torch.Tensor) -> np.ndarray:
        """Scan positions (N, 2) of a packed iterate: the given ones plus the refined shifts."""
        d = self.shifts_view(x)
        if d is None:
            return self.pos0.copy()
        dd = d.detach().cpu().numpy()
        return self.pos0 + np.stack([dd.real, dd.imag], axis=1).astype(np.float64)

    def geometry_of(self, x: torch.Tensor):
        """``(ints, ramps)`` of the current positions of a packed iterate."""
        if not self.refine:
            return self.ints, self.ramps
        ints, frac = split_positions(self.positions_of(x))
        ramps = shift_ramps(frac, self.probe_shape, device=self.device, dtype=self.cdtype) \
            if np.any(frac > 0) else None
        return ints, ramps

    def clamp_position(self, r):
        """Keep a (y, x) position inside the object (the window must fit)."""
        ny, nx = self.shape
        my, mx = self.probe_shape
        return min(max(r[0], 0.0), float(ny - my)), min(max(r[1], 0.0), float(nx - mx))

    # ------------------------------------------------------------------ driver interface
    def random_start(self, rng=None) -> torch.Tensor:
        """The starting object and probe (deterministic: nothing is drawn from ``rng``, so runs
        with the same seed share their random position orders, as the papers require)."""
        return self.pack(self.obj0, self.probe0)

    def from_centred(self, x0) -> torch.Tensor:
        """A starting object (Ny, Nx) (with the problem's starting probe) or a packed iterate."""
        t = torch.as_tensor(np.asarray(to_numpy(x0))).to(device=self.device, dtype=self.cdtype)
        if t.ndim == 1 and t.numel() == self.n_packed:
            return t.clone()
        if tuple(t.shape) != tuple(self.shape):
            raise InputError(f"starting object shape {tuple(t.shape)} != object shape {self.shape}")
        return self.pack(t, self.probe0)

    #: the engine's Problem protocol (phasekit.engine.problem)
    modality = "ptycho"
    objective_name = "R_F"

    def objective(self, x: torch.Tensor) -> float:
        """The ptychographic R-factor of a packed iterate."""
        return self.rfactor(x)

    def to_output(self, x: torch.Tensor) -> np.ndarray:
        """The object of a packed iterate (centred)."""
        return self.to_centred(x)

    def from_input(self, x0) -> torch.Tensor:
        """A start object (centred) packed with the starting probe."""
        return self.from_centred(x0)

    def extra_outputs(self, x: torch.Tensor) -> dict:
        """``{"probe": ...}`` of a packed iterate, plus ``"positions"`` (N, 2) when refined and
        ``"background"`` (My, Mx, counts, centred like the frames) when fitted."""
        out = {"probe": self.probe_of(x)}
        if self.refine:
            out["positions"] = self.positions_of(x)
        if self.fit_background:
            out["background"] = self.background_out(x)
        return out

    def background_out(self, x: torch.Tensor) -> np.ndarray | None:
        """The model's background in counts, centred like the frames (None without one)."""
        b = self.background_of(x)
        if b is None:
            return None
        a = b.detach().cpu().numpy().astype(np.float64) * self.probe_scale ** 2
        return a if self.propagation != "farfield" else np.fft.fftshift(a).copy()

    def to_centred(self, x: torch.Tensor) -> np.ndarray:
        """The object of a packed iterate (a support-shaped bool passes through)."""
        if x.dtype == torch.bool:
            return x.cpu().numpy().copy()
        return self.views(x)[0].detach().cpu().numpy().copy()

    def probe_of(self, x: torch.Tensor) -> np.ndarray:
        """The probe of a packed iterate, scaled to the unitary model (multiplied by
        ``sqrt(My Mx)`` for ``fft_norm="backward"``, so probes compare across settings);
        (K, My, Mx) for K > 1 modes."""
        p = self.views(x)[1].detach().cpu().numpy().copy()
        return p * self.probe_scale

    @property
    def probe_scale(self) -> float:
        return 1.0 if self.fft_norm == "ortho" else float(np.sqrt(np.prod(self.probe_shape)))

    def settings(self) -> dict:
        """The model settings recorded in a result's ``config``."""
        return {"propagation": self.propagation, "wavelength": self.wavelength,
                "pixel_size": self.pixel_size, "distance": self.distance,
                "n_modes": self.n_modes,
                "refine_positions": self.refine_from if self.refine else False,
                "background": "fitted" if self.fit_background else
                ("given" if self.bg_fixed is not None else False)}

    # ------------------------------------------------------------------ model
    def to_detector(self, psi: torch.Tensor, ramp: torch.Tensor | None = None) -> torch.Tensor:
        """Detector waves of exit waves (..., My, Mx) (work layout in far field).  In near field
        ``ramp`` (the 2-D Fourier ramp of the position's fractional part, broadcastable) moves
        the predicted frame back to the beam's frame (module docstring)."""
        if self.propagation == "farfield":
            return fftw(psi, 2)
        h = self.prop.transfer if ramp is None else self.prop.transfer * ramp.conj()
        return ifftw(fftw(psi, 2, norm="backward") * h, 2, norm="backward")

    def from_detector(self, z: torch.Tensor, ramp: torch.Tensor | None = None) -> torch.Tensor:
        """Adjoint of :meth:`to_detector`."""
        if self.propagation == "farfield":
            return ifftw(z, 2)
        h = self.prop.transfer.conj() if ramp is None else self.prop.transfer.conj() * ramp
        return ifftw(fftw(z, 2, norm="backward") * h, 2, norm="backward")

    def exit_waves(self, obj, probe, idx=None) -> torch.Tensor:
        return exit_waves(obj, probe, self.ints, self.ramps, idx)

    def illumination(self, probe: torch.Tensor) -> torch.Tensor:
        r"""Coverage map :math:`\sum_n\mathcal S^\top_n\sum_k|\mathcal T_n\mathbf P_k|^2`
        (object shape)."""
        out = torch.zeros(self.shape, dtype=real_dtype(self.precision), device=self.device)
        my, mx = self.probe_shape
        for s in range(0, self.n_positions, 256):
            idx = np.arange(s, min(s + 256, self.n_positions))
            ones = torch.ones(self.shape, dtype=self.cdtype, device=self.device)
            w = exit_waves(ones, probe, self.ints, self.ramps, idx)
            a = w.real ** 2 + w.imag ** 2
            if a.ndim == 4:
                a = a.sum(1)
            for j, i in enumerate(idx):
                iy, ix = self.ints[i]
                out[iy:iy + my, ix:ix + mx] += a[j]
        return out

    def model_amplitudes(self, x: torch.Tensor, idx) -> torch.Tensor:
        r""":math:`\sqrt{\sum_k|\Psi_{n,k}|^2+B}` of the positions ``idx`` (n, My, Mx), work layout."""
        o, p = self.views(x)
        ints, ramps = self.geometry_of(x)
        psi = exit_waves(o, p, ints, ramps, idx)
        if self.propagation == "farfield":
            z = fftw(psi, 2)
        else:
            r = None
            if ramps is not None:
                it = torch.as_tensor(np.asarray(idx), device=self.device)
                r = ramps[0][it][:, :, None] * ramps[1][it][:, None, :]
                if psi.ndim == 4:
                    r = r[:, None]
            z = self.to_detector(psi, r)
        s = z.real ** 2 + z.imag ** 2
        if s.ndim == 4:
            s = s.sum(1)
        b = self.background_of(x)
        if b is not None:
            s = s + b
        return torch.sqrt(s)

    def costs_and_rfactor(self, x: torch.Tensor, kappa: float = 0.5, batch: int = 64):
        r"""Per-position costs :math:`e_n=\kappa\|\tilde{\boldsymbol\Psi}_n-\boldsymbol\Psi_n\|^2`
        (:math:`\tilde\Psi` the modulus projection, eq. (3)) and the R_F factor (eq. (23)) of a
        packed iterate; batched over positions (``initializeXi`` of CRISP)."""
        e = torch.empty(self.n_positions, dtype=torch.float64, device=self.device)
        num = torch.zeros((), dtype=torch.float64, device=self.device)
        for s in range(0, self.n_positions, batch):
            idx = np.arange(s, min(s + batch, self.n_positions))
            a = self.model_amplitudes(x, idx)
            b = self.amp[s:s + len(idx)]
            m = self.measured[s:s + len(idx)]
            num = num + ((a - b).abs() * m).sum(dtype=torch.float64)
            # ||Psi~ - Psi||^2 = ||F Psi~ - F Psi||^2 = sum_measured (b - |z|)^2 (unitary)
            e[s:s + len(idx)] = kappa * (((a - b) ** 2) * m).sum(dim=(-2, -1), dtype=torch.float64)
        return e, float(num) / max(self.amp_sum, 1e-300)

    def rfactor(self, x: torch.Tensor) -> float:
        r"""R_F of a packed iterate, :math:`\sum_n\sum|\sqrt{I_n}-|\mathcal F\Psi_n||/\sum_n\sum
        \sqrt{I_n}` over measured pixels (Miao et al. 2006; CRISP eq. (23), sec. 4)."""
        return self.costs_and_rfactor(x)[1]


def _check_mode_memory(n_modes: int, frame, precision: str) -> None:
    """Memory guard for K probe modes: the batched model of 64 positions holds K exit waves and
    detector waves per position (complex), plus the mode stack."""
    from ..core.resources import check_memory

    cb = 8 if precision == "single" else 16
    need = (64 * 3 + 4) * int(n_modes) * int(np.prod(frame)) * cb
    check_memory(need, f"{n_modes} probe modes of {frame[0]}x{frame[1]}")
