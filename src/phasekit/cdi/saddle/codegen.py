"""Generator of :mod:`phasekit.cdi._saddle_unrolled`: the K = 4 (SO4D) subspace kernels with every
sum unrolled into scalar accumulators, written out as a real module so that numba caches them.

The per-pixel modulus rule inside the generated kernels is :mod:`phasekit.operators.modulus`
(``project_fast`` + ``project_pixel`` in the update that stores a projection, ``pixel_terms``
in the evaluations, which only sum), inlined as in the hand-written K = 2 kernels.
"""
from __future__ import annotations

import os

__all__ = ["unrolled_module_text", "write_unrolled_module", "UNROLLED_MODULE"]


def _unrolled_source(K: int, smask) -> str:
    """Source of the K-direction kernels with every sum unrolled into scalar accumulators (numba
    keeps them in registers; the generic loops over small arrays are ~10x slower)."""
    r = range(K)
    pairs = [(j, k) for j in r for k in r if k >= j]
    ds = ", ".join(f"d{k}" for k in r)
    ts = ", ".join(f"t{k}" for k in r)
    L = []
    a = L.append

    def body(ind, hess, src):
        # src: expressions for the real / imaginary part of direction k at element i
        for k in r:
            a(f"{ind}u{k}r = {src[k][0]}")
            a(f"{ind}u{k}i = {src[k][1]}")
        a(f"{ind}re = zf[i].real + " + " + ".join(f"t{k} * u{k}r" for k in r))
        a(f"{ind}im = zf[i].imag + " + " + ".join(f"t{k} * u{k}i" for k in r))
        # the per-pixel terms: the one rule of operators.modulus (pixel_terms, inlined), as in
        # the hand-written K = 2 kernels of saddle/kernels.py
        a(f"{ind}ok = mf[i]")
        a(f"{ind}sq, bm, pr, pi, b, inv = pixel_terms(re, im, af[i], ok)")  # (e_k: set-up sums)
        a(f"{ind}s1 += sq")
        a(f"{ind}s2 += bm")
        for k in r:
            a(f"{ind}q{k} += u{k}r * pr + u{k}i * pi")
        if hess:
            a(f"{ind}c = re * inv")
            a(f"{ind}sn = im * inv")
            a(f"{ind}w = b * inv")
            for k in r:
                a(f"{ind}p{k} = c * u{k}i - sn * u{k}r")
            for j, k in pairs:
                a(f"{ind}h{j}{k} += w * p{j} * p{k} if ok else u{j}r * u{k}r + u{j}i * u{k}i")

    def init(names):
        for n in names:
            a(f"    {n} = 0.0")

    # ---- evaluation
    a(f"def eval_k(z, {ds}, amp, meas, {ts}, hess, out):")
    a("    zf = z.ravel()\n    af = amp.ravel()\n    mf = meas.ravel()")
    for k in r:
        a(f"    a{k} = d{k}.ravel()")
    init(["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs])
    src = [(f"a{k}[i].real", f"a{k}[i].imag") for k in r]
    a("    if not hess:")
    a("        for i in range(zf.size):")
    body("            ", False, src)
    a("    else:")
    a("        for i in range(zf.size):")
    body("            ", True, src)
    outs = ["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs]
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v}")
    # ---- set-up (writes d0, d1) with the first evaluation fused
    a(f"def setup_k(z, gs, gm, gms, {ds}, amp, meas, {ts}, out):")
    a("    zf = z.ravel()\n    gsf = gs.ravel()\n    gmf = gm.ravel()\n    gmsf = gms.ravel()")
    a("    af = amp.ravel()\n    mf = meas.ravel()")
    for k in r:
        a(f"    a{k} = d{k}.ravel()")
    init(["c0", "s1", "s2"] + [f"q{k}" for k in r] + [f"g{k}" for k in r] + [f"e{k}" for k in r]
         + [f"G{j}{k}" for j, k in pairs])
    a("    for i in range(zf.size):")
    ind = "        "
    a(f"{ind}xr = gsf[i].real\n{ind}xi = gsf[i].imag\n{ind}mr = gmf[i].real\n{ind}mi = gmf[i].imag")
    a(f"{ind}er = gmsf[i].real\n{ind}ei = gmsf[i].imag")
    a(f"{ind}a0[i] = complex(er - xr, ei - xi)\n{ind}a1[i] = complex(er - mr, ei - mi)")
    src = [("er - xr", "ei - xi"), ("er - mr", "ei - mi")] + [(f"a{k}[i].real", f"a{k}[i].imag") for k in r[2:]]
    body(ind, False, src)
    a(f"{ind}c0 += xr * xr + xi * xi")
    for k in r:
        a(f"{ind}g{k} += u{k}r * xr + u{k}i * xi")
        a(f"{ind}e{k} += u{k}r * mr + u{k}i * mi")
    for j, k in pairs:
        a(f"{ind}G{j}{k} += u{j}r * u{k}r + u{j}i * u{k}i")
    outs = (["c0"] + [f"g{k}" for k in r] + [f"e{k}" for k in r] + [f"G{j}{k}" for j, k in pairs]
            + ["s1", "s2"] + [f"q{k}" for k in r])
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v}")
    # ---- update
    a(f"def apply_k(z, gs, {ds}, {ts}):")
    a("    zf = z.ravel()\n    gsf = gs.ravel()")
    for k in r:
        a(f"    a{k} = d{k}.ravel()")
    a("    for i in range(zf.size):")
    for k in r:
        a(f"        v{k} = a{k}[i]")
    a("        zf[i] += " + " + ".join(f"t{k} * v{k}" for k in r))
    a("        gsf[i] += " + " + ".join(f"t{k} * v{k}" for k in r if smask[k]))
    if K == 4 and tuple(smask) == (True, False, True, False):
        _unrolled_nostore(a, init, body, pairs)
    return "\n".join(L) + "\n"


def _unrolled_nostore(a, init, body, pairs):
    """SO4D kernels that do not store the current pair: ``d0 = gms - gs`` and ``d1 = gms - gm``
    are formed on the fly (the same single-precision differences); the update writes the previous
    pair of the next iteration (``mode`` 0: the SDA pair, 1: the step split ``(t2 d2 + t0 d0,
    t3 d3 + t1 d1)``, 2: the step of a 2-D iteration ``(t0 d0, t1 d1)``; formed in double and
    rounded once, where the torch form rounds each product) and the next modulus projection
    ``gm <- P~_m z`` in the same pass."""
    r = range(4)
    ts = ", ".join(f"t{k}" for k in r)
    head = ("    zf = z.ravel()\n    gsf = gs.ravel()\n    gmf = gm.ravel()\n    gmsf = gms.ravel()\n"
            "    af = amp.ravel()\n    mf = meas.ravel()\n    a2 = d2.ravel()\n    a3 = d3.ravel()")
    fly = [("gmsf[i].real - gsf[i].real", "gmsf[i].imag - gsf[i].imag"),
           ("gmsf[i].real - gmf[i].real", "gmsf[i].imag - gmf[i].imag"),
           ("a2[i].real", "a2[i].imag"), ("a3[i].real", "a3[i].imag")]
    # ---- evaluation
    a(f"def eval_kn(z, gs, gm, gms, d2, d3, amp, meas, {ts}, hess, out):")
    a(head)
    init(["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs])
    a("    if not hess:")
    a("        for i in range(zf.size):")
    body("            ", False, fly)
    a("    else:")
    a("        for i in range(zf.size):")
    body("            ", True, fly)
    outs = ["s1", "s2"] + [f"q{k}" for k in r] + [f"h{j}{k}" for j, k in pairs]
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v}")
    # ---- set-up with the first evaluation fused (setup_k without the two stores, and without
    # the sums the solver never reads: ||gs||^2 (only the value L needs it), Re<d_k|gs> for the
    # out-of-constraint k and the cross terms G_jk outside the in-constraint block -- NaN in out)
    sm = (True, False, True, False)
    need = {"c0": False, **{f"g{k}": sm[k] for k in r}, **{f"e{k}": True for k in r},
            **{f"G{j}{k}": j == k or (sm[j] and sm[k]) for j, k in pairs}}
    a(f"def setup_kn(z, gs, gm, gms, d2, d3, amp, meas, {ts}, out):")
    a(head)
    init(["s1", "s2"] + [f"q{k}" for k in r] + [n for n, ok in need.items() if ok])
    a("    for i in range(zf.size):")
    ind = "        "
    a(f"{ind}xr = gsf[i].real\n{ind}xi = gsf[i].imag\n{ind}mr = gmf[i].real\n{ind}mi = gmf[i].imag")
    a(f"{ind}er = gmsf[i].real\n{ind}ei = gmsf[i].imag")
    body(ind, False, [("er - xr", "ei - xi"), ("er - mr", "ei - mi")] + fly[2:])
    for k in r:
        if need[f"g{k}"]:
            a(f"{ind}g{k} += u{k}r * xr + u{k}i * xi")
        a(f"{ind}e{k} += u{k}r * mr + u{k}i * mi")
    for j, k in pairs:
        if need[f"G{j}{k}"]:
            a(f"{ind}G{j}{k} += u{j}r * u{k}r + u{j}i * u{k}i")
    outs = (["c0"] + [f"g{k}" for k in r] + [f"e{k}" for k in r] + [f"G{j}{k}" for j, k in pairs]
            + ["s1", "s2"] + [f"q{k}" for k in r])
    for n, v in enumerate(outs):
        a(f"    out[{n}] = {v if need.get(v, True) else 'np.nan'}")
    # ---- update + previous pair + next modulus projection
    a(f"def apply_kn(z, gs, gm, gms, d2, d3, amp, meas, {ts}, mode):")
    a(head)
    shift = {0: ["a2[i] = v0", "a3[i] = v1"],
             1: ["a2[i] = t2 * v2 + t0 * v0", "a3[i] = t3 * v3 + t1 * v1"],
             2: ["a2[i] = t0 * v0", "a3[i] = t1 * v1"]}
    a("    nbad = np.int32(0)")
    for mode, lines in shift.items():
        a(f"    if mode == {mode}:")
        a("        for i in range(zf.size):")
        ind = "            "
        a(f"{ind}e = gmsf[i]\n{ind}v0 = e - gsf[i]\n{ind}v1 = e - gmf[i]\n{ind}v2 = a2[i]\n{ind}v3 = a3[i]")
        a(f"{ind}zf[i] += t0 * v0 + t1 * v1 + t2 * v2 + t3 * v3")
        a(f"{ind}gsf[i] += t0 * v0 + t2 * v2")
        for ln in lines:
            a(f"{ind}{ln}")
        a(f"{ind}w = zf[i]")
        a(f"{ind}re2, im2, ok, bad = project_fast(w.real, w.imag, af[i], mf[i])")
        a(f"{ind}nbad = max(nbad, np.int32(bad))")
        a(f"{ind}gmf[i] = complex(re2, im2)")
    # the exact rule on the rare pixels the fast pass leaves (zero or extreme |rho~|)
    a("    if nbad:")
    a("        for i in range(zf.size):")
    a("            w = zf[i]")
    a("            if mf[i] and not fast_ok(w.real, w.imag):")
    a("                re2, im2 = project_pixel(w.real, w.imag, af[i])")
    a("                gmf[i] = complex(re2, im2)")


UNROLLED_MODULE = "_saddle_unrolled.py"


def unrolled_module_text() -> str:
    """The text of :mod:`phasekit.cdi._saddle_unrolled`: the K = 4 kernels of SO4D generated by
    :func:`_unrolled_source` with their decorators (``apply_kn``, which stores a modulus
    projection, is compiled without fastmath: see :mod:`phasekit.operators.modulus`).

    Examples
    --------
    A test checks that the checked-in file equals this text; :func:`write_unrolled_module`
    rewrites it.

    >>> "def eval_kn(" in unrolled_module_text()
    True"""
    head = ('"""Unrolled 4-direction kernels of SO4D (GENERATED by\n'
            "``phasekit.cdi.saddle.unrolled_module_text()``; do not edit -- rewrite it with\n"
            "``python -c 'from phasekit.cdi.saddle import write_unrolled_module as w; w()'``; a test\n"
            "checks that this file matches the generator).\n\n"
            "A real module (not ``exec``) so that numba can cache the compiled code on disk.\n"
            '"""\n# fmt: off\n# flake8: noqa\nimport numpy as np\n\n'
            "from ..operators.modulus import (fast_ok, jit_with_helpers, pixel_terms, project_fast,\n"
            "                                 project_pixel)\n\n"
            "# numba.njit(cache=True), the cache also invalidated when operators/modulus.py changes\n"
            "_jit = jit_with_helpers(fastmath=True)\n"
            '_strict = jit_with_helpers(fastmath=False, error_model="numpy")')
    out = [head]
    for line in _unrolled_source(4, (True, False, True, False)).splitlines():
        if line.startswith("def "):
            out.append("\n\n@_strict" if line.startswith("def apply_kn(") else "\n\n@_jit")
        out.append(line)
    return "\n".join(out) + "\n"


def write_unrolled_module(path=None) -> str:
    """Write :func:`unrolled_module_text` to ``path`` (default: ``phasekit/cdi/_saddle_unrolled.py``,
    atomically); returns the path written."""
    if path is None:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(os.path.dirname(here), UNROLLED_MODULE)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(unrolled_module_text())
    os.replace(tmp, path)
    return str(path)
