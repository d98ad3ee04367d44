r"""ePIE, rPIE, mPIE and CRISP on the shared driver (one driver iteration = one full sweep over
the scan positions in a fresh random order drawn from the run's generator).

Sources: the CRISP paper (J. Appl. Cryst. 57 (2024), nb5380, secs. 2-3), Maiden & Rodenburg 2009
(ePIE), Maiden, Johnson & Li, Optica 4, 736 (2017) (rPIE and mPIE).  Equation numbers below are
the CRISP paper's; the displayed equations are not legible in our copy, so the numbers follow the
text's references and the formulas are reconstructed from the text of the cited section
(docs/ptychography.md, "Sources").

Model extensions (docs/ptychography.md): K probe modes (incoherent sum, updates summed over
modes, orthogonalised after each sweep), near-field propagation (propagate -> modulus projection
-> back-propagate), a given or fitted detector background and position refinement.  On the CPU
two fused numba sweeps run them: :meth:`PIEBase._sweep_fused` (one mode, no background or
refinement, far or near field) and :meth:`PIEBase._sweep_fused_modes` (everything else); the
plain-torch sweep (:meth:`PIEBase._sweep_reference`) runs elsewhere and is the reference both
are tested against (same positions in the same order, equal to float rounding).  Extra
history: ``mode_power_0``,
``background_mean``, ``position_shift_rms`` / ``position_step_rms`` when enabled.

Per-iteration history (all measured *during* the sweep on the pre-update exit waves, as the
group's public PINE code does, github.com/mada-ko/PINE; no extra FFT):

* ``R_F`` -- eq. (23);
* ``cost_mean``, ``cost_median`` -- of :math:`e_n=\kappa\|\tilde\Psi_n-\Psi_n\|^2`;
* ``xi`` (CRISP) -- the threshold used in this sweep;
* ``step_o_mean/min/median/max`` and ``step_p_...`` -- the effective ePIE-equivalent step
  :math:`\alpha_{\rm eff}` per position (ePIE: the constant :math:`\alpha`; CRISP:
  :math:`\lambda G_\nu|\mathbf Q|^2_{\max}`, eq. (19) compared with eq. (6); rPIE/mPIE: the step
  at the brightest pixel, i.e. :math:`\beta`); ``frac_no_update`` (CRISP) -- share of positions with
  :math:`e_n\le\xi`.
"""
from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from ..core.fft import fftw, ifftw, prepare
from ..engine import Algorithm, StrictConfig
from . import kernels as K
from .modes import orthogonalize
from .operators import integer_frequencies, shift_probe, shift_ramps, split_positions
from .positions import shift_estimate, shift_from_sums


class PIEConfig(StrictConfig):
    probe_start: int = Field(0, ge=0, description="first iteration (0-based) that updates the probe")
    kappa: float = Field(0.5, gt=0.0, description="cost factor of e_n = kappa ||R_n||^2 (diagnostics)")


