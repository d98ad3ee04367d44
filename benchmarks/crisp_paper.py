"""CRISP paper (J. Appl. Cryst. 57, 2024; digest 003 §9): Exp-1 to Exp-3 on a scaled-down
BL24XU surrogate, claims C1-C9 and the controls (ePIE with smaller steps, raw vs energy-matched
initial probe, both xi rules).

Scaled down (2-core machine shared with other jobs): 128 x 128 frames (BL24XU geometry at
M = 128: 72.6 nm object pixels, a 55 px beam, the 90 px bright-field disc), the paper's 13 x 13
raster at 87.5 % linear overlap (7 px steps), particle-film phantom, doses 1e10 and 1e8 at the
origin, ``--iters`` sweeps (paper: 300 / 400), ``--seeds`` noise realisations with shared random
orders per seed.  Units as the paper's: unnormalised forward FFT (``fft_norm="backward"``), so
scale-adaptive clipping and fixed xi act as in the paper; fixed xi values are reported as
multiples of the noise-floor cost (the mean cost of the ground truth), since absolute values
depend on the frame size (digest 003 C9).

Usage: python benchmarks/crisp_paper.py [--iters 200] [--seeds 2] [--quick]
"""
from __future__ import annotations

import _common  # noqa: F401  (first: thread set-up)

import argparse
import time

import numpy as np

from _common import (RESULTS, claim, claims_markdown, machine_meta, md_table, meta_markdown,
                     save_figure, set_threads, write_results)

NAME = "crisp_paper"


def build(dose, seed, M=128, n=13):
    from phasekit.ptycho import probe as pr
    from phasekit.ptycho.scan import object_shape_for, raster_scan
    from phasekit.ptycho.sim import particle_film, simulate_ptycho

    geo = pr.bl24xu(M)
    bd = geo.beam_diameter_px
    probe = pr.fzp_probe(M, bd, geo.pupil_diameter_px, defocus=0.0)
    pos = raster_scan(n, overlap=0.875, probe_diameter=bd, margin=2)
    shape = object_shape_for(pos, (M, M), margin=2)
    obj = particle_film(shape, geo.pixel_size, radius_range=(110e-9, 360e-9), rng=1000)
    sim = simulate_ptycho(obj, probe, pos, dose=dose, rng=seed)
    return sim, geo


def run_one(sim, alg, iters, seed, fft_norm="backward", probe_match=True, **kw):
    import torch

    from phasekit.ptycho import PtychoProblem, reconstruct
    from phasekit.ptycho.metrics import band_mean, object_frc, probe_correlation

    prob = PtychoProblem.from_arrays(sim.intensities, sim.positions, object_shape=sim.obj.shape,
                                     fft_norm=fft_norm, probe_energy_match=probe_match)
    t0 = time.perf_counter()
    res = reconstruct(prob, algorithm=alg, n_iter=iters, rng=seed, progress=False, **kw)
    wall = time.perf_counter() - t0
    ill = prob.illumination(torch.as_tensor(sim.probe) / prob.probe_scale).numpy()
    f, c = object_frc(res.image, sim.obj, ill)
    pupil = 90.0 * (sim.probe.shape[0] / 128.0) if sim.probe.shape[0] < 90 else 90.0
    return {"R_F": res.history["R_F"], "xi": res.history.get("xi"),
            "frc_high": band_mean(f, c, 0.25, 0.5), "frc_mid": band_mean(f, c, 0.125, 0.25),
            "frc": c.tolist(), "freq": f.tolist(),
            "probe_corr": probe_correlation(res.probe, sim.probe, pupil),
            "probe_corr_modulus": probe_correlation(res.probe, sim.probe, pupil, modulus=True),
            "time_per_iter_s": res.timings["per_iteration_s"], "wall_s": wall,
            "step_o_median": res.history["step_o_median"][-1],
            "image": res.image}


