"""SIRT and RESIRE time per iteration against ASTRA's CPU SIRT on the same single-axis data,
measured side by side in one run (issue 16, item 5; Pham thesis Ch. 3, §3.2.1).

Data: the ``vesicle`` phantom sampled on the volume grid, projected with phasekit's real-space
projector over a single y-axis tilt series, 2 % Gaussian noise (seed 0).  A single-axis series
decouples into ``Ny`` independent 2-D problems, which is how ASTRA runs it (its 3-D algorithms
need CUDA): one ASTRA 2-D ``SIRT`` per y-slice, on the CPU, with the ``linear`` projector (Joseph's
ray-driven linear interpolation, the closest to phasekit's voxel-driven bilinear pair; the
``strip`` projector is timed once too at the two headline sizes).  ASTRA's time per iteration is the
difference of ``run(2)`` and ``run(1)`` over all slices (so any per-call set-up of
its weights is not counted against it).

Cases (volume ``(Nx, Ny, Nz)`` x projections):

* headline: ``640 x 2 x 640 x 181`` (two 640^2 slices, 181 angles over [0, 180] as a micro-CT
  scan) and ``128^3 x 61`` (-75:2.5:75);
* scaling: slices of 128^2 .. 640^2 and cubes 64^3 .. 160^3 (``--quick``: small ones only).

phasekit: one SIRT / RESIRE iteration is the algorithm's ``step`` (the driver adds only its
bookkeeping); per case also its parts (forward projection, back projection, the spectrum --
padding and the real 3-D FFT since 2026-12-06, a complex FFT and two shifts before -- and the
periodic extension + slice + inverse 2-D FFTs of RESIRE's Fourier-slice projector) and, at the headline sizes, the
reference path (``grid_sample`` pair and a padded tilt axis, i.e. the code before the compiled
kernels) for the speed-up.  Repeats are interleaved (ours, ASTRA, ours, ...) and the medians of
the process CPU time (one thread everywhere) are the basis of the claims; wall times are in the
JSON.  Run ``python benchmarks/tomo_speed.py`` (``--quick``: small sizes, a few seconds).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # ASTRA's CPU code, torch and numba: one thread

import _common  # noqa: F401

import argparse
import time

import numpy as np
import torch

from _common import (RESULTS, claim, claims_markdown, loadavg, machine_meta, md_table,
                     meta_markdown, save_figure, set_threads, write_results)
import _tomo_peers as peers

NAME = "tomo_speed"


def timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def med(v):
    return float(np.median(np.asarray(v, dtype=np.float64)))


def make_case(shape, th, seed=0):
    from phasekit import tomo
    from phasekit.tomo.phantoms import phantom_function, sample
    from phasekit.tomo.projectors import RealSpaceProjector

    f = phantom_function("vesicle", shape[0], rng=seed)
    vol = sample(f, shape).astype(np.float32)
    b = RealSpaceProjector(shape, th).forward(torch.as_tensor(vol)).numpy()
    g = np.random.default_rng(seed)
    b = b + 0.02 * float(np.abs(b).max()) * g.standard_normal(b.shape).astype(np.float32)
    prob = tomo.TomoProblem.from_arrays(b, th, vol_shape=shape)
    return prob, b


def reference_problem(b, th, shape):
    """The same problem on the reference path (grid_sample pair, padded tilt axis)."""
    from phasekit import tomo
    from phasekit.tomo.projectors import FourierSliceProjector, RealSpaceProjector

    p = tomo.TomoProblem.from_arrays(b, th, vol_shape=shape)
    p._ops["rs"] = RealSpaceProjector(shape, p.angles, p.det_shape, kernels=False)
    p._ops["fst"] = FourierSliceProjector(shape, p.angles, p.det_shape, pad_tilt_axis=True,
                                          oversampling=p.oversampling)
    return p


def tomo_problem(b, th, shape, precision="single"):
    from phasekit import tomo

    return tomo.TomoProblem.from_arrays(b, th, vol_shape=shape, precision=precision)


def sirt_iterates(prob, n=3):
    from phasekit.engine import get_algorithm

    a = get_algorithm("sirt").cls(prob, n)
    a.initialize(prob.random_start(None))
    for k in range(n):
        a.step(k)
    return a.x.double()


def algos(prob):
    from phasekit.engine import get_algorithm

    sirt = get_algorithm("sirt").cls(prob, 10)
    res = get_algorithm("resire").cls(prob, 10)
    x0 = prob.random_start(None)
    sirt.initialize(x0)
    res.initialize(x0)
    return sirt, res


def step_timer(alg):
    def go():
        alg.step(0)
        if hasattr(alg, "_proj"):
            alg._proj = None
    return go


def run_case(shape, th, reps, *, strip=False, reference=False):
    Nx, Ny, Nz = shape
    prob, b = make_case(shape, th)
    sirt, res = algos(prob)
    rs, fst = prob.realspace, prob.fst
    assert rs.uses_kernels
    x = torch.rand(shape, dtype=torch.float32)
    p = rs.forward(x)
    Fk = fst.spectrum(x)
    parts = {"fwd": [], "back": [], "fft3": [], "slice": []}
    for _ in range(3):
        parts["fwd"].append(timed(lambda: rs.forward(x)))
        parts["back"].append(timed(lambda: rs.backproject(p)))
        parts["fft3"].append(timed(lambda: fst.spectrum(x)))
        parts["slice"].append(timed(lambda: fst.project_spectrum(Fk)))
    ast = {}
    if peers.HAVE_ASTRA:
        ast["linear"] = peers.AstraSlices(b, th, "linear", min_constraint=0.0)
        for a in ast.values():
            a.run(1)  # warm-up
    T = {"sirt": [], "resire": [], **{f"astra_{k}": [] for k in ast}}
    sirt_go, res_go = step_timer(sirt), step_timer(res)
    sirt_go()
    res_go()
    for _ in range(reps):  # interleaved repeats
        T["sirt"].append(timed(sirt_go))
        for k, a in ast.items():
            w1, c1 = a.run(1)
            w2, c2 = a.run(2)
            T[f"astra_{k}"].append((w2 - w1, c2 - c1))
        T["resire"].append(timed(res_go))
    for a in ast.values():
        a.close()
    if strip and peers.HAVE_ASTRA:  # ASTRA's area-weight projector: one repeat, after the rest
        a = peers.AstraSlices(b, th, "strip", min_constraint=0.0)
        w1, c1 = a.run(1)
        w2, c2 = a.run(2)
        T["astra_strip"] = [(w2 - w1, c2 - c1)]
        a.close()
    row = {"shape": list(shape), "n_proj": len(th), "voxel_projections": Nx * Ny * Nz * len(th),
           "reps": reps, "loadavg": loadavg()}
    for k, v in list(T.items()) + [(f"part_{k}", v) for k, v in parts.items()]:
        row[f"{k}_s"] = med([t[0] for t in v])
        row[f"{k}_cpu_s"] = med([t[1] for t in v])
    for k in ("sirt", "resire", "astra_linear"):
        if f"{k}_cpu_s" in row:
            row[f"{k}_ns_per_voxproj"] = 1e9 * row[f"{k}_cpu_s"] / row["voxel_projections"]
    if "astra_linear_cpu_s" in row:
        row["sirt_over_astra"] = row["sirt_cpu_s"] / row["astra_linear_cpu_s"]
        row["resire_over_astra"] = row["resire_cpu_s"] / row["astra_linear_cpu_s"]
        row["sirt_over_astra_wall"] = row["sirt_s"] / row["astra_linear_s"]
        row["resire_over_astra_wall"] = row["resire_s"] / row["astra_linear_s"]
    if "astra_strip_cpu_s" in row:
        row["sirt_over_astra_strip"] = row["sirt_cpu_s"] / row["astra_strip_cpu_s"]
        row["resire_over_astra_strip"] = row["resire_cpu_s"] / row["astra_strip_cpu_s"]
    if reference:
        ref = reference_problem(b, th, shape)
        s0, r0 = algos(ref)
        row["reference_sirt_cpu_s"] = timed(step_timer(s0))[1]
        row["reference_resire_cpu_s"] = timed(step_timer(r0))[1]
        # same 3 iterations from the same start: both float32 paths against float64 (kernels;
        # in float64 the two paths agree to ~1e-15, tests/test_tomo_kernels.py)
        x32r = sirt_iterates(ref)
        x32k = sirt_iterates(prob)
        x64 = sirt_iterates(tomo_problem(b, th, shape, "double"))
        row["sirt_rel_l2_f32_kernels_vs_f64"] = float((x32k - x64).norm() / x64.norm())
        row["sirt_rel_l2_f32_reference_vs_f64"] = float((x32r - x64).norm() / x64.norm())
        row["sirt_rel_l2_kernels_vs_reference"] = float((x32k - x32r).norm() / x32r.norm())
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    return row


def plot(rows, path):
    """CPU time per iteration against voxels x projections, one line per slab family."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.8))
    fams = (("2-slice slabs", lambda r: r["shape"][1] == 2, "-"),
            ("cubes", lambda r: r["shape"][1] != 2, "--"))
    for key, lab, m, col in (("sirt_cpu_s", "SIRT (phasekit)", "o", "C0"),
                             ("resire_cpu_s", "RESIRE (phasekit)", "s", "C1"),
                             ("astra_linear_cpu_s", "SIRT (ASTRA CPU, linear)", "^", "C2")):
        for fam, sel, ls in fams:
            rs = sorted((r for r in rows if sel(r)), key=lambda r: r["voxel_projections"])
            if not rs:
                continue
            ax.loglog([r["voxel_projections"] for r in rs], [r.get(key, np.nan) for r in rs],
                      m + ls, color=col, label=f"{lab}, {fam}")
    ax.set_xlabel("voxels x projections")
    ax.set_ylabel("CPU s per iteration (1 thread)")
    ax.legend(fontsize=6.5)
    ax.grid(True, which="both", alpha=0.3)
    save_figure(fig, path)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rebuild", action="store_true",
                    help="rewrite the claims, tables and figure from the rows of the last JSON")
    ap.add_argument("--tag", default="", help="suffix of the result files' name (e.g. the host: 'xeon')")
    args = ap.parse_args(argv)
    suffix = ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    if args.rebuild:
        import json

        old = json.loads((RESULTS / f"{NAME}{suffix}.json").read_text())
        return report(old["rows"], old["meta"], args.quick, suffix)
    threads = set_threads(1)
    from phasekit import tomo

    meta = machine_meta({"threads": threads, "astra": peers.ASTRA_VERSION})
    a181 = np.linspace(0.0, 180.0, 181)
    a61 = tomo.tilt_range(-75, 75, 2.5)
    a41 = tomo.tilt_range(-70, 70, 3.5)
    a91 = np.linspace(0.0, 180.0, 91)
    if args.quick:
        headline = [((96, 2, 96), np.linspace(0.0, 180.0, 31)), ((32, 32, 32), a41)]
        scaling = [((48, 2, 48), a41)]
    else:
        headline = [((640, 2, 640), a181), ((128, 128, 128), a61)]
        scaling = [((128, 2, 128), a91), ((256, 2, 256), a181), ((64, 64, 64), a41),
                   ((96, 96, 96), a61)]
    rows = []
    for shape, th in headline:
        rows.append(run_case(shape, th, args.reps, strip=True, reference=True) | {"headline": True})
    for shape, th in scaling:
        rows.append(run_case(shape, th, 3) | {"headline": False})
    report(rows, meta, args.quick, suffix)


