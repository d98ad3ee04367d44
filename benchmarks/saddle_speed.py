"""Time per iteration of SO2D and SO4D against HIO at 256^2 and 512^2 (one core, side by side).

Claim (issue 3, item 6; Marchesini 2007 Sec. VI): an SO2D iteration costs HIO's two FFTs plus
O(N) elementwise passes and dot products; phasekit aims at <= 1.5x HIO's time per iteration (the
paper's Matlab reported 3x for SO2D and 4x for SO4D).

Problem: a random complex object (amplitude U[0,1), phase U[0,1) rad) in a centred square support
of half the array per axis, ``I = |F obj|^2``, complex64, support-only constraint -- the
``cdi_speed`` pattern.  Each algorithm is stepped from the same random start (``Algorithm.step``
in a loop, no metrics, as the driver's ``iterate_s`` counts it); blocks of ``--block`` steps of
HIO, SO2D and SO4D are timed in a shuffled order in each repeat and the ratio to the HIO block of
the same repeat is kept; tables give medians over repeats, so slow phases of the shared machine
cancel.  FFTs per iteration are counted by wrapping the problem's ``fft`` / ``ifft``.

A second table splits an SO2D iteration into its passes (each fused CPU kernel timed alone) and the
rest (Python, wrappers, in-loop cache misses).

Run ``python benchmarks/saddle_speed.py`` (under a minute on one core) or ``--quick``.
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)

import argparse
import time

import numpy as np

from _common import (RESULTS, claim, claims_markdown, loadavg, machine_meta, md_table, meta_markdown,
                     save_figure, set_threads, write_results)

NAME = "saddle_speed"
TARGET = 1.5
ALGS = ("hio", "so2d", "so4d")


def make_problem(n, seed=0):
    from phasekit.cdi import CDIProblem

    rng = np.random.default_rng(seed)
    obj = np.zeros((n, n), complex)
    s = slice(n // 4, 3 * n // 4)
    obj[s, s] = rng.random((n // 2, n // 2)) * np.exp(1j * rng.random((n // 2, n // 2)))
    I = np.fft.fftshift(np.abs(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho")) ** 2)
    return CDIProblem.from_arrays(I, np.abs(obj) > 0)


def count_ffts(problem, algo, n=5):
    calls = [0]
    f, fi = problem.fft, problem.ifft

    def cf(x, *a, **kw):
        calls[0] += 1
        return f(x, *a, **kw)

    def ci(x, *a, **kw):
        calls[0] += 1
        return fi(x, *a, **kw)

    problem.fft, problem.ifft = cf, ci
    try:
        for k in range(n):
            algo.step(k)
    finally:
        problem.fft, problem.ifft = f, fi
    return calls[0] / n


def pass_costs(p, algo, reps=41):
    """Median time of each pass of one SO2D iteration on the fused CPU path, run in isolation on
    copies of the algorithm's arrays (warm caches: a lower bound of their cost inside the loop)."""
    import torch

    from phasekit.cdi import saddle as S

    if not (S.HAVE_NUMBA and algo._fused):
        return None
    v = algo._get_views()
    z, gs, gm = (v[k].copy() for k in ("z", "gs", "gm"))
    amp, meas = v["amp"], v["meas"]
    y = algo.y.clone()
    gms = p.fft(y).contiguous().numpy()
    supp = p.support.numpy()
    out = np.empty(12)
    zt = torch.from_numpy(gm)

    def med(f):
        f()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    return {"fft_pair_s": med(lambda: p.fft(p.ifft(zt))),
            "mask_s": med(lambda: S._MASK(y.numpy(), supp, False)),
            "setup_s": med(lambda: S._SETUP2N(z, gs, gm, gms, amp, meas, 1.0, 0.9, out)),
            "evaluation_s": med(lambda: S._EVAL2N(z, gs, gm, gms, amp, meas, 1.0, 0.9, False, out)),
            "update_s": med(lambda: S._APPLY2P(z, gs, gm, gms, amp, meas, 0.0, 0.0))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--block", type=int, default=20, help="steps per timed block")
    ap.add_argument("--warmup", type=int, default=30, help="steps before timing (past SO2D's warm-up)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tag", default="", help="suffix of the result files' name (e.g. the host: 'xeon')")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats, args.block = [256], 5, 10
    name = NAME + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    threads = set_threads(1)
    meta = machine_meta({"threads": threads})
    from phasekit.engine import get_algorithm

    order_rng = np.random.default_rng(0)
    results = {}
    costs = {}
    for n in args.sizes:
        p = make_problem(n)
        x0 = p.random_start(np.random.default_rng(1))
        algos = {a: get_algorithm(a).cls(p, 10 ** 6) for a in ALGS}
        ffts = {}
        inner = {}
        for a, al in algos.items():
            al.initialize(x0)
            ffts[a] = count_ffts(p, al)
            for k in range(args.warmup):
                al.step(k)
        times = {a: [] for a in ALGS}
        ratios = {a: [] for a in ALGS}
        evals = {a: [] for a in ALGS if a != "hio"}
        for r in range(args.repeats):
            t_rep = {}
            for a in order_rng.permutation(ALGS):
                al = algos[a]
                ev = 0.0
                t0 = time.perf_counter()
                for k in range(args.block):
                    al.step(k)
                    if a != "hio":
                        ev += al.info["inner_eval"]
                t_rep[a] = (time.perf_counter() - t0) / args.block
                if a != "hio":
                    evals[a].append(ev / args.block)
            for a in ALGS:
                times[a].append(t_rep[a])
                ratios[a].append(t_rep[a] / t_rep["hio"])
        for a in evals:
            inner[a] = float(np.mean(evals[a]))
        costs[n] = pass_costs(p, algos["so2d"])
        results[n] = {a: {"time_per_iter_s": float(np.median(times[a])),
                          "ratio_to_hio": float(np.median(ratios[a])),
                          "ratio_q25": float(np.percentile(ratios[a], 25)),
                          "ratio_q75": float(np.percentile(ratios[a], 75)),
                          "ffts_per_iter": ffts[a],
                          "mean_evaluations_per_iter": inner.get(a)} for a in ALGS}
        print(n, {a: round(results[n][a]["ratio_to_hio"], 3) for a in ALGS}, flush=True)

    claims = []
    for n in args.sizes:
        r2 = results[n]["so2d"]["ratio_to_hio"]
        claims.append(claim(f"SO2D time per iteration <= {TARGET}x HIO's at {n}^2 (one core)", r2 <= TARGET,
                            f"x{r2:.2f} (IQR {results[n]['so2d']['ratio_q25']:.2f}-"
                            f"{results[n]['so2d']['ratio_q75']:.2f}); HIO "
                            f"{1e3 * results[n]['hio']['time_per_iter_s']:.2f} ms, SO2D "
                            f"{1e3 * results[n]['so2d']['time_per_iter_s']:.2f} ms"))
        r4 = results[n]["so4d"]["ratio_to_hio"]
        claims.append(claim(f"SO4D time per iteration below the paper's Matlab factor 4 at {n}^2", r4 < 4,
                            f"x{r4:.2f}; {results[n]['so4d']['mean_evaluations_per_iter']:.1f} "
                            "subspace evaluations per iteration"))
        f2 = results[n]["so2d"]["ffts_per_iter"]
        f4 = results[n]["so4d"]["ffts_per_iter"]
        claims.append(claim(f"SO2D and SO4D do HIO's 2 FFTs per iteration ({n}^2)",
                            f2 == results[n]["hio"]["ffts_per_iter"] == f4 == 2,
                            f"counted: HIO {results[n]['hio']['ffts_per_iter']:g}, SO2D {f2:g}, SO4D {f4:g}"))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    w = 0.25
    for i, a in enumerate(ALGS):
        ax.bar(np.arange(len(args.sizes)) + (i - 1) * w, [results[n][a]["ratio_to_hio"] for n in args.sizes],
               w, label=a.upper())
    ax.axhline(TARGET, ls="--", color="k", lw=0.8, label=f"target {TARGET}x")
    ax.set_xticks(range(len(args.sizes)), [f"{n}^2" for n in args.sizes])
    ax.set_ylabel("time per iteration / HIO's")
    ax.legend()
    save_figure(fig, RESULTS / f"{name}_ratio.png")

    crows = []
    for n in args.sizes:
        c = costs.get(n)
        if not c:
            continue
        t_so2d = results[n]["so2d"]["time_per_iter_s"]
        ev = results[n]["so2d"]["mean_evaluations_per_iter"]
        passes = c["fft_pair_s"] + c["mask_s"] + c["setup_s"] + max(ev - 1, 0) * c["evaluation_s"] + c["update_s"]
        c["rest_s"] = t_so2d - passes
        crows.append([f"{n}^2", f"{1e3 * results[n]['hio']['time_per_iter_s']:.3f}", f"{1e3 * t_so2d:.3f}",
                      f"{1e3 * c['fft_pair_s']:.3f}", f"{1e3 * c['mask_s']:.3f}", f"{1e3 * c['setup_s']:.3f}",
                      f"{1e3 * c['evaluation_s']:.3f} x {max(ev - 1, 0):.2f}", f"{1e3 * c['update_s']:.3f}",
                      f"{1e3 * c['rest_s']:.3f}"])
    rows = []
    for n in args.sizes:
        for a in ALGS:
            r = results[n][a]
            rows.append([f"{n}^2", a.upper(), f"{1e3 * r['time_per_iter_s']:.3f}", f"{r['ratio_to_hio']:.2f}",
                         f"{r['ratio_q25']:.2f}-{r['ratio_q75']:.2f}", f"{r['ffts_per_iter']:g}",
                         "-" if r["mean_evaluations_per_iter"] is None else f"{r['mean_evaluations_per_iter']:.2f}"])
    md = f"""# saddle_speed: SO2D / SO4D vs HIO time per iteration (one core)

Random complex object in a half-size square support, complex64, support only; `Algorithm.step` timed in
blocks of {args.block} after {args.warmup} warm-up steps, {args.repeats} repeats in shuffled order, ratios to the HIO
block of the same repeat (medians).  Subspace evaluations = passes of the FFT-free L(tau) evaluation per
outer iteration (the first one is fused into the set-up pass).

{md_table(["size", "algorithm", "ms / iteration", "ratio to HIO", "ratio IQR", "FFTs / iteration", "evaluations / iteration"], rows)}

Where an SO2D iteration's time goes (ms; each fused CPU pass timed alone on copies of the arrays, so
with warm caches -- inside the loop they cost more; "rest" = SO2D's time per iteration minus the
passes: Python, the FFT wrappers, and the cache misses and other jobs' interference inside the loop):

{md_table(["size", "HIO", "SO2D", "FFT pair", "mask", "set-up + 1st evaluation", "evaluation x extra", "update + next projection", "rest"], crows) if crows else "(fused kernels not available)"}

Load average (1, 5, 15 min) at start {meta["machine"].get("loadavg_at_start")}, at end {loadavg()} (a shared
2-core machine: other jobs raise SO2D's ratio more than HIO's -- its working set is larger).

## Claims

{claims_markdown(claims)}

![ratio]({name}_ratio.png)

{meta_markdown(meta)}
"""
    write_results(name, {"name": name, "claims": claims, "results": {str(k): v for k, v in results.items()},
                         "pass_costs": {str(k): v for k, v in costs.items()},
                         "config": vars(args), "target_ratio": TARGET, "meta": meta}, md)
    print(md)


if __name__ == "__main__":
    main()
