"""SBE k-means at scikit-learn's speed class (issue 16, item 6): wall time of one fit and the
objective reached against wall time, SBE vs phasekit Lloyd / mini-batch and scikit-learn's Lloyd.

Data (float32; seeds 1000 and 2000 for the two shapes, the same data for every method and seed):

* ``mix15``: a Gaussian mixture in ``d = 30`` dimensions with ``K = 15`` equally weighted
  components (means ~ N(0, 2^2 I), unit isotropic noise); ``phi`` of the true means is ~15;
* ``skew50``: ``K = 50`` components in ``d = 10``, Dirichlet(1) weights (some clusters 100x
  smaller than others), means ~ N(0, 3^2 I), anisotropic diagonal noise (scales in [0.3, 2]).

``N`` = 1e4, 2e4 (mix15 then has the shape of issue 16's measurement: 20,000 x 30, K = 15), 1e5 and 1e6 points (10, 10,
3 and 2 seeds for ``mix15``; 10, 10, 2 and 1 for ``skew50``: at 1e4 the per-seed ratio spreads
1.4-5x with scikit-learn's iteration count, so 10 seeds);
``phi`` is the thesis objective ``inertia / (2N)`` (Pham thesis eq. (4.4)), evaluated in float64
on the full data for every method.

Methods, one random start each (``init="random"``: K distinct data points), seeds 0, 1, ...:

* SBE (ours): ``SBEKMeans`` with its defaults ``M = 500``, ``imaxit = 10``, ``omaxit = 100``,
  alpha 0.75, gamma0 = K (Pham thesis Algorithm 4, §4.3);
* SBE (ours, M=500 (100,5)): the same with ``imaxit = 5``, the setting Tables 4.1-4.3 pair with
  ``M = 500`` (half the sampled points; the thesis's ``M = 1000`` runs use (150, 10));
* Lloyd (ours): ``KMeans(max_iter=300, tol=1e-4)`` (scikit-learn's defaults);
* mini-batch (ours): ``MiniBatchKMeans(batch_size=500, max_iter=1000)``, the same number of
  sampled points as SBE;
* scikit-learn ``KMeans(init="random", n_init=1)`` and ``n_init=10`` (``algorithm="lloyd"``,
  ``max_iter=300``, ``tol=1e-4``), and ``n_init=r`` with ``r`` = round(median SBE time / median
  ``n_init=1`` time) (at least 1): scikit-learn's restarts in about SBE's wall time.

Threads (like with like): one everywhere -- ``torch.set_num_threads(1)`` and numba's 1 thread
(``_common.set_threads``), ``OMP_NUM_THREADS=1`` / ``OPENBLAS_NUM_THREADS=1`` before NumPy is
imported and ``threadpoolctl.threadpool_limits(1)`` around scikit-learn's OpenMP / BLAS.

Timings: one plain ``fit`` per method and seed, interleaved, after a warm-up (numba compilation
excluded); the headline is SBE / scikit-learn ``n_init=1`` wall time per seed (median over
seeds).  Objective-vs-time curves: phasekit methods record their centres from the driver's
callback (callback time subtracted) and ``phi`` is computed afterwards; scikit-learn's curve is
``max_iter`` = 1, 2, 4, 8, 16, 300 from the same seed (each its own fit); the phasekit curves'
times leave out the end-of-fit objective and label pass.  A SBE fit on the torch reference
path (``kmeans_kernels.usable`` off) gives the speed-up of the compiled kernels.

Run ``python benchmarks/kmeans_speed.py`` (~15 min on the 2-core project machine) or ``--quick``
(1e4 points, 2 seeds, both shapes; writes ``kmeans_speed_quick.*``).
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import phasekit  # noqa: E402,F401  (before torch: OpenMP wait policy)
import numpy as np  # noqa: E402

from _common import (RESULTS, claim, claims_markdown, machine_meta, md_table, meta_markdown,  # noqa: E402
                     save_figure, set_threads, write_results)

NAME = "kmeans_speed"
SBE5 = "SBE (ours, M=500 (100,5))"  # the pairing of Pham thesis Tables 4.1-4.3 for M = 500
D, K = 30, 15  # the mix15 shape (also used by /tmp-free callers: mixture(n))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 100_000, 1_000_000])
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="seeds per size for mix15, in the order of --sizes (default 10, 10, 3, 2; "
                         "skew50 gets one fewer above 2e4, at least 1)")
    ap.add_argument("--datasets", nargs="+", default=["mix15", "skew50"], choices=["mix15", "skew50"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--replot", action="store_true", help="redraw the PNG from the saved JSON only")
    ap.add_argument("--tag", default="", help="suffix of the result files' name (e.g. the host: 'xeon')")
    return ap.parse_args(argv)


def mixture(n, seed=0):
    """``mix15``: K = 15 equal Gaussian components in d = 30, unit noise; (X float32, means)."""
    rng = np.random.default_rng(1000 + seed)
    mu = rng.normal(0.0, 2.0, (K, D))
    X = mu[rng.integers(K, size=n)] + rng.standard_normal((n, D))
    return X.astype(np.float32), mu


def skewed(n, seed=0, k=50, d=10):
    """``skew50``: K = 50 components in d = 10 with Dirichlet(1) weights and anisotropic diagonal
    noise; (X float32, means)."""
    rng = np.random.default_rng(2000 + seed)
    mu = rng.normal(0.0, 3.0, (k, d))
    w = rng.dirichlet(np.ones(k))
    scale = rng.uniform(0.3, 2.0, (k, d))
    lab = rng.choice(k, size=n, p=w)
    X = mu[lab] + scale[lab] * rng.standard_normal((n, d))
    return X.astype(np.float32), mu


DATASETS = {"mix15": (mixture, K), "skew50": (skewed, 50)}


def phi(X64, C):
    from phasekit.learn import kmeans_objective

    return kmeans_objective(X64, np.asarray(C, dtype=np.float64))


def timed_fit(make, X):
    t = time.perf_counter()
    est = make().fit(X)
    return est, time.perf_counter() - t


def curve_fit(make, X, X64, keep):
    """Fit with a callback that keeps the centres at iterations in ``keep``; returns
    [(seconds, phi)] with the callback's own time subtracted."""
    snaps, cb_time = [], [0.0]
    t0 = [0.0]

    def cb(state):
        c = time.perf_counter()
        if state.iteration in keep:
            snaps.append((c - t0[0] - cb_time[0], state.image()))
        cb_time[0] += time.perf_counter() - c

    est = make(cb)
    t0[0] = time.perf_counter()
    est.fit(X)
    return [(t, phi(X64, C)) for t, C in snaps]


