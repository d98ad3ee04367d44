"""Throughput of the SPI simulator (phasekit.spi.simulate; issue 15, item 1).

Claim checked: simulating 10^4 PR772-like patterns of 128 x 128 takes minutes, not hours (the
slicing of the particle's 3-D transform is batched: one ``grid_sample`` call per chunk).

Fixed work: icosahedral 70 nm particles (the paper's class mix 208/497 single; dimers,
aggregates, far multiples, droplets, spheroids, coated), photons 3e3-1e5 per single hit,
background 0.005 ph/px, Poisson noise, the amo86615 geometry at 128 x 128 (binning 2) and
256 x 256.  Timed in-process (``SpiSimulator.simulate``, no file) and end to end
(``simulate_spi_file``: + gzip-compressed CXI writing), patterns per second; the set-up (voxelise
and one FFT of the padded volume) separately.  Seeds 0.  The machine is shared: the load average
at start and end is recorded; timings are wall clock.

    python benchmarks/spi_simulate.py [--n 512]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import _common  # noqa: F401  (first: thread set-up)
from _common import (
    claim,
    claims_markdown,
    machine_meta,
    md_table,
    meta_markdown,
    set_threads,
    write_results,
)

NAME = "spi_simulate"


def run(size, binning, n, chunk):
    from phasekit.spi.detector import amo86615_geometry
    from phasekit.spi.simulate import SpiSimulator, simulate_spi_file

    g = amo86615_geometry(size, binning)
    kw = dict(geometry=g, photons=(3e3, 1e5), background=0.005, seed=0)
    t0 = time.perf_counter()
    sim = SpiSimulator(n, **kw)
    t_setup = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    for a in range(0, n, chunk):
        sim.simulate(a, min(n, a + chunk))
    t_mem, c_mem = time.perf_counter() - t0, time.process_time() - c0
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        simulate_spi_file(Path(d) / "s.cxi", n, chunk=chunk, simulator=sim)
        t_file = time.perf_counter() - t0
        size_b = (Path(d) / "s.cxi").stat().st_size
    return {"size": size, "binning": binning, "n": n, "chunk": chunk, "setup_s": t_setup,
            "in_memory_s": t_mem, "in_memory_cpu_s": c_mem, "file_s": t_file, "patterns_per_s": n / t_mem,
            "patterns_per_s_file": n / t_file, "bytes_per_pattern": size_b / n,
            "transform_side": getattr(sim.model, "n", None)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=512, help="patterns per measurement")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    threads = set_threads(args.threads)
    meta = machine_meta({"threads": threads})
    rows = [run(128, 2, args.n, 64), run(256, 1, max(64, args.n // 4), 32)]
    r128 = rows[0]
    t_1e4 = r128["setup_s"] + 1e4 / r128["patterns_per_s_file"]
    claims = [
        claim("10^4 patterns of 128 x 128 (paper class mix, icosahedra) simulate and are written "
              "in minutes, not hours (< 30 min)", t_1e4 < 1800,
              f"{r128['patterns_per_s_file']:.1f} patterns/s written ({r128['patterns_per_s']:.1f} "
              f"in memory), set-up {r128['setup_s']:.1f} s: 10^4 patterns in about "
              f"{t_1e4 / 60:.1f} min on this shared {meta['machine']['cpu_count']}-CPU machine "
              f"(load {meta['machine']['loadavg_at_start']}; {r128['in_memory_cpu_s']:.1f} CPU-s for "
              f"{r128['n']} patterns in memory)",
              extrapolated_1e4_s=t_1e4),
        claim("a 256 x 256 pattern costs at most 5x a 128 x 128 one (4x the pixels)",
              rows[1]["patterns_per_s"] * 5 >= r128["patterns_per_s"],
              f"{rows[1]['patterns_per_s']:.1f} vs {r128['patterns_per_s']:.1f} patterns/s in "
              "memory"),
    ]
    data = {"meta": meta, "rows": rows, "claims": claims}
    md = ["# SPI simulator throughput\n", meta_markdown(meta), "",
          md_table(["detector", "patterns", "chunk", "set-up s", "patterns/s (memory)",
                    "patterns/s (file)", "kB/pattern", "transform side"],
                   [[f"{r['size']}^2 (bin {r['binning']})", r["n"], r["chunk"],
                     f"{r['setup_s']:.2f}", f"{r['patterns_per_s']:.1f}",
                     f"{r['patterns_per_s_file']:.1f}", f"{r['bytes_per_pattern'] / 1e3:.1f}",
                     r["transform_side"]] for r in rows]),
          "", claims_markdown(claims)]
    out = write_results(NAME, data, "\n".join(md))
    print("\n".join(md))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
