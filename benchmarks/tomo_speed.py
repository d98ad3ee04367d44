"""RESIRE time per iteration against its FFT / interpolation work and against ASTRA's CPU SIRT
(Pham thesis Ch. 3, §3.2.1), measured side by side in one run.

Sizes: 64^3 x 41 projections (-70:3.5:70) and 128^3 x 61 projections (-75:2.5:75).  Per size:

* RESIRE's parts, each timed alone: the padded 3-D FFT (oversampling 2), the central-slice
  trilinear interpolation plus the batched inverse 2-D FFTs and crop, the bilinear back
  projection; and a whole RESIRE iteration on the driver (``per_iteration_total_s``, with the
  R_F history);
* phasekit SIRT per iteration (voxel-driven splat forward + bilinear back projection);
* ASTRA 2-D CPU SIRT (linear projector) per iteration over all ``N`` y-slices of the same data
  (the single-axis problem decouples into slices; ASTRA 3-D needs CUDA, not available here).

One torch thread; the machine is a shared 2-core VM (other jobs ran at the same time, see the
load average in the JSON), so the ratios are more meaningful than the absolute times.
Run ``python benchmarks/tomo_speed.py`` (``--quick``: 32^3 and 48^3).
"""
from __future__ import annotations

import _common  # noqa: F401

import argparse
import time

import numpy as np
import torch

from _common import (RESULTS, claim, claims_markdown, machine_meta, md_table, meta_markdown, save_figure,
                     set_threads, write_results)
import _tomo_peers as peers

NAME = "tomo_speed"


