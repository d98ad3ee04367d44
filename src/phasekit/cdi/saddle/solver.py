"""The low-dimensional saddle-point solver of SO2D / SO4D: trust-region Newton with SR1 updates of
the inverse Hessian and the safeguards of Marchesini 2007 Sec. V (sign conditions eq. (30), exact
Hessian + line search when the secant model is poor, SR1 skip rule, trust radius in
``[r_min, r_max]``, best-point / HIO fall-back)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["solve_saddle", "SaddleSolution", "enforce_saddle_signs", "sr1_inverse_update"]


# --------------------------------------------------------------------------- small-vector helpers
# The solver works on Python floats: a NumPy call on a 2-vector costs ~1 us, more than the
# arithmetic; these keep the numbers of operations and their order of the NumPy expressions
# they replace (sums left to right).
def _vec(v) -> list:
    return v.tolist() if isinstance(v, np.ndarray) else [float(x) for x in v]


def _mat(B) -> list:
    return np.asarray(B, np.float64).tolist() if isinstance(B, np.ndarray) else [[float(x) for x in r] for r in B]


def _mv(B, v) -> list:
    """``B @ v`` (rows of ``B``)."""
    if len(v) == 2:
        r0, r1 = B
        x, y = v
        return [r0[0] * x + r0[1] * y, r1[0] * x + r1[1] * y]
    return [sum([b * x for b, x in zip(row, v)]) for row in B]


def _dot(u, v) -> float:
    if len(u) == 2:
        return u[0] * v[0] + u[1] * v[1]
    return sum([a * b for a, b in zip(u, v)])


def _norm(v) -> float:
    """Euclidean norm of a tiny vector (``np.linalg.norm`` costs ~3 us per call)."""
    if isinstance(v, np.ndarray):
        return math.sqrt(float(v @ v))
    return math.sqrt(_dot(v, v))


def _signs(B: list, s: list) -> tuple[list, int]:
    """:func:`enforce_saddle_signs` on a list of rows; returns ``B`` itself when nothing changes
    (the solver never modifies a matrix in place)."""
    k = len(s)
    n = 0
    copied = False
    for i in range(k):
        d = B[i][i]
        want = 1.0 if s[i] else -1.0
        if not d * want > 0:
            if not copied:
                B = [list(r) for r in B]
                copied = True
            B[i][i] = want * (abs(d) if d != 0 else 1e-12)
            n += 1
    if k > 2:
        for i in range(k):
            for j in range(i + 1, k):
                if s[i] == s[j] and B[i][j] ** 2 >= B[i][i] * B[j][j]:
                    if not copied:
                        B = [list(r) for r in B]
                        copied = True
                    B[i][j] = B[j][i] = 0.0
                    n += 1
    return B, n


def _sr1(B: list, s: list, y: list, skip: float):
    By = _mv(B, y)
    r = [a - b for a, b in zip(s, By)]
    den = _dot(r, y)
    if not abs(den) > skip * _norm(y) * _norm(r) or den == 0.0:
        return B, False
    return [[B[i][j] + r[i] * r[j] / den for j in range(len(r))] for i in range(len(r))], True


# --------------------------------------------------------------------------- safeguards
def enforce_saddle_signs(B: np.ndarray, smask) -> tuple[np.ndarray, int]:
    """Second-order (min-max) conditions, eq. (30), imposed on an inverse Hessian ``B``.

    Diagonal: ``B_ii > 0`` for minimised (in-constraint) coordinates, ``B_ii < 0`` for maximised
    ones -- violating entries have their sign flipped ("flipping the sign", Sec. V); a zero diagonal
    becomes ``+-1e-12``.  Off-diagonal within a block (k > 2): the block must be definite, so an
    entry with ``B_ij^2 >= B_ii B_jj`` is set to 0 ("setting to 0", the port's rule).  In 2-D the
    diagonal signs of ``B = H^-1`` and of ``H`` agree whenever ``det H < 0``.

    Returns the corrected copy and the number of entries changed.
    """
    Bl, n = _signs(np.array(B, dtype=np.float64).tolist(), np.asarray(smask, bool).tolist())
    return np.array(Bl, dtype=np.float64), n


def sr1_inverse_update(B, s, y, skip: float = 1e-2):
    """SR1 update of the inverse Hessian (eq. (36), inverse form):
    ``B <- B + (s - B y)(s - B y)^T / ((s - B y)^T y)``, skipped (returns ``B, False``) when
    ``|y^T (s - B y)| <= skip ||y|| ||s - B y||`` (Nocedal & Wright eq. (6.26); the port's rule)."""
    B2, done = _sr1(_mat(B), _vec(s), _vec(y), skip)
    return (np.array(B2), True) if done else (B, False)


def _safe_inv(H):
    try:
        B = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return None
    return B if np.all(np.isfinite(B)) else None


@dataclass
class SaddleSolution:
    """Outcome of :func:`solve_saddle`."""

    tau: np.ndarray
    B: np.ndarray
    n_iter: int = 0
    n_eval: int = 0
    converged: bool = False
    fallback: bool = False
    rel_grad: float = float("nan")
    n_sign_fixes: int = 0
    n_sr1: int = 0
    n_sr1_skipped: int = 0
    n_exact_hessian: int = 0
    n_line_search: int = 0
    trust_radius: float = float("nan")
    events: list = field(default_factory=list)


def _line_search(f, tau, d, B, max_iter=10, xtol=0.1, x_max=4.0):
    """1-D root of ``phi(x) = d^T B grad L(tau + x d)`` (the Newton direction at the new point
    orthogonal to ``d``; the port's ``linminab``): ``phi(0) = -||d||^2 < 0`` when ``d = -B g``;
    secant / regula falsi with bracketing and expansion up to ``x_max``.  Returns ``(x, g)`` at the
    best point found (smallest ``|phi|``).  ``tau``, ``d``, ``B``: lists (rows)."""
    def phi(x):
        g = _vec(f([t + x * di for t, di in zip(tau, d)], False)[1])
        return _dot(d, _mv(B, g)), g

    x0, f0 = 0.0, -_dot(d, d)
    x1 = 1.0
    f1, g1 = phi(x1)
    best = (abs(f1), x1, g1)
    lo = hi = None
    if f1 > 0:
        lo, hi = (x0, f0), (x1, f1)
    it = 1
    while hi is None and it < max_iter and x1 < x_max and math.isfinite(f1):
        x0, f0 = x1, f1
        x1 = min(2 * x1, x_max)
        f1, g1 = phi(x1)
        it += 1
        if abs(f1) < best[0]:
            best = (abs(f1), x1, g1)
        if f1 > 0:
            lo, hi = (x0, f0), (x1, f1)
    while hi is not None and it < max_iter:
        (xa, fa), (xb, fb) = lo, hi
        if xb - xa < xtol:
            break
        x = xa - fa * (xb - xa) / (fb - fa)
        x = min(max(x, xa + 0.1 * (xb - xa)), xb - 0.1 * (xb - xa))  # keep inside the bracket
        fx, gx = phi(x)
        it += 1
        if abs(fx) < best[0]:
            best = (abs(fx), x, gx)
        if fx > 0:
            hi = (x, fx)
        else:
            lo = (x, fx)
    return best[1], best[2], it


def solve_saddle(f, g0, tau0, B0, smask, *, tol=1e-2, max_iter=50, r0=0.3, r_min=0.1, r_max=1.0,
                 fallback_tau=None, fallback_ratio=0.5, tau_max=10.0, skip=1e-2, stall=10):
    """Min-max the low-dimensional ``L(tau)``: Newton steps in a trust region with SR1 updates of
    the inverse Hessian (Marchesini 2007 Sec. V, items 4-9 of its algorithm listing; items 6-7 are not legible in our
    copy and are reconstructed, docs/saddle.md).

    Parameters
    ----------
    f : callable
        ``f(tau, hess) -> (L, grad, H or None)`` (:meth:`SubspaceLagrangian.evaluate`, or
        :meth:`SubspaceLagrangian.evaluate_lists`); ``tau`` is passed as a list of floats, ``grad``
        and ``H`` may be arrays or lists.
    g0 : array
        ``grad L(0)``: the convergence test is ``||grad L(tau)|| / ||g0|| < tol`` (the paper's
        threshold 0.01, Sec. V, read as one on the relative gradient).
    tau0, B0 : arrays
        First guess and inverse-Hessian guess (HIO ``(1, beta)`` with ``H_beta^-1``, or the
        average of previous solutions: items 2-3 of the listing).
    smask : bool array
        True for minimised coordinates (alphas), False for maximised ones (betas).
    r0, r_min, r_max : float
        Trust radius: reset to ``r0`` at each call, kept in ``[r_min, r_max]`` (port: 0.3, 0.1, 1).
    fallback_tau : array, optional
        Returned, with ``fallback=True``, when the solve fails: non-finite values, ``||tau|| >
        tau_max``, or no point with relative gradient below ``fallback_ratio`` (port: 0.5) when
        ``max_iter`` is reached.  Otherwise the best point seen is returned.
    stall : int
        Stop early when the best relative gradient has not improved for this many iterations (the
        sign-corrected model can cycle when the true Hessian violates eq. (30) near the point;
        an addition to the paper, which only bounds the iteration count).

    Notes
    -----
    Each iteration: Newton step ``-B g`` clipped to the radius; new gradient; ``s``, ``y``;
    model error ``erquad = ||B y - s|| / sqrt(||s||^2 + ||B y||^2)`` (port).  ``erquad > 1``: shrink
    the radius to ``max(r/4, r_min)``, compute the exact Hessian, line-search along its Newton
    direction and scale ``B`` by the step found; ``0.01 < erquad <= 1``: SR1 update (with the skip
    rule) and ``r <- min(2r, r_max)``; otherwise ``r <- min(3r, r_max)``.  Before every step the
    sign conditions of eq. (30) are imposed on ``B`` (:func:`enforce_saddle_signs`).

    The k-vectors are Python floats inside (the arithmetic of the NumPy form, without ~1 us per
    NumPy call on a 2-vector); the solution holds arrays.
    """
    s = np.asarray(smask, bool).tolist()
    k = len(s)
    tau = _vec(tau0)
    B = _mat(B0)
    g0n = _norm(_vec(g0))
    if not g0n > 0 or not math.isfinite(g0n):
        return SaddleSolution(tau=np.zeros(k), B=np.array(B), converged=True, rel_grad=0.0)
    n_iter = n_eval = n_sign_fixes = n_sr1 = n_sr1_skipped = n_exact = n_ls = 0
    converged = False
    events = []
    r = float(r0)
    g = _vec(f(tau, False)[1])
    n_eval += 1
    best_rel, best_tau = math.inf, tau
    bad = False
    since_best = 0
    isfinite = math.isfinite
    for it in range(max_iter + 1):
        rel = _norm(g) / g0n
        tn = _norm(tau)
        if not (isfinite(rel) and isfinite(tn)) or tn > tau_max:
            bad = True
            events.append("diverged")
            break
        if rel < best_rel:
            best_rel, best_tau = rel, tau
            since_best = 0
        else:
            since_best += 1
        if rel < tol:
            converged = True
            break
        if it == max_iter:
            break
        if since_best >= stall:
            events.append("stalled")
            break
        n_iter += 1
        B, nfix = _signs(B, s)
        n_sign_fixes += nfix
        step = [-x for x in _mv(B, g)]
        ns = _norm(step)
        if ns > r:
            c = r / ns
            step = [x * c for x in step]
        tau_new = [t + x for t, x in zip(tau, step)]
        g_new = _vec(f(tau_new, False)[1])
        n_eval += 1
        y = [a - b for a, b in zip(g_new, g)]
        By = _mv(B, y)
        den = math.sqrt(_dot(step, step) + _dot(By, By))
        erquad = _norm([a - b for a, b in zip(By, step)]) / den if den > 0 else 0.0
        if not isfinite(erquad):
            bad = True
            events.append("non-finite gradient")
            break
        if erquad > 1.0:
            # poor secant model: exact Hessian, line search, smaller trust region (items 6-7)
            r = max(r / 4, r_min)
            _, g_new, H = f(tau_new, True)
            g_new = _vec(g_new)
            n_eval += 1
            n_exact += 1
            Bx = _safe_inv(np.asarray(H, np.float64))
            if Bx is not None:
                B, nfix = _signs(Bx.tolist(), s)
                n_sign_fixes += nfix
            d = [-x for x in _mv(B, g_new)]
            nd = _norm(d)
            if nd > 0 and isfinite(nd):
                x_max = max(r_max / nd, 1.0) if nd > 0 else 1.0
                x, g_ls, it_ls = _line_search(f, tau_new, d, B, x_max=min(x_max, 4.0))
                n_eval += it_ls
                n_ls += 1
                if x > 0:
                    B = [[b * x for b in row] for row in B]
                    tau_new = [t + x * di for t, di in zip(tau_new, d)]
                    g_new = g_ls
        elif erquad > 1e-2:
            B2, done = _sr1(B, step, y, skip)
            if done:
                n_sr1 += 1
                B = B2
            else:
                n_sr1_skipped += 1
            r = min(2 * r, r_max)
        else:
            r = min(3 * r, r_max)
        tau, g = tau_new, g_new
    fallback = False
    if converged:
        out = tau
    elif not bad and best_rel <= fallback_ratio:
        out = best_tau
    else:
        fallback = True
        out = fallback_tau if fallback_tau is not None else tau0
    B, _ = _signs(B, s)
    return SaddleSolution(tau=np.array(out, np.float64), B=np.array(B), n_iter=n_iter, n_eval=n_eval,
                          converged=converged, fallback=fallback, rel_grad=best_rel,
                          n_sign_fixes=n_sign_fixes, n_sr1=n_sr1, n_sr1_skipped=n_sr1_skipped,
                          n_exact_hessian=n_exact, n_line_search=n_ls, trust_radius=r, events=events)
