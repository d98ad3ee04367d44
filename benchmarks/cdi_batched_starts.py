"""Throughput of several CDI random starts run as one batched (N, H, W) problem against the same
starts run one after another (issue 16 item 2; docs/cdi.md "Batched starts").

Pattern: a random object in a centred square support of half the array per axis (complex:
amplitude U[0,1) and phase U[0,1) rad, ``real=False``; real: amplitude U[0,1), ``real=True``, so
ER / HIO / RAAR run on the real FFT pair), ``I = |fftc(obj)|^2``, float32 / complex64, every
pixel measured, the support given (no shrink-wrap), metrics every iteration (the default).
Sizes 128^2, 256^2, 512^2; algorithms ER, HIO, RAAR; N = 1, 2, 4, 8 starts; seed 0 for the
object and the starts.  One thread (torch and numba).

For every configuration the two variants -- ``reconstruct(problem, ..., starts=N,
batch_starts=False)`` and ``batch_starts=True`` -- are timed as whole calls, interleaved in a
shuffled order within each repeat; the ratio ``sequential / batched`` of the two adjacent calls
is kept and the tables give its median over repeats (slow phases of the shared machine cancel).
``N = 1`` runs the sequential path in both variants (one start is never batched): its ratio is
the noise floor.  ``per start`` is the batched wall time per start in units of a one-start run
(below 1: batching gives more starts per second than one start alone).  Both variants start from
the same random starts (same child generators); the largest relative difference of their final
images and R-factors is reported (float32: the batched FFT may round differently).

What a batch shares: at 128^2 and 256^2 the FFT pair runs batched and the driver's per-iteration
Python runs once for all starts; above 2^17 pixels (512^2) a CPU batch steps image by image
(``CDIProblem.batch_by_image``, for cache locality), so only the driver's overhead is shared.
The a-priori targets of the claims (1.2x at 128^2, 1.05x at 256^2, not slower at 512^2) are
checked as measured.

Run ``nice -n 10 python benchmarks/cdi_batched_starts.py`` (about 15-20 min on a loaded 2-core
host) or ``--quick`` (128^2 and 256^2, 3 repeats; writes ``cdi_batched_starts_quick.*``).

``--device cuda`` runs the same comparison on a GPU (the problems and every start on the device;
whole ``reconstruct`` calls, which return NumPy images and so wait for the device): there a
batch is the natural layout (one launch per operation for all starts) and the a-priori targets
are 2x the sequential throughput at 8 starts up to 256^2 and 1.5x at 512^2.  Prepared for a
session lent a device (``benchmarks/device_check.sh``); not yet run on one.
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (RESULTS, claim, claims_markdown, fmt, loadavg, machine_meta,  # noqa: E402
                     md_table, meta_markdown, save_figure, set_threads, write_results)

NAME = "cdi_batched_starts"
ALGS = ("er", "hio", "raar")
PATHS = ("complex", "real")
#: iterations per call by size (about 0.1-0.5 s per start-call on one core)
ITERS = {128: 40, 256: 12, 512: 6}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="128^2 and 256^2, 3 repeats")
    p.add_argument("--sizes", type=int, nargs="+", default=None)
    p.add_argument("--starts", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--tag", default="", help="suffix of the result files' name (e.g. the host: 'xeon')")
    p.add_argument("--device", default="cpu", help="torch device of the problems (cpu, cuda)")
    a = p.parse_args(argv)
    if a.sizes is None:
        a.sizes = [128, 256] if a.quick else [128, 256, 512]
    if a.repeats is None:
        a.repeats = 3 if a.quick else 5
    return a


def make_problem(n, path, seed, device="cpu"):
    import torch

    from phasekit.cdi import CDIProblem
    from phasekit.core.fft import fftc

    g = np.random.default_rng(seed)
    obj = np.zeros((n, n), np.complex128)
    s = slice(n // 4, n // 4 + n // 2)
    amp = g.random((n // 2, n // 2))
    obj[s, s] = amp if path == "real" else amp * np.exp(1j * g.random((n // 2, n // 2)))
    I = np.abs(fftc(torch.from_numpy(obj)).numpy()) ** 2
    sup = np.zeros((n, n), bool)
    sup[s, s] = True
    return CDIProblem.from_arrays(I.astype(np.float32), sup, real=(path == "real"), device=device)


def measure(args, log):
    from phasekit.cdi import reconstruct

    order_rng = np.random.default_rng(12345)
    res = {}
    for n in args.sizes:
        it = ITERS.get(n, max(2, int(40 * (128 / n) ** 2)))
        for path in PATHS:
            problem = make_problem(n, path, args.seed, args.device)
            for alg in ALGS:
                key = f"{n}/{path}/{alg}"
                rows = {}
                base = None
                for ns in args.starts:
                    kw = dict(algorithm=alg, n_iter=it, starts=ns, rng=args.seed, progress=False)
                    reconstruct(problem, batch_starts=ns > 1, **{**kw, "n_iter": 2})  # warm-up
                    t = {"seq": [], "bat": []}
                    out = {}
                    for _ in range(args.repeats):
                        for mode in order_rng.permutation(["seq", "bat"]):
                            t0 = time.perf_counter()
                            r = reconstruct(problem, batch_starts=(mode == "bat" and ns > 1), **kw)
                            t[mode].append(time.perf_counter() - t0)
                            out[mode] = r
                    ratio = float(np.median(np.array(t["seq"]) / np.array(t["bat"])))
                    a, b = out["seq"], out["bat"]
                    img_diff = max(float(np.abs(x - y).max() / np.abs(x).max())
                                   for x, y in zip(a.images, b.images))
                    rf_diff = max(abs(x - y) / x for x, y in zip(a.rfactors, b.rfactors))
                    t_bat = float(np.median(t["bat"]))
                    if ns == 1:
                        base = float(np.median(t["seq"] + t["bat"]))
                    rows[str(ns)] = {
                        "starts": ns, "iterations": it, "seq_s": float(np.median(t["seq"])),
                        "bat_s": t_bat, "ratio_seq_over_bat": ratio,
                        "per_start_vs_one": (t_bat / ns) / base if base else None,
                        "batched_used": bool(b.config["batched_starts"]),
                        "max_rel_image_diff": img_diff, "max_rel_rfactor_diff": rf_diff,
                        "loadavg": loadavg()}
                    log(f"{key:18s} N={ns}: seq {rows[str(ns)]['seq_s']:.3f} s, bat {t_bat:.3f} s, "
                        f"ratio {ratio:.3f}, per start {rows[str(ns)]['per_start_vs_one']:.3f}, "
                        f"image diff {img_diff:.2e}")
                res[key] = rows
    return res


def make_claims(res, args):
    C = []
    nmax = str(max(args.starts))
    diffs = [r["max_rel_image_diff"] for rows in res.values() for r in rows.values()]
    rfd = [r["max_rel_rfactor_diff"] for rows in res.values() for r in rows.values()]
    C.append(claim("batched starts give the sequential starts' final images and R-factors (same "
                   "seeds) within float32 rounding (relative difference < 1e-4)",
                   max(diffs) < 1e-4 and max(rfd) < 1e-4,
                   f"largest relative image difference {max(diffs):.2e}, R-factor {max(rfd):.2e} "
                   f"over {len(diffs)} runs"))
    gpu = not args.device.startswith("cpu")
    targets = {128: 2.0, 256: 2.0, 512: 1.5} if gpu else {128: 1.2, 256: 1.05, 512: 1.0}
    where = args.device if gpu else "1 thread"
    for n in args.sizes:
        keys = [k for k in res if k.startswith(f"{n}/")]
        ratios = {k: res[k][nmax]["ratio_seq_over_bat"] for k in keys}
        lo = min(ratios.values())
        tgt = targets.get(n, 1.0)
        C.append(claim(f"{n}^2, {nmax} starts, {where}: batched runs at least {tgt:g}x the "
                       f"throughput of sequential starts for ER, HIO and RAAR, complex and real",
                       lo >= tgt, f"sequential / batched {lo:.2f}-{max(ratios.values()):.2f} "
                       f"(median of {args.repeats} interleaved pairs; "
                       + ", ".join(f"{k.split('/', 1)[1]} {v:.2f}" for k, v in ratios.items()) + ")"))
    # per size and path (CDIProblem.prefers_batch: the complex path is batched on the CPU up to
    # 128^2 only); "slower" below the noise floor of about 5 %
    auto = {(n, path): bool(make_problem(n, path, args.seed, args.device).prefers_batch(8))
            for n in args.sizes for path in PATHS}
    slower = sorted({(int(k.split("/")[0]), k.split("/")[1]) for k, rows in res.items()
                     if rows[nmax]["ratio_seq_over_bat"] < 0.95})
    C.append(claim("the automatic choice (batch_starts=None) batches exactly the sizes and paths "
                   "where forced batching was not slower (ratio >= 0.95) at the largest N for every "
                   "algorithm",
                   all(auto[key] == (key not in slower) for key in auto),
                   f"auto batches {[f'{n}^2 {p}' for (n, p), b in auto.items() if b]}; forced "
                   f"batching slower somewhere at {[f'{n}^2 {p}' for n, p in slower]}"))
    allr = [r["ratio_seq_over_bat"] for rows in res.values() for k, r in rows.items() if k != "1"]
    C.append(claim("batching is never slower than sequential starts (ratio >= 0.95 at every size, "
                   "algorithm, path and N >= 2)", min(allr) >= 0.95,
                   f"ratios {min(allr):.2f}-{max(allr):.2f}"))
    return C


def plots(res, args, out, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.sizes), figsize=(4.2 * len(args.sizes), 3.4), squeeze=False)
    for ax, n in zip(axes[0], args.sizes):
        for k in [k for k in res if k.startswith(f"{n}/")]:
            rows = res[k]
            xs = [rows[s]["starts"] for s in rows]
            ax.plot(xs, [rows[s]["ratio_seq_over_bat"] for s in rows], "o-" if "complex" in k else "s--",
                    label=k.split("/", 1)[1])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("starts N")
        ax.set_title(f"{n}^2, " + ("1 thread" if args.device.startswith("cpu") else args.device))
    axes[0][0].set_ylabel("sequential / batched time")
    axes[0][-1].legend(fontsize=7)
    return [str(save_figure(fig, Path(out) / f"{name}.png"))]


def markdown(data, args, meta):
    L = [f"# {data['meta']['name']}", "", __doc__.split("\n\n")[0], "", meta_markdown(meta),
         f"Load average at start {data['meta']['loadavg_at_start']} (a shared 2-core host: ratios, "
         "not absolute times, are the result).", ""]
    hdr = ["size/path/alg"] + [f"N={s}: seq/bat" for s in args.starts] + \
          [f"N={s}: per start" for s in args.starts if s > 1]
    rows = []
    for k, r in data["results"].items():
        rows.append([k] + [fmt(r[str(s)]["ratio_seq_over_bat"]) for s in args.starts]
                    + [fmt(r[str(s)]["per_start_vs_one"]) for s in args.starts if s > 1])
    L += [md_table(hdr, rows), "",
          "'seq/bat': median over repeats of (sequential call time / adjacent batched call time); "
          "'per start': batched call time / N in units of a one-start call.", "",
          "## Claims", "", claims_markdown(data["claims"]), "", "## Figures", ""]
    L += [f"* `{f}`" for f in data["figures"]]
    return "\n".join(L)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    name = NAME + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    t_start = time.perf_counter()
    threads = set_threads(1)
    meta = machine_meta()
    import torch

    try:
        kind = torch.device(args.device).type
    except (RuntimeError, ValueError):
        print(f"cdi_batched_starts: unknown device {args.device!r}", file=sys.stderr)
        return 2
    if kind not in ("cpu", "cuda"):
        print(f"cdi_batched_starts: --device must be cpu or cuda, got {args.device!r}", file=sys.stderr)
        return 2
    if kind == "cuda":
        if not torch.cuda.is_available():
            print(f"cdi_batched_starts: --device {args.device} but torch sees no CUDA device",
                  file=sys.stderr)
            return 2
        meta["device"] = torch.cuda.get_device_name()
    la0 = loadavg()

    def log(s):
        print(s, flush=True)

    log(f"threads {threads}, load {la0}")
    res = measure(args, log)
    claims = make_claims(res, args)
    figs = plots(res, args, out, name)
    data = {"meta": {**meta, "name": name, "quick": args.quick, "args": vars(args),
                     "threads": threads, "loadavg_at_start": la0,
                     "seeds": {"object": args.seed, "starts": args.seed},
                     "runtime_s": time.perf_counter() - t_start},
            "claims": claims, "results": res, "figures": figs}
    write_results(name, data, markdown(data, args, meta), out)
    log(f"wrote {out / (name + '.json')} ({(time.perf_counter() - t_start) / 60:.1f} min)")
    for c in claims:
        log(("HOLDS   " if c["holds"] else "FAILS   " if c["holds"] is False else "N/A     ")
            + c["claim"] + "  [" + c["evidence"] + "]")


if __name__ == "__main__":
    sys.exit(main())
