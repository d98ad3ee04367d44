"""Time per iteration of phasekit's CDI algorithms and of an ePIE sweep on a GPU, against the
FFTs they must do on the same device and against one CPU thread (issue 16: GPU timings).

CDI pattern: as ``cdi_speed.py`` (a random complex object, amplitude U[0,1) and phase U[0,1)
rad, in a centred support of half the array per axis, ``I = |fftc(obj)|^2``, complex64, every
pixel measured, ``real=False``), 256^2, 512^2 and 1024^2.  Algorithms ER, HIO, RAAR, GPS-R and
OSS on the torch path (the compiled numba kernels are CPU-only).  Rows:

* ``step``: ``Algorithm.step`` in a loop (no metrics), the device synchronised at the ends of a
  block;
* ``step+metrics``: ``step`` then ``metrics()`` every iteration, as ``reconstruct(...,
  metric_every=1)`` does: the R-factor is a Python float, so every iteration waits for the
  device;
* the FFT bound: (FFTs the algorithm must do, as in ``cdi_speed.py``) / 2 x the time of a
  ``fftn`` + ``ifftn`` pair on the device, measured in the block right before;
* ``CPU 1 thread``: the same ``step`` on the CPU (numba kernels) in the same run, for the GPU
  speed-up.

Ptychography: an ePIE sweep over 100 Fermat-spiral positions with 128^2 frames on a 384^2
object (the plain torch per-position sweep: the fused sweeps are CPU kernels), per position
against one 128^2 FFT pair on the device.

Blocks are interleaved (each timed block right after its FFT-pair block) and the tables give
medians over repeats.  Prepared for a session lent a device (``benchmarks/device_check.sh``);
``--device cpu`` runs the same script on the CPU (one thread) as a dry run.  The a-priori
targets of the claims are stated in them.
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
from cdi_speed import FFTS_METRICS, FFTS_STEP, make_pattern  # noqa: E402

NAME = "gpu_speed"
ALGS = ("er", "hio", "raar", "gps-r", "oss")
#: a-priori targets: HIO's step within this of the device's FFT bound at 512^2 and up; metrics
#: (one more FFT and a wait for the device) within this of the step; GPU / one CPU thread
TARGET_BOUND = 1.5
TARGET_METRICS = 1.5
TARGET_SPEEDUP = 10.0
#: ePIE per position within this many device FFT pairs at 128^2
TARGET_PTYCHO = 3.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="torch device (cuda; cpu for a dry run)")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    p.add_argument("--algorithms", nargs="+", default=list(ALGS), choices=list(ALGS))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--block-s", type=float, default=0.15, help="seconds per timed block")
    p.add_argument("--no-cpu", action="store_true", help="skip the one-CPU-thread comparison")
    p.add_argument("--no-ptycho", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--tag", default="", help="suffix of the result files' name (e.g. 'device')")
    return p.parse_args(argv)


def _sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _block(fn, m, device):
    """Seconds for ``fn(m)`` with the device idle at both ends."""
    _sync(device)
    t0 = time.perf_counter()
    fn(m)
    _sync(device)
    return time.perf_counter() - t0


def _calibrate(fn, device, block_s, lo=3, hi=2000):
    _block(fn, 3, device)  # warm-up (plans, kernels)
    t = _block(fn, 5, device) / 5
    return int(min(max(round(block_s / max(t, 1e-7)), lo), hi))


def cdi_timers(n, args, device):
    """name -> (fn(m), ffts, where) for one size; fn runs m iterations."""
    from phasekit.cdi.problem import CDIProblem
    from phasekit.engine import get_algorithm

    intensity, support = make_pattern(n, args.seed)
    probs = {"dev": CDIProblem.from_arrays(intensity, support, device=device)}
    if not args.no_cpu and device.type != "cpu":
        probs["cpu"] = CDIProblem.from_arrays(intensity, support)

    def algo(name, where):
        spec = get_algorithm(name)
        p = probs[where]
        a = spec.cls(p, 10 ** 6)
        a.initialize(spec.cls.random_start(p, np.random.default_rng(args.seed)).to(p.device))
        for k in range(5):
            a.step(k)
        a._bench_k = 5
        return a

    def stepper(a, metrics):
        def fn(m):
            k = a._bench_k
            for i in range(k, k + m):
                a.step(i)
                if metrics:
                    a.metrics()
            a._bench_k = k + m
        return fn

    timers = {}
    for name in args.algorithms:
        timers[f"{name} step"] = (stepper(algo(name, "dev"), False), FFTS_STEP[name], "dev")
        timers[f"{name} step+metrics"] = (stepper(algo(name, "dev"), True),
                                          FFTS_STEP[name] + FFTS_METRICS[name], "dev")
        if "cpu" in probs:
            timers[f"{name} step, CPU 1 thread"] = (stepper(algo(name, "cpu"), False),
                                                    FFTS_STEP[name], "cpu")
    return timers


def fft_pair_fn(shape, device):
    import torch

    x = torch.randn(*shape, dtype=torch.complex64, device=device)

    def fn(m):
        for _ in range(m):
            torch.fft.ifftn(torch.fft.fftn(x, norm="ortho"), norm="ortho")
    return fn


def measure_cdi(args, device, log):
    import torch

    cpu = torch.device("cpu")
    res = {}
    rng = np.random.default_rng(12345)
    for n in args.sizes:
        timers = cdi_timers(n, args, device)
        pair = {"dev": fft_pair_fn((n, n), device), "cpu": fft_pair_fn((n, n), cpu)}
        where_dev = {"dev": device, "cpu": cpu}
        m_pair = {w: _calibrate(pair[w], where_dev[w], args.block_s) for w in
                  {w for _, _, w in timers.values()}}
        m_alg = {k: _calibrate(fn, where_dev[w], args.block_s) for k, (fn, _, w) in timers.items()}
        per = {k: {"t": [], "ratio": []} for k in timers}
        pairs = {w: [] for w in m_pair}
        for _ in range(args.repeats):
            for k in rng.permutation(list(timers)):
                fn, ffts, w = timers[k]
                tp = _block(pair[w], m_pair[w], where_dev[w]) / m_pair[w]
                t = _block(fn, m_alg[k], where_dev[w]) / m_alg[k]
                pairs[w].append(tp)
                per[k]["t"].append(t)
                per[k]["ratio"].append(t / (ffts / 2 * tp))
        rows = {}
        for k, v in per.items():
            fn, ffts, w = timers[k]
            rows[k] = {"ms_per_iteration": float(np.median(v["t"])) * 1e3, "ffts": ffts,
                       "x_fft_bound": float(np.median(v["ratio"])), "where": w,
                       "iterations_per_block": m_alg[k]}
            log(f"{n}^2 {k:28s} {rows[k]['ms_per_iteration']:.4f} ms/it, "
                f"{rows[k]['x_fft_bound']:.2f}x the FFT bound ({w})")
        res[str(n)] = {"rows": rows, "fft_pair_ms": {w: float(np.median(v)) * 1e3
                                                     for w, v in pairs.items()},
                       "loadavg": loadavg()}
    return res


def measure_ptycho(args, device, log):
    """ePIE sweeps (plain torch per-position path on the device) against 128^2 FFT pairs."""
    from phasekit.ptycho import PtychoProblem
    from phasekit.ptycho import engines as E
    from phasekit.ptycho.probe import fzp_probe
    from phasekit.ptycho.sim import forward_intensities

    g = np.random.default_rng(args.seed)
    m, no, npos = 128, 384, 100
    k = np.arange(npos)
    r = 120 / np.sqrt(npos) * np.sqrt(k)
    th = k * np.deg2rad(137.508)
    pos = np.round(np.stack([r * np.sin(th), r * np.cos(th)], 1)) + (no // 2 - m // 2)
    obj = np.exp(0.5j * g.random((no, no))) * (0.6 + 0.4 * g.random((no, no)))
    probe = fzp_probe(m, 40, 30)
    intens = forward_intensities(obj.astype(np.complex64), probe.astype(np.complex64),
                                 pos.astype(int)).astype(np.float32)
    prob = PtychoProblem.from_arrays(intens, pos, object_shape=(no, no), device=device)
    alg = E.EPIE(prob, 10 ** 6)
    alg.bind_rng(np.random.default_rng(args.seed))
    alg.initialize(prob.random_start())
    state = {"k": 0}

    def sweeps(nsw):
        for _ in range(nsw):
            alg.step(state["k"])
            state["k"] += 1

    pair = fft_pair_fn((m, m), device)
    sweeps(1)  # warm-up
    ts, tps = [], []
    for _ in range(max(2, args.repeats // 2)):
        tp = _block(pair, npos, device) / npos
        t = _block(sweeps, 1, device)
        tps.append(tp)
        ts.append(t / npos)
    res = {"positions": npos, "frame": m, "object": no,
           "us_per_position": float(np.median(ts)) * 1e6,
           "fft_pair_us": float(np.median(tps)) * 1e6,
           "x_fft_pair": float(np.median(np.array(ts) / np.array(tps))),
           "fused": bool(getattr(alg, "_fused_now", False))}
    log(f"ePIE 128^2: {res['us_per_position']:.1f} us/position, {res['x_fft_pair']:.2f}x a device "
        f"FFT pair ({res['fft_pair_us']:.1f} us)")
    return res


def make_claims(cdi, pty, args, where):
    C = []
    big = [n for n in args.sizes if n >= 512]
    if "hio" in args.algorithms and big:
        vals = {n: cdi[str(n)]["rows"]["hio step"]["x_fft_bound"] for n in big}
        C.append(claim(f"[{where}] HIO step within {TARGET_BOUND:g}x the device's FFT bound at "
                       f"{', '.join(f'{n}^2' for n in big)}",
                       all(v <= TARGET_BOUND for v in vals.values()),
                       "; ".join(f"{n}^2: {v:.2f}x" for n, v in vals.items())))
    for name in args.algorithms:
        ev, ok = [], True
        for n in args.sizes:
            rows = cdi[str(n)]["rows"]
            s, sm = rows[f"{name} step"], rows[f"{name} step+metrics"]
            extra = sm["ffts"] / s["ffts"]  # what the metrics' FFT alone adds
            r = sm["ms_per_iteration"] / (s["ms_per_iteration"] * extra)
            ok &= r <= TARGET_METRICS
            ev.append(f"{n}^2: step {s['ms_per_iteration']:.3f} ms, step+metrics "
                      f"{sm['ms_per_iteration']:.3f} ms ({r:.2f}x the step scaled by its FFTs)")
        C.append(claim(f"[{where}] {name}: the per-iteration metrics (an R-factor read back to the "
                       f"host) cost at most {TARGET_METRICS:g}x the step scaled by the FFTs they add",
                       ok, "; ".join(ev)))
    if where != "cpu" and not args.no_cpu:
        for name in args.algorithms:
            ev, ok = [], True
            for n in [n for n in args.sizes if n >= 512]:
                rows = cdi[str(n)]["rows"]
                sp = rows[f"{name} step, CPU 1 thread"]["ms_per_iteration"] / \
                    rows[f"{name} step"]["ms_per_iteration"]
                ok &= sp >= TARGET_SPEEDUP
                ev.append(f"{n}^2: {sp:.1f}x")
            if ev:
                C.append(claim(f"[{where}] {name} step at least {TARGET_SPEEDUP:g}x faster than one "
                               "CPU thread at 512^2 and up", ok, "; ".join(ev)))
    if pty:
        C.append(claim(f"[{where}] ePIE (per-position torch sweep) within {TARGET_PTYCHO:g} device "
                       "FFT pairs per position at 128^2", pty["x_fft_pair"] <= TARGET_PTYCHO,
                       f"{pty['us_per_position']:.1f} us per position = {pty['x_fft_pair']:.2f} "
                       f"FFT pairs of {pty['fft_pair_us']:.1f} us"))
    return C


def plots(cdi, args, out, name, where):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for mode, style in (("step", "o-"), ("step+metrics", "s--")):
        for alg in args.algorithms:
            ys = [cdi[str(n)]["rows"][f"{alg} {mode}"]["x_fft_bound"] for n in args.sizes]
            ax.plot(args.sizes, ys, style, label=f"{alg} {mode}")
    ax.axhline(TARGET_BOUND, color="k", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("pattern size N (N x N)")
    ax.set_ylabel("time / device FFT bound")
    ax.set_title(f"CDI per iteration on {where}")
    ax.legend(fontsize=6, ncol=2)
    return [str(save_figure(fig, Path(out) / f"{name}.png"))]


def markdown(data, args, meta):
    L = [f"# {data['meta']['name']}", "", __doc__.split("\n\n")[0], "", meta_markdown(meta),
         f"Device: {data['meta']['device']}.", ""]
    for n in args.sizes:
        r = data["cdi"][str(n)]
        L += [f"## {n}^2", "", "FFT pair: " + ", ".join(f"{w} {v:.4f} ms" for w, v in
                                                         r["fft_pair_ms"].items()), ""]
        L.append(md_table(["row", "ms / iteration", "FFTs", "x FFT bound"],
                          [[k, fmt(v["ms_per_iteration"], 4), v["ffts"], fmt(v["x_fft_bound"])]
                           for k, v in r["rows"].items()]))
        L.append("")
    if data.get("ptycho"):
        p = data["ptycho"]
        line = (f"{p['positions']} positions, {p['object']}^2 object: {p['us_per_position']:.1f} "
                f"us per position, {p['x_fft_pair']:.2f}x a device FFT pair "
                f"({p['fft_pair_us']:.1f} us).")
        L += ["## ePIE, 128^2 frames", "", line, ""]
    L += ["## Claims", "", claims_markdown(data["claims"]), "", "## Figures", ""]
    L += [f"* `{f}`" for f in data["figures"]]
    return "\n".join(L)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    name = NAME + (f"_{args.tag}" if args.tag else "")
    t_start = time.perf_counter()
    threads = set_threads(1)
    meta = machine_meta()
    import torch

    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError):
        print(f"gpu_speed: unknown device {args.device!r}", file=sys.stderr)
        return 2
    if device.type not in ("cpu", "cuda"):
        print(f"gpu_speed: --device must be cuda or cpu, got {args.device!r}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        if not torch.cuda.is_available():
            print(f"gpu_speed: --device {args.device} but torch sees no CUDA device", file=sys.stderr)
            return 2
        meta["device"] = torch.cuda.get_device_name(device)
    else:
        meta["device"] = "cpu (dry run, one thread)"
    where = "cuda" if device.type == "cuda" else "cpu"

    def log(s):
        print(s, flush=True)

    log(f"device {meta['device']}, threads {threads}, load {loadavg()}")
    cdi = measure_cdi(args, device, log)
    pty = None if args.no_ptycho else measure_ptycho(args, device, log)
    claims = make_claims(cdi, pty, args, where)
    figs = plots(cdi, args, out, name, where)
    data = {"meta": {**meta, "name": name, "args": vars(args), "threads": threads,
                     "seeds": {"pattern": args.seed, "starts": args.seed},
                     "runtime_s": time.perf_counter() - t_start},
            "claims": claims, "cdi": cdi, "ptycho": pty, "figures": figs}
    write_results(name, data, markdown(data, args, meta), out)
    log(f"wrote {out / (name + '.json')} ({(time.perf_counter() - t_start) / 60:.1f} min)")
    for c in claims:
        log(("HOLDS   " if c["holds"] else "FAILS   " if c["holds"] is False else "N/A     ")
            + c["claim"] + "  [" + c["evidence"] + "]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
