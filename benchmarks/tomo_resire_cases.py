"""B2, B5, B6: RESIRE on a cell-like high-SNR series, partially blocked projections, an extended
thin film, a dual-axis series, and the step-size / oversampling study (Pham thesis Ch. 3
§3.3.2, the step size of §3.2.1.2 and the claims without experiments of §3.4).

* **cell** (B2, C4): cell-like phantom, 42 projections -58:3:65, 1 % Gaussian noise, data from
  the independent fine-grid projector, 150 iterations of RESIRE and SIRT (phasekit and ASTRA),
  FBP (phasekit, ASTRA).  Reduced size: 64^3 (the thesis' cyanobacterium was larger).
* **blocked** (B5b): vesicle, 41 projections -70:3.5:70, the 10 highest-tilt projections blocked
  over 30 % of their width (data 0 there).  Masked RESIRE (and masked phasekit SIRT) vs the same
  methods and FBP / ASTRA SIRT without the mask.
* **film** (B5c): a film 12 voxels thick, wider than the 48-pixel field of view, 25 projections
  -60:5:60.  RESIRE in the extended-object mode (enlarged lateral volume, residuals on the
  detector only) vs RESIRE / GENFIRE-lite / FBP on the usual detector-sized cube.  Error on the
  central 24 x 24 columns through the film.
* **dual** (B5a): vesicle, a single-axis series of 41 vs a dual-axis series of 2 x 21 (-70:7:70
  about y and about x): RESIRE and phasekit SIRT (ASTRA 3-D needs CUDA, not available here).
* **step** (B6, C6): t in {0.5, 1, 2, 2.2, 2.5}, 150 iterations, with and without positivity;
  the measured lambda_max of sum P^T P (power iteration) against n N_z; the Fourier-slice
  accuracy (vs the fine-grid projection) and time for oversampling 1.5, 2, 3, 4.

Sizes: 64^3 (cell), 48^3 otherwise, to finish in about 10-15 min on the shared 2-core machine.
Run ``python benchmarks/tomo_resire_cases.py`` (``--quick``: 24-32^3, 40 iterations).
"""
from __future__ import annotations

import _common  # noqa: F401

import argparse
import time

import numpy as np
import torch

from _common import (RESULTS, claim, claims_markdown, machine_meta, md_table, meta_markdown,
                     save_figure, set_threads, write_results)
import _tomo_peers as peers

NAME = "tomo_resire_cases"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell-size", type=int, default=64)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--n-iter", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    if a.quick:
        a.cell_size, a.size, a.n_iter = 32, 24, 40
    return a


def _t(fn):
    t0 = time.perf_counter()
    v = fn()
    return v, time.perf_counter() - t0