class PIEBase(Algorithm):
    """The sweep shared by the PIE family; subclasses set the per-position step sizes."""

    name = "pie"
    keep_best_default = False
    state_names = ("x",)

    Config = PIEConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self.probe_start = int(self.cfg.probe_start)
        self.kappa = float(self.cfg.kappa)
        self.fused = None  # None: automatic (numba on CPU)
        self._last: dict[str, float] = {}

    # ------------------------------------------------------------------ state
    def bind_rng(self, g) -> None:
        """The driver hands over the start's generator: the per-sweep random orders."""
        self.rng = g

    def initialize(self, x0):
        self.x = x0.to(self.problem.cdtype).clone().contiguous()
        self._bind()

    def _bind(self):
        self.O, self.P = self.problem.views(self.x)

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.x = self.x.contiguous()
        self._bind()

    def estimate(self):
        return self.x

    def iterate(self):
        return self.x

    def final(self):
        return self.x

    def metrics(self):
        return dict(self._last) if self._last else {"R_F": self.problem.rfactor(self.x)}

    # ------------------------------------------------------------------ per-position rule
    def begin_sweep(self, k: int) -> None:
        """Hook before a sweep."""

    def steps(self, n, e, pm, om, norms, fused):
        """Return ``(s_o, s_p, g_o, g_p)`` for position ``n`` (see :mod:`.kernels`); ``norms()``
        gives :math:`(\\|\\bar P_n\\odot R_n\\|^2, \\|\\bar O_n\\odot R_n\\|^2)` on demand."""
        raise NotImplementedError

    def after_position(self, count: int) -> bool:
        """Hook after each position (``count`` positions done in this sweep); returns True when
        it changed the object or probe (the fused sweep then forms the next exit wave again)."""
        return False

    def touches_state(self, count: int) -> bool:
        """Whether :meth:`after_position` will read or change the object or probe after
        ``count`` positions (the fused K-mode sweep then writes its carried probe back first)."""
        return False

    def end_sweep(self, k: int, e: np.ndarray, stats: dict) -> None:
        """Hook after a sweep (CRISP's xi update)."""

    # ------------------------------------------------------------------ the sweep
    def _order(self) -> np.ndarray:
        g = getattr(self, "rng", None)
        if g is None:  # constructed outside the driver
            g = self.rng = np.random.default_rng(0)
        return g.permutation(self.problem.n_positions)

    def step(self, k):
        pr = self.problem
        fused = K.fused_ok(self.x) if self.fused is None else bool(self.fused)
        self.begin_sweep(k)
        order = self._order()
        do_probe = k >= self.probe_start
        self._refining = pr.refine and k >= pr.refine_from
        n_pos = len(order)
        e = np.empty(n_pos)
        so_all = np.empty(n_pos)
        sp_all = np.empty(n_pos)
        sweep = (self._sweep_fused if pr.fused_compatible else self._sweep_fused_modes) \
            if fused else self._sweep_reference
        self._fused_now = fused
        num_total = sweep(order, do_probe, e, so_all, sp_all)
        stats = {"R_F": num_total / max(pr.amp_sum, 1e-300),
                 "cost_mean": float(np.mean(e)), "cost_median": float(np.median(e))}
        stats.update(self._step_stats(so_all, sp_all, do_probe))
        self._end_sweep_model(do_probe, stats)
        self.end_sweep(k, e, stats)
        self._last = stats

    def _end_sweep_model(self, do_probe: bool, stats: dict) -> None:
        """After a sweep: orthogonalise the probe modes, update the background, recentre the
        position shifts; their diagnostics go into the history (every sweep, so the history's
        keys do not change during a run)."""
        pr = self.problem
        if pr.n_modes > 1:
            P = pr.modes_view(self.x)
            if do_probe:
                orthogonalize(P)
            pw = (P.real ** 2 + P.imag ** 2).sum(dim=(-2, -1), dtype=torch.float64)
            stats["mode_power_0"] = float(pw[0] / pw.sum().clamp_min(1e-300))
        if pr.fit_background:
            bv = pr.background_view(self.x)
            acc, cnt = self._bg_acc
            upd = torch.where(cnt > 0, acc / cnt.clamp_min(1), torch.ones_like(acc))
            bv.real.mul_(upd.to(bv.real.dtype))
            stats["background_mean"] = float(bv.real.mean(dtype=torch.float64)) * pr.probe_scale ** 2
        if pr.refine:
            d = pr.shifts_view(self.x)
            moved = getattr(self, "_moved", None)
            if self._refining:
                d.sub_(d.mean())  # a common shift of all positions is a shift of the object
            stats["position_step_rms"] = float(moved) if moved is not None else 0.0
            dd = d.detach()
            stats["position_shift_rms"] = float(torch.sqrt((dd.real ** 2 + dd.imag ** 2)
                                                           .mean(dtype=torch.float64)))

    def _position(self, n, dpos):
        """Integer window, 2-D ramp (or None) and 1-D ramps of position ``n`` now."""
        pr = self.problem
        if dpos is None:
            iy, ix = int(pr.ints[n, 0]), int(pr.ints[n, 1])
            if pr.ramps is None:
                return iy, ix, None, None
            ry, rx = pr.ramps[0][n], pr.ramps[1][n]
            return iy, ix, (ry, rx), ry[:, None] * rx[None, :]
        d = complex(dpos[n])
        r = pr.clamp_position((pr.pos0[n, 0] + d.real, pr.pos0[n, 1] + d.imag))
        ints, frac = split_positions(np.array([r]))
        iy, ix = int(ints[0, 0]), int(ints[0, 1])
        if not np.any(frac > 0):
            return iy, ix, None, None
        ry, rx = shift_ramps(frac, pr.probe_shape, device=pr.device, dtype=pr.cdtype)
        return iy, ix, (ry[0], rx[0]), ry[0][:, None] * rx[0][None, :]

    def _position_fast(self, dpos):
        """``n -> (iy, ix, (ry, rx) or None)``: :meth:`_position` without its per-call NumPy
        and torch set-up (the split of :func:`.operators.split_positions` on two floats, the
        ramps of :func:`.operators.shift_ramps` from frequency grids made once)."""
        pr = self.problem
        ints_l = pr.ints.tolist()
        ramps = pr.ramps
        if dpos is None:
            if ramps is None:
                return lambda n: (*ints_l[n], None)
            return lambda n: (*ints_l[n], (ramps[0][n], ramps[1][n]))
        my, mx = pr.probe_shape
        cy = -2j * np.pi * integer_frequencies(my).numpy() / my
        cx = -2j * np.pi * integer_frequencies(mx).numpy() / mx
        pos0 = pr.pos0.tolist()
        cdt = torch.empty(0, dtype=pr.cdtype).numpy().dtype
        dnp = dpos.numpy()  # CPU (the fused path): a NumPy view of the shifts

        def split(v):
            i = math.floor(v)
            f = v - i
            if f > 1 - 1e-9:
                i, f = i + 1, 0.0
            elif f < 1e-9:
                f = 0.0
            return int(i), f

        def where(n):
            d = complex(dnp[n])
            y, x = pr.clamp_position((pos0[n][0] + d.real, pos0[n][1] + d.imag))
            iy, fy = split(y)
            ix, fx = split(x)
            if fy == 0.0 and fx == 0.0:
                return iy, ix, None
            return iy, ix, (torch.from_numpy(np.exp(cy * fy).astype(cdt)),
                            torch.from_numpy(np.exp(cx * fx).astype(cdt)))
        return where

    def _sweep_reference(self, order, do_probe, e, so_all, sp_all) -> float:
        """Plain torch (any device): the reference the fused path is tested against, and the
        path of every model the fused kernels do not cover: K probe modes, near-field
        propagation, a background (given or fitted) and position refinement."""
        pr = self.problem
        my, mx = pr.probe_shape
        O = self.O
        P = pr.modes_view(self.x)  # (K, My, Mx)
        dpos = pr.shifts_view(self.x)
        bview = pr.background_view(self.x)
        bg = pr.background_of(self.x)
        if bview is not None:
            bg = bg.clone()  # the sweep uses the background of its start; updated after it
            acc = torch.zeros_like(bg)
            cnt = torch.zeros_like(bg)
        refining = self._refining if pr.refine else False
        moves = []
        es, sos, sps = [], [], []
        num_total = torch.zeros((), dtype=torch.float64, device=pr.device)
        for c, n in enumerate(order):
            iy, ix, r1, ramp = self._position(n, dpos)
            On = O[iy:iy + my, ix:ix + mx]
            Pn = shift_probe(P, *r1) if r1 is not None else P
            psi, pm, om = K.exit_wave_modes(Pn, On)
            z = pr.to_detector(psi, ramp)
            num, cost, s = K.fourier_modes(z, pr.amp[n], pr.measured[n], bg)
            if bview is not None:  # EM background: mean of B I / (S + B) over the frames
                m = pr.measured[n]
                acc += torch.where(m & (s > 0), pr.amp[n] ** 2 / torch.where(s > 0, s, 1.0), 0.0)
                cnt += m
            psit = pr.from_detector(z, ramp)
            en = self.kappa * cost
            so, sp, go, gp = self.steps(n, en, pm, om,
                                        lambda: K.grad_norms_modes(Pn, On, psit, psi), False)
            if refining:
                dy, dx = shift_estimate(Pn, On, psit - psi)
            K.update_modes(Pn, On, psi, psit, so, sp, go, gp, pm, om, do_probe)
            if r1 is not None and do_probe:
                P.copy_(shift_probe(Pn, *r1, inverse=True))
            if refining:
                r = pr.clamp_position((pr.pos0[n, 0] + dpos[n].real.item() + dy,
                                       pr.pos0[n, 1] + dpos[n].imag.item() + dx))
                new = complex(r[0] - pr.pos0[n, 0], r[1] - pr.pos0[n, 1])
                moves.append(abs(new - complex(dpos[n])) ** 2)
                dpos[n] = new
            num_total = num_total + num
            es.append(en)
            sos.append(torch.as_tensor(so, dtype=torch.float64, device=pr.device))
            sps.append(torch.as_tensor(sp, dtype=torch.float64, device=pr.device))
            self.after_position(c + 1)
        if bview is not None:
            self._bg_acc = (acc, cnt)
        self._moved = math.sqrt(float(np.mean(moves))) if moves else None
        e[order] = torch.stack(es).cpu().numpy()
        so_all[:] = torch.stack(sos).cpu().numpy()
        sp_all[:] = torch.stack(sps).cpu().numpy()
        return float(num_total)

    def _sweep_fused(self, order, do_probe, e, so_all, sp_all) -> float:
        """CPU, one mode: numba kernels on NumPy views of the same memory, torch FFTs into fixed
        buffers.  Per position: two FFTs and two kernel calls -- ``fourier_diff`` (the modulus
        projection minus its input, whose inverse transform is :math:`\\mathbf R_n` itself) and
        ``update_exit`` (this position's update and the next window's exit wave in one pass).
        Same positions in the same order as :meth:`_sweep_reference`; float32 rounding differs
        (:math:`\\mathcal F^{-1}(z'-z)` instead of :math:`\\mathcal F^{-1}z'-\\Psi`, equal in exact
        arithmetic)."""
        pr = self.problem
        exit_wave = K.fused_kernels()[0]
        S = K.sweep_kernels()
        fourier_diff, grad_norms_r, update_exit = S.fourier_diff, S.grad_norms_r, S.update_exit
        my, mx = pr.probe_shape
        O, P = self.O, self.P
        On_np, P_np = O.numpy(), P.numpy()
        amp = pr.amp.numpy()
        meas = pr.measured.numpy()
        ramps = pr.ramps
        psi = torch.empty((my, mx), dtype=pr.cdtype)
        psi_np = psi.numpy()
        Pn = P
        Pn_np = P_np
        kappa = self.kappa
        num_total = 0.0
        # FFTs through core.fft (MKL with a kept descriptor on the CPU): the far-field transform
        # goes into one buffer and its inverse stays there (no allocation per position)
        zbuf = torch.empty((my, mx), dtype=pr.cdtype)
        zbuf_np = zbuf.numpy()
        fwd, inv = prepare(psi, zbuf, 2), prepare(zbuf, zbuf, 2, inverse=True)
        bufs = K.max_buffers(mx, P_np.real.dtype)
        ints_l = pr.ints.tolist()  # Python ints: no NumPy scalar indexing per position
        order_l = order.tolist()
        n_pos = len(order_l)
        near = pr.propagation != "farfield"
        if near:  # transfer-function propagation around the same kernels (single mode)
            H = pr.prop.transfer
        # with integer positions the probe the kernels update is P itself, so the next exit wave
        # is formed in the update's pass; a sub-pixel probe shift is an FFT pair on P between them
        chain = ramps is None
        after = self.after_position
        steps = self.steps
        pm = om = 0.0
        if chain and n_pos:
            pm, om = exit_wave(psi_np, P_np, On_np, *ints_l[order_l[0]], *bufs)
        # sub-pixel windows: the updated shifted probe is carried to the next position and moved
        # by the relative ramp (one FFT pair instead of shift back + shift: the same in exact
        # arithmetic); P is written back before a hook that reads it and at the end
        carried = [None, None]

        def settle():
            if carried[0] is not None:
                ifftw(fftw(carried[0], 2).mul_(carried[1].conj()), 2, out=P)
                carried[0] = carried[1] = None

        for c, n in enumerate(order_l):
            iy, ix = ints_l[n]
            if not chain:
                ramp = ramps[0][n][:, None] * ramps[1][n][None, :]
                if carried[0] is None:  # = shift_probe(P, ...)
                    Pn = ifftw(fftw(P, 2).mul_(ramp), 2)
                else:
                    Pn = ifftw(fftw(carried[0], 2).mul_(ramp * carried[1].conj()), 2)
                Pn_np = Pn.numpy()
                pm, om = exit_wave(psi_np, Pn_np, On_np, iy, ix, *bufs)
            if near:
                h = H if ramps is None else H * (ramps[0][n][:, None] * ramps[1][n][None, :]).conj()
                z = ifftw(fftw(psi, 2, norm="backward").mul_(h), 2, norm="backward")
                z_np = z.numpy()
            else:
                z, z_np = fwd(), zbuf_np
            num, cost = fourier_diff(z_np, amp[n], meas[n])
            if near:
                R = ifftw(fftw(z, 2, norm="backward").mul_(h.conj()), 2, norm="backward")
                R_np = R.numpy()
            else:  # in place: z is not needed after its inverse
                R, R_np = inv(), zbuf_np
            en = kappa * cost
            so, sp, go, gp = steps(
                n, en, pm, om, lambda: grad_norms_r(Pn_np, On_np, R_np, iy, ix), True)
            nxt = chain and c + 1 < n_pos
            iy1, ix1 = ints_l[order_l[c + 1]] if nxt else (iy, ix)
            pm, om = update_exit(Pn_np, On_np, R_np, iy, ix, so, sp, go, gp, pm, om, do_probe,
                                 psi_np, iy1, ix1, nxt, bufs)
            if not chain and do_probe:
                carried[0], carried[1] = Pn, ramp
            num_total += num
            e[n] = en
            so_all[c] = so
            sp_all[c] = sp
            if not chain and self.touches_state(c + 1):
                settle()
            if after(c + 1) and nxt:  # the hook changed O or P: form the next exit wave again
                pm, om = exit_wave(psi_np, P_np, On_np, iy1, ix1, *bufs)
        settle()
        return num_total

    def _sweep_fused_modes(self, order, do_probe, e, so_all, sp_all) -> float:
        """CPU, the models :meth:`_sweep_fused` does not cover (K probe modes, a given or fitted
        background, position refinement; far or near field): the arithmetic of
        :meth:`_sweep_reference` in numba kernels over the K modes (exit waves, incoherent-sum
        projection with its sums and EM background terms, CRISP's norms, the position
        normal equations, the update), one batched FFT pair over the modes per position."""
        pr = self.problem
        M = K.modes_kernels()
        my, mx = pr.probe_shape
        nk = pr.n_modes
        O = self.O
        On_np = O.numpy()
        P = pr.modes_view(self.x)  # (K, My, Mx) view of x
        P_np = P.numpy()
        amp = pr.amp.numpy()
        meas = pr.measured.numpy()
        rt = P_np.real.dtype
        dpos = pr.shifts_view(self.x)
        bview = pr.background_view(self.x)
        bg = pr.background_of(self.x)
        has_bg = bg is not None
        bg_np = np.ascontiguousarray(bg.numpy(), dtype=rt) if has_bg else np.zeros((1, 1), rt)
        fit = bview is not None
        acc = np.zeros((my, mx), rt) if fit else np.zeros((1, 1), rt)
        cnt = np.zeros((my, mx), rt) if fit else np.zeros((1, 1), rt)
        refining = self._refining if pr.refine else False
        dnp = dpos.numpy() if dpos is not None else None
        pos0 = pr.pos0.tolist()
        moves = []
        row = [np.zeros(mx, rt) for _ in range(3)]
        mbuf = (np.zeros(mx, rt), np.zeros(mx, rt))
        sbuf = [np.zeros(mx, rt) for _ in range(4)]
        psi = torch.empty((nk, my, mx), dtype=pr.cdtype)
        psi_np = psi.numpy()
        far = pr.propagation == "farfield"
        zbuf = torch.empty((nk, my, mx), dtype=pr.cdtype)  # far field: transform and inverse
        zbuf_np = zbuf.numpy()
        fwd, inv = prepare(psi, zbuf, 2), prepare(zbuf, zbuf, 2, inverse=True)
        kappa = self.kappa
        num_total = 0.0
        where = self._position_fast(dpos)
        # Sub-pixel windows: the reference shifts the probe, updates it and shifts it back (two
        # FFT pairs).  Here the updated shifted probe is carried to the next position and moved
        # by the relative ramp (one pair; the same in exact arithmetic, the ramps being unitary);
        # P is written back before a hook that reads it, at an integer window and at the end.
        carried = [None, None]  # (T_r P, r) or (None, None): P itself is current

        def settle():
            cur, cur_ramp = carried
            if cur is not None:
                ifftw(fftw(cur, 2).mul_(cur_ramp.conj()), 2, out=P)
                carried[0] = carried[1] = None

        for c, n in enumerate(order.tolist()):
            iy, ix, r1 = where(n)
            ramp = None
            if r1 is not None:
                ramp = r1[0][:, None] * r1[1][None, :]
                cur, cur_ramp = carried
                if cur is None:  # = shift_probe(P, *r1)
                    Pn = ifftw(fftw(P, 2).mul_(ramp), 2)
                else:
                    Pn = ifftw(fftw(cur, 2).mul_(ramp * cur_ramp.conj()), 2)
                Pn_np = Pn.numpy()
            else:
                settle()
                Pn, Pn_np = P, P_np
            pm, om = M.exit(psi_np, Pn_np, On_np, iy, ix, *mbuf)
            if far:
                z, z_np = fwd(), zbuf_np
            else:
                z = pr.to_detector(psi, ramp).contiguous()
                z_np = z.numpy()
            num, cost = M.fourier(z_np, amp[n], meas[n], bg_np, has_bg, acc, cnt, fit, *row[:2])
            if far:  # in place: z is not needed after its inverse
                R, R_np = inv(), zbuf_np
            else:
                R = pr.from_detector(z, ramp).contiguous()
                R_np = R.numpy()
            en = kappa * cost
            so, sp, go, gp = self.steps(
                n, en, pm, om, lambda: M.grad_norms(Pn_np, On_np, R_np, iy, ix, *row[:2]), True)
            if refining:
                dy, dx = shift_from_sums(*M.shift_sums(Pn_np, On_np, R_np, iy, ix, *sbuf))
            M.update(Pn_np, On_np, R_np, iy, ix, so, sp, go, gp, pm, om, do_probe, row)
            if r1 is not None and do_probe:
                carried[0], carried[1] = Pn, ramp
            if refining:
                d0 = complex(dnp[n])
                y0, x0 = pos0[n]
                r = pr.clamp_position((y0 + d0.real + dy, x0 + d0.imag + dx))
                new = complex(r[0] - y0, r[1] - x0)
                moves.append(abs(new - d0) ** 2)
                dnp[n] = new
            num_total += num
            e[n] = en
            so_all[c] = so
            sp_all[c] = sp
            if self.touches_state(c + 1):
                settle()
            self.after_position(c + 1)
        settle()
        if fit:
            self._bg_acc = (torch.from_numpy(acc), torch.from_numpy(cnt))
        self._moved = math.sqrt(float(np.mean(moves))) if moves else None
        return num_total

    def _step_stats(self, so, sp, do_probe) -> dict:
        out = {}
        for name, v in (("o", so), ("p", sp)):
            if name == "p" and not do_probe:
                v = np.zeros_like(v)
            out[f"step_{name}_mean"] = float(np.mean(v))
            out[f"step_{name}_min"] = float(np.min(v))
            out[f"step_{name}_median"] = float(np.median(v))
            out[f"step_{name}_max"] = float(np.max(v))
        return out


