"""Throughput of SPI batch phasing: batched torch in one process against Dask workers (issue 15,
item 8), and what a 30,000-pattern run would cost.

Fixed work: a simulated stack (:mod:`phasekit.spi.simulate`, icosahedral PR772-like particles,
64 x 64 patterns = the amo86615 pnCCD binned 4 x 4 and cropped, 1e4 photons, centred) phased with
HIO, 100 iterations (80 HIO + 20 ER), 1 start, shrink-wrap every 20 (``--n`` patterns, default 48).

Measured side by side in one run on this shared 2-core machine (load average recorded; timings
are noisy, ratios are what to read):

* ``phase_batch`` compute only, one process, torch 1 thread: batch B = 1 (a pattern at a time),
  16 and 48; and B = 16 with 2 torch threads;
* ``run_batch`` end to end (stack read per chunk, chunk files, journal, merge), chunks of 8:
  in this process (``workers=0``), and on a loopback Dask ``LocalCluster`` with 1 and 2
  single-threaded worker processes (cluster start-up and the workers' warm-up -- imports and a first tiny phasing --
  reported apart, excluded from patterns/s);
* Dask per-task overhead: 200 no-op tasks on the 2-worker cluster;
* peak resident memory of each worker (``ru_maxrss``) after the run;
* parallel efficiency ``rate(2 workers) / (2 rate(1 worker))``;
* the cost of the default recipe at full size (256 x 256, 200 iterations, 4 starts) measured on
  2 patterns, extrapolated to 30,000 patterns (the Liu-lab PR772 file), and the same on paper
  from the FFT-pair cost.

Run ``nice python benchmarks/spi_scaling.py`` (~5 min here) or ``--quick``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from _common import (
    claim,
    claims_markdown,
    fmt,
    machine_meta,
    md_table,
    meta_markdown,
    set_threads,
    write_results,
)

import phasekit  # noqa: F401

NAME = "spi_scaling"
CFG = dict(algorithm="hio", iterations=100, starts=1, crop=32)


def _noop(x):
    return x


def _warm():
    """First-call costs of a worker (lazy imports of cdi / io / scipy, numba caches, torch FFT
    plans) paid once before timing; reported as ``worker_warmup_s``."""
    import torch

    from phasekit.io import spi  # noqa: F401
    from phasekit.spi.phasing import phase_batch

    torch.set_num_threads(1)
    x = np.zeros((64, 64), np.float32)
    x[28:36, 28:36] = 1
    I = np.abs(np.fft.fftshift(np.fft.fft2(x))) ** 2
    phase_batch(np.stack([I, I]), iterations=20, starts=1)
    return True


def _maxrss_mb():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_stack(path, n, size=64, photons=1e4):
    from phasekit.spi.detector import amo86615_geometry
    from phasekit.spi.simulate import simulate_spi_file

    simulate_spi_file(path, n, geometry=amo86615_geometry(size, 4), photons=photons, centre_jitter=0.0,
                      seed=0, chunk=32)
    return path


def compute_only(frames, mask, B, threads):
    import torch

    from phasekit.spi.phasing import phase_batch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        phase_batch(frames[:B], mask, **CFG)  # warm-up
        t = time.perf_counter()
        for s in range(0, len(frames), B):
            phase_batch(frames[s:s + B], mask, indices=np.arange(s, min(s + B, len(frames))), **CFG)
        return len(frames) / (time.perf_counter() - t)
    finally:
        torch.set_num_threads(old)


def end_to_end(stack, outdir, **kw):
    from phasekit.spi.distributed import run_batch

    t = time.perf_counter()
    s = run_batch(stack, outdir, chunk=8, progress=False, **CFG, **kw)
    return s.n / (time.perf_counter() - t), s


def dask_runs(stack, tmp, n_workers, log):
    from distributed import Client

    from phasekit.spi.distributed import local_cluster

    out = {}
    t = time.perf_counter()
    with local_cluster(n_workers) as cl, Client(cl) as client:
        out["cluster_start_s"] = time.perf_counter() - t
        t = time.perf_counter()
        client.run(_warm)
        out["worker_import_s"] = time.perf_counter() - t  # imports + first phasing (warm-up)
        out["patterns_per_s"], s = end_to_end(stack, tmp / f"dask{n_workers}", client=client)
        out["rss_mb"] = sorted(client.run(_maxrss_mb).values())
        if n_workers >= 2:
            futs = client.map(_noop, range(20), pure=False)
            client.gather(futs)
            t = time.perf_counter()
            futs = client.map(_noop, range(200), pure=False)
            client.gather(futs)
            out["noop_ms_per_task"] = (time.perf_counter() - t) / 200 * 1e3
    log(f"dask {n_workers} workers: {out['patterns_per_s']:.2f} patterns/s (start {out['cluster_start_s']:.1f} s, "
        f"import {out['worker_import_s']:.1f} s), rss {out['rss_mb']}")
    return out


def full_size_cost(log):
    """Default recipe at 256 x 256 on 2 patterns; the FFT-pair cost for the paper estimate."""
    import torch

    from phasekit.spi.detector import amo86615_geometry
    from phasekit.spi.phasing import phase_batch
    from phasekit.spi.simulate import simulate_spi

    c = simulate_spi(2, geometry=amo86615_geometry(256, 1), photons=1e5, centre_jitter=0.0, seed=3,
                     model="icosahedron")
    mask = None
    t = time.perf_counter()
    r = phase_batch(c.frames, mask, algorithm="hio", iterations=200, starts=4, crop=64)
    per_pattern = (time.perf_counter() - t) / 2
    from phasekit.core.fft import (  # the calls phasekit makes (direct MKL on the CPU)
        fftw,
        ifftw,
    )

    x = torch.randn(8, 256, 256, dtype=torch.complex64)
    ifftw(fftw(x, 2), 2)
    t = time.perf_counter()
    for _ in range(10):
        ifftw(fftw(x, 2), 2)
    pair = (time.perf_counter() - t) / 80
    log(f"256x256 default recipe: {per_pattern:.1f} s per pattern (status {r.status_counts()}); FFT pair {pair * 1e3:.2f} ms")
    return {"seconds_per_pattern": per_pattern, "fft_pair_ms": pair * 1e3, "status": r.status_counts(),
            "iterations": 200, "starts": 4}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=48)
    args = ap.parse_args()
    if args.quick:
        args.n = 16
    threads = set_threads(1)
    name = NAME + ("_quick" if args.quick else "")
    meta = machine_meta({"threads": threads, "n": args.n, "config": CFG, "chunk": 8})
    import distributed

    meta["versions"]["distributed"] = distributed.__version__
    res = {}
    with tempfile.TemporaryDirectory(prefix="spi_scaling_") as d:
        tmp = Path(d)
        stack = make_stack(tmp / "s.cxi", args.n)
        from phasekit.io.spi import read_frames, read_stack_info

        info = read_stack_info(stack)
        frames = read_frames(info)
        comp = {}
        for B, th in ((1, 1), (16, 1), (args.n, 1), (16, 2)):
            comp[f"B={B}, {th} thread{'s' if th > 1 else ''}"] = compute_only(frames, info.mask, B, th)
            print(f"compute B={B} threads={th}: {list(comp.values())[-1]:.2f} patterns/s")
        res["compute_only_patterns_per_s"] = comp
        res["inprocess_patterns_per_s"], _ = end_to_end(stack, tmp / "serial", workers=0)
        print(f"in-process run_batch: {res['inprocess_patterns_per_s']:.2f} patterns/s")
        res["dask"] = {str(w): dask_runs(stack, tmp, w, print) for w in (1, 2)}
    res["full_size"] = full_size_cost(print)
    r1, r2 = res["dask"]["1"]["patterns_per_s"], res["dask"]["2"]["patterns_per_s"]
    eff = r2 / (2 * r1)
    res["parallel_efficiency_2"] = eff
    comp = res["compute_only_patterns_per_s"]
    b1, b16 = comp["B=1, 1 thread"], comp["B=16, 1 thread"]
    per_chunk_s = 8 / r1
    noop = res["dask"]["2"]["noop_ms_per_task"]
    fs = res["full_size"]
    core_h = 30000 * fs["seconds_per_pattern"] / 3600
    paper_core_h = 30000 * fs["starts"] * fs["iterations"] * fs["fft_pair_ms"] * 1e-3 / 3600
    res["cost_30000"] = {"measured_core_hours": core_h, "fft_bound_core_hours": paper_core_h,
                         "hours_on_this_2_core_machine": core_h / 2 / max(eff, 1e-9),
                         "minutes_on_64_cores_at_this_efficiency": core_h * 60 / 64 / max(eff, 1e-9)}
    claims = [
        claim("batching patterns in one tensor is faster per pattern than one at a time (B=16 vs B=1, 1 thread)",
              b16 > b1, f"{fmt(b16)} vs {fmt(b1)} patterns/s ({fmt(b16 / b1)}x)"),
        claim("one torch thread per process beats two at these sizes (B=16)", b16 > comp["B=16, 2 threads"],
              f"1 thread {fmt(b16)}, 2 threads {fmt(comp['B=16, 2 threads'])} patterns/s"),
        claim("2 Dask workers phase faster than 1 (parallel efficiency > 0.6 on 2 shared cores)", eff > 0.6,
              f"{fmt(r1)} -> {fmt(r2)} patterns/s, efficiency {fmt(eff)}; load average "
              f"{meta['machine']['loadavg_at_start']}"),
        claim("Dask's per-task overhead is < 5 % of a chunk's compute (chunks of 8)", noop / 1e3 < 0.05 * per_chunk_s,
              f"no-op task {fmt(noop)} ms vs {fmt(per_chunk_s)} s per chunk"),
        claim("a Dask run on 2 workers is at least as fast as the same run in one process",
              r2 >= res["inprocess_patterns_per_s"],
              f"{fmt(r2)} vs {fmt(res['inprocess_patterns_per_s'])} patterns/s (start-up excluded: cluster "
              f"{fmt(res['dask']['2']['cluster_start_s'])} s + worker warm-up {fmt(res['dask']['2']['worker_import_s'])} s)"),
    ]
    rows = [[k, fmt(v)] for k, v in comp.items()]
    rows += [["run_batch in this process (chunks of 8)", fmt(res["inprocess_patterns_per_s"])]]
    rows += [[f"run_batch on Dask, {w} worker(s)", fmt(v["patterns_per_s"])] for w, v in res["dask"].items()]
    c = res["cost_30000"]
    md = ["# SPI batch phasing: throughput against Dask workers and batching\n", meta_markdown(meta), "",
          f"Load average at start {meta['machine']['loadavg_at_start']} (2-core machine shared with other "
          f"jobs: absolute numbers are pessimistic, compare ratios). Work: {args.n} patterns 64 x 64, "
          f"HIO 100 iterations, 1 start.", "",
          "## Claims", "", claims_markdown(claims), "",
          "## Patterns per second", "", md_table(["how", "patterns/s"], rows), "",
          f"Parallel efficiency (2 workers) {fmt(eff)}; no-op task {fmt(noop)} ms; peak RSS per worker "
          f"{res['dask']['2']['rss_mb']} MB (1-worker run: {res['dask']['1']['rss_mb']} MB).", "",
          "## 30,000 patterns at full size (256 x 256, HIO 200 iterations, 4 starts)", "",
          f"Measured {fmt(fs['seconds_per_pattern'])} s per pattern on one core here (2 patterns): "
          f"{fmt(c['measured_core_hours'])} core-hours, i.e. {fmt(c['hours_on_this_2_core_machine'])} h on this "
          f"machine with 2 workers, {fmt(c['minutes_on_64_cores_at_this_efficiency'])} min on a 64-core node at "
          f"the same efficiency. On paper: 30,000 x 4 starts x 200 iterations x one FFT pair "
          f"({fmt(fs['fft_pair_ms'])} ms measured, batched 8) = {fmt(c['fft_bound_core_hours'])} core-hours; "
          "the gap to the measured cost is the per-pattern support, shrink-wrap, alignment and "
          "PRTF work (numpy, per pattern) and the element-wise torch passes.", "",
          "On a cluster: `dask scheduler` on the head node, `dask worker tcp://HEAD:8786 --nthreads 1 "
          "--nworkers N` per node, stack and output directory on a shared file system, then "
          "`phasekit batch STACK -o OUT --scheduler tcp://HEAD:8786 --chunk 64`."]
    write_results(name, {"meta": meta, "claims": claims, "results": res}, "\n".join(md))
    for cl in claims:
        print(("HOLDS " if cl["holds"] else "FAILS ") + cl["claim"] + " -- " + cl["evidence"])


if __name__ == "__main__":
    main()