def run_size(dataset, n, seeds, log):
    from sklearn.cluster import KMeans as SK

    from phasekit.learn import KMeans, MiniBatchKMeans, SBEKMeans
    from phasekit.learn import kmeans as km

    make_data, k = DATASETS[dataset]
    X, mu = make_data(n)
    X64 = X.astype(np.float64)
    out = {"dataset": dataset, "n": n, "d": X.shape[1], "k": k, "phi_true_means": phi(X64, mu),
           "seeds": list(seeds), "fits": {}, "curves": {}}

    def sk(s, n_init, max_iter=300):
        return SK(k, init="random", n_init=n_init, random_state=s, algorithm="lloyd", max_iter=max_iter,
                  tol=1e-4)

    makers = {
        "SBE (ours)": lambda s, cb=None: SBEKMeans(k, init="random", rng=s, callback=cb),
        SBE5: lambda s, cb=None: SBEKMeans(k, init="random", rng=s, n_inner=5, callback=cb),
        "Lloyd (ours)": lambda s, cb=None: KMeans(k, init="random", rng=s, max_iter=300, tol=1e-4,
                                                  callback=cb),
        "mini-batch (ours)": lambda s, cb=None: MiniBatchKMeans(k, init="random", rng=s, batch_size=500,
                                                                max_iter=1000, callback=cb),
        "sklearn n_init=1": lambda s: sk(s, 1),
        "sklearn n_init=10": lambda s: sk(s, 10),
    }
    # warm-up (numba compilation, sklearn imports) on a small slice
    for name, mk in makers.items():
        mk(0).fit(X[:2000])

    def record(name, est, t):
        rec = out["fits"].setdefault(name, {"time_s": [], "phi": [], "n_iter": []})
        rec["time_s"].append(t)
        rec["phi"].append(phi(X64, est.cluster_centers_))
        rec["n_iter"].append(int(est.n_iter_))

    for s in seeds:
        for name, mk in makers.items():
            est, t = timed_fit(lambda mk=mk, s=s: mk(s), X)
            record(name, est, t)
        log(f"  {dataset} N={n} seed {s}: " + ", ".join(f"{m} {out['fits'][m]['time_s'][-1]:.3f}s phi "
                                                        f"{out['fits'][m]['phi'][-1]:.3f}" for m in makers))
        # objective against time
        cur = out["curves"]
        cur.setdefault("SBE (ours)", []).append(curve_fit(lambda cb, s=s: makers["SBE (ours)"](s, cb), X, X64,
                                                          {5, 10, 20, 40, 70, 100}))
        cur.setdefault("Lloyd (ours)", []).append(curve_fit(lambda cb, s=s: makers["Lloyd (ours)"](s, cb), X, X64,
                                                            {1, 2, 4, 8, 16, 32, 64, 128, 300}))
        cur.setdefault("mini-batch (ours)", []).append(curve_fit(
            lambda cb, s=s: makers["mini-batch (ours)"](s, cb), X, X64, {50, 100, 200, 400, 700, 1000}))
        pts = []
        for m in (1, 2, 4, 8, 16, 300):
            est, t = timed_fit(lambda s=s, m=m: sk(s, 1, m), X)
            pts.append((t, phi(X64, est.cluster_centers_)))
        cur.setdefault("sklearn n_init=1", []).append(pts)
    # scikit-learn's restarts in about SBE's wall time
    r = max(1, round(float(np.median(out["fits"]["SBE (ours)"]["time_s"])
                           / np.median(out["fits"]["sklearn n_init=1"]["time_s"]))))
    out["equal_time_n_init"] = r
    for s in seeds:
        est, t = timed_fit(lambda s=s: sk(s, r), X)
        record("sklearn equal time", est, t)
    # the torch reference path of SBE (one seed): the speed-up of the compiled kernels
    usable = km._kern.usable
    km._kern.usable = lambda *ts: False
    try:
        est, t = timed_fit(lambda: makers["SBE (ours)"](seeds[0]), X)
    finally:
        km._kern.usable = usable
    out["sbe_reference_path"] = {"time_s": t, "phi": phi(X64, est.cluster_centers_)}
    return out