def report(rows, meta, quick, suffix=None):
    C = []
    for r in rows:
        if not r["headline"] or "sirt_over_astra" not in r:
            continue
        lab = f"{'x'.join(map(str, r['shape']))} x {r['n_proj']}"
        C.append(claim(f"{lab}: a phasekit SIRT iteration costs no more CPU time than an ASTRA CPU "
                       "SIRT iteration (linear projector) on the same slices",
                       r["sirt_over_astra"] <= 1.0,
                       f"SIRT {r['sirt_cpu_s']:.3f} s vs ASTRA {r['astra_linear_cpu_s']:.3f} s CPU "
                       f"(ratio {r['sirt_over_astra']:.2f}; wall {r['sirt_over_astra_wall']:.2f}; "
                       f"vs ASTRA strip {r.get('sirt_over_astra_strip', float('nan')):.2f})"))
        C.append(claim(f"{lab}: a RESIRE iteration costs no more than 1.2x an ASTRA CPU SIRT "
                       "iteration (linear projector) on the same slices",
                       r["resire_over_astra"] <= 1.2,
                       f"RESIRE {r['resire_cpu_s']:.3f} s vs ASTRA {r['astra_linear_cpu_s']:.3f} s CPU "
                       f"(ratio {r['resire_over_astra']:.2f}; wall {r['resire_over_astra_wall']:.2f})"))
        e_k, e_r = r["sirt_rel_l2_f32_kernels_vs_f64"], r["sirt_rel_l2_f32_reference_vs_f64"]
        C.append(claim(f"{lab}: the compiled single-axis path changes SIRT only at float32 "
                       "rounding (3 iterations from the same start within 1e-5 relative L2 of "
                       "float64, and no further from it than the grid_sample reference path)",
                       e_k < 1e-5 and e_k <= max(e_r, 1e-6),
                       f"float32 kernels vs float64: {e_k:.1e}; float32 reference vs float64: "
                       f"{e_r:.1e}; kernels vs reference {r['sirt_rel_l2_kernels_vs_reference']:.1e}; "
                       f"speed-up SIRT x{r['reference_sirt_cpu_s'] / r['sirt_cpu_s']:.1f}, RESIRE "
                       f"x{r['reference_resire_cpu_s'] / r['resire_cpu_s']:.1f}"))
    def ns_list(rs, key):
        return ", ".join(f"{'x'.join(map(str, r['shape']))}: {r.get(key, float('nan')):.2f}"
                         for r in rs)

    # the coordinate work (x, floor, weights) is done once per (angle, u, w) and shared by the
    # Ny slices of the inner loop: the cost per voxel-projection depends on Ny, so the scaling
    # is checked within a family of equal slab thickness
    for fam, sel in (("two-slice slabs (Ny = 2)", lambda r: r["shape"][1] == 2),
                     ("cubes", lambda r: r["shape"][0] == r["shape"][1] == r["shape"][2])):
        rs = [r for r in rows if sel(r)]
        if len(rs) < 2:
            continue
        for alg in ("sirt", "resire"):
            ns = np.array([r[f"{alg}_ns_per_voxproj"] for r in rs])
            C.append(claim(f"{alg.upper()} time per iteration is proportional to voxels x "
                           f"projections over the {fam} (CPU ns per voxel-projection within "
                           "1.25x over the sizes)", ns.max() <= 1.25 * ns.min(),
                           f"{ns_list(rs, f'{alg}_ns_per_voxproj')} ns (ASTRA linear: "
                           f"{ns_list(rs, 'astra_linear_ns_per_voxproj')})"))
    hdr = ["volume", "n proj", "voxel-proj.", "SIRT s", "RESIRE s", "ASTRA SIRT (linear) s",
           "ASTRA (strip) s", "SIRT / ASTRA", "RESIRE / ASTRA", "SIRT ns/vp", "ASTRA ns/vp"]
    tab = md_table(hdr, [["x".join(map(str, r["shape"])), r["n_proj"],
                          f"{r['voxel_projections']:.2e}", r["sirt_cpu_s"], r["resire_cpu_s"],
                          r.get("astra_linear_cpu_s"), r.get("astra_strip_cpu_s"),
                          r.get("sirt_over_astra"), r.get("resire_over_astra"),
                          r["sirt_ns_per_voxproj"], r.get("astra_linear_ns_per_voxproj")]
                         for r in rows])
    hdr2 = ["volume", "n proj", "forward proj. s", "back proj. s", "FST: pad + rFFT3 s",
            "FST: extend + slice + IFFT2 s", "SIRT rest s", "RESIRE rest s", "reference SIRT s",
            "reference RESIRE s"]
    prof = md_table(hdr2, [["x".join(map(str, r["shape"])), r["n_proj"], r["part_fwd_cpu_s"],
                            r["part_back_cpu_s"], r["part_fft3_cpu_s"], r["part_slice_cpu_s"],
                            r["sirt_cpu_s"] - r["part_fwd_cpu_s"] - r["part_back_cpu_s"],
                            r["resire_cpu_s"] - r["part_fft3_cpu_s"] - r["part_slice_cpu_s"]
                            - r["part_back_cpu_s"], r.get("reference_sirt_cpu_s"),
                            r.get("reference_resire_cpu_s")] for r in rows])
    note = ("One thread everywhere (torch, numba, ASTRA). Medians of interleaved repeats of the "
            "process CPU time per iteration (wall times and load averages in the JSON). ASTRA runs "
            "one 2-D SIRT per y-slice (its 3-D algorithms need CUDA); `640x2x640` is two 640^2 "
            "slices (ASTRA runs the same two).")
    md = [f"# {NAME}: SIRT and RESIRE per iteration vs ASTRA CPU SIRT", "", meta_markdown(meta), "",
          note, "",
          "## Time per iteration (CPU s)", "", tab, "",
          "## Where an iteration goes (CPU s)", "", prof, "", "## Claims", "", claims_markdown(C)]
    if suffix is None:
        suffix = "_quick" if quick else ""
    plot(rows, RESULTS / f"{NAME}{suffix}.png")
    write_results(NAME + suffix, {"name": NAME, "meta": meta, "claims": C, "rows": rows,
                                  "seeds": {"data": 0}}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
