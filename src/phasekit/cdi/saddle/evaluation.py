"""The FFT-free k-direction subspace Lagrangian ``L(tau) = L(rho + sum_i tau_i d_i)`` of SO2D /
SO4D: its set-up from the Fourier-space state, its evaluations (value, gradient, Hessian) on the
fused CPU kernels or in plain torch (Marchesini 2007 Sec. V and App. B, eqs. (39)-(48))."""
from __future__ import annotations

import math

import numpy as np
import torch

from . import fused as _f
from .fused import _fused_ok, _unpack_pairs, tensor_views
from .solver import _mat, _vec

__all__ = ["SubspaceLagrangian"]


# --------------------------------------------------------------------------- the k-D subproblem
class SubspaceLagrangian:
    """``L(tau) = L(rho + sum_i tau_i d_i)`` on a k-dimensional subspace, FFT-free.

    Built once per outer iteration from the Fourier-space state (Marchesini 2007 Sec. V and
    App. B, eqs. (39)-(48), in the general k-direction form that also covers SO4D):

    * ``z = F rho``, ``gs = F P_s rho``, ``D[i] = F d_i`` (``D[0] = d~_s``, ``D[1] = d~_sbar`` and,
      for SO4D, the previous pair), ``smask[i]`` True for directions inside the constraint set
      (``P_s d_i = d_i``) and False for the others (``P_s d_i = 0``);
    * precomputed scalars ``c0 = ||P_s rho||^2``, ``a_i = Re<d_i|P_s rho>``,
      ``p_i = Re<d_i|P_m rho>`` and the Gram matrix ``G_ij = Re<d_i|d_j>``.

    Then, with ``rho~(tau) = z + sum tau_i D_i``, ``u = rho~/|rho~|``, ``w = sqrt(I)/|rho~|`` and
    ``P~_m`` the identity on unmeasured pixels,

    * ``L = ||P_s rho(tau)||^2 - sum_unmeas |rho~|^2 - 2 sum_meas sqrt(I)|rho~| + sum_meas I``
      (App. B eq. (39), with ``||P_m rho - rho||^2`` expanded);
    * ``dL/dtau_i = 2 Re<P_s d_i|rho(tau)> - 2 Re<d~_i|P~_m rho~(tau)>`` (eq. (27)/(42));
    * ``H_ij = 2 Re<P_s d_i|P_s d_j> - 2 sum_meas w Im(conj(u) d~_i) Im(conj(u) d~_j)
      - 2 sum_unmeas Re(conj(d~_i) d~_j)`` (eqs. (43)-(48)).

    Each :meth:`evaluate` is one elementwise pass (a fused numba kernel on the CPU, plain torch
    elsewhere, float64 accumulation).  The small k-vectors are Python floats inside (NumPy calls on
    2-element arrays cost microseconds each, as much as the solver's arithmetic); :meth:`evaluate`
    returns arrays, :meth:`evaluate_lists` the lists the solver uses.

    With ``D=None`` (SO2D on the fused CPU path, :meth:`build_pair`) the two directions are not
    stored: the kernels form ``d~_s = gms - gs`` and ``d~_sbar = gms - gm`` on the fly (the same
    single-precision differences), which saves writing two arrays per outer iteration.
    """

    def __init__(self, z, gs, D, smask, amp, measured, scalars, amp2_sum: float, *,
                 fused: bool | None = None, views: dict | None = None, gm=None, gms=None):
        self.z, self.gs, self.D, self.amp, self.measured = z, gs, D, amp, measured
        self.gm, self.gms = gm, gms
        self.smask = np.asarray(smask, bool)
        self.k = len(self.smask) if D is None else D.shape[0]
        c0, a, p, G = scalars
        self._c0 = float(c0)
        self._lazy = False
        self._al, self._pl, self._Gl = _vec(a), _vec(p), _mat(G)
        self.amp2_sum = float(amp2_sum)
        if D is None:
            if not fused:
                raise ValueError("SubspaceLagrangian without stored directions needs the fused kernels")
            self.fused = True
        else:
            self.fused = _fused_ok(z, D, amp, measured) if fused is None else fused
        self.n_eval = 0
        self._first = None
        self._first_key = None
        self._pair = self._quad = None
        if self.fused:  # numpy views share the tensors' memory; made once (or passed in)
            if D is None:
                v = views
                if self.k == 2:
                    self._pair = (v["z"], v["gs"], v["gm"], gms.numpy(), v["amp"], v["meas"])
                elif self.k == 4 and self._quad_ok():
                    self._quad = (v["z"], v["gs"], v["gm"], gms.numpy(), v["rows"][2], v["rows"][3],
                                  v["amp"], v["meas"])
                else:
                    raise ValueError("without stored directions: k = 2, or k = 4 with smask (s, sbar, s, sbar)")
                self._np = None
                self._rows = None
            else:
                v = views if views is not None else tensor_views(z, None, None, D, amp, measured)
                rows = v["rows"][:self.k]
                self._np = (v["z"], v["Dflat"][:self.k], rows[0], rows[1], v["amp"], v["meas"])
                self._rows = rows
        self._views = views
        # the in-constraint block of G
        self._sl = s = self.smask.tolist()
        self._Gsl = [[self._Gl[i][j] if (s[i] and s[j]) else 0.0 for j in range(self.k)]
                     for i in range(self.k)]

    def _fill(self):
        """The sums the unstored-pair set-up passes skip -- ``c0``, ``a_i`` for out-of-constraint
        ``i`` and ``G_ij`` outside the in-constraint block and the diagonal (the solver reads none
        of them) -- from the arrays in float64 (the torch reference's arithmetic); valid until the
        update pass changes the arrays."""
        if not self._lazy:
            return
        c128 = torch.complex128
        gs = self.gs.to(c128).reshape(-1)
        d = [(self.gms - self.gs).to(c128).reshape(-1), (self.gms - self.gm).to(c128).reshape(-1)]
        d += [self.D[i].to(c128).reshape(-1) for i in range(2, self.k)]
        s = self._sl
        self._c0 = float(gs.abs().pow(2).sum())
        for i in range(self.k):
            if not s[i]:
                self._al[i] = float(torch.real(torch.vdot(d[i], gs)))
            for j in range(i + 1, self.k):
                if not (s[i] and s[j]):
                    self._Gl[i][j] = self._Gl[j][i] = float(torch.real(torch.vdot(d[i], d[j])))
        self._lazy = False

    @property
    def c0(self) -> float:
        """``c0 = ||P_s rho||^2``."""
        self._fill()
        return self._c0

    @property
    def a(self) -> np.ndarray:
        """``a_i = Re<d_i|P_s rho>``."""
        self._fill()
        return np.array(self._al)

    @property
    def p(self) -> np.ndarray:
        """``p_i = Re<d_i|P_m rho>``."""
        return np.array(self._pl)

    @property
    def G(self) -> np.ndarray:
        """The Gram matrix ``G_ij = Re<d_i|d_j>``."""
        self._fill()
        return np.array(self._Gl)

    @property
    def Gs(self) -> np.ndarray:
        """``G`` restricted to the in-constraint block (``Re<P_s d_i|P_s d_j>``)."""
        return np.array(self._Gsl)

    @classmethod
    def build(cls, z, gs, gm, gms, D, smask, amp, measured, amp2_sum, *, fused=None, tau0=None,
              views=None):
        """Fill ``D[0] = gms - gs`` and ``D[1] = gms - gm`` (eq. (18) in Fourier space:
        ``d~_s = F P_s P_m rho - F P_s rho``, ``d~_sbar = F P_s P_m rho - F P_m rho``) and
        precompute the dot products (one pass; with ``tau0`` the pass also evaluates ``L(tau0)``).
        ``views``: NumPy views of the persistent tensors (:func:`tensor_views`), to skip making
        them again."""
        k = D.shape[0]
        if fused is None:
            fused = _fused_ok(z, gs, gm, gms, D)
        first = None
        if fused:
            v = views if views is not None else tensor_views(z, gs, gm, D, amp, measured)
            gmsn = gms.numpy()
        if fused and k == 2:
            o = np.empty(12)
            t = (0.0, 0.0) if tau0 is None else (float(tau0[0]), float(tau0[1]))
            _f._SETUP2(v["z"], v["gs"], v["gm"], gmsn, v["rows"][0], v["rows"][1], v["amp"], v["meas"],
                    t[0], t[1], o)
            c0, a, p = o[0], o[1:3].copy(), o[3:5].copy()
            G = np.array([[o[5], o[6]], [o[6], o[7]]])
            if tau0 is not None:
                first = (t, (float(o[8]), float(o[9]), o[10:12].tolist(), None))
        elif fused and k == 4 and list(smask) == [True, False, True, False]:
            npair = 10
            o = np.empty(1 + 2 * k + npair + 2 + k)
            t = (0.0,) * 4 if tau0 is None else tuple(float(x) for x in tau0)
            r = v["rows"]
            _f._SETUP4(v["z"], v["gs"], v["gm"], gmsn, r[0], r[1], r[2], r[3], v["amp"], v["meas"],
                    t[0], t[1], t[2], t[3], o)
            c0, a, p = o[0], o[1:5].copy(), o[5:9].copy()
            G = _unpack_pairs(o[9:19], 4)
            if tau0 is not None:
                first = (t, (float(o[19]), float(o[20]), o[21:25].tolist(), None))
        elif fused:
            out = np.empty(1 + 2 * k + k * k)
            _f._SETUP(v["z"], v["gs"], v["gm"], gmsn, v["Dflat"][:k], out)
            c0 = out[0]
            a = out[1:1 + k].copy()
            p = out[1 + k:1 + 2 * k].copy()
            G = out[1 + 2 * k:].reshape(k, k).copy()
            G = np.triu(G) + np.triu(G, 1).T
        else:
            torch.sub(gms, gs, out=D[0])
            torch.sub(gms, gm, out=D[1])
            Dd = D.to(torch.complex128)
            c0 = float(gs.to(torch.complex128).abs().pow(2).sum())
            a = torch.real((Dd.conj() * gs.to(torch.complex128)).reshape(k, -1).sum(1)).cpu().numpy()
            p = torch.real((Dd.conj() * gm.to(torch.complex128)).reshape(k, -1).sum(1)).cpu().numpy()
            Df = Dd.reshape(k, -1)
            G = torch.real(Df.conj() @ Df.T).cpu().numpy()
        sub = cls(z, gs, D, smask, amp, measured, (float(c0), a, p, G), amp2_sum, fused=fused,
                  views=v if fused else None)
        sub._set_first(first)
        return sub

    @classmethod
    def build_pair(cls, z, gs, gm, gms, amp, measured, amp2_sum, views, *, tau0=None):
        """The 2-D (SO2D) Lagrangian on the fused CPU path without stored directions: one pass
        computes the dot products of :meth:`build` (and ``L(tau0)``) with ``d~_s = gms - gs``,
        ``d~_sbar = gms - gm`` formed on the fly.  ``views`` as in :meth:`build` (``z``, ``gs``,
        ``gm``, ``amp``, ``meas``).  The three sums the solver never reads (``c0``, needed only for
        the value ``L``, ``a_1`` and ``G_01``) are left out of the pass and computed on first access
        of :attr:`c0`, :attr:`a`, :attr:`G` or of a value ``L`` (:meth:`gradient_lists` skips it)."""
        o = np.empty(12)
        t = (0.0, 0.0) if tau0 is None else (float(tau0[0]), float(tau0[1]))
        _f._SETUP2N(views["z"], views["gs"], views["gm"], gms.numpy(), views["amp"], views["meas"],
                 t[0], t[1], o)
        ol = o.tolist()
        # (the constructor's work, written out: this runs once per outer iteration)
        sub = cls.__new__(cls)
        sub.z, sub.gs, sub.D, sub.amp, sub.measured, sub.gm, sub.gms = z, gs, None, amp, measured, gm, gms
        sub.smask, sub.k, sub._c0, sub.amp2_sum = _PAIR_MASK, 2, ol[0], float(amp2_sum)
        sub._lazy = True  # c0, a_1, G_01: not summed by the pass (see _fill)
        sub._al, sub._pl = ol[1:3], ol[3:5]
        sub._Gl = [[ol[5], ol[6]], [ol[6], ol[7]]]
        sub._sl = [True, False]
        sub._Gsl = [[ol[5], 0.0], [0.0, 0.0]]
        sub.fused, sub.n_eval, sub._views = True, 0, views
        sub._pair = (views["z"], views["gs"], views["gm"], gms.numpy(), views["amp"], views["meas"])
        sub._np = sub._rows = sub._quad = None
        if tau0 is not None:
            sub._first, sub._first_key = (t, (ol[8], ol[9], ol[10:12], None)), t
        else:
            sub._first = sub._first_key = None
        return sub

    def _quad_ok(self) -> bool:
        return self.smask.tolist() == [True, False, True, False]

    @classmethod
    def build_quad(cls, z, gs, gm, gms, D, amp, measured, amp2_sum, views, *, tau0=None):
        """The 4-D (SO4D) Lagrangian on the fused CPU path without storing the current pair:
        ``d~_s = gms - gs``, ``d~_sbar = gms - gm`` formed on the fly, the previous pair read from
        ``D[2]``, ``D[3]``; one pass for the dot products (and ``L(tau0)``), as :meth:`build`,
        less the sums the solver never reads (computed on first access, as in :meth:`build_pair`)."""
        o = np.empty(25)
        t = (0.0,) * 4 if tau0 is None else tuple(float(x) for x in tau0)
        r = views["rows"]
        _f._SETUP4N(views["z"], views["gs"], views["gm"], gms.numpy(), r[2], r[3], views["amp"],
                 views["meas"], t[0], t[1], t[2], t[3], o)
        ol = o.tolist()
        sub = cls(z, gs, None, _QUAD_MASK, amp, measured, (ol[0], ol[1:5], ol[5:9], _unpack_pairs(o[9:19], 4)),
                  amp2_sum, fused=True, views=views, gm=gm, gms=gms)
        sub.D = D
        sub._lazy = True  # c0, a_1, a_3 and the cross terms outside the (s, s) block: see _fill
        if tau0 is not None:
            sub._first, sub._first_key = (t, (ol[19], ol[20], ol[21:25], None)), t
        return sub

    def _set_first(self, first):
        self._first = first
        self._first_key = tuple(first[0]) if first is not None else None

    def restrict(self, k: int) -> "SubspaceLagrangian":
        """The same Lagrangian on the first ``k`` directions (no pass: the scalars are sliced)."""
        nostore = self._pair is not None or self._quad is not None
        sub = SubspaceLagrangian(self.z, self.gs, None if nostore else self.D[:k], self.smask[:k],
                                 self.amp, self.measured,
                                 (self._c0, self._al[:k], self._pl[:k], [r[:k] for r in self._Gl[:k]]),
                                 self.amp2_sum, fused=self.fused, views=self._views, gm=self.gm,
                                 gms=self.gms)
        sub._lazy = self._lazy  # the skipped sums of the first k directions (see _fill)
        return sub

    # -- raw pass
    def _pass(self, tau, hess: bool):
        """One pass at ``tau`` (a sequence of floats): ``(S_unmeas, S_amp, q, h)`` with ``q`` a list
        and ``h`` a list of rows (None unless ``hess``)."""
        k = self.k
        if self._first is not None and not hess and tuple(tau) == self._first_key:
            return self._first[1]  # computed by the set-up pass
        if self.fused:
            if self._pair is not None:
                zn, gsn, gmn, gmsn, an, mn = self._pair
                out = np.empty(7)
                _f._EVAL2N(zn, gsn, gmn, gmsn, an, mn, float(tau[0]), float(tau[1]), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:4], ([[o[4], o[5]], [o[5], o[6]]] if hess else None)
            if self._quad is not None:
                out = np.empty(2 + 4 + 10)
                _f._EVAL4N(*self._quad, *(float(v) for v in tau), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:6], (_unpack_pairs(out[6:16], 4).tolist() if hess else None)
            zn, Dn, d0n, d1n, an, mn = self._np
            if k == 2:
                out = np.empty(7)
                _f._EVAL2(zn, d0n, d1n, an, mn, float(tau[0]), float(tau[1]), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:4], ([[o[4], o[5]], [o[5], o[6]]] if hess else None)
            if k == 4:
                out = np.empty(2 + 4 + 10)
                _f._EVAL4(zn, *self._rows, an, mn, *(float(v) for v in tau), bool(hess), out)
                o = out.tolist()
                return o[0], o[1], o[2:6], (_unpack_pairs(out[6:16], 4).tolist() if hess else None)
            out = np.empty(2 + k + k * k)
            _f._EVALK(zn, Dn, an, mn, np.array(tau, dtype=np.float64), bool(hess), out)
            h = out[2 + k:].reshape(k, k)
            h = np.triu(h) + np.triu(h, 1).T
            return out[0], out[1], out[2:2 + k].tolist(), (h.tolist() if hess else None)
        s1, s2, q, h = self._pass_torch(tau, hess)
        return s1, s2, q.tolist(), (h.tolist() if hess else None)

    def _pass_torch(self, tau, hess):
        """Plain-torch reference of the fused pass (what CUDA runs)."""
        k = self.k
        D = self.D.to(torch.complex128)
        t = torch.as_tensor(np.asarray(tau, np.float64), device=D.device).to(torch.complex128)
        v = self.z.to(torch.complex128) + (t.reshape((k,) + (1,) * (D.ndim - 1)) * D).sum(0)
        amp = self.amp.to(torch.float64)
        meas = self.measured
        m = v.abs()
        pos = m > 0
        u = torch.where(pos, v / m.clamp_min(1e-300), torch.ones_like(v))
        pm = torch.where(meas, amp * u, v)
        s1 = float(torch.where(meas, torch.zeros_like(m), m * m).sum())
        s2 = float(torch.where(meas, amp * m, torch.zeros_like(m)).sum())
        q = torch.real(D.conj() * pm).reshape(k, -1).sum(1).cpu().numpy()
        h = np.zeros((k, k))
        if hess:
            w = torch.where(meas & pos, amp / m.clamp_min(1e-300), torch.zeros_like(m))
            bk = torch.imag(u.conj() * D).reshape(k, -1)
            um = (~meas).reshape(-1)
            Df = D.reshape(k, -1)
            wf = w.reshape(-1)
            h = ((bk * wf) @ bk.T).cpu().numpy()
            Du = Df[:, um]
            h = h + torch.real(Du.conj() @ Du.T).cpu().numpy()
        return s1, s2, q, h

    # -- public
    def gradient_lists(self, tau, hess: bool = False):
        """:meth:`evaluate_lists` without the value (``L`` is NaN): what :func:`solve_saddle` runs on
        (it reads gradients and Hessians only)."""
        return self.evaluate_lists(tau, hess, value=False)

    def evaluate_lists(self, tau, hess: bool = False, value: bool = True):
        """:meth:`evaluate` on and to Python lists: ``(L, grad list, H rows or None)`` (float64
        arithmetic, no NumPy call on the k-vectors); ``value=False`` skips ``L`` (NaN)."""
        tau = [float(x) for x in tau]
        if value:
            self._fill()
        s1, s2, q, h = self._pass(tau, hess)
        self.n_eval += 1
        k = self.k
        s = self._sl
        a = self._al
        Gs = self._Gsl
        if k == 2 and s[0] and not s[1]:  # the SO2D pair, written out (same operations)
            t0, t1 = tau
            Gt0 = Gs[0][0] * t0 + Gs[0][1] * t1
            Gt1 = Gs[1][0] * t0 + Gs[1][1] * t1
            L = (self._c0 + 2 * (t0 * a[0]) + (t0 * Gt0 + t1 * Gt1) - s1 - 2 * s2 + self.amp2_sum
                 if value else math.nan)
            g = [2 * (a[0] + Gt0) - 2 * q[0], -2 * q[1]]
            H = ([[2 * Gs[0][0] - 2 * h[0][0], 2 * Gs[0][1] - 2 * h[0][1]],
                  [2 * Gs[1][0] - 2 * h[1][0], 2 * Gs[1][1] - 2 * h[1][1]]] if hess else None)
            return L, g, H
        # ||P_s rho(tau)||^2 = c0 + 2 sum_s tau_i a_i + tau^T Gs tau
        ta = 0.0
        for i in range(k):
            if s[i]:
                ta += tau[i] * a[i]
        Gt = [sum([Gs[i][j] * tau[j] for j in range(k)]) for i in range(k)]
        tGt = sum([tau[i] * Gt[i] for i in range(k)])
        L = self._c0 + 2 * ta + tGt - s1 - 2 * s2 + self.amp2_sum if value else math.nan
        g = [2 * (a[i] + Gt[i]) - 2 * q[i] if s[i] else -2 * q[i] for i in range(k)]
        H = [[2 * Gs[i][j] - 2 * h[i][j] for j in range(k)] for i in range(k)] if hess else None
        return L, g, H

    def evaluate(self, tau, hess: bool = False):
        """Return ``(L, grad, H)`` at ``tau`` (``H`` is None unless ``hess``); one pass."""
        L, g, H = self.evaluate_lists(np.asarray(tau, np.float64).tolist(), hess)
        return L, np.array(g), (np.array(H) if hess else None)

    def grad0(self) -> np.ndarray:
        """``grad L(0) = 2 a_i [i in s] - 2 p_i`` from the precomputed dot products (free); for the
        2-D pair it is ``(-2||d_s||^2, +2||d_sbar||^2)`` (eq. (28))."""
        return 2 * np.where(self.smask, self.a, 0.0) - 2 * self.p

    def grad0_list(self) -> list:
        """:meth:`grad0` as a list."""
        return [2 * a - 2 * p if s else -2 * p for s, a, p in zip(self._sl, self._al, self._pl)]

    def preconditioner(self, beta: float) -> np.ndarray:
        """Inverse of the diagonal Hessian guess: ``H_beta = diag(2||d_i||^2, -2||d_i||^2/beta)``
        for in-/out-of-constraint directions (eqs. (32)-(33); for the first pair its first Newton
        step from 0 is the HIO step ``(1, beta)``)."""
        return np.array(self.preconditioner_lists(beta))

    def preconditioner_lists(self, beta: float) -> list:
        """:meth:`preconditioner` as a list of rows."""
        k = self.k
        B = [[0.0] * k for _ in range(k)]
        for i, d in enumerate(self.scale_list()):
            B[i][i] = 1.0 / d if self._sl[i] else -beta / d
        return B

    def scale(self) -> np.ndarray:
        """``diag(2||d_i||^2)``: the scale used to average inverse Hessians across iterations."""
        return np.array(self.scale_list())

    def scale_list(self) -> list:
        return [2 * max(self._Gl[i][i], 1e-300) for i in range(self.k)]


_PAIR_MASK = np.array([True, False])
_QUAD_MASK = np.array([True, False, True, False])