def summarise(res):
    rows, claims = [], []
    for r in res:
        f = r["fits"]
        tag = f"{r['dataset']} N={r['n']:,}"
        sk1 = np.array(f["sklearn n_init=1"]["time_s"])
        ratio = np.array(f["SBE (ours)"]["time_s"]) / sk1
        r["sbe_over_sklearn1"] = {"per_seed": ratio.tolist(), "median": float(np.median(ratio)),
                                  "of_medians": float(np.median(f["SBE (ours)"]["time_s"]) / np.median(sk1))}
        for m, v in f.items():
            label = m + (f" (n_init={r['equal_time_n_init']})" if m == "sklearn equal time" else "")
            rows.append([r["dataset"], f"{r['n']:,}", label, f"{np.median(v['time_s']):.3f}",
                         f"{np.median(v['time_s']) / np.median(sk1):.2f}", f"{np.mean(v['phi']):.3f}",
                         f"{np.min(v['phi']):.3f}", f"{np.max(v['phi']):.3f}", f"{np.median(v['n_iter']):.0f}"])
        ref = r["sbe_reference_path"]
        rows.append([r["dataset"], f"{r['n']:,}", "SBE (ours, torch reference path)", f"{ref['time_s']:.3f}",
                     f"{ref['time_s'] / np.median(sk1):.2f}", f"{ref['phi']:.3f}", "-", "-", "100"])
        med = r["sbe_over_sklearn1"]["median"]
        claims.append(claim(
            f"{tag}: one SBE fit (our defaults: M = 500, omaxit 100, imaxit 10) takes no more than 2x the wall time of one "
            f"scikit-learn Lloyd fit (init='random', n_init=1)", med <= 2.0,
            f"SBE / sklearn wall time per seed {', '.join(f'{x:.2f}' for x in ratio)} (median {med:.2f}; "
            f"SBE {np.median(f['SBE (ours)']['time_s']):.3f} s, sklearn {np.median(sk1):.3f} s, "
            f"sklearn iterations {', '.join(str(i) for i in f['sklearn n_init=1']['n_iter'])})"))
        sbe, s1, s10, seq = (np.mean(f[m]["phi"]) for m in ("SBE (ours)", "sklearn n_init=1",
                                                            "sklearn n_init=10", "sklearn equal time"))
        claims.append(claim(
            f"{tag}: SBE's mean objective is below scikit-learn n_init=1's", sbe < s1,
            f"mean phi SBE {sbe:.3f} vs sklearn n_init=1 {s1:.3f} (true means {r['phi_true_means']:.3f})"))
        t_sbe, teq = np.median(f["SBE (ours)"]["time_s"]), np.median(f["sklearn equal time"]["time_s"])
        claims.append(claim(
            f"{tag}: at about equal wall time, one SBE start reaches a lower mean objective than "
            f"scikit-learn's best of r random restarts (r = SBE time / one sklearn fit)", sbe < seq,
            f"mean phi SBE {sbe:.3f} in {t_sbe:.3f} s vs sklearn n_init={r['equal_time_n_init']} {seq:.3f} "
            f"in {teq:.3f} s"))
        t10 = np.median(f["sklearn n_init=10"]["time_s"])
        claims.append(claim(
            f"{tag}: one SBE start reaches scikit-learn n_init=10's mean objective in less time",
            bool(sbe <= s10 and t_sbe < t10),
            f"mean phi SBE {sbe:.3f} in {t_sbe:.3f} s vs sklearn n_init=10 {s10:.3f} in {t10:.3f} s"))
        r5 = np.array(f[SBE5]["time_s"]) / sk1
        p5 = np.mean(f[SBE5]["phi"])
        claims.append(claim(
            f"{tag}: one SBE fit with the thesis's M = 500 table setting (omaxit 100, imaxit 5) takes no "
            f"more than 2x the wall time of one scikit-learn Lloyd fit, and its mean objective is below "
            f"scikit-learn n_init=1's", bool(np.median(r5) <= 2.0 and p5 < s1),
            f"SBE(100,5) / sklearn per seed {', '.join(f'{x:.2f}' for x in r5)} (median {np.median(r5):.2f}); "
            f"mean phi {p5:.3f} vs sklearn n_init=1 {s1:.3f} (SBE(100,10) {sbe:.3f})"))
        claims.append(claim(
            f"{tag}: the compiled kernels make one SBE fit at least 2x faster than the torch "
            f"reference path (same seed, same result to rounding)",
            ref["time_s"] / t_sbe >= 2.0,
            f"reference {ref['time_s']:.3f} s vs compiled {t_sbe:.3f} s ({ref['time_s'] / t_sbe:.1f}x), "
            f"same seed phi {ref['phi']:.4f} vs {f['SBE (ours)']['phi'][0]:.4f}"))
    return rows, claims


