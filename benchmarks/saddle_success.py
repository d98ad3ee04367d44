"""Success rate of HIO, SO2D and SO4D from random starts: Marchesini (2007) Table 1 and Fig. 4.

The test (Marchesini 2007, Sec. VI; its sizes and values are not legible in our copy, see docs/saddle.md): noise-free ``|F obj|^2`` of a smooth, real,
non-negative random test pattern (``--obj`` pixels square, Gaussian-smoothed uniform noise, a 5 %
pedestal) centred in an ``--size`` grid, a square box support ``--pad`` pixels larger per side,
and **support as the only constraint** (the object is reconstructed as complex, the paper's
"more difficult problem").  The paper's sizes, threshold and beta were lost; the object was
calibrated so that HIO needs hundreds of iterations and does not always succeed (as HIO
in the paper's Table 1).  Every algorithm starts from the same random-phase starts (``rng = seed + i``).

Success: the first iteration at which ``eps^_s = ||P_sbar P_m rho|| / ||sqrt I|| < threshold``
(our success metric, the paper's being lost; free for all three algorithms: it is ``||d_sbar|| / ||sqrt I||``).  Each start
runs until the smallest threshold of ``--thresholds`` is crossed or ``--cap`` iterations, through
the shared driver (:func:`phasekit.engine.run`, one call per start, a callback that records the
crossings and stops the run).  The aligned error against the true object (global phase, shift,
twin removed) of the estimate ``P_s P_m rho`` at the stop is recorded to show that a success is a
good reconstruction.

Outputs: cumulative success vs iteration (Fig. 4 analogue), iterations to 50 % and 100 % success,
total success (Table 1 analogue), time per iteration (the algorithm's ``step`` only, from the
driver's ``iterate_s``) and wall-clock time to 50 %; a threshold sweep; a sweep of HIO's beta.
Time per iteration at this small size is dominated by Python overhead; see ``saddle_speed`` for
256^2 / 512^2.

Run ``python benchmarks/saddle_success.py`` (about 10 min on one core) or ``--quick``.
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)

import argparse
import time

import numpy as np

from _common import (RESULTS, claim, claims_markdown, fmt, machine_meta, md_table, meta_markdown,
                     save_figure, set_threads, write_results)

NAME = "saddle_success"
PAPER = {"hio": (2790, 0.82), "so2d": (656, 1.0), "so4d": (605, 1.0)}  # Table 1 (50 % its, total)


def make_problem(size, obj, pad, sigma, seed):
    from scipy.ndimage import gaussian_filter

    from phasekit.cdi import CDIProblem

    rng = np.random.default_rng(seed)
    o = gaussian_filter(rng.random((obj + 8, obj + 8)), sigma)[4:-4, 4:-4]
    o = o - o.min() + 0.05 * np.ptp(o)
    truth = np.zeros((size, size))
    c = size // 2 - obj // 2
    truth[c:c + obj, c:c + obj] = o
    sup = np.zeros((size, size), bool)
    sup[c - pad:c + obj + pad, c - pad:c + obj + pad] = True
    I = np.fft.fftshift(np.abs(np.fft.fftn(np.fft.ifftshift(truth), norm="ortho")) ** 2)
    return CDIProblem.from_arrays(I, sup), truth, sup, I


def one_start(problem, truth, alg, params, seed, cap, thresholds):
    import torch

    from phasekit.cdi.saddle import support_violation
    from phasekit.metrics import relative_error
    from phasekit.engine import Stage, run

    thr = sorted(thresholds, reverse=True)
    first = {t: None for t in thr}
    taus, inner, fallback = [], [], []

    def cb(state):
        a = state._algo
        info = getattr(a, "info", None)
        if info:
            e = info["eps_s"]
            taus.append((info["alpha"], info["beta"]))
            inner.append(info["inner_iter"])
            fallback.append(info["fallback"])
        else:
            e = support_violation(problem, a.y)
        for t in thr:
            if first[t] is None and e < t:
                first[t] = state.iteration
        if first[thr[-1]] is not None:
            raise StopIteration

    res = run(problem, [Stage(alg, cap, dict(params))], starts=1, rng=int(seed), callback=cb,
              metric_every=0, progress=False)
    n_run = res.n_iter
    err = float(relative_error(res.image, truth))
    out = {"seed": int(seed), "first": {str(t): first[t] for t in thr}, "n_iter": int(n_run),
           "iterate_s": float(res.timings["iterate_s"]), "error": err}
    if taus:
        tt = np.array(taus)
        out.update({"alpha_mean": float(tt[:, 0].mean()), "alpha_std": float(tt[:, 0].std()),
                    "beta_mean": float(tt[:, 1].mean()), "beta_std": float(tt[:, 1].std()),
                    "inner_mean": float(np.mean(inner)),
                    "fallback_frac": float(np.mean(np.array(fallback) > 0))})
    del torch
    return out


def interleaved_step_times(problem, algs, seed, repeats=15, block=40, warmup=40):
    """Time per iteration of each algorithm's ``step`` on the benchmark problem, measured in
    interleaved blocks (shuffled order per repeat) from the same start: medians of the per-repeat
    ratios to HIO, robust to the load of the shared machine (the per-start timings of the success
    runs are sequential)."""
    from phasekit.engine import get_algorithm

    x0 = problem.random_start(np.random.default_rng(seed))
    objs = {}
    for lab, (alg, params) in algs.items():
        a = get_algorithm(alg).cls(problem, 10 ** 6, **params)
        a.initialize(x0)
        for k in range(warmup):
            a.step(k)
        objs[lab] = a
    order = np.random.default_rng(0)
    t = {lab: [] for lab in objs}
    for _ in range(repeats):
        for lab in order.permutation(list(objs)):
            a = objs[lab]
            t0 = time.perf_counter()
            for k in range(block):
                a.step(k)
            t[lab].append((time.perf_counter() - t0) / block)
    ratio = {lab: float(np.median(np.array(t[lab]) / np.array(t["hio"]))) for lab in objs}
    return {"time_per_iter_s": {lab: float(np.median(v)) for lab, v in t.items()},
            "ratio_to_hio": ratio, "repeats": repeats, "block": block}


def success_stats(runs, thr, cap):
    its = np.array([r["first"][str(thr)] if r["first"][str(thr)] is not None else np.inf for r in runs],
                   float)
    n = len(its)
    ok = np.isfinite(its)
    srt = np.sort(its)
    i50 = srt[int(np.ceil(0.5 * n)) - 1]
    tpi = float(np.sum([r["iterate_s"] for r in runs]) / np.sum([r["n_iter"] for r in runs]))
    return {"threshold": thr, "n_starts": n, "success_rate": float(ok.mean()),
            "iters_50": float(i50) if np.isfinite(i50) else None,
            "iters_100": float(srt[-1]) if ok.all() else None,
            "median_success_iters": float(np.median(its[ok])) if ok.any() else None,
            "time_per_iter_s": tpi,
            "time_to_50_s": float(i50 * tpi) if np.isfinite(i50) else None,
            "median_error_success": float(np.median([r["error"] for r, o in zip(runs, ok) if o]))
            if ok.any() and thr == min(float(k) for k in runs[0]["first"]) else None,
            "cap": cap}


def curve(runs, thr, cap):
    its = np.array([r["first"][str(thr)] if r["first"][str(thr)] is not None else np.inf for r in runs])
    grid = np.unique(np.concatenate([[0], np.sort(its[np.isfinite(its)]), [cap]]))
    return grid, np.array([(its <= g).sum() for g in grid]) / len(its)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--obj", type=int, default=32)
    ap.add_argument("--pad", type=int, default=1)
    ap.add_argument("--sigma", type=float, default=1.0, help="smoothing of the test pattern (px)")
    ap.add_argument("--data-seed", type=int, default=12345)
    ap.add_argument("--starts", type=int, default=250)
    ap.add_argument("--sweep-starts", type=int, default=100)
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--cap", type=int, default=3000)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[1e-2, 1e-3, 1e-4])
    ap.add_argument("--main-threshold", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=0.9, help="HIO beta (and SO2D/SO4D's beta)")
    ap.add_argument("--betas", type=float, nargs="+", default=[0.5, 0.75, 0.9, 1.0])
    ap.add_argument("--quick", action="store_true", help="20 starts, no beta sweep; writes *_quick")
    ap.add_argument("--resummarize", action="store_true",
                    help="reuse the stored runs of the JSON; redo the timing block and the summary")
    args = ap.parse_args()
    if args.quick:
        args.starts, args.sweep_starts, args.betas = 20, 0, []
    name = NAME + ("_quick" if args.quick else "")
    threads = set_threads(1)
    meta = machine_meta({"threads": threads})
    problem, truth, sup, I = make_problem(args.size, args.obj, args.pad, args.sigma, args.data_seed)
    seeds = [args.first_seed + i for i in range(args.starts)]
    algs = {"hio": ("hio", {"beta": args.beta}), "so2d": ("so2d", {"beta": args.beta}),
            "so4d": ("so4d", {"beta": args.beta})}
    t_all = time.perf_counter()
    # warm-up (numba compilation) outside the timings
    for label, (alg, params) in algs.items():
        one_start(problem, truth, alg, params, 0, 20, args.thresholds)
    if args.resummarize:
        import json

        old = json.loads((RESULTS / f"{name}.json").read_text())
        if old["config"]["starts"] != args.starts or old["seeds"] != seeds:
            raise SystemExit("--resummarize: the stored runs were made with other settings")
        runs = old["runs"]
        sweep = {float(b): r for b, r in old["beta_runs"].items()}
        total_s = old["total_s"]
        meta["resummarized_from"] = old["meta"]["date"]
        meta["runs_loadavg"] = old["meta"].get("runs_loadavg", [old["meta"]["machine"].get("loadavg_at_start"),
                                                                  old["meta"].get("loadavg_at_end")])
    else:
        runs = {}
        for label, (alg, params) in algs.items():
            t0 = time.perf_counter()
            runs[label] = [one_start(problem, truth, alg, params, s, args.cap, args.thresholds) for s in seeds]
            print(f"{label}: {time.perf_counter() - t0:.1f} s", flush=True)
        sweep = {}
        for b in args.betas:
            if abs(b - args.beta) < 1e-12:
                sweep[b] = runs["hio"][:args.sweep_starts]
                continue
            t0 = time.perf_counter()
            sweep[b] = [one_start(problem, truth, "hio", {"beta": b}, s, args.cap, [args.main_threshold])
                        for s in seeds[:args.sweep_starts]]
            print(f"hio beta={b}: {time.perf_counter() - t0:.1f} s", flush=True)
        total_s = time.perf_counter() - t_all
        meta["runs_loadavg"] = [meta["machine"].get("loadavg_at_start"), _common.loadavg()]
    step_times = interleaved_step_times(problem, algs, seeds[0])
    print("interleaved step times", step_times, flush=True)

    thr0 = args.main_threshold
    table = {lab: {str(t): success_stats(r, t, args.cap) for t in args.thresholds} for lab, r in runs.items()}
    beta_table = {str(b): success_stats(r, thr0, args.cap) for b, r in sweep.items()}
    main_t = {lab: table[lab][str(thr0)] for lab in runs}
    solver = {lab: {k: float(np.mean([r[k] for r in runs[lab]])) for k in
                    ("alpha_mean", "alpha_std", "beta_mean", "beta_std", "inner_mean", "fallback_frac")}
              for lab in ("so2d", "so4d")}

    # ---------------------------------------------------------------- claims
    h, s2, s4 = main_t["hio"], main_t["so2d"], main_t["so4d"]

    def fewer(a, b):
        if a["iters_50"] is None:
            return False
        return b["iters_50"] is None or a["iters_50"] < b["iters_50"]

    def ratio(a, b, k):
        return (b[k] / a[k]) if (a.get(k) and b.get(k)) else None

    claims = []
    speed = None
    try:
        import json

        speed = json.loads((RESULTS / "saddle_speed.json").read_text())["results"]
    except (OSError, KeyError, ValueError):
        pass
    for lab, s in (("SO2D", s2), ("SO4D", s4)):
        r = ratio(s, h, "iters_50")
        claims.append(claim(f"{lab} reaches 50 % success in fewer iterations than HIO (paper: "
                            f"{PAPER[lab.lower()][0]} vs 2790)", fewer(s, h),
                            f"50 % at {fmt(s['iters_50'])} vs HIO {fmt(h['iters_50'])} iterations "
                            f"(ratio HIO/{lab} {fmt(r)}; paper {2790 / PAPER[lab.lower()][0]:.2f})"))
        claims.append(claim(f"{lab} succeeds at least as often as HIO (paper: 100 % vs 82 %)",
                            s["success_rate"] >= h["success_rate"],
                            f"{100 * s['success_rate']:.1f} % vs HIO {100 * h['success_rate']:.1f} % "
                            f"of {s['n_starts']} starts within {args.cap} iterations"))
        cr = step_times["ratio_to_hio"][lab.lower()]
        it_r = (s["iters_50"] / h["iters_50"]) if (s["iters_50"] and h["iters_50"]) else None
        wall = it_r * cr if it_r is not None else None
        claims.append(claim(f"{lab} reaches 50 % success sooner than HIO in wall-clock time "
                            f"(at {args.size}^2, one core)", bool(wall is not None and wall < 1),
                            f"time to 50 % relative to HIO = (its to 50 % ratio {fmt(it_r)}) x (time per "
                            f"iteration ratio x{cr:.2f}, interleaved) = {fmt(wall)}; sequential per-start "
                            f"timings: {fmt(s['time_to_50_s'])} s vs HIO {fmt(h['time_to_50_s'])} s",
                            relative_time_to_50=wall))
        for n in (256, 512):
            sp = speed.get(str(n), {}).get(lab.lower(), {}).get("ratio_to_hio") if speed else None
            if sp is not None and it_r is not None:
                claims.append(claim(f"projected: {lab} would reach 50 % sooner than HIO in wall-clock at "
                                    f"{n}^2 (this success curve x the saddle_speed cost ratio)",
                                    it_r * sp < 1, f"{fmt(it_r)} x {sp:.2f} = {fmt(it_r * sp)} "
                                    "(assumes the iteration counts carry over; not measured)"))
    for lab, s in (("SO2D", s2), ("SO4D", s4)):
        r = ratio(s, h, "iters_50")
        claims.append(claim(f"{lab}'s iteration advantage at 50 % is at least the paper's "
                            f"(x{2790 / PAPER[lab.lower()][0]:.1f})",
                            bool(r is not None and r >= 2790 / PAPER[lab.lower()][0]), f"x{fmt(r)}"))
    claims.append(claim("the inner 2-D solve needs about 3 SR1 iterations with the 5-average warm "
                        "start (paper Sec. V)", solver["so2d"]["inner_mean"] <= 3.5,
                        f"mean inner iterations per outer step: SO2D {solver['so2d']['inner_mean']:.2f}, "
                        f"SO4D {solver['so4d']['inner_mean']:.2f}; fall-back to HIO in "
                        f"{100 * solver['so2d']['fallback_frac']:.2f} % of SO2D steps"))
    best_beta = min(beta_table, key=lambda b: beta_table[b]["iters_50"] or np.inf) if beta_table else None
    if best_beta is not None:
        bb = beta_table[best_beta]
        claims.append(claim("SO2D reaches 50 % success in fewer iterations than HIO with its best beta "
                            "of the sweep", fewer(s2, bb),
                            f"SO2D {fmt(s2['iters_50'])} vs HIO(beta={best_beta}) {fmt(bb['iters_50'])} "
                            f"(sweep over {args.sweep_starts} starts)"))
    ok_err = [table[lab][str(min(args.thresholds))]["median_error_success"] for lab in runs]
    claims.append(claim(f"a success at eps_s < {min(args.thresholds):g} is a good reconstruction "
                        "(aligned relative error < 1e-2)",
                        all(e is not None and e < 1e-2 for e in ok_err),
                        "median aligned error of the successful starts: " +
                        ", ".join(f"{lab} {fmt(e)}" for lab, e in zip(runs, ok_err))))

    # ---------------------------------------------------------------- figures
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for lab, c in (("hio", "C0"), ("so2d", "C1"), ("so4d", "C2")):
        g, f = curve(runs[lab], thr0, args.cap)
        ax.step(g, 100 * f, where="post", color=c, label=f"{lab.upper()}")
    ax.axhline(50, ls=":", color="k")
    ax.set_xscale("log")
    ax.set_xlabel("iterations")
    ax.set_ylabel(f"successful starts (%) (eps_s < {thr0:g})")
    ax.set_title(f"cumulative success, {args.starts} random starts (Fig. 4 analogue)")
    ax.legend()
    save_figure(fig, RESULTS / f"{name}_cumulative.png")

    fig, axs = plt.subplots(1, 2, figsize=(11, 4))
    for lab, c in (("hio", "C0"), ("so2d", "C1"), ("so4d", "C2")):
        for t, ls in zip(sorted(args.thresholds, reverse=True), ("--", "-", ":")):
            g, f = curve(runs[lab], t, args.cap)
            axs[0].step(g, 100 * f, where="post", color=c, ls=ls, label=f"{lab.upper()} {t:g}")
    axs[0].set_xscale("log")
    axs[0].set_xlabel("iterations")
    axs[0].set_ylabel("successful starts (%)")
    axs[0].set_title("threshold sweep")
    axs[0].legend(fontsize=7, ncol=3)
    for b, r in sweep.items():
        g, f = curve(r, thr0, args.cap)
        axs[1].step(g, 100 * f, where="post", label=f"HIO beta={b}")
    g, f = curve(runs["so2d"][:args.sweep_starts] if args.sweep_starts else runs["so2d"], thr0, args.cap)
    axs[1].step(g, 100 * f, where="post", color="k", label="SO2D")
    axs[1].set_xscale("log")
    axs[1].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axs[1].set_xlabel("iterations")
    axs[1].set_title(f"HIO beta sweep ({args.sweep_starts} starts)")
    axs[1].legend(fontsize=8)
    save_figure(fig, RESULTS / f"{name}_sweeps.png")

    # ---------------------------------------------------------------- tables
    rows = []
    for lab in runs:
        s = main_t[lab]
        ti = step_times["time_per_iter_s"][lab]
        rows.append([lab.upper(), fmt(s["iters_50"]), fmt(s["iters_100"]), f"{100 * s['success_rate']:.1f} %",
                     f"{1e6 * ti:.0f} (x{step_times['ratio_to_hio'][lab]:.2f})",
                     fmt(s["iters_50"] * ti if s["iters_50"] else None),
                     f"{PAPER[lab][0]}, {100 * PAPER[lab][1]:.0f} %"])
    t1 = md_table(["algorithm", "its to 50 %", "its to 100 %", "success (total)",
                   "us / iteration (ratio to HIO), interleaved", "time to 50 % (s)", "paper (50 %, total)"], rows)
    rows = []
    for lab in runs:
        for t in sorted(args.thresholds, reverse=True):
            s = table[lab][str(t)]
            rows.append([lab.upper(), f"{t:g}", fmt(s["iters_50"]), fmt(s["iters_100"]),
                         f"{100 * s['success_rate']:.1f} %", fmt(s["median_success_iters"])])
    t2 = md_table(["algorithm", "threshold", "its to 50 %", "its to 100 %", "success", "median its (successes)"], rows)
    rows = [[f"HIO beta={b}", fmt(s["iters_50"]), fmt(s["iters_100"]), f"{100 * s['success_rate']:.1f} %",
             fmt(s["median_success_iters"])] for b, s in beta_table.items()]
    t3 = md_table(["", "its to 50 %", "its to 100 %", "success", "median its (successes)"], rows)
    rows = [[lab.upper(), f"{v['alpha_mean']:.3f} ± {v['alpha_std']:.3f}", f"{v['beta_mean']:.3f} ± {v['beta_std']:.3f}",
             f"{v['inner_mean']:.2f}", f"{100 * v['fallback_frac']:.2f} %"] for lab, v in solver.items()]
    t4 = md_table(["", "alpha (mean ± within-run std)", "beta", "inner iterations / step", "fall-back steps"], rows)
    md = f"""# saddle_success: HIO vs SO2D vs SO4D from random starts (Marchesini 2007 Table 1, Fig. 4)