# ============================================================================ ePIE
class EPIEConfig(PIEConfig):
    alpha_o: float = Field(1.0, gt=0.0, le=2.0, description="object step alpha_o, eq. (6)")
    alpha_p: float = Field(1.0, gt=0.0, le=2.0, description="probe step alpha_p, eq. (7)")


class EPIE(PIEBase):
    r"""ePIE (Maiden & Rodenburg 2009; CRISP eqs. (6)-(7)):

    .. math:: \mathbf O_n'=\mathbf O_n+\alpha_o\frac{\bar{\mathbf P}_n\odot\mathbf R_n}
              {|\mathbf P_n|^2_{\max}},\qquad
              \mathbf P_n'=\mathbf P_n+\alpha_p\frac{\bar{\mathbf O}_n\odot\mathbf R_n}
              {|\mathbf O_n|^2_{\max}},

    both from the pre-update :math:`\mathbf O_n,\mathbf P_n` (the probe update uses the *old*
    object patch, as in the group's PINE code); :math:`\mathbf R_n=\tilde\Psi_n-\Psi_n`.  Probe
    updates start at iteration ``probe_start``.  The papers allow :math:`\alpha\in(0,1]`; up
    to 2 is accepted (the descent lemma's bound; the PINE paper, sec. 3.3, allows (0, 2)).
    """

    name = "epie"

    Config = EPIEConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        self.alpha_o, self.alpha_p = float(self.cfg.alpha_o), float(self.cfg.alpha_p)

    def steps(self, n, e, pm, om, norms, fused):
        return self.alpha_o, self.alpha_p, 1.0, 1.0