def plot(res, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(dict.fromkeys(r["dataset"] for r in res))
    sizes = sorted({r["n"] for r in res})
    fig, axes = plt.subplots(len(names), len(sizes), figsize=(4.2 * len(sizes), 3.6 * len(names)),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    colours = {"SBE (ours)": "C3", SBE5: "C5", "Lloyd (ours)": "C0", "mini-batch (ours)": "C2",
               "sklearn n_init=1": "C1", "sklearn n_init=10": "k", "sklearn equal time": "C4"}
    for r in res:
        ax = axes[names.index(r["dataset"])][sizes.index(r["n"])]
        ax.set_visible(True)
        for m, curves in r["curves"].items():
            L = min(len(c) for c in curves)
            t = np.median([[p[0] for p in c[:L]] for c in curves], 0)
            v = np.mean([[p[1] for p in c[:L]] for c in curves], 0)
            ax.plot(t, v, "o-", ms=3, color=colours[m], label=m)
        for m, mark in (("sklearn n_init=10", "s"), ("sklearn equal time", "D")):
            f = r["fits"][m]
            lab = m if m != "sklearn equal time" else f"sklearn n_init={r['equal_time_n_init']} (~SBE's time)"
            ax.plot(np.median(f["time_s"]), np.mean(f["phi"]), mark, color=colours[m], label=lab)
        ax.axhline(r["phi_true_means"], color="0.6", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{r['dataset']}: N = {r['n']:,}, d = {r['d']}, K = {r['k']}", fontsize=9)
        ax.set_xlabel("wall time [s] (1 thread)")
        ax.set_ylabel("mean phi = inertia / 2N")
        lo = r["phi_true_means"]
        ax.set_ylim(lo * 0.95, lo * 2.0)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None):
    args = parse_args(argv)
    if args.replot:
        import json

        name = NAME + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
        with open(RESULTS / f"{name}.json", encoding="utf-8") as fh:
            print(plot(json.load(fh)["results"], RESULTS / f"{name}.png"))
        return
    sizes = [10_000] if args.quick else args.sizes
    seeds_per = args.seeds or ([2] if args.quick else [10, 10, 3, 2][:len(sizes)])
    seeds_per = list(seeds_per) + [seeds_per[-1]] * (len(sizes) - len(seeds_per))
    threads = set_threads(1)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    import sklearn

    from phasekit.learn import kmeans_kernels

    name = NAME + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    meta = machine_meta({"sizes": sizes, "seeds_per_size_mix15": seeds_per, "datasets": args.datasets,
                         "threads": threads, "compiled_kmeans_kernels": kmeans_kernels.available,
                         "compiled_minibatch_draws": kmeans_kernels.sampling_exact(),
                         "thread_convention": "torch 1, numba 1, OMP_NUM_THREADS=1, OPENBLAS_NUM_THREADS=1, "
                                              "threadpoolctl.threadpool_limits(1) for scikit-learn"})
    meta["versions"]["scikit-learn"] = sklearn.__version__
    try:
        import subprocess

        meta["machine"]["lscpu"] = subprocess.run(["lscpu"], capture_output=True, text=True,
                                                  timeout=10, check=False).stdout.strip().splitlines()[:20]
    except (OSError, subprocess.SubprocessError):
        pass
    res = []
    for ds in args.datasets:
        for n, ns in zip(sizes, seeds_per):
            ns = ns if ds == "mix15" or args.quick or n <= 20_000 else max(1, ns - 1)
            t = time.perf_counter()
            res.append(run_size(ds, n, list(range(ns)), print))
            print(f"{ds} N={n}: {time.perf_counter() - t:.1f} s", flush=True)
    meta["loadavg_at_end"] = list(os.getloadavg())
    rows, claims = summarise(res)
    png = plot(res, RESULTS / f"{name}.png")
    md = ["# k-means speed: SBE vs Lloyd / mini-batch (phasekit) and scikit-learn\n",
          meta_markdown(meta), "",
          (f"Load average at start {meta['machine']['loadavg_at_start']}, at end "
           f"{[round(x, 2) for x in meta['loadavg_at_end']]} (2-core machine shared with other jobs: wall "
           f"times are inflated, the ratios are side by side in one run)."), "",
          f"Threads: {meta['thread_convention']}.", "",
          "## Claims", "", claims_markdown(claims), "",
          "## One fit per method (median wall time over seeds; phi = inertia / 2N in float64)", "",
          md_table(["data", "N", "method", "time [s]", "/ sklearn n_init=1", "mean phi", "min phi", "max phi",
                    "iterations"], rows), "",
          f"![objective against wall time]({png.name})", ""]
    write_results(name, {"meta": meta, "claims": claims, "results": res}, "\n".join(md))
    for c in claims:
        print(("HOLDS " if c["holds"] else "FAILS ") + c["claim"] + " -- " + c["evidence"])


if __name__ == "__main__":
    main()
