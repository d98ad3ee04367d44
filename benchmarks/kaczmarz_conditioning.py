"""Conditioning diagnostics of the gapped Fourier phase-retrieval problem of ``kaczmarz_gap``
(issue 17 item 2): the smallest eigenvalues of the normal operators restricted to the support,
computed matrix-free with FFTs (Lanczos, :func:`scipy.sparse.linalg.eigsh`).

Two operators on real vectors ``d`` supported on ``S`` (unitary DFT ``F``, measured set ``M``):

* **phases fixed** (the linear system ``<a_k, x> = b_k u_k`` that the ``_fixed_phase`` test
  solves): ``A^H A d = P_S Re F^H (1_M F d)``.  Its eigenvalues lie in ``[0, 1]``; without a gap
  they are all 1.  The gap removes at most ``|gap|`` of them: ``1 - lambda`` are the eigenvalues of
  ``P_S Re F^H (1_gap F d)`` (rank <= |gap|), so ``lambda_min`` comes from the largest ones of that
  low-rank operator (fast, accurate).
* **phase retrieval, linearised at the truth** (what the amplitude loss (8) sees near ``x*``): the
  residual of row ``k`` to first order is ``Re(conj(u_k) (F d)_k)``, ``u_k = phase((F x*)_k)``; the
  Gauss-Newton operator ``J^T J d = P_S Re F^H (1_M u Re(conj(u) F d))`` has mean eigenvalue about
  ``m / (2 N^2)``; we report the eigenvalues of ``2 J^T J`` (mean about 1, like ``A^H A``).

Strohmer-Vershynin (randomized Kaczmarz on a consistent system, rows of equal norm): ``E||e||^2``
shrinks by ``1 - lambda_min / ||A||_F^2`` per row step, i.e. the error by about
``exp(-lambda_min N^2 / |S|)`` per epoch of ``m`` steps (normalised eigenvalues as above), which
is the predicted asymptotic rate printed by :func:`predicted_factor`.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh


def _ops(support: np.ndarray, mask: np.ndarray, truth: np.ndarray | None):
    """Matvecs on real support vectors (centred layout, unitary FFT over the whole grid)."""
    sup = np.fft.ifftshift(support.astype(bool))
    meas = np.fft.ifftshift(mask.astype(bool))
    idx = np.nonzero(sup.ravel())[0]
    shape = sup.shape
    u = None
    if truth is not None:
        z = np.fft.fft2(np.fft.ifftshift(truth), norm="ortho")
        az = np.abs(z)
        u = np.where(az > 0, z / np.where(az > 0, az, 1), 1.0)

    def lift(v):
        f = np.zeros(shape[0] * shape[1])
        f[idx] = v
        return f.reshape(shape)

    def fixed(v, keep):
        z = np.fft.fft2(lift(v), norm="ortho") * keep
        return np.fft.ifft2(z, norm="ortho").real.ravel()[idx]

    def jac(v):
        z = np.fft.fft2(lift(v), norm="ortho")
        r = (np.conj(u) * z).real * meas
        return 2.0 * np.fft.ifft2(u * r, norm="ortho").real.ravel()[idx]

    return idx.size, meas, fixed, jac


def smallest_eigs(support, mask, truth=None, k: int = 6, tol: float = 1e-10, maxiter: int = 3000) -> dict:
    """The ``k`` smallest eigenvalues of the phases-fixed normal operator (``fixed``) and, with
    ``truth``, of ``2 J^T J`` (``phase_retrieval``), plus the number of matvecs (FFT pairs) used.

    Examples
    --------
    >>> import numpy as np
    >>> s = np.zeros((32, 32), bool); s[12:20, 12:20] = True
    >>> m = np.ones((32, 32), bool)
    >>> round(smallest_eigs(s, m, k=2)["fixed"][0], 6)
    1.0
    """
    n, meas, fixed, jac = _ops(support, mask, truth)
    out = {"n_support": n}
    gap = ~meas
    cnt = {"n": 0}

    def mv_gap(v):
        cnt["n"] += 1
        return fixed(np.asarray(v).ravel(), gap)

    if gap.any():
        kk = min(k, n - 1)
        lam = eigsh(LinearOperator((n, n), matvec=mv_gap, dtype=np.float64), k=kk, which="LA", tol=tol,
                    maxiter=maxiter, return_eigenvectors=False)
        out["fixed"] = sorted(float(1.0 - v) for v in lam)
    else:
        out["fixed"] = [1.0] * k
    out["fixed_matvecs"] = cnt["n"]
    if truth is not None:
        cnt["n"] = 0

        def mv_c(v):  # I - 2 J^T J: its largest eigenvalues are 1 - the smallest of 2 J^T J
            cnt["n"] += 1
            v = np.asarray(v).ravel()
            return v - jac(v)

        lam = eigsh(LinearOperator((n, n), matvec=mv_c, dtype=np.float64), k=k, which="LA", tol=max(tol, 1e-7),
                    maxiter=maxiter, ncv=max(4 * k, 40), return_eigenvectors=False)
        out["phase_retrieval"] = sorted(float(1.0 - v) for v in lam)
        out["phase_retrieval_matvecs"] = cnt["n"]
    return out


def predicted_factor(lam_min: float, oversampling: float) -> float:
    """Strohmer-Vershynin per-epoch error factor ``exp(-lam_min * N^2/|S|)`` (normalised
    eigenvalue, ``m`` row steps per epoch)."""
    return math.exp(-max(lam_min, 0.0) * oversampling)


def stationarity(x: np.ndarray, truth: np.ndarray, support: np.ndarray, mask: np.ndarray) -> dict:
    """How close a (plateau) estimate is to a stationary point of the amplitude loss (8): the loss
    ``1/2 sum_M (|F x| - b)^2`` and the norm of its gradient on the support,
    ``||P_S Re F^H 1_M (F x - b phase(F x))||`` (the ER residual), both relative to ``||b||``.  A
    spurious stationary point has a gradient orders of magnitude below ``sqrt(2 loss)``."""
    b = np.abs(np.fft.fft2(np.fft.ifftshift(truth), norm="ortho"))
    z = np.fft.fft2(np.fft.ifftshift(x), norm="ortho")
    az = np.abs(z)
    ph = np.where(az > 0, z / np.where(az > 0, az, 1), 1.0)
    meas = np.fft.ifftshift(mask.astype(bool))
    res = (z - b * ph) * meas
    g = np.fft.ifft2(res, norm="ortho").real * np.fft.ifftshift(support.astype(bool))
    bn = float(np.linalg.norm(b * meas))
    return {"residual_rel": float(np.linalg.norm(res)) / bn, "gradient_rel": float(np.linalg.norm(g)) / bn}