def truth_cost(sim, fft_norm="backward"):
    from phasekit.ptycho import PtychoProblem

    prob = PtychoProblem.from_arrays(sim.intensities, sim.positions, probe=sim.probe,
                                     obj=sim.obj, fft_norm=fft_norm, probe_energy_match=False)
    x = prob.pack(prob.obj0, prob.probe0)
    e, rf = prob.costs_and_rfactor(x)
    return float(e.mean()), rf


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    global NAME
    if a.quick:
        a.iters, a.seeds = 20, 1
        NAME = NAME + "_quick"
    threads = set_threads(1)
    meta = machine_meta({"threads": threads})
    doses = {"high": 1e10, "low": 1e8}
    # the paper's parameters (digest 003 §4.1); lambda = alpha
    par = {"high": {"epie": dict(alpha_o=1.0, alpha_p=0.4), "rpie": dict(gamma_o=0.1, gamma_p=1.0),
                    "crisp": dict(lambda_o=1.0, lambda_p=0.4, c=0.5)},
           "low": {"epie": dict(alpha_o=0.4, alpha_p=0.2), "rpie": dict(gamma_o=0.1, gamma_p=5.0),
                   "crisp": dict(lambda_o=0.4, lambda_p=0.2, c=0.01)}}
    variants = {"ePIE": ("epie", {}), "rPIE": ("rpie", {}),
                "CRISP-noclip": ("crisp", {"clip": "none"}),
                "CRISP-epie": ("crisp", {"clip": "epie"}),
                "CRISP-scale": ("crisp", {"clip": "scale"})}
    runs: dict = {}
    t_all = time.perf_counter()
    sims = {}
    for dname, dose in doses.items():
        for s in range(a.seeds):
            sim, geo = build(dose, seed=100 + s)
            sims[(dname, s)] = sim
            ef, rf_truth = truth_cost(sim)
            runs.setdefault(dname, {}).setdefault("truth", []).append(
                {"cost_mean": ef, "R_F": rf_truth})
            for vname, (alg, extra) in variants.items():
                kw = dict(par[dname][alg])
                kw.update(extra)
                r = run_one(sim, alg, a.iters, seed=s, **kw)
                runs[dname].setdefault(vname, []).append(r)
                print(f"{dname} seed {s} {vname}: R_F {r['R_F'][-1]:.4f} FRC_high "
                      f"{r['frc_high']:.3f} {r['time_per_iter_s'] * 1e3:.1f} ms/it", flush=True)
            # controls (seed 0 only): smaller ePIE steps, the other xi rule, raw initial probe
            if s == 0:
                ctrl = {}
                for f in (0.5, 0.25):
                    kw = {k: v * f for k, v in par[dname]["epie"].items()}
                    ctrl[f"ePIE x{f}"] = run_one(sim, "epie", a.iters, seed=s, **kw)
                kw = dict(par[dname]["crisp"], clip="epie", xi_rule="c")
                ctrl["CRISP-epie xi=c*mean"] = run_one(sim, "crisp", a.iters, seed=s, **kw)
                kw = dict(par[dname]["crisp"], clip="epie")
                ctrl["CRISP-epie raw bump probe"] = run_one(sim, "crisp", a.iters, seed=s,
                                                            probe_match=False, **kw)
                ctrl["ePIE raw bump probe"] = run_one(sim, "epie", a.iters, seed=s,
                                                      probe_match=False, **par[dname]["epie"])
                # Exp-3: fixed xi as multiples of the noise-floor cost
                for m in ((0.0, 0.5, 1.0, 1.5) if not a.quick else (0.0, 1.0)):
                    kw = dict(par[dname]["crisp"], clip="epie", xi=m * ef)
                    ctrl[f"xi={m}x"] = run_one(sim, "crisp", a.iters, seed=s, **kw)
                for k, r in ctrl.items():
                    print(f"{dname} control {k}: R_F {r['R_F'][-1]:.4f} FRC_high {r['frc_high']:.3f}",
                          flush=True)
                runs[dname]["controls"] = ctrl
    total = time.perf_counter() - t_all

    def mean(d, v, key):
        return float(np.mean([r[key] for r in runs[d][v]]))

    def sd(d, v, key):
        return float(np.std([r[key] for r in runs[d][v]]))

    table = []
    for d in doses:
        for v in variants:
            table.append([d, v, mean(d, v, "frc_high"), sd(d, v, "frc_high"), mean(d, v, "frc_mid"),
                          float(np.mean([r["R_F"][-1] for r in runs[d][v]])),
                          mean(d, v, "probe_corr"), mean(d, v, "probe_corr_modulus"),
                          mean(d, v, "time_per_iter_s") * 1e3])
    claims = []
    hi, lo = "high", "low"
    # C1: R_F crossover
    rf = {v: np.mean([r["R_F"] for r in runs[hi][v]], axis=0) for v in variants}
    early = max(1, a.iters // 3)
    c1_early = rf["CRISP-epie"][early - 1] > min(rf["ePIE"][early - 1], rf["rPIE"][early - 1])
    c1_end = rf["CRISP-epie"][-1] < min(rf["ePIE"][-1], rf["rPIE"][-1])
    claims.append(claim("C1: high dose, R_F(CRISP) above ePIE/rPIE early and below both at the end",
                        c1_early and c1_end,
                        f"iteration {early}: CRISP {rf['CRISP-epie'][early - 1]:.4f}, ePIE "
                        f"{rf['ePIE'][early - 1]:.4f}, rPIE {rf['rPIE'][early - 1]:.4f}; end: CRISP "
                        f"{rf['CRISP-epie'][-1]:.4f}, ePIE {rf['ePIE'][-1]:.4f}, rPIE {rf['rPIE'][-1]:.4f}"))
    for d, cname in ((hi, "C2"), (lo, "C2-low")):
        c = mean(d, "CRISP-epie", "frc_high")
        claims.append(claim(f"{cname}: {d} dose, high-frequency FRC(CRISP) >= max(ePIE, rPIE)",
                            c >= max(mean(d, "ePIE", "frc_high"), mean(d, "rPIE", "frc_high")),
                            f"mean FRC over 0.25-0.5 cycles/px: CRISP {c:.3f}, ePIE "
                            f"{mean(d, 'ePIE', 'frc_high'):.3f}, rPIE {mean(d, 'rPIE', 'frc_high'):.3f}"))
    pcs = [mean(d, v, "probe_corr_modulus") for d in doses for v in variants]
    claims.append(claim("C4: probe correlation (Fourier, zone-plate disc) ~ 1 for every method",
                        min(pcs) > 0.95,
                        f"|F P| correlation min {min(pcs):.4f}; complex correlation min "
                        f"{min(mean(d, v, 'probe_corr') for d in doses for v in variants):.4f} "
                        "(complex values include the shift/ramp ambiguity)"))
    tr = mean(hi, "CRISP-epie", "time_per_iter_s") / mean(hi, "ePIE", "time_per_iter_s")
    trr = mean(hi, "CRISP-epie", "time_per_iter_s") / mean(hi, "rPIE", "time_per_iter_s")
    claims.append(claim("C5: time CRISP/ePIE ~ 1.09, CRISP/rPIE ~ 1.02", tr < 1.25,
                        f"CRISP/ePIE {tr:.2f}, CRISP/rPIE {trr:.2f} (same runs, shared machine)"))
    for d in doses:
        best_clip = max(mean(d, "CRISP-epie", "frc_high"), mean(d, "CRISP-scale", "frc_high"))
        others = max(mean(d, "CRISP-noclip", "frc_high"), mean(d, "ePIE", "frc_high"),
                     mean(d, "rPIE", "frc_high"))
        claims.append(claim(f"C6 ({d} dose): clipped CRISP beats unclipped CRISP, ePIE and rPIE",
                            best_clip > others, f"best clipped {best_clip:.3f} vs best other {others:.3f}"))
    claims.append(claim("C6b: the gain of clipping is larger at low dose",
                        (mean(lo, "CRISP-epie", "frc_high") - mean(lo, "CRISP-noclip", "frc_high"))
                        > (mean(hi, "CRISP-epie", "frc_high") - mean(hi, "CRISP-noclip", "frc_high")),
                        "gain low {:.3f}, high {:.3f}".format(
                            mean(lo, "CRISP-epie", "frc_high") - mean(lo, "CRISP-noclip", "frc_high"),
                            mean(hi, "CRISP-epie", "frc_high") - mean(hi, "CRISP-noclip", "frc_high"))))
    claims.append(claim("C7: ePIE-like clipping best at high dose, scale-adaptive at low dose",
                        mean(hi, "CRISP-epie", "frc_high") >= mean(hi, "CRISP-scale", "frc_high")
                        and mean(lo, "CRISP-scale", "frc_high") >= mean(lo, "CRISP-epie", "frc_high"),
                        f"high: epie {mean(hi, 'CRISP-epie', 'frc_high'):.3f} vs scale "
                        f"{mean(hi, 'CRISP-scale', 'frc_high'):.3f}; low: epie "
                        f"{mean(lo, 'CRISP-epie', 'frc_high'):.3f} vs scale "
                        f"{mean(lo, 'CRISP-scale', 'frc_high'):.3f}"))
    rank = {d: sorted(variants, key=lambda v: -mean(d, v, "frc_high")).index("rPIE") for d in doses}
    claims.append(claim("C8: rPIE good at high dose but poor at low dose",
                        rank[hi] < rank[lo] and rank[lo] >= 3,
                        f"rPIE rank (0 = best of 5) high {rank[hi]}, low {rank[lo]}"))
    for d in doses:
        ctrl = runs[d]["controls"]
        fixed = {k: v["frc_high"] for k, v in ctrl.items() if k.startswith("xi=")}
        auto = runs[d]["CRISP-epie"][0]["frc_high"]
        best_k = max(fixed, key=fixed.get)
        ef = runs[d]["truth"][0]["cost_mean"]
        xi_end = runs[d]["CRISP-epie"][0]["xi"][-1] if runs[d]["CRISP-epie"][0]["xi"] else float("nan")
        claims.append(claim(f"C9 ({d} dose): auto-xi FRC >= every fixed xi and ePIE",
                            auto >= max(fixed.values()) and auto >= runs[d]["ePIE"][0]["frc_high"],
                            f"auto {auto:.3f} (final xi = {xi_end / ef:.2f} x noise-floor cost); best "
                            f"fixed {best_k} {fixed[best_k]:.3f}; ePIE {runs[d]['ePIE'][0]['frc_high']:.3f}"))
        sm = max(ctrl["ePIE x0.5"]["frc_high"], ctrl["ePIE x0.25"]["frc_high"])
        claims.append(claim(f"control A15 ({d} dose): CRISP still beats ePIE with smaller steps",
                            runs[d]["CRISP-epie"][0]["frc_high"] >= sm,
                            f"CRISP {runs[d]['CRISP-epie'][0]['frc_high']:.3f}; ePIE x0.5 "
                            f"{ctrl['ePIE x0.5']['frc_high']:.3f}, x0.25 {ctrl['ePIE x0.25']['frc_high']:.3f}"))
        claims.append(claim(f"control A1 ({d} dose): (1-c) rule at least as good as c*mean rule",
                            runs[d]["CRISP-epie"][0]["frc_high"] >= ctrl["CRISP-epie xi=c*mean"]["frc_high"],
                            f"(1-c): {runs[d]['CRISP-epie'][0]['frc_high']:.3f}; c*mean: "
                            f"{ctrl['CRISP-epie xi=c*mean']['frc_high']:.3f}; raw (not energy-matched) "
                            f"bump probe: CRISP {ctrl['CRISP-epie raw bump probe']['frc_high']:.3f} "
                            f"(R_F {ctrl['CRISP-epie raw bump probe']['R_F'][-1]:.3f}), ePIE "
                            f"{ctrl['ePIE raw bump probe']['frc_high']:.3f}"))

    # figures
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    for i, d in enumerate(doses):
        for v in variants:
            ax[i, 0].semilogy(np.mean([r["R_F"] for r in runs[d][v]], axis=0), label=v)
            r0 = runs[d][v][0]
            ax[i, 1].plot(r0["freq"], np.mean([r["frc"] for r in runs[d][v]], axis=0), label=v)
        ax[i, 0].set_title(f"R_F, {d} dose ({doses[d]:.0e})")
        ax[i, 1].set_title(f"FRC vs truth, {d} dose")
        ax[i, 0].set_xlabel("iteration")
        ax[i, 1].set_xlabel("cycles / pixel")
        ax[i, 0].legend(fontsize=7)
        ax[i, 1].legend(fontsize=7)
    save_figure(fig, RESULTS / f"{NAME}_rf_frc.png")
    fig, ax = plt.subplots(2, 5, figsize=(16, 6.5))
    for i, d in enumerate(doses):
        sim = sims[(d, 0)]
        for j, v in enumerate(variants):
            im = runs[d][v][0]["image"]
            ph = np.angle(im * np.exp(-1j * np.angle(im.sum())))
            ax[i, j].imshow(ph, cmap="gray", vmin=-0.35, vmax=0.1)
            ax[i, j].set_title(f"{v} ({d})", fontsize=8)
            ax[i, j].axis("off")
    save_figure(fig, RESULTS / f"{NAME}_phase.png")
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for i, d in enumerate(doses):
        ctrl = runs[d]["controls"]
        xs = [float(k[3:-1]) for k in ctrl if k.startswith("xi=")]
        ys = [ctrl[k]["frc_high"] for k in ctrl if k.startswith("xi=")]
        ax[i].plot(xs, ys, "o-", label="fixed xi")
        ax[i].axhline(runs[d]["CRISP-epie"][0]["frc_high"], color="C1", label="auto xi")
        ax[i].axhline(runs[d]["ePIE"][0]["frc_high"], color="C2", ls="--", label="ePIE")
        ax[i].set_xlabel("xi / noise-floor cost")
        ax[i].set_title(f"high-frequency FRC, {d} dose")
        ax[i].legend(fontsize=8)
    save_figure(fig, RESULTS / f"{NAME}_xi_sweep.png")

    clean = {d: {v: [{k: x for k, x in r.items() if k != "image"} for r in rs]
                 if isinstance(rs, list) else rs for v, rs in runs[d].items() if v != "controls"}
             for d in doses}
    for d in doses:
        clean[d]["controls"] = {k: {kk: x for kk, x in r.items() if kk != "image"}
                                for k, r in runs[d]["controls"].items()}
    sizes = {"frame": 128, "raster": "13 x 13", "overlap": 0.875, "iterations": a.iters,
             "seeds": a.seeds, "object": list(sims[("high", 0)].obj.shape),
             "paper_sizes": "470^2 frames, 770^2 object, 300/400 iterations (scaled down here)",
             "fft_norm": "backward (the paper's units)", "total_s": total}
    md = [f"# {NAME}: CRISP paper Exp-1 to Exp-3 (scaled down)", "", meta_markdown(meta), "",
          "Sizes: " + ", ".join(f"{k} {v}" for k, v in sizes.items()), "",
          md_table(["dose", "method", "FRC 0.25-0.5 (mean)", "sd", "FRC 0.125-0.25", "final R_F",
                    "probe corr (complex)", "probe corr |FP|", "ms / iteration"], table), "",
          "## Claims", "", claims_markdown(claims), "",
          f"![R_F and FRC]({NAME}_rf_frc.png) ![phase]({NAME}_phase.png) ![xi]({NAME}_xi_sweep.png)"]
    write_results(NAME, {"meta": meta, "sizes": sizes, "claims": claims, "table": table,
                         "runs": clean}, "\n".join(md))
    print("\n".join(md[-4:-2]))


if __name__ == "__main__":
    main()