# ============================================================================ rPIE
class RPIEConfig(PIEConfig):
    gamma_o: float = Field(0.1, gt=0.0, description="object balancing parameter gamma_o, eq. (10)")
    gamma_p: float = Field(1.0, gt=0.0, description="probe balancing parameter gamma_p, eq. (11)")
    beta_o: float = Field(1.0, gt=0.0, le=2.0, description="extra object step (1 = rPIE as published)")
    beta_p: float = Field(1.0, gt=0.0, le=2.0, description="extra probe step (1 = rPIE as published)")


class RPIE(PIEBase):
    r"""rPIE (Maiden, Johnson & Li 2017; CRISP eqs. (10)-(11)), element-wise denominators:

    .. math:: \mathbf O_n'=\mathbf O_n+\beta_o\frac{\bar{\mathbf P}_n\odot\mathbf R_n}
              {(1-\gamma_o)|\mathbf P_n|^2+\gamma_o|\mathbf P_n|^2_{\max}},

    and the same for the probe with :math:`\gamma_p` and :math:`|\mathbf O_n|`.  :math:`\gamma>1`
    is legal (the denominator stays :math:`\ge|\cdot|^2_{\max}`).  :math:`\gamma=1,\beta=1` is
    ePIE with :math:`\alpha=1` exactly.  ``beta_o = beta_p = 1`` (default) is rPIE as published;
    the extra step factor is an option of ours.
    """

    name = "rpie"

    Config = RPIEConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        self.gamma_o, self.gamma_p = float(cfg.gamma_o), float(cfg.gamma_p)
        self.beta_o, self.beta_p = float(cfg.beta_o), float(cfg.beta_p)

    def steps(self, n, e, pm, om, norms, fused):
        return self.beta_o, self.beta_p, self.gamma_o, self.gamma_p


