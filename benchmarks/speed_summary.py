"""speed_summary: every speed check of phasekit in one run and one table (issue 16, item 7).

Runs the ``--quick`` variant of each speed benchmark in its own process, one after the other
(so they never compete for the two cores), then gathers every claim they make (ours / the FFT or
pass bound, ours / a peer on the same data) into one table.  The quick variants write
``<name>_quick.*`` and leave the full runs' results alone.

========================  =====================================================================
benchmark                 what its claims compare
========================  =====================================================================
``cdi_speed``             ER / HIO / RAAR / OSS / GPS per iteration / the FFT pair they must do,
                          and / cohere-core where installed
``saddle_speed``          SO2D / SO4D per iteration / HIO's
``ptycho_speed``          an ePIE / rPIE / mPIE / CRISP sweep / its FFT bound, and / PtyLab and
                          pty-chi where their environments are given
``tomo_speed``            RESIRE and SIRT per iteration / their FFT or projector parts, / ASTRA
``kmeans_speed``          one SBE k-means fit / one scikit-learn Lloyd fit
``threads_auto``          a default run (the driver's thread choice) / the same run pinned to one
                          thread and to every core, and two default runs at once / one alone
========================  =====================================================================

A benchmark that fails or times out is reported as such (a claim that does not hold), never
skipped silently.

Run: ``python benchmarks/speed_summary.py`` (a few minutes on 2 cores); ``--only cdi_speed,...``
runs a subset; extra arguments for one benchmark go through ``--args NAME="..."``.
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads)

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _common import (RESULTS, claim, claims_markdown, machine_meta, md_table, meta_markdown, save_figure,
                     write_results)

NAME = "speed_summary"
BENCHMARKS = ("cdi_speed", "saddle_speed", "ptycho_speed", "tomo_speed", "kmeans_speed", "threads_auto")
HERE = Path(__file__).resolve().parent


def run_one(name: str, extra: list[str], timeout: float, tag: str = "") -> dict:
    """Run ``name --quick`` in a fresh process; return its status, wall time and claims."""
    cmd = [sys.executable, str(HERE / f"{name}.py"), "--quick", *(["--tag", tag] if tag else []), *extra]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, check=False, cwd=HERE, capture_output=True, text=True, timeout=timeout)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        status, tail = f"timed out after {timeout:.0f} s", []
    wall = time.perf_counter() - t0
    out = {"benchmark": name, "command": shlex.join(cmd[1:]), "status": status, "wall_s": wall,
           "tail": tail, "claims": []}
    path = RESULTS / (f"{name}_quick_{tag}.json" if tag else f"{name}_quick.json")
    if status == "ok" and path.exists():
        data = json.loads(path.read_text())
        out["claims"] = [{k: c.get(k) for k in ("claim", "holds", "evidence")} for c in data.get("claims", [])]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=",".join(BENCHMARKS))
    ap.add_argument("--args", action="append", default=[], metavar='NAME="..."',
                    help="extra arguments for one benchmark, e.g. ptycho_speed=\"--ptylab-python /p/python\"")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    ap.add_argument("--tag", default="",
                    help="suffix of every result file's name (e.g. the host: 'xeon'), passed to each benchmark")
    a = ap.parse_args(argv)
    names = [n for n in a.only.split(",") if n]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    extra = {}
    for item in a.args:
        key, _, val = item.partition("=")
        extra[key] = shlex.split(val)
    meta = machine_meta({"benchmarks": names})
    runs = []
    for name in names:
        print(f"running {name} --quick ...", flush=True)
        r = run_one(name, extra.get(name, []), a.timeout, a.tag)
        print(f"  {r['status']} in {r['wall_s']:.0f} s, {len(r['claims'])} claims", flush=True)
        runs.append(r)
    claims = [claim(f"{r['benchmark']} --quick ran to the end", r["status"] == "ok",
                    f"{r['status']} in {r['wall_s']:.0f} s" + ("" if r["status"] == "ok" else
                                                              f"; last lines: {' | '.join(r['tail'])}"))
              for r in runs]
    for r in runs:
        for c in r["claims"]:
            claims.append(claim(f"[{r['benchmark']}] {c['claim']}", c["holds"], c["evidence"]))
    n_held = sum(1 for c in claims if c["holds"])
    rows = [[r["benchmark"], r["status"], f"{r['wall_s']:.0f}", len(r["claims"]),
             sum(1 for c in r["claims"] if c["holds"])] for r in runs]
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.5 * len(runs)))
    y = range(len(runs))
    ax.barh(y, [len(r["claims"]) for r in runs], color="0.8", label="claims")
    ax.barh(y, [sum(1 for c in r["claims"] if c["holds"]) for r in runs], color="C2", label="hold")
    ax.set_yticks(list(y), [f"{r['benchmark']} ({r['status']})" for r in runs])
    ax.set_xlabel("claims"); ax.legend(); fig.tight_layout()
    name = NAME + (f"_{a.tag}" if a.tag else "")
    png = save_figure(fig, RESULTS / f"{name}.png")
    md = "\n".join([
        "# speed_summary: every speed check in one table", "", meta_markdown(meta), "",
        __doc__.split("\n\n", 1)[1].split("Run:")[0].strip(), "",
        md_table(["benchmark", "status", "wall s", "claims", "hold"], rows), "",
        f"{n_held} of {len(claims)} claims hold.", "", "## Claims", "", claims_markdown(claims), "",
        f"![claims per benchmark]({png.name})", ""])
    data = {"benchmark": NAME, "meta": meta, "runs": runs, "claims": claims}
    write_results(name, data, md)
    print(f"{n_held} of {len(claims)} claims hold; results/{name}.md")


if __name__ == "__main__":
    main(sys.argv[1:])
