"""GPS vs OSS vs HIO on a simulated vesicle (Pham thesis ch. 2, §2.4.1, Figs. 2.2-2.4).

One simulated data set (``simulate_cdi("vesicle", size=256, oversampling=4, target_rnoise=0.06)``:
Poisson noise calibrated to R_noise ~ 6 %), a real and non-negative object, the simulation's support
(true support dilated by 2 px).  Every algorithm runs from the same random starts (``rng=start``,
one start per call, so each start's numbers are recorded):

* HIO, beta 0.9, ``n_iter`` iterations, best-R_F iterate (``keep_best=True``);
* OSS with the matched budget (``n_iter``) and the reference default (``2 n_iter``);
* GPS-R and GPS-F with the defaults (t=1, s=0.9, 10 stages x 100, sigma 0.01 -> 0.1 at 40 %).

Per run: final R_F over the measured pixels, R_real (thesis eq. 2.31) and the relative error after
alignment to the truth (translation, twin, sign), the R_F history (every iteration), an oscillation
measure (mean |delta R_F| over the last 100 iterations) and the wall time.  Then per algorithm:
mean, std, median, IQR, min, best-5; histograms, convergence curves, best-run images with their
Fourier residual, best-5 mean / variance images, and the claims of the thesis checked one by one
(written with the numbers into ``results/gps_vesicle.json`` / ``.md`` / ``_*.png``).

Extras (reported, not headline claims): a missing-centre variant (beamstop), a sweep of GPS-F's
``c_f`` and of GPS smoothing on / off, and the noise floor (ER started from the truth).

Run ``python benchmarks/gps_vesicle.py`` (about 20 min at the defaults on the 2-core project
machine) or ``--quick`` for a smoke run (about 1 min; writes ``gps_vesicle_quick.*``).
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)

import argparse
import math
import time

import numpy as np
from scipy import stats

from _common import (RESULTS, claim, claims_markdown, fmt, machine_meta, md_table, meta_markdown,
                     save_figure, set_threads, write_results)

NAME = "gps_vesicle"
THESIS = {  # Fig. 2.2 (one reconstruction each), R_F / R_real in %
    "HIO": (12.87, 21.14), "OSS": (6.08, 3.59), "GPS-R": (5.90, 2.85), "GPS-F": (5.89, 0.7)}


# --------------------------------------------------------------------------- set-up
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="pattern side (pixels)")
    ap.add_argument("--oversampling", type=float, default=4.0, help="linear oversampling per axis")
    ap.add_argument("--rnoise", type=float, default=0.06, help="target R_noise of the Poisson noise")
    ap.add_argument("--data-seed", type=int, default=0, help="seed of the simulated data set")
    ap.add_argument("--starts", type=int, default=80, help="random starts per algorithm")
    ap.add_argument("--first-start", type=int, default=0, help="seed of the first start")
    ap.add_argument("--n-iter", type=int, default=1000, help="iterations (HIO, OSS matched, GPS)")
    ap.add_argument("--no-oss-ref", action="store_true", help="skip OSS with 2 x n_iter iterations")
    ap.add_argument("--beamstop", type=float, default=4.0,
                    help="missing-centre variant: beamstop radius in px (0: skip the variant)")
    ap.add_argument("--beamstop-starts", type=int, default=20, help="starts of the missing-centre variant")
    ap.add_argument("--sweep-starts", type=int, default=10, help="starts per sweep configuration (0: skip)")
    ap.add_argument("--cf", type=float, nargs="*", default=[1.0, 10.0],
                    help="GPS-F c_f values swept besides the default 1/(4 pi^2)")
    ap.add_argument("--metric-every", type=int, default=1, help="R_F history cadence")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch / numba threads (1 is robust on the shared 2-core machine, README)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 128^2, 3 starts, 200 iterations; writes gps_vesicle_quick.*")
    ap.add_argument("--out", default=str(RESULTS), help="results folder")
    a = ap.parse_args(argv)
    if a.quick:
        a.size, a.starts, a.n_iter = 128, 3, 200
        a.beamstop_starts, a.sweep_starts = 2, 2
    if a.starts < 1 or a.n_iter < 100:
        ap.error("need --starts >= 1 and --n-iter >= 100")
    return a


def run_configs(n_iter: int, oss_ref: bool):
    """label -> (algorithm, n_iter, params, keep_best)."""
    cfg = {"HIO": ("hio", n_iter, {"beta": 0.9}, True),
           f"OSS-{n_iter}": ("oss", n_iter, {}, None)}
    if oss_ref:
        cfg[f"OSS-{2 * n_iter}"] = ("oss", 2 * n_iter, {}, None)
    cfg["GPS-R"] = ("gps-r", n_iter, {}, None)
    cfg["GPS-F"] = ("gps-f", n_iter, {}, None)
    return cfg


def support_box(support, pad=4):
    ii, jj = np.nonzero(support)
    n = support.shape[0]
    return (slice(max(ii.min() - pad, 0), min(ii.max() + pad + 1, n)),
            slice(max(jj.min() - pad, 0), min(jj.max() + pad + 1, n)))


# --------------------------------------------------------------------------- one run
def one_run(sim, label, cfg, seed, metric_every, box):
    from phasekit.cdi.api import reconstruct
    from phasekit.metrics import align, r_real, relative_error, rfactor_image

    alg, n_iter, params, keep_best = cfg
    t0 = time.perf_counter()
    res = reconstruct(sim.intensity, sim.support, algorithm=alg, n_iter=n_iter, real=True,
                      positive=True, starts=1, rng=seed, metric_every=metric_every, progress=False,
                      mask=sim.mask, keep_best=keep_best, **params)
    wall = time.perf_counter() - t0
    img = res.image
    imag_max = float(np.abs(img.imag).max()) if np.iscomplexobj(img) else 0.0
    if imag_max == 0.0:  # real problem: the reported image is real (stored as complex64)
        img = img.real.copy()
    aligned, info = align(img, sim.truth)
    rf_hist = np.asarray(res.history.get("R_F", []), dtype=float)
    it_hist = np.asarray(res.history.get("iteration", []), dtype=int)
    tail = rf_hist[it_hist > it_hist.max() - 100] if rf_hist.size else rf_hist
    run_min = np.minimum.accumulate(rf_hist) if rf_hist.size else rf_hist
    final_best = float(run_min[-1]) if rf_hist.size else math.nan
    # first iteration whose running-min R_F is within 0.1 percentage point of the final best
    plateau = int(it_hist[np.argmax(run_min <= final_best + 1e-3)]) if rf_hist.size else None
    return {
        "label": label, "seed": int(seed),
        "R_F": float(res.rfactor),
        "R_F_numpy": float(rfactor_image(img, sim.intensity, sim.mask)),
        "R_real": float(r_real(aligned, sim.truth, align_first=False)),
        "rel_err": float(relative_error(aligned, sim.truth, align_first=False)),
        "imag_max": imag_max, "twin": bool(info["twin"]), "shift": [float(s) for s in info["shift"]],
        "osc_last100": float(np.mean(np.abs(np.diff(tail)))) if tail.size > 1 else None,
        "plateau_iter": plateau,
        "wall_s": wall, "per_iteration_s": float(res.timings.get("per_iteration_s", math.nan)),
        "_hist": (it_hist, rf_hist), "_crop": np.real(aligned[box]).astype(np.float32), "_image": img,
    }


# --------------------------------------------------------------------------- statistics
def summarize(runs):
    out = {}
    for key in ("R_F", "R_real", "rel_err", "osc_last100", "plateau_iter", "wall_s"):
        v = np.array([r[key] for r in runs if r[key] is not None], dtype=float)
        if v.size == 0:
            continue
        q25, q50, q75 = np.percentile(v, [25, 50, 75])
        out[key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                    "median": float(q50), "iqr": float(q75 - q25), "min": float(v.min()),
                    "max": float(v.max()), "n": int(v.size)}
    order = sorted(range(len(runs)), key=lambda i: runs[i]["R_F"])
    best5 = [runs[i] for i in order[:5]]
    best = runs[order[0]]
    out["best_run"] = {"seed": best["seed"], "R_F": best["R_F"], "R_real": best["R_real"],
                       "rel_err": best["rel_err"]}
    out["best5"] = {k: {"mean": float(np.mean([r[k] for r in best5])),
                        "std": float(np.std([r[k] for r in best5], ddof=1)) if len(best5) > 1 else 0.0}
                    for k in ("R_F", "R_real", "rel_err")}
    out["best5"]["seeds"] = [r["seed"] for r in best5]
    crops = np.stack([r["_crop"] for r in best5])
    out["best5"]["pixel_variance_mean"] = float(crops.var(axis=0, ddof=0).mean())
    out["twin_fraction"] = float(np.mean([r["twin"] for r in runs]))
    return out


def curves(runs, every=5):
    """Mean / quartile R_F curves over runs (sampled every ``every`` recorded points)."""
    its = runs[0]["_hist"][0]
    H = np.stack([r["_hist"][1] for r in runs if r["_hist"][1].size == its.size])
    sel = slice(every - 1, None, every) if its.size > 2 * every else slice(None)
    return {"iteration": its[sel].tolist(), "mean": H.mean(0)[sel].tolist(),
            "p25": np.percentile(H, 25, axis=0)[sel].tolist(),
            "p75": np.percentile(H, 75, axis=0)[sel].tolist(), "_full": (its, H)}


def mwu(a, b):
    """One-sided Mann-Whitney p-value for 'a tends to be smaller than b'."""
    if len(a) < 2 or len(b) < 2:
        return None
    return float(stats.mannwhitneyu(a, b, alternative="less").pvalue)


def brown_forsythe(a, b):
    if len(a) < 2 or len(b) < 2:
        return None
    return float(stats.levene(a, b, center="median").pvalue)


# --------------------------------------------------------------------------- claims
def check_claims(S, R, labels, rnoise, rf_truth, tag=""):
    """The thesis claims (§2.4.1, Figs. 2.2-2.4) on the per-label summaries ``S`` and runs ``R``."""
    oss, gpsr, gpsf, hio = labels["oss"], "GPS-R", "GPS-F", "HIO"
    vals = lambda lab, k: np.array([r[k] for r in R[lab]])  # noqa: E731
    C = []
    pct = lambda v: f"{100 * v:.2f} %"  # noqa: E731
    for key, letter in (("R_F", "a"), ("R_real", "b")):
        for o in [oss] + labels.get("oss_extra", []):
            m = {lab: S[lab][key]["mean"] for lab in (gpsr, gpsf, o, hio)}
            holds = m[gpsr] <= m[o] and m[gpsf] <= m[o] and m[o] < m[hio]
            p = {f"{g}<{o}": mwu(vals(g, key), vals(o, key)) for g in (gpsr, gpsf)}
            p[f"{o}<{hio}"] = mwu(vals(o, key), vals(hio, key))
            ev = (f"mean {key}: GPS-R {pct(m[gpsr])}, GPS-F {pct(m[gpsf])}, {o} {pct(m[o])}, "
                  f"HIO {pct(m[hio])}; one-sided Mann-Whitney p: "
                  + ", ".join(f"{k} {fmt(v, 2)}" for k, v in p.items()))
            C.append(claim(f"({letter}{tag}) mean {key}: GPS-R and GPS-F <= {o} < HIO", holds, ev,
                           means=m, mann_whitney_p=p))
    for o in [oss] + labels.get("oss_extra", []):
        sd = {lab: S[lab]["R_real"]["std"] for lab in (gpsr, gpsf, o)}
        bf = {g: brown_forsythe(vals(g, "R_real"), vals(o, "R_real")) for g in (gpsr, gpsf)}
        C.append(claim(f"(c{tag}) std of R_real: GPS-R and GPS-F < {o}",
                       sd[gpsr] < sd[o] and sd[gpsf] < sd[o],
                       f"std R_real: GPS-R {pct(sd[gpsr])}, GPS-F {pct(sd[gpsf])}, {o} {pct(sd[o])}; "
                       "Brown-Forsythe p (equal spread): "
                       + ", ".join(f"{g} vs {o} {fmt(v, 2)}" for g, v in bf.items()),
                       stds=sd, brown_forsythe_p=bf))
    mins = {g: S[g]["R_F"]["min"] for g in (gpsr, gpsf)}
    C.append(claim(f"(d{tag}) best GPS run R_F <= R_noise + 0.5 percentage point (both variants)",
                   all(v <= rnoise + 0.005 for v in mins.values()),
                   f"min R_F: GPS-R {pct(mins[gpsr])}, GPS-F {pct(mins[gpsf])}; R_noise "
                   f"{pct(rnoise)} (R_F of the noise-free truth against the data: {pct(rf_truth)})",
                   min_R_F=mins, rnoise=rnoise))
    br = {g: S[g]["best_run"]["R_real"] for g in (gpsr, gpsf)}
    C.append(claim(f"(e{tag}) R_real of the best (lowest R_F) run: GPS-F <= GPS-R", br[gpsf] <= br[gpsr],
                   f"best-run R_real: GPS-F {pct(br[gpsf])} (seed {S[gpsf]['best_run']['seed']}), "
                   f"GPS-R {pct(br[gpsr])} (seed {S[gpsr]['best_run']['seed']}); means over runs: "
                   f"GPS-F {pct(S[gpsf]['R_real']['mean'])}, GPS-R {pct(S[gpsr]['R_real']['mean'])}",
                   best_run_R_real=br))
    if tag:
        return C
    osc = {lab: S[lab]["osc_last100"]["mean"] for lab in (gpsr, gpsf, oss, hio)}
    C.append(claim("(f, thesis C3) oscillation, mean |delta R_F| over the last 100 iterations: "
                   f"GPS-R and GPS-F < {oss} and < HIO",
                   max(osc[gpsr], osc[gpsf]) < min(osc[oss], osc[hio]),
                   "mean |delta R_F| (percentage points / iteration): "
                   + ", ".join(f"{k} {100 * v:.4f}" for k, v in osc.items()), oscillation=osc))
    pv = {lab: S[lab]["best5"]["pixel_variance_mean"] for lab in (gpsr, gpsf, oss, hio)}
    C.append(claim(f"(g, thesis C4) best-5 pixel variance: GPS-R and GPS-F < {oss} < HIO",
                   max(pv[gpsr], pv[gpsf]) < pv[oss] < pv[hio],
                   "mean pixel variance of the aligned best 5 (by R_F), object crop, truth units^2: "
                   + ", ".join(f"{k} {v:.4g}" for k, v in pv.items()), pixel_variance=pv))
    med = {lab: (S[lab]["R_real"]["median"], S[lab]["R_real"]["iqr"]) for lab in (gpsr, gpsf, oss)}
    C.append(claim(f"(h, thesis falsifiable core) median and IQR of R_real: GPS-R and GPS-F < {oss}",
                   all(med[g][0] < med[oss][0] and med[g][1] < med[oss][1] for g in (gpsr, gpsf)),
                   "median / IQR of R_real: " + ", ".join(f"{k} {pct(a)} / {pct(b)}"
                                                          for k, (a, b) in med.items())))
    return C


# --------------------------------------------------------------------------- figures
COLORS = {"HIO": "tab:red", "OSS": "tab:orange", "GPS-R": "tab:blue", "GPS-F": "tab:green"}


OSS_MAIN = ["OSS-1000"]


def color(label):
    if label.startswith("OSS"):
        return "tab:orange" if label == OSS_MAIN[0] else "tab:brown"
    return COLORS.get(label, "k")


def plot_all(out, name, R, S, CV, sim, labels_order, rnoise, box, bs=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from phasekit.metrics import residual_map

    files = []
    # histograms
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, a in zip(("R_F", "R_real"), ax):
        allv = np.concatenate([[100 * r[k] for r in R[l]] for l in labels_order])
        bins = np.linspace(allv.min(), allv.max(), 40)
        for l in labels_order:
            a.hist([100 * r[k] for r in R[l]], bins=bins, histtype="step", lw=1.6, color=color(l),
                   label=f"{l} (mean {100 * S[l][k]['mean']:.2f})")
        if k == "R_F":
            a.axvline(100 * rnoise, color="k", ls=":", lw=1, label=f"R_noise {100 * rnoise:.2f}")
        a.set_xlabel(f"final {k} (%)")
        a.set_ylabel("runs")
        a.legend(fontsize=7)
    fig.suptitle(f"Vesicle, {len(R[labels_order[0]])} random starts per algorithm (cf. thesis Fig. 2.3)")
    files.append(save_figure(fig, out / f"{name}_hist.png"))
    # convergence
    fig, ax = plt.subplots(1, 2, figsize=(11, 3.8))
    for l in labels_order:
        its, H = CV[l]["_full"]
        m = 100 * H.mean(0)
        for a in ax:
            a.plot(its, m, color=color(l), lw=1.2, label=l)
        ax[1].fill_between(its, 100 * np.percentile(H, 25, 0), 100 * np.percentile(H, 75, 0),
                           color=color(l), alpha=0.15, lw=0)
    for a in ax:
        a.axhline(100 * rnoise, color="k", ls=":", lw=1)
        a.set_xlabel("iteration")
        a.set_ylabel("R_F (%)")
    ax[0].set_yscale("log")
    ax[0].set_title("mean R_F over runs")
    lo = 100 * min(S[l]["R_F"]["min"] for l in labels_order)
    ax[1].set_ylim(lo * 0.97, lo * 2.2)
    ax[1].set_title("mean and interquartile band (zoom)")
    ax[0].legend(fontsize=7)
    files.append(save_figure(fig, out / f"{name}_convergence.png"))
    # best-run images and residuals
    n = len(labels_order) + 1
    fig, ax = plt.subplots(2, n, figsize=(2.4 * n, 5))
    vmax = float(sim.truth.max())
    ax[0, 0].imshow(sim.truth[box], cmap="gray", vmin=0, vmax=vmax)
    ax[0, 0].set_title("truth", fontsize=8)
    c = sim.intensity.shape[0] // 2
    w = min(c, 64)
    fz = (slice(c - w, c + w), slice(c - w, c + w))
    res0 = residual_map(sim.truth, sim.intensity, sim.mask)
    rmax = float(np.percentile(res0[fz], 99.5))
    ax[1, 0].imshow(res0[fz], cmap="magma", vmin=0, vmax=rmax)
    ax[1, 0].set_title("residual of truth", fontsize=8)
    for j, l in enumerate(labels_order, start=1):
        b = min(R[l], key=lambda r: r["R_F"])
        ax[0, j].imshow(b["_crop"], cmap="gray", vmin=0, vmax=vmax)
        ax[0, j].set_title(f"{l}\nR_F {100 * b['R_F']:.2f}%  R_real {100 * b['R_real']:.1f}%", fontsize=8)
        ax[1, j].imshow(residual_map(b["_image"], sim.intensity, sim.mask)[fz], cmap="magma", vmin=0,
                        vmax=rmax)
        ax[1, j].set_title(f"| |Fu| - b |, {l}", fontsize=8)
    for a in ax.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("Best run (lowest R_F) of each algorithm and its Fourier residual, central "
                 f"{2 * w}x{2 * w} (cf. thesis Fig. 2.2)", fontsize=9)
    files.append(save_figure(fig, out / f"{name}_images.png"))
    # best-5 mean / variance
    fig, ax = plt.subplots(2, len(labels_order), figsize=(2.4 * len(labels_order), 5))
    vv = max(float(np.stack([r["_crop"] for r in sorted(R[l], key=lambda r: r["R_F"])[:5]]).var(0).max())
             for l in labels_order)
    for j, l in enumerate(labels_order):
        crops = np.stack([r["_crop"] for r in sorted(R[l], key=lambda r: r["R_F"])[:5]])
        ax[0, j].imshow(crops.mean(0), cmap="gray", vmin=0, vmax=vmax)
        ax[0, j].set_title(f"{l}: best-5 mean", fontsize=8)
        ax[1, j].imshow(crops.var(0), cmap="viridis", vmin=0, vmax=vv)
        ax[1, j].set_title(f"variance (mean {S[l]['best5']['pixel_variance_mean']:.3g})", fontsize=8)
    for a in ax.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle("Best 5 runs by R_F, aligned to the truth (cf. thesis Fig. 2.4; same colour scale "
                 "for all variances)", fontsize=9)
    files.append(save_figure(fig, out / f"{name}_best5.png"))
    # box plots: main and missing centre
    groups = [("main", R, labels_order)] + ([("missing centre", bs["runs"], bs["labels"])] if bs else [])
    fig, ax = plt.subplots(len(groups), 2, figsize=(11, 3.4 * len(groups)), squeeze=False)
    for g, (gname, RR, labs) in enumerate(groups):
        for k, a in zip(("R_F", "R_real"), ax[g]):
            a.boxplot([[100 * r[k] for r in RR[l]] for l in labs], showfliers=True)
            a.set_xticks(range(1, len(labs) + 1), labs, fontsize=8)
            a.set_ylabel(f"{k} (%)")
            a.set_title(f"{gname}: {k}", fontsize=9)
    files.append(save_figure(fig, out / f"{name}_box.png"))
    return [str(f.name) for f in files]


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    thr = set_threads(args.threads)
    from pathlib import Path

    import phasekit  # noqa: F401
    from phasekit.cdi.api import reconstruct
    from phasekit.cdi.gps import GPSF
    from phasekit.cdi.problem import CDIProblem
    from phasekit.metrics import r_real, rfactor_image
    from phasekit.sim import simulate_cdi

    out = Path(args.out)
    name = NAME + ("_quick" if args.quick else "")
    t_start = time.perf_counter()
    meta = machine_meta()
    meta["threads"] = thr
    sim = simulate_cdi("vesicle", size=args.size, oversampling=args.oversampling,
                       target_rnoise=args.rnoise, rng=args.data_seed)
    rf_truth = rfactor_image(sim.truth, sim.intensity, sim.mask)
    box = support_box(sim.support)
    print(f"data: {args.size}^2 vesicle, R_noise {sim.rnoise:.4f}, R_F(truth) {rf_truth:.4f}, "
          f"photons {sim.photons:.3g}, support {int(sim.support.sum())} px, area oversampling "
          f"{sim.params['support_oversampling_area']:.1f}", flush=True)
    # noise floor: ER from the truth
    er = reconstruct(sim.intensity, sim.support, algorithm="er", n_iter=200, real=True, positive=True,
                     x0=sim.truth, mask=sim.mask, metric_every=0, progress=False)
    floor = {"R_F_truth": float(rf_truth), "ER200_from_truth_R_F": float(er.rfactor),
             "ER200_from_truth_R_real": float(r_real(er.image, sim.truth))}
    print(f"noise floor: ER(200) from the truth R_F {floor['ER200_from_truth_R_F']:.4f} R_real "
          f"{floor['ER200_from_truth_R_real']:.4f}", flush=True)
    # how much the default GPS-F filter smooths inside the object region
    prob = CDIProblem.from_arrays(sim.intensity, sim.support, sim.mask, real=True, positive=True)
    g = GPSF(prob, args.n_iter)
    rmax2 = float((g._r2 * prob.support).max())
    gpsf_strength = {"gammas": g.gammas, "max_s_gamma_r2_on_support_per_stage":
                     [g.s * gm * rmax2 for gm in g.gammas]}

    cfgs = run_configs(args.n_iter, not args.no_oss_ref)
    labels_order = list(cfgs)
    oss_main = f"OSS-{args.n_iter}"
    OSS_MAIN[0] = oss_main
    labels = {"oss": oss_main, "oss_extra": [l for l in labels_order if l.startswith("OSS") and l != oss_main]}
    R = {l: [] for l in labels_order}
    seeds = list(range(args.first_start, args.first_start + args.starts))
    t_main = time.perf_counter()
    for i, s in enumerate(seeds):
        line = []
        for l, cfg in cfgs.items():
            r = one_run(sim, l, cfg, s, args.metric_every, box)
            R[l].append(r)
            line.append(f"{l} {100 * r['R_F']:.2f}/{100 * r['R_real']:.1f} ({r['wall_s']:.1f}s)")
        el = time.perf_counter() - t_main
        print(f"[{i + 1}/{len(seeds)} seed {s}] " + "  ".join(line)
              + f"  | {el / 60:.1f} min, ~{el / (i + 1) * (len(seeds) - i - 1) / 60:.1f} min left", flush=True)

    # missing-centre variant
    bs = None
    if args.beamstop > 0 and args.beamstop_starts > 0:
        sim_b = simulate_cdi("vesicle", size=args.size, oversampling=args.oversampling,
                             target_rnoise=args.rnoise, rng=args.data_seed, beamstop=args.beamstop)
        cf_b = {l: c for l, c in cfgs.items() if l in ("HIO", oss_main, "GPS-R", "GPS-F")}
        RB = {l: [] for l in cf_b}
        box_b = support_box(sim_b.support)
        for s in seeds[:args.beamstop_starts]:
            for l, cfg in cf_b.items():
                RB[l].append(one_run(sim_b, l, cfg, s, args.metric_every, box_b))
            print(f"[missing centre seed {s}] " + "  ".join(
                f"{l} {100 * RB[l][-1]['R_F']:.2f}/{100 * RB[l][-1]['R_real']:.1f}" for l in RB), flush=True)
        SB = {l: summarize(RB[l]) for l in RB}
        rf_truth_b = rfactor_image(sim_b.truth, sim_b.intensity, sim_b.mask)
        bs = {"runs": RB, "labels": list(cf_b), "summary": SB, "rnoise": sim_b.rnoise,
              "R_F_truth": float(rf_truth_b), "n_unmeasured": int((~sim_b.mask).sum()),
              "claims": check_claims(SB, RB, {"oss": oss_main}, sim_b.rnoise, rf_truth_b,
                                     tag=", missing centre")}

    # sweeps (paired with the first sweep_starts seeds of the main run)
    sweep = []
    if args.sweep_starts > 0:
        ss = seeds[:args.sweep_starts]
        base = {"GPS-F c_f=1/(4pi^2) (default)": R["GPS-F"][:len(ss)],
                "GPS-R smoothing gaussian (default)": R["GPS-R"][:len(ss)]}
        extra = {}
        for cf in args.cf:
            extra[f"GPS-F c_f={cf:g}"] = ("gps-f", args.n_iter, {"c_f": cf}, None)
        extra["GPS-F smoothing none"] = ("gps-f", args.n_iter, {"smoothing": "none"}, None)
        extra["GPS-R smoothing none"] = ("gps-r", args.n_iter, {"smoothing": "none"}, None)
        extra["GPS-R c_r=10"] = ("gps-r", args.n_iter, {"c_r": 10.0}, None)
        runs_sw = dict(base)
        for l, cfg in extra.items():
            runs_sw[l] = [one_run(sim, l, cfg, s, args.metric_every, box) for s in ss]
            print(f"[sweep] {l}: mean R_F {100 * np.mean([r['R_F'] for r in runs_sw[l]]):.2f} "
                  f"R_real {100 * np.mean([r['R_real'] for r in runs_sw[l]]):.1f}", flush=True)
        for l, rr in runs_sw.items():
            sm = summarize(rr)
            sweep.append({"config": l, "starts": len(rr), "R_F_mean": sm["R_F"]["mean"],
                          "R_F_min": sm["R_F"]["min"], "R_real_mean": sm["R_real"]["mean"],
                          "R_real_std": sm["R_real"]["std"], "R_real_best_run": sm["best_run"]["R_real"],
                          "osc_last100": sm["osc_last100"]["mean"],
                          "runs": [{k: r[k] for k in ("seed", "R_F", "R_real", "rel_err")} for r in rr]})

    # summaries, claims, figures
    S = {l: summarize(R[l]) for l in labels_order}
    CV = {l: curves(R[l]) for l in labels_order}
    claims = check_claims(S, R, labels, sim.rnoise, rf_truth)
    if bs:
        claims += bs["claims"]
    rfdiff = max(abs(r["R_F"] - r["R_F_numpy"]) for l in R for r in R[l])
    figs = plot_all(out, name, R, S, CV, sim, labels_order, sim.rnoise, box, bs)
    total = time.perf_counter() - t_start

    def strip(r):
        return {k: v for k, v in r.items() if not k.startswith("_")}

    data = {
        "meta": {**meta, "name": name, "quick": args.quick, "args": vars(args),
                 "sizes": {"pattern": [args.size, args.size], "object_extent": sim.params["object_shape"]},
                 "seeds": {"data": args.data_seed, "starts": seeds},
                 "data": {k: sim.params[k] for k in ("photons", "rnoise", "oversampling_area",
                                                      "support_oversampling_area", "n_measured",
                                                      "support_dilation", "object_shape")},
                 "runtime_s": total},
        "algorithms": {l: {"algorithm": c[0], "n_iter": c[1], "params": c[2], "keep_best": c[3],
                           "real": True, "positive": True} for l, c in cfgs.items()},
        "claims": claims,
        "summary": S,
        "thesis_fig_2_2_percent": {k: {"R_F": v[0], "R_real": v[1]} for k, v in THESIS.items()},
        "noise_floor": floor,
        "gpsf_default_filter_strength": gpsf_strength,
        "rf_internal_vs_numpy_max_abs_diff": rfdiff,
        "convergence": {l: {k: v for k, v in CV[l].items() if k != "_full"} for l in labels_order},
        "runs": {l: [strip(r) for r in R[l]] for l in labels_order},
        "missing_centre": None if bs is None else {
            "beamstop_radius_px": args.beamstop, "rnoise": bs["rnoise"], "R_F_truth": bs["R_F_truth"],
            "n_unmeasured": bs["n_unmeasured"], "summary": bs["summary"],
            "runs": {l: [strip(r) for r in bs["runs"][l]] for l in bs["labels"]}},
        "sweep": sweep,
        "figures": figs,
    }
    md = markdown(data, labels_order, S, bs, sweep, figs, meta, sim, args, floor, gpsf_strength, total)
    write_results(name, data, md, out)
    print(f"wrote {out / (name + '.json')} ({total / 60:.1f} min)")
    for c in claims:
        print(("HOLDS   " if c["holds"] else "FAILS   " if c["holds"] is False else "N/A     ") + c["claim"])


def markdown(data, labels_order, S, bs, sweep, figs, meta, sim, args, floor, gps_s, total):
    p = lambda v: 100 * v  # noqa: E731
    L = [f"# {data['meta']['name']}: GPS vs OSS vs HIO on a simulated vesicle (thesis ch. 2)", "",
         meta_markdown(meta), "",
         f"Data: `simulate_cdi('vesicle', size={args.size}, oversampling={args.oversampling:g}, "
         f"target_rnoise={args.rnoise}, rng={args.data_seed})`: R_noise = {p(sim.rnoise):.2f} %, "
         f"{sim.photons:.3g} photons, object {sim.params['object_shape']} px, support "
         f"{int(sim.support.sum())} px (area oversampling {sim.params['support_oversampling_area']:.1f}). "
         f"Real + non-negative object, support = simulation's support. {args.starts} random starts "
         f"(seeds {data['meta']['seeds']['starts'][0]}..{data['meta']['seeds']['starts'][-1]}), one per "
         f"call, the same seeds for every algorithm; torch/numba threads {args.threads}. "
         f"Total run time {total / 60:.1f} min.", "",
         "R_F over the measured pixels (phasekit's internal value; the NumPy `metrics.rfactor_image` "
         f"agrees to {data['rf_internal_vs_numpy_max_abs_diff']:.1e}); R_real = thesis eq. (2.31) and "
         "rel. err = ||x - x_true|| / ||x_true||, both after `metrics.align` (translation, twin, sign). "
         "All values in %.", "",
         "## Per-algorithm statistics", ""]
    rows = []
    for l in labels_order:
        s = S[l]
        rows.append([l, f"{p(s['R_F']['mean']):.3f} ± {p(s['R_F']['std']):.3f}", p(s['R_F']['median']),
                     p(s['R_F']['iqr']), p(s['R_F']['min']),
                     f"{p(s['R_real']['mean']):.2f} ± {p(s['R_real']['std']):.2f}", p(s['R_real']['median']),
                     p(s['R_real']['iqr']), p(s['R_real']['min']), p(s['rel_err']['mean']),
                     f"{p(s['best5']['R_F']['mean']):.3f} / {p(s['best5']['R_real']['mean']):.2f}",
                     f"{p(s['best_run']['R_F']):.3f} / {p(s['best_run']['R_real']):.2f}",
                     f"{100 * s['osc_last100']['mean']:.4f}", s['plateau_iter']['median'],
                     f"{s['twin_fraction']:.2f}", f"{s['wall_s']['mean']:.2f}"])
    L.append(md_table(["algorithm", "R_F mean ± std", "R_F median", "R_F IQR", "R_F min",
                       "R_real mean ± std", "R_real median", "R_real IQR", "R_real min", "rel. err mean",
                       "best-5 R_F / R_real", "best run R_F / R_real", "osc. last 100 (pp/it)",
                       "plateau iter (median)", "twin fraction", "s / run"], rows))
    L += ["", "osc. = mean |R_F(k) - R_F(k-1)| over the last 100 iterations (percentage points); "
          "plateau iter = first iteration whose running-min R_F is within 0.1 pp of the run's final best; "
          "best run = lowest final R_F.", "",
          "## Thesis (Fig. 2.2, one reconstruction each) next to ours (best run by R_F)", ""]
    rows = []
    for k, (tf, tr) in THESIS.items():
        labs = [l for l in labels_order if l == k or (k == "OSS" and l.startswith("OSS"))]
        for l in labs:
            rows.append([l, tf, tr, p(S[l]["best_run"]["R_F"]), p(S[l]["best_run"]["R_real"]),
                         p(S[l]["R_F"]["mean"]), p(S[l]["R_real"]["mean"])])
    L.append(md_table(["algorithm", "thesis R_F", "thesis R_real", "ours best-run R_F",
                       "ours best-run R_real", "ours mean R_F", "ours mean R_real"], rows))
    L += ["", "Absolute numbers differ from the thesis: its vesicle phantom, support, image size, "
          "oversampling, flux and the HIO/OSS iteration counts are unspecified (§2.4.1); "
          "phasekit's `vesicle` phantom is a stand-in. Only the orderings are comparable. "
          f"Noise floor on this data: R_F of the truth {p(floor['R_F_truth']):.2f} %; ER (200 it.) "
          f"started from the truth: R_F {p(floor['ER200_from_truth_R_F']):.2f} %, R_real "
          f"{p(floor['ER200_from_truth_R_real']):.2f} %.", "", "## Claims", "",
          claims_markdown(data["claims"]), ""]
    if bs:
        L += [f"## Missing-centre variant (beamstop radius {args.beamstop:g} px, "
              f"{bs['n_unmeasured']} unmeasured pixels, {args.beamstop_starts} starts)", ""]
        rows = []
        for l in bs["labels"]:
            s = bs["summary"][l]
            rows.append([l, f"{p(s['R_F']['mean']):.3f} ± {p(s['R_F']['std']):.3f}", p(s['R_F']['min']),
                         f"{p(s['R_real']['mean']):.2f} ± {p(s['R_real']['std']):.2f}",
                         p(s['R_real']['median']), p(s['best_run']['R_real'])])
        L += [md_table(["algorithm", "R_F mean ± std", "R_F min", "R_real mean ± std", "R_real median",
                        "best-run R_real"], rows), "",
              f"R_noise {p(bs['rnoise']):.2f} %, R_F of the truth {p(bs['R_F_truth']):.2f} %. Claims "
              "(a)-(e) for this variant are in the table above with the suffix 'missing centre'.", ""]
    if sweep:
        L += [f"## Sweep (not headline claims; {args.sweep_starts} starts each, the same seeds)", ""]
        L.append(md_table(["configuration", "R_F mean", "R_F min", "R_real mean ± std", "best-run R_real",
                           "osc. last 100 (pp/it)"],
                          [[s["config"], p(s["R_F_mean"]), p(s["R_F_min"]),
                            f"{p(s['R_real_mean']):.2f} ± {p(s['R_real_std']):.2f}", p(s["R_real_best_run"]),
                            f"{100 * s['osc_last100']:.4f}"] for s in sweep]))
        mx = gps_s["max_s_gamma_r2_on_support_per_stage"]
        L += ["", f"With the default c_f = 1/(4 pi^2) the GPS-F weight exp(-s gamma r^2) is at least "
              f"exp(-{mx[-1]:.3g}) = {math.exp(-mx[-1]):.3f} on the support even in the last stage "
              f"(first stage exp(-{mx[0]:.2g})), i.e. GPS-F smooths almost nothing inside the object "
              "with the default constant.", ""]
    L += ["## Figures", ""] + [f"* `{f}`" for f in figs]
    return "\n".join(L)


if __name__ == "__main__":
    main()