# ============================================================================ mPIE
class MPIEConfig(RPIEConfig):
    friction: float = Field(0.7, ge=0.0, lt=1.0, description="momentum friction (velocity decay)")
    feedback: float = Field(0.3, gt=0.0, le=1.0, description="momentum feedback (velocity step)")
    momentum_every: int | None = Field(None, ge=1, description="T: positions between momentum "
                                       "steps (default min(N, max(10, round(N / 20))))")


class MPIE(RPIE):
    r"""mPIE (Maiden, Johnson & Li, Optica 4, 736 (2017)): rPIE updates plus a momentum step
    every :math:`T` positions on object and probe,

    .. math:: \mathbf v\leftarrow\eta_f\,\mathbf v+(\mathbf O-\mathbf O_{\rm old}),\qquad
              \mathbf O\leftarrow\mathbf O+\eta_b\,\mathbf v,\qquad \mathbf O_{\rm old}
              \leftarrow\mathbf O .

    The paper writes one :math:`\eta` for both (friction = feedback); we expose the two
    separately with PtyLab's defaults (friction 0.7, feedback 0.3), which were stable in our tests
    where :math:`\eta_f=\eta_b=0.9` with small :math:`T` diverged.  Resolution of :math:`T` (left
    to the user by the paper): ``momentum_every`` defaults to :math:`\min(N,\max(10,\mathrm{round}(N/20)))`:
    momentum on ~5 % of the position steps for large scans, as PtyLab's mPIE, but never more often
    than every 10 positions (momentum after every position or two diverged or stalled in our
    tests on 25-position scans).  The velocity persists across
    sweeps (it is part of the checkpointed state).  Default :math:`\gamma_o=0.1,\gamma_p=1`.
    """

    name = "mpie"
    state_names = ("x", "v", "x_old")

    Config = MPIEConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        self.friction, self.feedback = float(cfg.friction), float(cfg.feedback)
        n = problem.n_positions
        self.T = int(cfg.momentum_every) if cfg.momentum_every else min(n, max(10, int(round(n / 20))))
        self._k = 0

    def initialize(self, x0):
        super().initialize(x0)
        self.v = torch.zeros_like(self.x)
        self.x_old = self.x.clone()

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.v = self.v.to(self.x.device)
        self.x_old = self.x_old.to(self.x.device)

    def begin_sweep(self, k):
        self._k = k

    def touches_state(self, count):
        return count % self.T == 0

    def after_position(self, count):
        if count % self.T:
            return False
        no = self.problem.n_object
        # object and probe (modes) only: never the position shifts or the background
        end = no + self.problem.n_probe if self._k >= self.probe_start else no
        v, x, xo = self.v[:end], self.x[:end], self.x_old[:end]
        if getattr(self, "_fused_now", False):  # one compiled pass instead of five
            xn = x.numpy()
            rt = xn.real.dtype.type
            K.sweep_kernels().momentum(v.numpy(), xn, xo.numpy(), rt(self.friction),
                                       rt(self.feedback))
            return True
        v.mul_(self.friction).add_(x - xo)
        x.add_(v, alpha=self.feedback)
        xo.copy_(x)
        return True


