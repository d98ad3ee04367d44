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
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.device import complex_dtype, real_dtype, resolve_device, to_numpy
from ..core.errors import ConfigError, InputError
from .operators import check_positions, exit_waves, shift_ramps, split_positions
from .probe import bump, energy_match as _energy_match
from .scan import object_shape_for


@dataclass
class PtychoProblem:
    """A far-field ptychography data set ready to iterate on.  Build it with :meth:`from_arrays`.

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

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, intensities, positions, *, probe=None, obj=None, object_shape=None,
                    mask=None, fft_norm: str = "ortho", probe_energy_match: bool | None = None,
                    device=None, precision: str = "single", clip_negative: bool = False,
                    illumination_threshold: float = 0.01):
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
        if obj is not None:
            o = to_numpy(obj)
            if o.ndim != 2:
                raise InputError(f"obj must be 2-D, got shape {o.shape}")
            if object_shape is not None and tuple(object_shape) != o.shape:
                raise InputError(f"obj shape {o.shape} != object_shape {tuple(object_shape)}")
            object_shape = o.shape
        if object_shape is None:
            object_shape = object_shape_for(pos, (my, mx))
        object_shape = tuple(int(s) for s in object_shape)
        # a sub-pixel shift is circular within the window, so the integer windows must fit
        check_positions(ints, (my, mx), object_shape)
        dev = resolve_device(device)
        cdt, rdt = complex_dtype(precision), real_dtype(precision)
        scale = 1.0 if fft_norm == "ortho" else float(np.sqrt(my * mx))
        amp = np.sqrt(I) / scale * mb
        amp_t = torch.as_tensor(np.fft.ifftshift(amp, axes=(-2, -1)).copy(), dtype=rdt, device=dev)
        meas_w = np.fft.ifftshift(m, axes=(-2, -1)).copy()
        meas_t = torch.as_tensor(meas_w, device=dev)
        if meas_t.ndim == 2:
            meas_t = meas_t[None].expand(n, my, mx)
        if probe is None:
            p = bump((my, mx))
            if probe_energy_match is None:
                probe_energy_match = True
        else:
            p = to_numpy(probe)
            if p.shape != (my, mx):
                raise InputError(f"probe shape {p.shape} != frame shape {(my, mx)}")
            if not np.all(np.isfinite(p)):
                raise InputError("probe contains NaN or Inf")
        if probe_energy_match:
            p = _energy_match(p, I, m)
        p = np.asarray(p) / scale  # probes are given in unitary-FFT units (see probe_of)
        o = np.ones(object_shape, np.complex128) if obj is None else to_numpy(obj)
        if not np.all(np.isfinite(o)):
            raise InputError("obj contains NaN or Inf")
        probe0 = torch.as_tensor(np.asarray(p, np.complex128), device=dev).to(cdt)
        obj0 = torch.as_tensor(np.asarray(o, np.complex128), device=dev).to(cdt)
        ramps = shift_ramps(frac, (my, mx), device=dev, dtype=cdt) if np.any(frac > 0) else None
        prob = cls(amp=amp_t, measured=meas_t, ints=ints, frac=frac, ramps=ramps, probe0=probe0,
                   obj0=obj0, illuminated=torch.zeros(object_shape, dtype=torch.bool, device=dev),
                   shape=object_shape, probe_shape=(my, mx), device=dev, precision=precision,
                   fft_norm=fft_norm, amp_sum=float(amp_t.sum(dtype=torch.float64)))
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

    def pack(self, obj: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
        """Object and probe in one flat tensor (the driver's iterate)."""
        return torch.cat([obj.reshape(-1).to(self.cdtype), probe.reshape(-1).to(self.cdtype)])

    def views(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(O, P)`` views into a packed iterate (in-place updates change ``x``)."""
        no = self.n_object
        return x[:no].view(self.shape), x[no:].view(self.probe_shape)

    # ------------------------------------------------------------------ driver interface
    def random_start(self, rng=None) -> torch.Tensor:
        """The starting object and probe (deterministic: nothing is drawn from ``rng``, so runs
        with the same seed share their random position orders, as the papers require)."""
        return self.pack(self.obj0, self.probe0)

    def from_centred(self, x0) -> torch.Tensor:
        """A starting object (Ny, Nx) (with the problem's starting probe) or a packed iterate."""
        t = torch.as_tensor(np.asarray(to_numpy(x0))).to(device=self.device, dtype=self.cdtype)
        if t.ndim == 1 and t.numel() == self.n_object + self.probe0.numel():
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
        """``{"probe": ...}`` of a packed iterate."""
        return {"probe": self.probe_of(x)}

    def to_centred(self, x: torch.Tensor) -> np.ndarray:
        """The object of a packed iterate (a support-shaped bool passes through)."""
        if x.dtype == torch.bool:
            return x.cpu().numpy().copy()
        return self.views(x)[0].detach().cpu().numpy().copy()

    def probe_of(self, x: torch.Tensor) -> np.ndarray:
        """The probe of a packed iterate, scaled to the unitary model (multiplied by
        ``sqrt(My Mx)`` for ``fft_norm="backward"``, so probes compare across settings)."""
        p = self.views(x)[1].detach().cpu().numpy().copy()
        return p * self.probe_scale

    @property
    def probe_scale(self) -> float:
        return 1.0 if self.fft_norm == "ortho" else float(np.sqrt(np.prod(self.probe_shape)))

    # ------------------------------------------------------------------ model
    def exit_waves(self, obj, probe, idx=None) -> torch.Tensor:
        return exit_waves(obj, probe, self.ints, self.ramps, idx)

    def illumination(self, probe: torch.Tensor) -> torch.Tensor:
        r"""Coverage map :math:`\sum_n\mathcal S^\top_n|\mathcal T_n\mathbf P|^2` (object shape)."""
        out = torch.zeros(self.shape, dtype=real_dtype(self.precision), device=self.device)
        my, mx = self.probe_shape
        for s in range(0, self.n_positions, 256):
            idx = np.arange(s, min(s + 256, self.n_positions))
            ones = torch.ones(self.shape, dtype=self.cdtype, device=self.device)
            w = exit_waves(ones, probe, self.ints, self.ramps, idx)
            a = w.real ** 2 + w.imag ** 2
            for j, i in enumerate(idx):
                iy, ix = self.ints[i]
                out[iy:iy + my, ix:ix + mx] += a[j]
        return out

    def costs_and_rfactor(self, x: torch.Tensor, kappa: float = 0.5, batch: int = 64):
        r"""Per-position costs :math:`e_n=\kappa\|\tilde{\boldsymbol\Psi}_n-\boldsymbol\Psi_n\|^2`
        (:math:`\tilde\Psi` the modulus projection, eq. (3)) and the R_F factor (eq. (23)) of a
        packed iterate; batched over positions (``initializeXi`` of CRISP)."""
        o, p = self.views(x)
        e = torch.empty(self.n_positions, dtype=torch.float64, device=self.device)
        num = torch.zeros((), dtype=torch.float64, device=self.device)
        for s in range(0, self.n_positions, batch):
            idx = np.arange(s, min(s + batch, self.n_positions))
            psi = exit_waves(o, p, self.ints, self.ramps, idx)
            z = torch.fft.fft2(psi, norm="ortho")
            a = torch.sqrt(z.real ** 2 + z.imag ** 2)
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