Test: smooth random non-negative {args.obj}x{args.obj} pattern (sigma {args.sigma} px) in a {args.size}x{args.size}
grid, box support {args.pad} px larger per side, noise-free, **support-only constraint (complex reconstruction)**.
{args.starts} random-phase starts per algorithm (the same seeds {seeds[0]}..{seeds[-1]} for all), cap {args.cap}
iterations, beta = {args.beta} for HIO (and as SO2D/SO4D's first guess / fall-back).  Success: first iteration with
eps_s = ||P_sbar P_m rho|| / ||sqrt I|| < threshold (main threshold {thr0:g}).  **Reduced sizes**: the paper's
sizes were lost and its test took 250 starts to {2790}+ iterations; this grid is small so that the runs fit in
~10 min of one idle core (they took {total_s / 60:.1f} min of wall time here, one thread, on a shared 2-core machine with
load averages {meta['runs_loadavg'][0]} at the start and {meta['runs_loadavg'][1]} at the end of the runs; the timing
block below ran at load {meta['machine'].get('loadavg_at_start')}).  Time per iteration at {args.size}^2 is dominated by
Python overhead (the inner solve runs in Python), so the wall-clock columns use the interleaved timing block
(medians of per-repeat ratios to HIO on this problem); `saddle_speed` measures 256^2 and 512^2, and the "projected"
claims combine its ratios with these iteration counts.

## Table 1 analogue (threshold {thr0:g})

{t1}

## Claims

{claims_markdown(claims)}

## Threshold sweep

{t2}

## HIO beta sweep ({args.sweep_starts} starts, threshold {thr0:g})

{t3}

## Inner solver statistics

{t4}

![cumulative]({name}_cumulative.png)
![sweeps]({name}_sweeps.png)

{meta_markdown(meta)}
"""
    data = {"name": name, "claims": claims, "table1": main_t, "step_times": step_times, "threshold_sweep": table,
            "beta_sweep": beta_table, "solver": solver, "paper_table1": PAPER,
            "config": {k: v for k, v in vars(args).items()}, "seeds": seeds, "total_s": total_s,
            "runs": runs, "beta_runs": {str(b): r for b, r in sweep.items()}, "meta": meta}
    write_results(name, data, md)
    print(md)


if __name__ == "__main__":
    main()