# ============================================================================ CRISP
class CRISPConfig(PIEConfig):
    lambda_o: float = Field(1.0, gt=0.0, lt=2.0, description="object relaxation lambda_o in (0, 2)")
    lambda_p: float = Field(1.0, gt=0.0, lt=2.0, description="probe relaxation lambda_p in (0, 2)")
    clip: Literal["none", "epie", "scale"] = Field(
        "epie", description="step clipping: none, 'epie' (nu = (1, 1)), 'scale' "
                            "(nu = (|P_n|max, |O_n|max)), eq. (21)")
    nu_o: float | None = Field(None, gt=0.0, description="explicit nu_o (overrides clip for the object)")
    nu_p: float | None = Field(None, gt=0.0, description="explicit nu_p (overrides clip for the probe)")
    clip_exponent: float = Field(1.0, gt=0.0, description="cap nu**e / |Q|max^2 (1 = eq. (21) as reconstructed)")
    c: float = Field(0.5, gt=0.0, lt=1.0, description="xi tuning parameter c of eq. (22)")
    xi_rule: Literal["one-minus-c", "c"] = Field(
        "one-minus-c", description="automatic xi = (1 - c) mean(e) (default) or c mean(e)")
    xi: float | None = Field(None, ge=0.0, description="fixed xi (disables the automatic rule)")


