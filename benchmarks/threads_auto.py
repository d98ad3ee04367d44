"""The driver's CPU thread choice (``phasekit.core.threads``): a default run against the same run
pinned to one thread and to every core, and two default runs at once on the same cores.

phasekit starts OpenMP with passive waiting and a short spin (docs/conventions.md, "Threads"), so
a torch operation on more than one thread may pay a thread wake-up; below ``PARALLEL_MIN_ELEMENTS`` (2^18)
elements per operation the driver runs on one thread unless the caller pinned a count.  This
script checks that rule where users meet it:

* ``auto``: the default -- torch's count left at the core count, nothing pinned (what
  ``phasekit reconstruct`` without ``--threads`` and a plain ``phasekit.cdi.reconstruct`` do);
* ``1`` and ``N`` (the core count): the same call inside ``phasekit.core.threads.cpu_threads(n)``
  (``--threads n``); ``N`` is also the count a default run used before the rule (then with a
  purely passive wait, which made it slower still: benchmarks/README.md).

Cases (seed 0, single precision): CDI HIO on a random complex object in a centred half-size
support at 64^2 ... 1024^2 (``phasekit.cdi.reconstruct``, metrics every iteration); ptychography
ePIE on a raster scan with 64^2 / 128^2 / 256^2 frames (``phasekit.engine.solve``); tomography
SIRT, 41 projections of a 32^3 / 64^3 vesicle (``phasekit.tomo.reconstruct``).  Every block is
a whole driver run; the blocks of one repeat run in a shuffled order and the ratios are taken
within a repeat (medians over repeats), so slow phases of the shared host cancel.

Concurrency: two worker processes of this script start together, each running one case in one
mode, and report their time per iteration; against the same case run alone.

Run ``python benchmarks/threads_auto.py`` (about 4 min on 2 cores) or ``--quick``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)
import numpy as np
from _common import (
    RESULTS,
    claim,
    claims_markdown,
    machine_meta,
    md_table,
    meta_markdown,
    save_figure,
    write_results,
)

import phasekit  # noqa: F401  (before torch: OpenMP wait policy)

NAME = "threads_auto"
TARGET_AUTO = 1.10  # the picked count / the other (pinned runs)
HERE = Path(__file__).resolve()


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--block-s", type=float, default=0.4, help="target seconds per timed block")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    ap.add_argument("--tag", default="", help="suffix of the result files' name (e.g. the host: 'xeon')")
    ap.add_argument("--worker", nargs=3, metavar=("CASE", "MODE", "ITERS"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


# --------------------------------------------------------------------------- cases
def cdi_case(n):
    from phasekit.cdi.api import reconstruct
    from phasekit.cdi.problem import CDIProblem

    rng = np.random.default_rng(0)
    obj = np.zeros((n, n), np.complex64)
    sl = (slice(n // 4, n // 4 + n // 2),) * 2
    obj[sl] = rng.random((n // 2, n // 2)) * np.exp(1j * rng.random((n // 2, n // 2)))
    intensity = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2
    support = np.zeros((n, n), bool)
    support[sl] = True
    p = CDIProblem.from_arrays(intensity.astype(np.float32), support)
    return lambda m: reconstruct(p, algorithm="hio", n_iter=m, rng=0, progress=False)


def ptycho_case(frame):
    from phasekit.engine import solve
    from phasekit.ptycho import (
        PtychoProblem,
        object_shape_for,
        raster_scan,
        simulate_ptycho,
    )
    from phasekit.ptycho.probe import fzp_probe

    pos = raster_scan(8, step=frame // 8, margin=1)
    shape = object_shape_for(pos, (frame, frame), margin=1)
    rng = np.random.default_rng(0)
    obj = (0.8 + 0.2 * rng.random(shape)) * np.exp(0.5j * rng.random(shape))
    sim = simulate_ptycho(obj.astype(np.complex64), fzp_probe(frame, frame // 2, frame // 3), pos,
                          dose=None, rng=0)
    p = PtychoProblem.from_arrays(sim.intensities, pos, object_shape=shape)
    return lambda m: solve(p, algorithm="epie", n_iter=m, rng=0, progress=False)


def tomo_case(n):
    from phasekit.tomo import reconstruct, simulate_tilt_series

    sim = simulate_tilt_series("vesicle", n, rng=0)  # 41 tilts, -70:3.5:70 deg
    return lambda m: reconstruct(sim.projections, sim.angles, algorithm="sirt", n_iter=m,
                                 progress=False)


def make_case(name):
    kind, size = name.split(":")
    return {"cdi": cdi_case, "ptycho": ptycho_case, "tomo": tomo_case}[kind](int(size))


def elements(name):
    """Elements per operation as the driver counts them (``Problem.parallel_elements``)."""
    from types import SimpleNamespace

    from phasekit.tomo import TomoProblem

    kind, size = name.split(":")
    n = int(size)
    if kind == "tomo":  # voxel-projection pairs, scaled to the projectors' parallel threshold
        return TomoProblem.parallel_elements.fget(SimpleNamespace(shape=(n, n, n), n_proj=41))
    return n * n  # a CDI pattern; a ptychography frame (one probe mode)


def timed(run, mode, m):
    """Seconds per iteration of one driver run of ``m`` iterations in ``mode``."""
    from phasekit.core.threads import cpu_threads

    with cpu_threads(None if mode == "auto" else int(mode)):
        t0 = time.perf_counter()
        res = run(m)
        dt = time.perf_counter() - t0
    return dt / m, int(res.provenance["threads"])


def worker(case, mode, iters):
    run = make_case(case)
    timed(run, mode, max(2, iters // 10))  # warm-up (numba caches, allocator)
    per, used = timed(run, mode, iters)
    print(json.dumps({"per_iter_s": per, "threads": used}), flush=True)


def concurrent(case, mode, iters, copies):
    """Per-iteration seconds of ``copies`` workers started together."""
    cmd = [sys.executable, str(HERE), "--worker", case, mode, str(iters)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(copies)]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(f"worker failed: {se.strip().splitlines()[-1:]}")
        out.append(json.loads(so.strip().splitlines()[-1]))
    return out


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        case, mode, iters = args.worker
        worker(case, mode, int(iters))
        return
    import torch

    from phasekit.core.threads import PARALLEL_MIN_ELEMENTS, threads_pinned

    ncores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(ncores)  # torch's own default, not pinned
    assert not threads_pinned()
    if args.quick:
        cases = ["cdi:64", "cdi:256", "cdi:1024", "ptycho:128", "tomo:32"]
        args.repeats = min(args.repeats, 3)
    else:
        cases = ["cdi:64", "cdi:128", "cdi:256", "cdi:512", "cdi:1024", "ptycho:64", "ptycho:128",
                 "ptycho:256", "tomo:32", "tomo:64"]
    modes = ["auto", "1", str(ncores)]
    name = NAME + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    meta = machine_meta({"cores": ncores, "repeats": args.repeats, "block_s": args.block_s,
                         "PARALLEL_MIN_ELEMENTS": PARALLEL_MIN_ELEMENTS})
    runs, iters = {}, {}
    for c in cases:  # build, warm up and size the blocks
        runs[c] = make_case(c)
        timed(runs[c], "1", 2)
        per, _ = timed(runs[c], "1", 3)
        iters[c] = max(3, int(args.block_s / per))
        print(f"{c}: {iters[c]} iterations per block", flush=True)
    rng = np.random.default_rng(0)
    samples = {(c, md): [] for c in cases for md in modes}
    used = {}
    for r in range(args.repeats):
        order = [(c, md) for c in cases for md in modes]
        rng.shuffle(order)
        for c, md in order:
            per, n_used = timed(runs[c], md, iters[c])
            samples[(c, md)].append(per)
            used[(c, md)] = n_used
        print(f"repeat {r + 1}/{args.repeats} done", flush=True)
    rows, table = [], []
    for c in cases:
        t = {md: np.array(samples[(c, md)]) for md in modes}
        best = np.minimum(t["1"], t[str(ncores)])
        chosen = str(used[(c, "auto")])  # the pinned run with the count the default picked
        other = str(ncores) if chosen == "1" else "1"
        row = {"case": c, "elements": elements(c), "iterations_per_block": iters[c],
               "ms_per_iteration": {md: float(np.median(t[md]) * 1e3) for md in modes},
               "threads_used": {md: used[(c, md)] for md in modes},
               "chosen_over_other": float(np.median(t[chosen] / t[other])),
               "auto_over_same_count_pinned": float(np.median(t["auto"] / t[chosen])),
               "auto_over_best_pinned": float(np.median(t["auto"] / best)),
               "all_cores_over_auto": float(np.median(t[str(ncores)] / t["auto"])),
               "one_over_all_cores": float(np.median(t["1"] / t[str(ncores)]))}
        rows.append(row)
        ms = row["ms_per_iteration"]
        table.append([c, row["elements"], row["threads_used"]["auto"], ms["auto"], ms["1"],
                      ms[str(ncores)], row["chosen_over_other"], row["auto_over_same_count_pinned"],
                      row["all_cores_over_auto"]])
    # two default runs at once (the test suite's two workers, two users' jobs on one host)
    conc = []
    for c in (["cdi:64", "ptycho:128"] if args.quick else ["cdi:64", "cdi:256", "ptycho:128"]):
        m = max(5, iters[c] // 2)
        alone = concurrent(c, "auto", m, 1)[0]["per_iter_s"]
        entry = {"case": c, "iterations": m, "alone_auto_ms": alone * 1e3}
        for md in ("auto", str(ncores)):
            got = concurrent(c, md, m, 2)
            entry[f"two_at_once_{md}_ms"] = [g["per_iter_s"] * 1e3 for g in got]
        conc.append(entry)
        print(f"concurrent {c}: {entry}", flush=True)

    claims = []
    worst = max(rows, key=lambda r: r["chosen_over_other"])
    claims.append(claim(
        f"in every case the default picks the faster of one thread and {ncores} threads, or one "
        f"within {TARGET_AUTO}x of it (pinned runs, the picked count / the other)",
        worst["chosen_over_other"] <= TARGET_AUTO,
        "picked / other: " + ", ".join(f"{r['case']} ({r['threads_used']['auto']}) "
                                       f"{r['chosen_over_other']:.2f}" for r in rows)
        + "; default / pinned to the same count: "
        + ", ".join(f"{r['auto_over_same_count_pinned']:.2f}" for r in rows)))
    small = [r for r in rows if r["elements"] < PARALLEL_MIN_ELEMENTS]
    if small:
        lo = min(r["all_cores_over_auto"] for r in small)
        claims.append(claim(
            f"below {PARALLEL_MIN_ELEMENTS} elements per operation a default run is at least 1.2x "
            f"faster than the same run pinned to {ncores} threads", lo >= 1.2,
            ", ".join(f"{r['case']} {r['all_cores_over_auto']:.2f}x" for r in small)))
    for e in conc:
        both = max(e["two_at_once_auto_ms"])
        claims.append(claim(
            f"{e['case']}: two default runs at once on {ncores} cores each take at most 1.5x the "
            f"time per iteration of one run alone", both <= 1.5 * e["alone_auto_ms"],
            f"alone {e['alone_auto_ms']:.3g} ms; two at once: default "
            f"{', '.join(f'{v:.3g}' for v in e['two_at_once_auto_ms'])} ms, {ncores} threads each "
            f"{', '.join(f'{v:.3g}' for v in e[f'two_at_once_{ncores}_ms'])} ms"))

    data = {"meta": meta, "results": rows, "concurrent": conc, "claims": claims}
    png = RESULTS / f"{name}.png"
    plot(rows, ncores, png)
    md = [f"# {NAME}: the driver's CPU thread choice", "", meta_markdown(meta), "",
          f"Time per iteration of whole driver runs (medians of {args.repeats} interleaved repeats); "
          f"`auto` is the default (torch's count {ncores}, not pinned), `1` / `{ncores}` pinned with "
          "`cpu_threads`.  OMP_WAIT_POLICY=" + str(os.environ.get("OMP_WAIT_POLICY")) + ", GOMP_SPINCOUNT="
          + str(os.environ.get("GOMP_SPINCOUNT")) + ".", "",
          md_table(["case", "elements / op", "auto threads", "auto ms", "1 thread ms", f"{ncores} threads ms",
                    "picked / other count (pinned)", "auto / pinned to the same count",
                    f"{ncores} threads / auto"], table), "",
          "Two worker processes started together (ms per iteration of each):", "",
          md_table(["case", "alone (default)", "two at once, default", f"two at once, {ncores} threads each"],
                   [[e["case"], e["alone_auto_ms"], ", ".join(f"{v:.3g}" for v in e["two_at_once_auto_ms"]),
                     ", ".join(f"{v:.3g}" for v in e[f"two_at_once_{ncores}_ms"])] for e in conc]), "",
          "## Claims", "", claims_markdown(claims), "", f"![times]({png.name})"]
    write_results(name, data, "\n".join(md))
    for c in claims:
        print(("HOLDS  " if c["holds"] else "FAILS  ") + c["claim"] + " -- " + c["evidence"])


def plot(rows, ncores, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = np.arange(len(rows))
    for i, (md, lab) in enumerate([("auto", "default (auto)"), ("1", "1 thread"),
                                   (str(ncores), f"{ncores} threads")]):
        base = np.array([min(r["ms_per_iteration"]["1"], r["ms_per_iteration"][str(ncores)]) for r in rows])
        ax.bar(x + (i - 1) * 0.27, [r["ms_per_iteration"][md] for r in rows] / base, 0.27, label=lab)
    ax.set_xticks(x, [r["case"] for r in rows], rotation=30)
    ax.set_ylabel("time / faster pinned count")
    ax.axhline(1, color="k", lw=0.5)
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