def main(argv=None):
    args = parse_args(argv)
    threads = set_threads(1)
    from phasekit import tomo
    from phasekit.tomo.metrics import anisotropy, relative_error, rfactor_projections

    meta = machine_meta({"threads": threads, "astra": peers.ASTRA_VERSION})
    C, out, t_start = [], {}, time.perf_counter()
    N, K = args.size, args.n_iter

    # ------------------------------------------------------------------ cell (B2, C4)
    th = tomo.tilt_range(-58, 65, 3)
    ts = tomo.simulate_tilt_series("cell", args.cell_size, th, noise=0.01, rng=args.seed)
    prob = tomo.TomoProblem.from_arrays(ts.projections, ts.angles)
    rows = []

    def ev(name, vol, t):
        r = {"method": name, "R_F_fst": prob.rfactor(vol), "relative_error": relative_error(vol, ts.truth),
             "time_s": t}
        if peers.HAVE_ASTRA:
            r["R_F_astra"] = rfactor_projections(torch.as_tensor(peers.astra_project(vol, th)),
                                                 prob.projections)
        rows.append(r)

    r, t = _t(lambda: tomo.reconstruct(prob, algorithm="resire", n_iter=K, progress=False))
    ev("RESIRE", r.image, t)
    r, t = _t(lambda: tomo.reconstruct(prob, algorithm="sirt", n_iter=K, progress=False, metric_every=25))
    ev("SIRT (phasekit)", r.image, t)
    if peers.HAVE_ASTRA:
        v, t = _t(lambda: peers.astra_recon(ts.projections, th, "SIRT", K, 0.0))
        ev("SIRT (ASTRA, pos.)", v, t)
        v, t = _t(lambda: peers.astra_recon(ts.projections, th, "FBP"))
        ev("FBP (ASTRA)", v, t)
    r, t = _t(lambda: tomo.reconstruct(prob, algorithm="fbp"))
    ev("FBP (phasekit)", r.image, t)
    out["cell"] = {"rows": rows, "rnoise": ts.rnoise, "size": args.cell_size, "tilts": "-58:3:65",
                   "n_proj": len(th), "n_iter": K}
    for proj in ("R_F_fst", "R_F_astra"):
        if proj not in rows[0]:
            continue
        d = {r["method"]: r[proj] for r in rows}
        s = min(v for k, v in d.items() if k.startswith("SIRT"))
        f = min(v for k, v in d.items() if k.startswith("FBP"))
        C.append(claim(f"C4 cell: R_F(RESIRE) < R_F(SIRT) << R_F(FBP) ({proj[4:]} projector)",
                       d["RESIRE"] < s and 3 * s < f,
                       f"RESIRE {100 * d['RESIRE']:.2f} %, best SIRT {100 * s:.2f} %, best FBP {100 * f:.2f} % "
                       "(thesis 2.50 / 4.39 / 40.6 %)"))
    print(f"[{time.perf_counter() - t_start:.0f}s] cell", flush=True)

    # ------------------------------------------------------------------ blocked (B5b)
    th = tomo.tilt_range(-70, 70, 3.5)
    ts = tomo.simulate_tilt_series("vesicle", N, th, noise=0.02, blocked=10, blocked_fraction=0.3,
                                   rng=args.seed + 1)
    rows = []
    for name, kw in (("RESIRE masked", {"mask": ts.mask}), ("RESIRE unmasked", {})):
        r, t = _t(lambda: tomo.reconstruct(ts.projections, ts.angles, n_iter=K, progress=False, **kw))
        rows.append({"method": name, "relative_error": relative_error(r.image, ts.truth), "time_s": t})
    for name, kw in (("SIRT (phasekit) masked", {"mask": ts.mask}), ("SIRT (phasekit) unmasked", {})):
        r, t = _t(lambda: tomo.reconstruct(ts.projections, ts.angles, algorithm="sirt", n_iter=K,
                                           progress=False, metric_every=50, **kw))
        rows.append({"method": name, "relative_error": relative_error(r.image, ts.truth), "time_s": t})
    r, t = _t(lambda: tomo.reconstruct(ts.projections, ts.angles, algorithm="fbp"))
    rows.append({"method": "FBP (phasekit)", "relative_error": relative_error(r.image, ts.truth), "time_s": t})
    if peers.HAVE_ASTRA:
        v, t = _t(lambda: peers.astra_recon(ts.projections, th, "SIRT", K, 0.0))
        rows.append({"method": "SIRT (ASTRA) unmasked", "relative_error": relative_error(v, ts.truth), "time_s": t})
    out["blocked"] = {"rows": rows, "n_blocked": 10, "fraction": 0.3, "size": N}
    d = {r["method"]: r["relative_error"] for r in rows}
    unmasked = min(v for k, v in d.items() if "masked" not in k or "unmasked" in k)
    C.append(claim("C7 blocked projections: masked RESIRE beats every unmasked method",
                   d["RESIRE masked"] < unmasked,
                   f"masked RESIRE {100 * d['RESIRE masked']:.2f} %, best unmasked {100 * unmasked:.2f} %"))
    print(f"[{time.perf_counter() - t_start:.0f}s] blocked", flush=True)

    # ------------------------------------------------------------------ film (B5c)
    T = max(6, N // 4)
    th = tomo.tilt_range(-60, 60, 5)
    ts = tomo.simulate_tilt_series("film", N, th, thickness=T, noise=0.02, rng=args.seed + 2)
    vs = ts.vol_shape
    c0, c1 = vs[0] // 2, vs[1] // 2
    h = N // 4
    core_t = ts.truth[c0 - h:c0 + h, c1 - h:c1 + h, :]

    def core_err_cube(vol):  # detector-sized cube: the film is the central T planes
        z0 = N // 2 - T // 2
        return float(np.linalg.norm(vol[N // 2 - h:N // 2 + h, N // 2 - h:N // 2 + h, z0:z0 + T] - core_t)
                     / np.linalg.norm(core_t))

    rows = []
    r, t = _t(lambda: tomo.reconstruct(ts, n_iter=K, progress=False))
    e = float(np.linalg.norm(r.image[c0 - h:c0 + h, c1 - h:c1 + h, :] - core_t) / np.linalg.norm(core_t))
    rows.append({"method": "RESIRE extended volume", "core_error": e, "R_F": r.rfactor, "time_s": t,
                 "volume": list(vs)})
    for alg in ("resire", "genfire", "fbp"):
        r, t = _t(lambda: tomo.reconstruct(ts.projections, ts.angles, algorithm=alg,
                                           n_iter=None if alg == "fbp" else K, progress=False)
                  if alg != "fbp" else tomo.reconstruct(ts.projections, ts.angles, algorithm="fbp"))
        rows.append({"method": f"{alg} cube {N}^3", "core_error": core_err_cube(r.image), "R_F": r.rfactor,
                     "time_s": t, "volume": [N] * 3})
    out["film"] = {"rows": rows, "thickness": T, "det": N, "tilts": "-60:5:60"}
    d = {r["method"]: r["core_error"] for r in rows}
    best_cube = min(v for k, v in d.items() if "cube" in k)
    C.append(claim("C7 extended film: RESIRE extended-volume mode beats FBP / GENFIRE-lite / "
                   "RESIRE on the detector-sized cube (error on the central columns)",
                   d["RESIRE extended volume"] < best_cube,
                   f"extended {100 * d['RESIRE extended volume']:.1f} %, best cube {100 * best_cube:.1f} %"))
    print(f"[{time.perf_counter() - t_start:.0f}s] film", flush=True)

    # ------------------------------------------------------------------ dual axis (B5a)
    single = tomo.simulate_tilt_series("vesicle", N, tomo.tilt_range(-70, 70, 3.5), noise=0.02,
                                       rng=args.seed + 3)
    dual = tomo.simulate_tilt_series("vesicle", N, tomo.dual_axis(tomo.tilt_range(-70, 70, 7)),
                                     noise=0.02, rng=args.seed + 3)
    rows = []
    for gname, ts in (("single (41)", single), ("dual (2x21)", dual)):
        for alg in ("resire", "sirt"):
            r, t = _t(lambda: tomo.reconstruct(ts, algorithm=alg, n_iter=K, progress=False,
                                               metric_every=1 if alg == "resire" else 50))
            an = anisotropy(r.image, ts.truth)
            rows.append({"geometry": gname, "method": alg, "relative_error": relative_error(r.image, ts.truth),
                         "aniso_ratio": an["ratio"], "err_xz": an["err_xz"], "err_xy": an["err_xy"],
                         "time_s": t})
    out["dual"] = {"rows": rows}
    g = {(r["geometry"], r["method"]): r for r in rows}
    C.append(claim("C7 dual axis (same projection count): RESIRE error and z-anisotropy both improve",
                   g[("dual (2x21)", "resire")]["relative_error"] < g[("single (41)", "resire")]["relative_error"]
                   and g[("dual (2x21)", "resire")]["aniso_ratio"] > g[("single (41)", "resire")]["aniso_ratio"],
                   f"error {100 * g[('single (41)', 'resire')]['relative_error']:.2f} -> "
                   f"{100 * g[('dual (2x21)', 'resire')]['relative_error']:.2f} %, fsc_z/fsc_x "
                   f"{g[('single (41)', 'resire')]['aniso_ratio']:.3f} -> {g[('dual (2x21)', 'resire')]['aniso_ratio']:.3f}"))
    C.append(claim("dual axis: RESIRE beats phasekit SIRT in relative error on the dual-axis series",
                   g[("dual (2x21)", "resire")]["relative_error"] < g[("dual (2x21)", "sirt")]["relative_error"],
                   f"{100 * g[('dual (2x21)', 'resire')]['relative_error']:.2f} vs "
                   f"{100 * g[('dual (2x21)', 'sirt')]['relative_error']:.2f} %"))
    print(f"[{time.perf_counter() - t_start:.0f}s] dual", flush=True)

    # ------------------------------------------------------------------ step size (B6, C6)
    ts = tomo.simulate_tilt_series("vesicle", N, tomo.tilt_range(-70, 70, 3.5), noise=0.02,
                                   rng=args.seed + 4)
    rows, hist = [], {}
    for pos in (False, True):
        for tt in (0.5, 1.0, 2.0, 2.2, 2.5):
            r = tomo.reconstruct(ts, n_iter=K, step=tt, positive=pos, progress=False)
            rf = np.asarray(r.history["R_F"])
            rows.append({"t": tt, "positive": pos, "final_R_F": float(rf[-1]), "min_R_F": float(rf.min()),
                         "relative_error": relative_error(r.image, ts.truth),
                         "diverged": bool(not np.isfinite(rf[-1]) or rf[-1] > 2 * rf.min()
                                          or rf[-1] > 0.5)})
            hist[f"t={tt} pos={pos}"] = rf.tolist()
    prob = tomo.TomoProblem.from_arrays(ts.projections, ts.angles)
    lam = {}
    for kind in ("realspace", "hybrid"):
        from phasekit.tomo.resire import _pair

        fwd, back = _pair(prob, kind)
        x = torch.ones(prob.shape)
        for _ in range(25):
            y = back(fwd(x))
            l_ = float(y.norm() / x.norm())
            x = y / y.norm()
        lam[kind] = {"lambda_max": l_, "n_Nz": prob.lipschitz_bound, "ratio": l_ / prob.lipschitz_bound}
    acc = []
    for s in (1.5, 2.0, 3.0, 4.0):
        op = tomo.FourierSliceProjector(ts.truth.shape, ts.angles, oversampling=s)
        xt = torch.as_tensor(ts.truth)
        op.forward(xt)
        t0 = time.perf_counter()
        p = op.forward(xt)
        dt = time.perf_counter() - t0
        acc.append({"oversampling": s, "R_F_vs_fine_clean": rfactor_projections(p, torch.as_tensor(ts.clean)),
                    "forward_s": dt})
    out["step"] = {"rows": rows, "lambda": lam, "oversampling": acc, "history": hist}
    nopos = {r["t"]: r for r in rows if not r["positive"]}
    C.append(claim("C6 RESIRE converges for t in {0.5, 1, 2} (no positivity)",
                   not any(nopos[t]["diverged"] for t in (0.5, 1.0, 2.0)),
                   ", ".join(f"t={t}: R_F {100 * nopos[t]['final_R_F']:.2f} %" for t in (0.5, 1.0, 2.0))))
    C.append(claim("t above ~2.09 diverges (t = 2.2 and 2.5, no positivity)",
                   nopos[2.2]["diverged"] and nopos[2.5]["diverged"],
                   f"t=2.2 final/min R_F {nopos[2.2]['final_R_F']:.3g}/{nopos[2.2]['min_R_F']:.3g}; "
                   f"t=2.5 {nopos[2.5]['final_R_F']:.3g}/{nopos[2.5]['min_R_F']:.3g}"))
    C.append(claim("lambda_max(sum P^T P) <= n N_z (realspace exact pair), tight within 10 %",
                   0.9 <= lam["realspace"]["ratio"] <= 1.0, f"ratio {lam['realspace']['ratio']:.3f} "
                   f"(hybrid pair {lam['hybrid']['ratio']:.3f})"))
    print(f"[{time.perf_counter() - t_start:.0f}s] step", flush=True)

    # ------------------------------------------------------------------ figures + write
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for k, v in hist.items():
        ax.semilogy(np.arange(1, len(v) + 1), np.clip(v, 1e-4, 1e3), label=k,
                    ls="-" if "False" in k else "--")
    ax.set_xlabel("iteration")
    ax.set_ylabel("R_F")
    ax.set_title("RESIRE step-size sweep (dashed: positivity)")
    ax.legend(fontsize=6, ncol=2)
    save_figure(fig, RESULTS / f"{NAME}_step.png")
    total = time.perf_counter() - t_start
    md = [f"# {NAME}: cell, blocked projections, extended film, dual axis, step size", "",
          meta_markdown(meta), "", f"Total {total:.0f} s, 1 torch thread, {K} iterations; sizes "
          f"{args.cell_size}^3 (cell) and {N}^3 (others) -- reduced from the thesis' sizes to fit "
          "the shared 2-core machine.", "", "## Claims", "", claims_markdown(C), "", "## cell", "",
          md_table(["method", "R_F FST %", "R_F ASTRA %", "rel. error %", "time s"],
                   [[r["method"], 100 * r["R_F_fst"], 100 * r.get("R_F_astra", np.nan),
                     100 * r["relative_error"], r["time_s"]] for r in out["cell"]["rows"]]),
          f"\nnoise-only R_F {100 * out['cell']['rnoise']:.2f} %", "", "## blocked", "",
          md_table(["method", "rel. error %", "time s"],
                   [[r["method"], 100 * r["relative_error"], r["time_s"]] for r in out["blocked"]["rows"]]),
          "", "## film", "", md_table(["method", "volume", "core error %", "R_F %", "time s"],
                                      [[r["method"], "x".join(map(str, r["volume"])), 100 * r["core_error"],
                                        100 * r["R_F"], r["time_s"]] for r in out["film"]["rows"]]),
          "", "## dual axis", "", md_table(["geometry", "method", "rel. error %", "fsc_z/fsc_x", "err XZ", "err XY"],
                                           [[r["geometry"], r["method"], 100 * r["relative_error"], r["aniso_ratio"],
                                             r["err_xz"], r["err_xy"]] for r in out["dual"]["rows"]]),
          "", "## step size", "", md_table(["t", "positivity", "final R_F %", "min R_F %", "rel. error %", "diverged"],
                                           [[r["t"], r["positive"], 100 * r["final_R_F"], 100 * r["min_R_F"],
                                             100 * r["relative_error"], r["diverged"]] for r in rows]),
          "", md_table(["pair", "lambda_max", "n N_z", "ratio"],
                       [[k, v["lambda_max"], v["n_Nz"], v["ratio"]] for k, v in lam.items()]),
          "", md_table(["oversampling", "R_F of FST(truth) vs fine-grid clean data %", "forward s"],
                       [[a["oversampling"], 100 * a["R_F_vs_fine_clean"], a["forward_s"]] for a in acc])]
    data = {"name": NAME, "meta": meta, "claims": C, "sizes": {"cell": args.cell_size, "other": N, "n_iter": K},
            "seeds": {"base": args.seed}, "results": out, "total_s": total}
    write_results(NAME + ("_quick" if args.quick else ""), data, "\n".join(md))
    print("\n".join(md[:14]))


if __name__ == "__main__":
    main()