class CRISP(PIEBase):
    r"""CRISP, clipped reliable iterative subgradient projection (CRISP paper,
    secs. 3.1-3.5, eqs. (15)-(22)).

    Per position, with :math:`g_n=\kappa\|\mathbf R_n\|_F^2` (pre-update cost, :math:`\kappa=1/2`
    by default: the PINE paper's :math:`\tfrac12\|\cdot\|^2`, whose gradient has the Lipschitz
    constant :math:`|\mathbf P_n|^2_{\max}` that CRISP sec. 2.3 uses):

    .. math:: G(\mathbf Q)=\frac{(g_n-\xi)_+}{\|\bar{\mathbf Q}\odot\mathbf R_n\|_F^2},\qquad
              G_\nu(\mathbf Q)=\min\{G(\mathbf Q),\ \nu^{e}/|\mathbf Q|^2_{\max}\}

    .. math:: \mathbf O_n'=\mathbf O_n+\lambda_oG_{\nu_o}(\mathbf P_n)\bar{\mathbf P}_n\odot
              \mathbf R_n,\qquad \mathbf P_n'=\mathbf P_n+\lambda_pG_{\nu_p}(\mathbf O_n)
              \bar{\mathbf O}_n\odot\mathbf R_n

    (simultaneous: both from the old patch and probe, as in ePIE; our reading of sec. 3.4). Clipping
    modes: ``none`` (:math:`\nu=\infty`), ``epie`` (:math:`\nu=(1,1)`, the paper's recommended
    default, which caps the step at ePIE's) and ``scale``
    (:math:`\nu=(|\mathbf P_n|_{\max},|\mathbf O_n|_{\max})`); ``clip_exponent`` :math:`e` = 1 is
    eq. (21) as reconstructed from sec. 3.4 (configurable, because ``nu**2`` also fits the text).

    :math:`\xi`: fixed (``xi=``), or automatic (eq. (22)): ``initializeXi`` computes :math:`e_n`
    for every position from the starting object and probe (batched), and after each sweep
    :math:`\xi\leftarrow(1-c)\,\mathrm{mean}_n e_n` (``xi_rule="one-minus-c"``, the default; our
    reading of sec. 3.5, "how much to reduce from the average cost"; docs/ptychography.md) or
    :math:`c\,\mathrm{mean}_n e_n` (``xi_rule="c"``), with :math:`e_n` stored while position
    :math:`n` is processed.  :math:`\xi` is shared by all positions and by both updates.

    Zero-denominator guard: when :math:`\|\bar{\mathbf Q}\odot\mathbf R_n\|=0` (then
    :math:`\mathbf R_n=0` wherever :math:`\mathbf Q\ne0`) the step is 0 if
    :math:`g_n\le\xi`, else the cap (0 without clipping); a zero probe or patch maximum gives no
    update.

    Exact properties (tested): with :math:`\kappa=1,\xi=0,\nu=(1,1),\lambda=\alpha` CRISP is ePIE;
    a fixed :math:`\xi\ge\max_ne_n` makes no update.
    """

    name = "crisp"
    state_names = ("x", "xi_value", "e_last")

    Config = CRISPConfig

    def __init__(self, problem, n_iter, **params):
        super().__init__(problem, n_iter, **params)
        cfg = self.cfg
        self.lambda_o, self.lambda_p = float(cfg.lambda_o), float(cfg.lambda_p)
        self.clip = cfg.clip
        self.nu_o, self.nu_p = cfg.nu_o, cfg.nu_p
        self.clip_exponent = float(cfg.clip_exponent)
        self.c = float(cfg.c)
        self.xi_rule = cfg.xi_rule
        self.xi_fixed = None if cfg.xi is None else float(cfg.xi)
        self.xi_value = float("nan")
        self.e_last = None

    def _rule(self, mean_e: float) -> float:
        return ((1.0 - self.c) if self.xi_rule == "one-minus-c" else self.c) * mean_e

    def initialize(self, x0):
        super().initialize(x0)
        if self.xi_fixed is not None:
            self.xi_value = self.xi_fixed
        else:  # initializeXi: costs of every position at the start
            e, _ = self.problem.costs_and_rfactor(self.x, kappa=self.kappa)
            self.xi_value = self._rule(float(e.mean()))
        self.e_last = None

    def steps(self, n, e, pm, om, norms, fused):
        npn, non = norms()
        xi = self.xi_value
        ex = self.clip_exponent
        # nu per clip mode (explicit nu_o / nu_p override)
        if self.nu_o is not None:
            nu_o = self.nu_o
        elif self.clip == "epie":
            nu_o = 1.0
        elif self.clip == "scale":
            nu_o = None  # |P_n|max, below
        else:
            nu_o = math.inf
        if self.nu_p is not None:
            nu_p = self.nu_p
        elif self.clip == "epie":
            nu_p = 1.0
        elif self.clip == "scale":
            nu_p = None
        else:
            nu_p = math.inf
        if fused:
            return self._steps_float(e, xi, npn, non, pm, om, nu_o, nu_p, ex)
        return self._steps_tensor(e, xi, npn, non, pm, om, nu_o, nu_p, ex)

    def _steps_float(self, e, xi, npn, non, pm, om, nu_o, nu_p, ex):
        excess = max(e - xi, 0.0)
        out = []
        for lam, den, q2, nu in ((self.lambda_o, npn, pm, nu_o), (self.lambda_p, non, om, nu_p)):
            if q2 <= 0:
                out.append(0.0)
                continue
            if nu is None:
                nu = math.sqrt(q2)
            cap = (nu ** ex) / q2 if math.isfinite(nu) else math.inf
            if excess <= 0:
                G = 0.0
            elif den > 0:
                G = min(excess / den, cap)
            else:
                G = cap if math.isfinite(cap) else 0.0
            # s = lambda G |Q|max^2 (the kernel divides by |Q|max^2 with g = 1)
            out.append(lam * G * q2)
        return out[0], out[1], 1.0, 1.0

    def _steps_tensor(self, e, xi, npn, non, pm, om, nu_o, nu_p, ex):
        excess = torch.clamp(e - xi, min=0.0)
        out = []
        for lam, den, q2, nu in ((self.lambda_o, npn, pm, nu_o), (self.lambda_p, non, om, nu_p)):
            q2 = q2.to(torch.float64)
            if nu is None:
                cap = torch.sqrt(q2) ** ex / q2
            elif math.isfinite(nu):
                cap = (nu ** ex) / q2
            else:
                cap = torch.full_like(q2, math.inf)
            G = torch.where(den > 0, excess / torch.where(den > 0, den, torch.ones_like(den)),
                            torch.where(torch.isfinite(cap), cap, torch.zeros_like(cap)))
            G = torch.minimum(G, cap)
            G = torch.where(excess > 0, G, torch.zeros_like(G))
            s = torch.where(q2 > 0, lam * G * q2, torch.zeros_like(q2))
            out.append(s)
        return out[0], out[1], 1.0, 1.0

    def end_sweep(self, k, e, stats):
        stats["xi"] = float(self.xi_value)
        stats["frac_no_update"] = float(np.mean(e <= self.xi_value))
        self.e_last = torch.as_tensor(e)
        if self.xi_fixed is None:
            self.xi_value = self._rule(float(np.mean(e)))