def best_of(fn, reps):
    """(best wall time, best CPU time of this process) over ``reps`` calls."""
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return float(min(ts)), float(min(cs))


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def plot(rows, path=None):
    """Stacked CPU time per iteration: RESIRE's parts, next to phasekit and ASTRA SIRT."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    labels = [f"{r['size']}^3 x {r['n_proj']}" for r in rows]
    x = np.arange(len(rows))
    bottom = np.zeros(len(rows))
    for key, lab in (("fft3_cpu_s", "FFT3"), ("slice_ifft2_cpu_s", "slice + IFFT2"),
                     ("backproject_cpu_s", "back projection")):
        v = np.array([r[key] for r in rows])
        ax.bar(x - 0.25, v, 0.25, bottom=bottom, label=f"RESIRE: {lab}")
        bottom += v
    rest = np.array([r["resire_iter_cpu_s"] for r in rows]) - bottom
    ax.bar(x - 0.25, np.clip(rest, 0, None), 0.25, bottom=bottom, label="RESIRE: rest", color="0.7")
    ax.bar(x, [r["sirt_phasekit_iter_cpu_s"] for r in rows], 0.25, label="SIRT (phasekit)")
    ax.bar(x + 0.25, [r.get("astra_sirt_iter_cpu_s", np.nan) for r in rows], 0.25,
           label="SIRT (ASTRA CPU, all slices)")
    ax.set_xticks(x, labels)
    ax.set_yscale("log")
    ax.set_ylabel("CPU s per iteration")
    ax.legend(fontsize=7)
    save_figure(fig, path or RESULTS / f"{NAME}.png")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    threads = set_threads(1)
    from phasekit import tomo

    meta = machine_meta({"threads": threads, "astra": peers.ASTRA_VERSION})
    cases = [(64, tomo.tilt_range(-70, 70, 3.5), 5), (128, tomo.tilt_range(-75, 75, 2.5), 3)]
    if args.quick:
        cases = [(32, tomo.tilt_range(-70, 70, 3.5), 3), (48, tomo.tilt_range(-75, 75, 2.5), 2)]
    rows, C = [], []
    for N, th, reps in cases:
        ts = tomo.simulate_tilt_series("vesicle", N, th, projector="fst", noise=0.02, rng=0)
        prob = tomo.TomoProblem.from_arrays(ts.projections, ts.angles)
        t0 = time.perf_counter()
        fst, rs = prob.fst, prob.realspace
        setup = time.perf_counter() - t0
        x = torch.as_tensor(ts.truth)
        Fk = fst.spectrum(x)
        p = fst.project_spectrum(Fk)
        t_fft = best_of(lambda: fst.spectrum(x), reps)
        t_slice = best_of(lambda: fst.project_spectrum(Fk), reps)
        t_bp = best_of(lambda: rs.backproject(p), reps)
        t_splat = best_of(lambda: rs.forward(x), reps)
        w, c = timed(lambda: tomo.reconstruct(prob, algorithm="resire", n_iter=reps, progress=False))
        w0, c0 = timed(lambda: tomo.reconstruct(prob, algorithm="resire", n_iter=1, progress=False))
        t_res, c_res = (w - w0) / (reps - 1), (c - c0) / (reps - 1)
        w, c = timed(lambda: tomo.reconstruct(prob, algorithm="sirt", n_iter=reps, progress=False,
                                              metric_every=0))
        w0, c0 = timed(lambda: tomo.reconstruct(prob, algorithm="sirt", n_iter=1, progress=False,
                                                metric_every=0))
        t_sirt, c_sirt = (w - w0) / (reps - 1), (c - c0) / (reps - 1)
        row = {"size": N, "n_proj": len(th), "setup_s": setup, "fft3_s": t_fft[0],
               "slice_ifft2_s": t_slice[0], "backproject_s": t_bp[0], "splat_s": t_splat[0],
               "resire_iter_s": t_res, "sirt_phasekit_iter_s": t_sirt,
               "fft3_cpu_s": t_fft[1], "slice_ifft2_cpu_s": t_slice[1], "backproject_cpu_s": t_bp[1],
               "resire_iter_cpu_s": c_res, "sirt_phasekit_iter_cpu_s": c_sirt,
               "padded": list(fst.pad_shape)}
        if peers.HAVE_ASTRA:
            k = 3
            w, c = timed(lambda: peers.astra_recon(ts.projections, th, "SIRT", k, 0.0))
            w0, c0 = timed(lambda: peers.astra_recon(ts.projections, th, "SIRT", 1, 0.0))
            row["astra_sirt_iter_s"] = max(w - w0, 1e-9) / (k - 1)
            row["astra_sirt_iter_cpu_s"] = max(c - c0, 1e-9) / (k - 1)
            row["resire_over_astra"] = t_res / row["astra_sirt_iter_s"]
            row["resire_over_astra_cpu"] = c_res / row["astra_sirt_iter_cpu_s"]
        row["parts_sum_s"] = t_fft[0] + t_slice[0] + t_bp[0]
        row["parts_sum_cpu_s"] = t_fft[1] + t_slice[1] + t_bp[1]
        rows.append(row)
        print(row, flush=True)
    for r in rows:
        share = r["parts_sum_cpu_s"] / r["resire_iter_cpu_s"]
        C.append(claim(f"{r['size']}^3 x {r['n_proj']}: one RESIRE iteration is its FFT + slice + "
                       "back-projection work (parts >= 70 % of the iteration's CPU time)", share >= 0.7,
                       f"parts {r['parts_sum_cpu_s']:.3f} s of {r['resire_iter_cpu_s']:.3f} s CPU "
                       f"({100 * share:.0f} %)"))
        if "astra_sirt_iter_s" in r:
            C.append(claim(f"{r['size']}^3 x {r['n_proj']}: a RESIRE iteration (phasekit, torch CPU) "
                           "costs no more CPU time than an ASTRA CPU SIRT iteration over the same slices",
                           r["resire_over_astra_cpu"] <= 1.0,
                           f"RESIRE {r['resire_iter_cpu_s']:.3f} s vs ASTRA {r['astra_sirt_iter_cpu_s']:.3f} s "
                           f"CPU (ratio {r['resire_over_astra_cpu']:.2f}; wall ratio {r['resire_over_astra']:.2f})"))
    if len(rows) == 2:
        a, b = rows
        scale = (b["size"] / a["size"]) ** 3 * b["n_proj"] / a["n_proj"]
        f = b["resire_iter_cpu_s"] / a["resire_iter_cpu_s"]
        C.append(claim("RESIRE CPU time per iteration scales no worse than 1.5 x voxels x projections",
                       f <= 1.5 * scale, f"x{f:.1f} for x{scale:.1f} voxel-projections"))
    hdr = ["size", "n proj", "FFT3 s", "slice+IFFT2 s", "back proj. s", "RESIRE iter s",
           "SIRT (phasekit) iter s", "ASTRA SIRT iter s", "RESIRE / ASTRA"]

    def tab(suffix):
        return md_table(hdr, [[r["size"], r["n_proj"], r["fft3" + suffix], r["slice_ifft2" + suffix],
                               r["backproject" + suffix], r["resire_iter" + suffix],
                               r["sirt_phasekit_iter" + suffix], r.get("astra_sirt_iter" + suffix),
                               r.get("resire_over_astra" + ("_cpu" if "cpu" in suffix else ""))]
                              for r in rows])

    md = [f"# {NAME}: RESIRE per-iteration cost", "", meta_markdown(meta), "",
          "One torch thread; shared 2-core VM with other jobs running (load average in the JSON), "
          "so CPU time of this process (`time.process_time`) is reported besides wall time and is "
          "the basis of the claims.", "", "## CPU time", "", tab("_cpu_s"), "", "## wall time", "",
          tab("_s"), "", "## Claims", "", claims_markdown(C)]
    plot(rows, RESULTS / f"{NAME}{'_quick' if args.quick else ''}.png")
    write_results(NAME + ("_quick" if args.quick else ""),
                  {"name": NAME, "meta": meta, "claims": C, "rows": rows,
                   "sizes": [[N, len(th)] for N, th, _ in cases], "seeds": {"data": 0}}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
