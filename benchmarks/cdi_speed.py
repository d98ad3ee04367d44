"""Time per iteration of phasekit's CDI algorithms against the FFTs they must do, and against cohere-core.

Pattern (the one used for the peer comparisons): a random complex object (amplitude U[0,1), phase U[0,1) rad)
in a centred support of half the array per axis, ``I = |fftc(obj)|^2``, complex64, no mask, no
realness / positivity.  Sizes 256^2, 512^2, 1024^2.

Everything is timed in this one process, interleaved: for every repeat, each timed block (in a
shuffled order) is preceded by a block of FFT pairs as phasekit calls them
(``phasekit.core.fft.fftw`` + ``ifftw`` in place, unitary, the fastest pair phasekit calls: ER,
HIO, RAAR and OSS invert their own transforms in place; on a torch build with MKL these call MKL
directly with a descriptor kept per shape, ``phasekit.core.mkl_fft``, 1.2-1.6x faster than
``torch.fft.fftn`` + ``ifftn`` at these sizes; until 2026-12-06 the bound and phasekit used torch's
calls), and the ratio of the two adjacent blocks is kept; the tables give the median over
repeats, so slow phases of the shared machine cancel.  The component row ``torch fftn+ifftn
pair`` gives torch's own pair in units of that bound.

* FFT bound of one iteration = (FFTs the algorithm must do) / 2 x (pair time):
  ER / HIO / RAAR 2 FFTs per step, +1 for the R-factor of the estimate when metrics are on;
  GPS-R 4 (3 + the R-factor it always computes for its best-iterate tracking), GPS-F 3, OSS 4
  (``F x``, the inverse FFTs of ``P~_m F x`` and of the filtered ``W F h``, whose spectrum comes
  out of the projection pass by linearity, and the R-factor's; the plain form's forward FFT of
  ``h`` is not needed; 5 for a real object on the complex path) -- for GPS and OSS the metrics
  are free: the R-factor is part of the step.
* ``step``: ``Algorithm.step`` in a loop (``metric_every=0``, pure iteration).
  ``step+metrics``: ``step`` then ``metrics()`` (what ``reconstruct(..., metric_every=1)`` does per
  iteration).  ``driver``: the wall time of ``reconstruct(problem, ..., metric_every=1)`` divided
  by its iterations (includes the random start and the driver's bookkeeping).
  ``no numba``: ``step`` with ``phasekit.cdi.kernels.HAVE_NUMBA = False`` (the plain-torch path).
  ``double``: ER / HIO in complex128 (``precision="double"``), the dtype cohere-core computes in.
* cohere-core (``pip install cohere-core`` in a separate venv, default ``/tmp/venv_cohere``) runs
  in a persistent subprocess that this script drives block by block, so its blocks interleave
  with ours; it is timed as peer_perf.md did: ``create_rec({"algorithm_sequence": "n*ER"}, ...)``
  then ``w.iterate()`` (n iterations, its error every iteration) on the same ``data.npy``.

Real objects (``--real``; issue 16 item 1): a second pattern, a *real* object (U[0,1)) in the same
support, ``real=True``.  ER / HIO / RAAR / OSS then run on the real FFT pair and the Hermitian half
spectrum (rows ``real step``, ``real step+metrics``), and on the complex path for comparison (row
``real step, complex FFTs``, ``rfft=False``).  These rows are timed against adjacent blocks of the
*real* FFT pair phasekit calls (``core.fft.rfftw`` + ``irfftw(..., overwrite=True)``, i.e.
``rfftn`` and an in-place inverse over the leading axis followed by ``irfft`` of the last, which
skips a copy ``torch.fft.irfftn`` makes): their FFT bound is the real pair.  The component row
``torch rfftn+irfftn pair`` gives torch's plain pair in units of that pair.  GPS-R / GPS-F on the
real object keep complex primal and dual variables (a genuinely complex dual variable, see
docs/cdi.md "Real objects on real FFTs"); their estimate is real and its R-factor FFT is a real
one: rows ``real step`` (3 / 2 complex FFTs + 1 real FFT, timed against the complex pair; the
bound uses the real / complex pair ratio measured in the same run) and ``real step, complex
FFTs``.

GPS and OSS (issue 16 item 3) run their elementwise steps as the fused passes of
``phasekit.cdi.kernels_smooth`` (GPS-F's smoothing weight folded into the dual pass, OSS's HIO
update, out-of-support density and estimate in one pass); the target is 1.3x the FFT bound.

Run ``python benchmarks/cdi_speed.py`` (about 6 min) or ``--quick`` (about 30 s; writes
``cdi_speed_quick.*``).
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import (RESULTS, claim, claims_markdown, machine_meta, md_table, meta_markdown,
                     save_figure, set_threads, write_results)

NAME = "cdi_speed"
ALGS = ["er", "hio", "raar", "gps-r", "gps-f", "oss"]
FFTS_STEP = {"er": 2, "hio": 2, "raar": 2, "gps-r": 4, "gps-f": 3, "oss": 4}
#: a real object on the complex path (rfft=False): OSS transforms h = x - beta Re(y) (5 FFTs)
FFTS_REAL_COMPLEX = {"oss": 5}
#: ER takes its R-factor on the new iterate (= its estimate P_C y) and the next step reuses that
#: transform (ErrorReduction.metrics), so its metrics add no FFT; HIO / RAAR transform P_C y
FFTS_METRICS = {"er": 0, "hio": 1, "raar": 1, "gps-r": 0, "gps-f": 0, "oss": 0}
TARGET_RATIO = 1.3
REAL_ALGS = ["er", "hio", "raar", "oss"]
#: GPS on a real object: its primal and dual variables stay complex (docs/cdi.md, "Real objects on
#: real FFTs"); only the R-factor's FFT of the (real) estimate is a real one.  (complex FFTs, real
#: FFTs) per step; the bound is (complex + real x (real pair / complex pair)) / 2 complex pairs
REAL_GPS = {"gps-r": (3, 1), "gps-f": (2, 1)}
#: the real-estimate R-factor saves half of one of GPS's 3-4 FFTs: expected 4 / 3.5 (GPS-R) and
#: 3 / 2.5 (GPS-F) at best
REAL_GPS_SPEEDUP_TARGET = 1.05
#: the real-FFT path should take about half the complex path's time on a real object
REAL_SPEEDUP_TARGET = 1.6

COHERE_WORKER = r'''
import contextlib, io, json, os, sys, time
import numpy as np
import cohere_core, cohere_core.controller.phasing as ph
from importlib.metadata import version
recs = {}
out = sys.stdout
sys.stdout = sys.stderr  # cohere prints; keep the protocol channel clean
out.write(json.dumps({"ready": True, "cohere_core": version("cohere_core"), "numpy": np.__version__,
                      "scipy": version("scipy"), "python": sys.version.split()[0]}) + "\n"); out.flush()
for line in sys.stdin:
    msg = json.loads(line)
    try:
        if msg["cmd"] == "setup":
            params = {"algorithm_sequence": f"{msg['n']}*{msg['alg']}", "hio_beta": 0.9}
            with contextlib.redirect_stdout(io.StringIO()):
                w = ph.create_rec(params, msg["data"], "np", -1, debug=True)
                w.iterate()  # warm-up
            recs[msg["key"]] = (w, msg["n"])
            res = {"ok": True, "dtype": str(w.ds_image.dtype)}
        elif msg["cmd"] == "time":
            w, n = recs[msg["key"]]
            with contextlib.redirect_stdout(io.StringIO()):
                t0 = time.perf_counter(); w.iterate(); dt = time.perf_counter() - t0
            res = {"ok": True, "t": dt, "n": n}
        elif msg["cmd"] == "drop":
            recs.pop(msg["key"], None); res = {"ok": True}
        else:
            break
    except Exception as e:  # report, keep serving
        res = {"ok": False, "error": repr(e)[:300]}
    out.write(json.dumps(res) + "\n"); out.flush()
'''


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--algorithms", nargs="+", default=ALGS, choices=ALGS)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="torch / numba thread counts to measure (the first is the headline)")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved repeats (median taken)")
    ap.add_argument("--block-s", type=float, default=0.08, help="target seconds per timed block")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random object")
    ap.add_argument("--driver-iter", type=int, default=30,
                    help="minimum iterations of one timed reconstruct() call")
    ap.add_argument("--pre-iter", type=int, default=30,
                    help="iterations run on every algorithm instance before it is timed")
    ap.add_argument("--cohere-python", default="/tmp/venv_cohere/bin/python",
                    help="python of a venv with cohere-core ('' to skip cohere)")
    ap.add_argument("--cohere-max-size", type=int, default=1024, help="largest size run with cohere")
    ap.add_argument("--quick", action="store_true", help="smoke run: 128^2 and 256^2, 3 repeats, 1 thread")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--tag", default="", help="suffix of the result files' name (e.g. the host: 'xeon')")
    a = ap.parse_args(argv)
    if a.quick:
        a.sizes, a.repeats, a.threads, a.block_s, a.pre_iter, a.driver_iter = [128, 256], 3, [1], 0.03, 5, 10
    return a


def make_real_pattern(n, seed):
    """A real object U[0,1) in the centred support of half the array per axis."""
    rng = np.random.default_rng(seed + 1000)
    obj = np.zeros((n, n), np.float32)
    sl = (slice(n // 4, n // 4 + n // 2),) * 2
    obj[sl] = rng.random((n // 2, n // 2)).astype(np.float32)
    intensity = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2
    support = np.zeros((n, n), bool)
    support[sl] = True
    return intensity.astype(np.float32), support


def make_pattern(n, seed):
    rng = np.random.default_rng(seed)
    obj = np.zeros((n, n), np.complex64)
    sl = (slice(n // 4, n // 4 + n // 2),) * 2
    obj[sl] = (rng.random((n // 2, n // 2)) * np.exp(1j * rng.random((n // 2, n // 2)))).astype(np.complex64)
    intensity = np.abs(np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(obj), norm="ortho"))) ** 2
    support = np.zeros((n, n), bool)
    support[sl] = True
    return intensity.astype(np.float32), support


class Cohere:
    """A cohere-core worker process in its own venv (JSON lines over stdin / stdout)."""

    def __init__(self, python):
        self.error = None
        self.info = None
        self.proc = None
        if not python:
            self.error = "skipped (--cohere-python '')"
            return
        if not Path(python).exists():
            self.error = f"{python} not found (cohere-core not installed; see README)"
            return
        self._file = tempfile.NamedTemporaryFile("w", suffix="_cohere_worker.py", delete=False)
        self._file.write(COHERE_WORKER)
        self._file.close()
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            self.proc = subprocess.Popen(["nice", "-n", str(os.nice(0)), python, self._file.name],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, env=env)
            self.info = json.loads(self.proc.stdout.readline())
        except (OSError, ValueError) as e:
            self.error = f"cohere worker did not start: {e!r}"
            self.proc = None

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("cohere worker exited")
        return json.loads(line)

    def close(self):
        if self.proc is not None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.SubprocessError):
                self.proc.kill()
            os.unlink(self._file.name)


# --------------------------------------------------------------------------- timers
def build_timers(n, args, cohere, data_path, log):
    """name -> (run(k) -> seconds for one block, iterations per block, metadata)."""
    import torch

    from phasekit.cdi import kernels
    from phasekit.cdi.api import reconstruct
    from phasekit.cdi.problem import CDIProblem
    from phasekit.core.fft import fftw, ifftw, irfftw, rfftw
    from phasekit.engine import get_algorithm

    intensity, support = make_pattern(n, args.seed)
    np.save(data_path, intensity)
    probs = {"single": CDIProblem.from_arrays(intensity, support),
             "double": CDIProblem.from_arrays(intensity, support, precision="double")}
    ireal, sreal = make_real_pattern(n, args.seed)
    probs["real"] = CDIProblem.from_arrays(ireal, sreal, real=True)
    probs["real, complex FFTs"] = CDIProblem.from_arrays(ireal, sreal, real=True, rfft=False)
    x = torch.randn(n, n, dtype=torch.complex64)
    xr = torch.randn(n, n, dtype=torch.float32)

    def rfft_block(m):  # the real pair phasekit calls (core.fft.rfftw, irfftw(overwrite=True))
        t0 = time.perf_counter()
        for _ in range(m):
            z = rfftw(xr, 2)
            irfftw(z, (n, n), 2, overwrite=True)
        return time.perf_counter() - t0

    def plain_rfft_block(m):  # torch's rfftn + irfftn as they come
        t0 = time.perf_counter()
        for _ in range(m):
            z = torch.fft.rfftn(xr, dim=(-2, -1), norm="ortho")
            torch.fft.irfftn(z, s=(n, n), dim=(-2, -1), norm="ortho")
        return time.perf_counter() - t0

    def fft_block(m):  # the complex pair phasekit calls: core.fft.fftw, ifftw in place
        t0 = time.perf_counter()
        for _ in range(m):
            z = fftw(x, 2)
            ifftw(z, 2, out=z)
        return time.perf_counter() - t0

    def plain_fft_block(m):  # torch's fftn + ifftn as they come
        t0 = time.perf_counter()
        for _ in range(m):
            z = torch.fft.fftn(x, dim=(-2, -1), norm="ortho")
            torch.fft.ifftn(z, dim=(-2, -1), norm="ortho")
        return time.perf_counter() - t0

    timers = {}

    def algo(name, prec="single"):
        spec = get_algorithm(name)
        p = probs[prec]
        a = spec.cls(p, 10 ** 6)
        a.initialize(spec.cls.random_start(p, np.random.default_rng(0)))
        for k in range(args.pre_iter):  # leave the first, fastest-improving iterations behind
            a.step(k)
        a._bench_k = args.pre_iter
        return a

    def make_step(a, metrics=False, numba=True):
        def run(m):
            old = kernels.HAVE_NUMBA
            kernels.HAVE_NUMBA = numba and old
            try:
                k = a._bench_k
                t0 = time.perf_counter()
                if metrics:
                    for i in range(k, k + m):
                        a.step(i)
                        a.metrics()
                else:
                    for i in range(k, k + m):
                        a.step(i)
                dt = time.perf_counter() - t0
                a._bench_k = k + m
            finally:
                kernels.HAVE_NUMBA = old
            return dt
        return run

    def make_driver(name):
        p = probs["single"]

        def run(m):
            t0 = time.perf_counter()
            reconstruct(p, algorithm=name, n_iter=m, metric_every=1, rng=0, progress=False)
            return time.perf_counter() - t0
        return run

    for name in args.algorithms:
        a = algo(name)
        timers[f"{name} step"] = (make_step(a), {"alg": name, "mode": "step", "ffts": FFTS_STEP[name]})
        b = algo(name)
        timers[f"{name} step+metrics"] = (make_step(b, metrics=True), {
            "alg": name, "mode": "step+metrics", "ffts": FFTS_STEP[name] + FFTS_METRICS[name]})
        c = algo(name)
        timers[f"{name} step, no numba"] = (make_step(c, numba=False), {
            "alg": name, "mode": "step, no numba", "ffts": FFTS_STEP[name]})
        timers[f"{name} driver"] = (make_driver(name), {
            "alg": name, "mode": "driver", "ffts": FFTS_STEP[name] + FFTS_METRICS[name]})
        if name in REAL_ALGS:  # a real object: real FFT pair vs the complex path
            timers[f"{name} real step"] = (make_step(algo(name, "real")), {
                "alg": name, "mode": "real step", "ffts": FFTS_STEP[name], "pair": "real"})
            timers[f"{name} real step+metrics"] = (make_step(algo(name, "real"), metrics=True), {
                "alg": name, "mode": "real step+metrics", "ffts": FFTS_STEP[name] + FFTS_METRICS[name],
                "pair": "real"})
            timers[f"{name} real step, complex FFTs"] = (make_step(algo(name, "real, complex FFTs")), {
                "alg": name, "mode": "real step, complex FFTs",
                "ffts": FFTS_REAL_COMPLEX.get(name, FFTS_STEP[name]), "pair": "real"})
        if name in REAL_GPS:  # a real object: real estimate and R-factor FFT, complex y and z
            nc, nr = REAL_GPS[name]
            timers[f"{name} real step"] = (make_step(algo(name, "real")), {
                "alg": name, "mode": "real step", "ffts": nc, "real_ffts": nr})
            timers[f"{name} real step, complex FFTs"] = (make_step(algo(name, "real, complex FFTs")), {
                "alg": name, "mode": "real step, complex FFTs", "ffts": FFTS_STEP[name]})
    # component: what the R-factor (one FFT + a torch reduction) costs next to its FFT
    p1 = probs["single"]
    xc = p1.random_start(np.random.default_rng(0))

    def rf_block(m):
        t0 = time.perf_counter()
        for _ in range(m):
            p1.rfactor(xc)
        return time.perf_counter() - t0
    timers["component: problem.rfactor(x)"] = (rf_block, {"alg": "-", "mode": "component", "ffts": 1})
    timers["component: torch fftn+ifftn pair"] = (plain_fft_block, {
        "alg": "-", "mode": "component", "ffts": 2})
    if any(a in REAL_ALGS for a in args.algorithms):
        timers["component: torch rfftn+irfftn pair"] = (plain_rfft_block, {
            "alg": "-", "mode": "component", "ffts": 2, "pair": "real"})
    for name in ("er", "hio"):
        if name in args.algorithms:
            d = algo(name, "double")
            timers[f"{name} step+metrics, double"] = (make_step(d, metrics=True), {
                "alg": name, "mode": "step+metrics, double", "ffts": None})
    if cohere.proc is not None and n <= args.cohere_max_size:
        for alg in ("ER", "HIO"):
            key = f"{alg}{n}"

            def run(m, key=key, alg=alg):
                # the block size of a cohere rec is fixed at set-up; m is ignored
                r = cohere.ask(cmd="time", key=key)
                if not r.get("ok"):
                    raise RuntimeError(r.get("error"))
                return r["t"]
            timers[f"cohere {alg}"] = (run, {"alg": alg.lower(), "mode": "cohere", "ffts": 2, "key": key,
                                             "cohere_alg": alg})
    return timers, fft_block, rfft_block


def calibrate(fn, block_s, lo=3, hi=400):
    """Warm up and pick the iterations per block so that a block takes about ``block_s``."""
    fn(2)
    t = fn(3) / 3
    return int(min(max(round(block_s / max(t, 1e-7)), lo), hi)), t


def measure_size(n, args, cohere, tmpdir, log):
    data_path = str(Path(tmpdir) / f"data_{n}.npy")
    timers, fft_block, rfft_block = build_timers(n, args, cohere, data_path, log)
    m_fft, t_fft0 = calibrate(fft_block, args.block_s)
    m_rfft, _ = calibrate(rfft_block, args.block_s)
    sizes = {}
    cohere_dtype = {}
    for name, (fn, md) in list(timers.items()):
        try:
            if md["mode"] == "cohere":
                # set up the rec with a block size from the per-iteration guess (~2x our ER step)
                m = int(min(max(round(args.block_s / (14 * t_fft0)), 3), 100))
                r = cohere.ask(cmd="setup", key=md["key"], alg=md["cohere_alg"], n=m, data=data_path)
                if not r.get("ok"):
                    raise RuntimeError(r.get("error"))
                cohere_dtype[name] = r["dtype"]
                fn(m)
                sizes[name] = m
            else:
                sizes[name], _ = calibrate(fn, args.block_s)
        except Exception as e:  # noqa: BLE001 - record and continue
            log(f"  {name}: failed at set-up: {e!r}")
            timers.pop(name)
    for name in timers:  # amortise the random start and set-up of a reconstruct() call
        if name.endswith("driver"):
            sizes[name] = max(sizes[name], 3 * sizes.get(name.replace("driver", "step+metrics"), 3),
                              args.driver_iter)
    rng = np.random.default_rng(n)
    per = {name: [] for name in timers}
    ratio = {name: [] for name in timers}
    fft_pairs = []
    rfft_pairs = []
    for rep in range(args.repeats):
        order = list(timers)
        rng.shuffle(order)
        for name in order:
            fn, md = timers[name]
            real_pair = md.get("pair") == "real"
            tf = rfft_block(m_rfft) / m_rfft if real_pair else fft_block(m_fft) / m_fft
            m = sizes[name]
            try:
                ta = fn(m) / m
            except Exception as e:  # noqa: BLE001
                log(f"  {name}: failed: {e!r}")
                continue
            (rfft_pairs if real_pair else fft_pairs).append(tf)
            per[name].append(ta)
            ratio[name].append(ta / tf)
        log(f"  size {n} repeat {rep + 1}/{args.repeats}: FFT pair {1e3 * np.median(fft_pairs[-len(order):]):.3f} ms")
    rows = {}
    pair = float(np.median(fft_pairs))
    rho = float(np.median(rfft_pairs)) / pair if rfft_pairs else 0.5  # real pair / complex pair
    for name, (fn, md) in timers.items():
        if not per[name]:
            continue
        r = np.array(ratio[name])
        bound = (md["ffts"] + md.get("real_ffts", 0) * rho) / 2 if md["ffts"] else None
        rows[name] = {
            **{k: v for k, v in md.items() if k != "key"},
            "iters_per_block": sizes[name],
            "ms_per_iter": 1e3 * float(np.median(per[name])),
            "ms_per_iter_min": 1e3 * float(np.min(per[name])),
            "ms_per_iter_max": 1e3 * float(np.max(per[name])),
            "per_fft_pair": float(np.median(r)),
            "fft_bound_pairs": bound,
            "ratio_to_fft_bound": float(np.median(r) / bound) if bound else None,
            "ratio_to_fft_bound_p10_p90": [float(np.percentile(r, 10) / bound), float(np.percentile(r, 90) / bound)]
            if bound else None,
            "raw_ms": [1e3 * v for v in per[name]], "raw_per_fft_pair": r.tolist(),
        }
        if name in cohere_dtype:
            rows[name]["dtype"] = cohere_dtype[name]
    if cohere.proc is not None:
        for name, (fn, md) in timers.items():
            if md["mode"] == "cohere":
                cohere.ask(cmd="drop", key=md["key"])
    return {"fft_pair_ms": 1e3 * pair, "fft_pair_ms_p10_p90": [1e3 * float(np.percentile(fft_pairs, 10)),
                                                               1e3 * float(np.percentile(fft_pairs, 90))],
            "real_fft_pair_ms": 1e3 * float(np.median(rfft_pairs)) if rfft_pairs else None,
            "real_over_complex_pair": rho if rfft_pairs else None,
            "iters_per_fft_block": m_fft, "rows": rows}


# --------------------------------------------------------------------------- claims
def make_claims(res, args, cohere):
    C = []
    for thr in args.threads:
        R = res[str(thr)]
        for alg in args.algorithms:
            for mode in ("step", "step+metrics"):
                vals = {n: R[str(n)]["rows"].get(f"{alg} {mode}", {}).get("ratio_to_fft_bound")
                        for n in args.sizes}
                vals = {n: v for n, v in vals.items() if v is not None}
                if not vals:
                    continue
                ffts = FFTS_STEP[alg] + (FFTS_METRICS[alg] if mode == "step+metrics" else 0)
                C.append(claim(
                    f"{alg.upper()} {mode} ({thr} thread{'s' if thr > 1 else ''}): time per iteration "
                    f"<= {TARGET_RATIO}x its FFT bound ({ffts} FFTs)",
                    all(v <= TARGET_RATIO for v in vals.values()),
                    ", ".join(f"{n}^2: {v:.2f}x" for n, v in vals.items()),
                    ratios=vals))
        for alg in [a for a in args.algorithms if a in REAL_ALGS]:
            for mode in ("real step", "real step+metrics"):
                vals = {n: R[str(n)]["rows"].get(f"{alg} {mode}", {}).get("ratio_to_fft_bound")
                        for n in args.sizes}
                vals = {n: v for n, v in vals.items() if v is not None}
                if vals:
                    ffts = FFTS_STEP[alg] + (FFTS_METRICS[alg] if mode == "real step+metrics" else 0)
                    C.append(claim(
                        f"{alg.upper()} {mode}, real object ({thr} thread{'s' if thr > 1 else ''}): time per "
                        f"iteration <= {TARGET_RATIO}x its real-FFT bound ({ffts} real FFTs)",
                        all(v <= TARGET_RATIO for v in vals.values()),
                        ", ".join(f"{n}^2: {v:.2f}x" for n, v in vals.items()), ratios=vals))
            sp = {}
            for n in args.sizes:
                rows = R[str(n)]["rows"]
                a_, b_ = rows.get(f"{alg} real step"), rows.get(f"{alg} real step, complex FFTs")
                if a_ and b_:  # both normalised by adjacent real-FFT-pair blocks
                    sp[n] = b_["per_fft_pair"] / a_["per_fft_pair"]
            if sp:
                C.append(claim(
                    f"{alg.upper()} real object ({thr} thread{'s' if thr > 1 else ''}): the real-FFT path is at "
                    f"least {REAL_SPEEDUP_TARGET}x faster per step than the complex path (about half its time)",
                    all(v >= REAL_SPEEDUP_TARGET for v in sp.values()),
                    "complex path / real-FFT path: " + ", ".join(f"{n}^2: {v:.2f}x" for n, v in sp.items()),
                    speedup=sp))
        for alg in [a for a in args.algorithms if a in REAL_GPS]:
            vals, sp = {}, {}
            for n in args.sizes:
                rows = R[str(n)]["rows"]
                a_, b_ = rows.get(f"{alg} real step"), rows.get(f"{alg} real step, complex FFTs")
                if a_:
                    vals[n] = a_["ratio_to_fft_bound"]
                if a_ and b_:  # both normalised by adjacent complex-FFT-pair blocks
                    sp[n] = b_["per_fft_pair"] / a_["per_fft_pair"]
            nc, nr = REAL_GPS[alg]
            if vals:
                C.append(claim(
                    f"{alg.upper()} real step, real object ({thr} thread{'s' if thr > 1 else ''}): time per "
                    f"iteration <= {TARGET_RATIO}x its FFT bound ({nc} complex FFTs + {nr} real FFT of the "
                    "estimate; y and z stay complex, docs/cdi.md)",
                    all(v <= TARGET_RATIO for v in vals.values()),
                    ", ".join(f"{n}^2: {v:.2f}x" for n, v in vals.items()), ratios=vals))
            if sp:
                C.append(claim(
                    f"{alg.upper()} real object ({thr} thread{'s' if thr > 1 else ''}): the real-estimate path "
                    f"(real R-factor FFT) is at least {REAL_GPS_SPEEDUP_TARGET}x faster per step than the complex "
                    f"path (at most {(nc + 1) / (nc + 0.5):.2f}x is possible: half of one FFT saved)",
                    all(v >= REAL_GPS_SPEEDUP_TARGET for v in sp.values()),
                    "complex path / real-estimate path: " + ", ".join(f"{n}^2: {v:.2f}x" for n, v in sp.items()),
                    speedup=sp))
        for alg in args.algorithms:
            sp = {}
            for n in args.sizes:
                rows = R[str(n)]["rows"]
                if f"{alg} step" in rows and f"{alg} step, no numba" in rows:
                    sp[n] = rows[f"{alg} step, no numba"]["per_fft_pair"] / rows[f"{alg} step"]["per_fft_pair"]
            if sp:
                C.append(claim(f"{alg.upper()} ({thr} thread{'s' if thr > 1 else ''}): the fused numba kernels "
                               "make the step faster than the plain-torch path",
                               all(v > 1.0 for v in sp.values()),
                               "speed-up (torch path / numba path): " + ", ".join(
                                   f"{n}^2: {v:.2f}x" for n, v in sp.items()), speedup=sp))
        for alg in ("er", "hio"):
            if cohere.proc is None:
                continue
            rat, rat_d, rat_s = {}, {}, {}
            for n in args.sizes:
                rows = R[str(n)]["rows"]
                co = rows.get(f"cohere {alg.upper()}")
                if co is None:
                    continue
                # per-FFT-pair normalised times are measured side by side: their ratio is ours / cohere
                if f"{alg} step+metrics" in rows:
                    rat[n] = rows[f"{alg} step+metrics"]["per_fft_pair"] / co["per_fft_pair"]
                if f"{alg} step+metrics, double" in rows:
                    rat_d[n] = rows[f"{alg} step+metrics, double"]["per_fft_pair"] / co["per_fft_pair"]
                if f"{alg} driver" in rows:
                    rat_s[n] = rows[f"{alg} driver"]["per_fft_pair"] / co["per_fft_pair"]
            if rat:
                skipped = [n for n in args.sizes if n not in rat]
                C.append(claim(
                    f"{alg.upper()} ({thr} thread{'s' if thr > 1 else ''}): phasekit (complex64, R-factor every "
                    "iteration) is faster per iteration than cohere-core (numpy backend, complex128, error every "
                    "iteration, 1 thread)",
                    all(v < 1 for v in rat.values()),
                    "ours / cohere: " + ", ".join(f"{n}^2: {v:.3f}" for n, v in rat.items())
                    + ("; phasekit in complex128: " + ", ".join(f"{n}^2: {v:.3f}" for n, v in rat_d.items())
                       if rat_d else "")
                    + ("; through reconstruct(): " + ", ".join(f"{n}^2: {v:.3f}" for n, v in rat_s.items())
                       if rat_s else "")
                    + (f"; cohere not run at {skipped}" if skipped else ""),
                    ours_over_cohere=rat, ours_double_over_cohere=rat_d, driver_over_cohere=rat_s))
    if cohere.proc is None:
        C.append(claim("phasekit ER / HIO faster than cohere-core", None,
                       f"cohere-core not available: {cohere.error}"))
    return C


# --------------------------------------------------------------------------- output
def plots(res, args, out, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    nt = len(args.threads)
    fig, ax = plt.subplots(nt, 2, figsize=(12, 3.6 * nt), squeeze=False)
    w = 0.8 / len(args.sizes)
    for i, thr in enumerate(args.threads):
        R = res[str(thr)]
        for j, mode in enumerate(("step", "step+metrics")):
            a = ax[i, j]
            for s, n in enumerate(args.sizes):
                v = [R[str(n)]["rows"].get(f"{alg} {mode}", {}).get("ratio_to_fft_bound") or 0
                     for alg in args.algorithms]
                a.bar(np.arange(len(args.algorithms)) + (s - (len(args.sizes) - 1) / 2) * w, v, w,
                      label=f"{n}^2")
            a.axhline(TARGET_RATIO, color="k", ls="--", lw=1, label=f"target {TARGET_RATIO}x")
            a.axhline(1.0, color="gray", ls=":", lw=1)
            a.set_xticks(range(len(args.algorithms)), [x.upper() for x in args.algorithms])
            a.set_ylabel("time / FFT bound")
            a.set_title(f"{mode}, {thr} thread(s)", fontsize=9)
            a.legend(fontsize=7)
    files.append(save_figure(fig, out / f"{name}_ratio.png"))
    fig, ax = plt.subplots(1, nt, figsize=(6 * nt, 4.2), squeeze=False)
    for i, thr in enumerate(args.threads):
        R = res[str(thr)]
        a = ax[0, i]
        ns = args.sizes
        a.plot(ns, [R[str(n)]["fft_pair_ms"] for n in ns], "k--", marker="o", label="torch FFT pair")
        for alg in args.algorithms:
            a.plot(ns, [R[str(n)]["rows"].get(f"{alg} step+metrics", {}).get("ms_per_iter", np.nan) for n in ns],
                   marker="o", label=f"{alg.upper()} step+metrics")
        for alg in ("ER", "HIO"):
            v = [R[str(n)]["rows"].get(f"cohere {alg}", {}).get("ms_per_iter", np.nan) for n in ns]
            if np.isfinite(v).any():
                a.plot(ns, v, ls=":", marker="s", label=f"cohere-core {alg}")
        a.set_xscale("log", base=2)
        a.set_yscale("log")
        a.set_xlabel("N (N x N)")
        a.set_ylabel("ms / iteration (median)")
        a.set_title(f"{thr} thread(s) (cohere: 1 thread)", fontsize=9)
        a.legend(fontsize=7)
    files.append(save_figure(fig, out / f"{name}_times.png"))
    return [f.name for f in files]


def markdown(data, args, meta):
    L = [f"# {data['meta']['name']}: CDI time per iteration vs the FFT bound and vs cohere-core", "",
         meta_markdown(meta), "",
         "Pattern: random complex object in a centred support of half the array per axis, complex64, "
         "no mask / realness / positivity. Medians over "
         f"{args.repeats} interleaved repeats; each block is paired with an adjacent block of torch "
         "FFT pairs and the ratio of the two is what is reported (machine noise cancels). "
         "FFT bound = FFTs per iteration / 2 x FFT-pair time. cohere-core runs in a subprocess "
         "(own venv, 1 thread, complex128), interleaved the same way. "
         f"Total run time {data['meta']['runtime_s'] / 60:.1f} min.", ""]
    for thr in args.threads:
        R = data["results"][str(thr)]
        L += [f"## {thr} thread(s) (torch and numba)", ""]
        L.append(md_table(["N", "FFT pair (ms, median)", "p10-p90", "real FFT pair (ms, median)"],
                          [[f"{n}^2", R[str(n)]["fft_pair_ms"],
                            "{:.3f}-{:.3f}".format(*R[str(n)]["fft_pair_ms_p10_p90"]),
                            R[str(n)].get("real_fft_pair_ms") or "-"] for n in args.sizes]))
        L.append("")
        hdr = ["algorithm", "mode", "FFTs"]
        for n in args.sizes:
            hdr += [f"{n}^2 ms/it", f"{n}^2 / bound"]
        rows = []
        keys = []
        for n in args.sizes:
            for k in R[str(n)]["rows"]:
                if k not in keys:
                    keys.append(k)
        for k in keys:
            md0 = next(R[str(n)]["rows"][k] for n in args.sizes if k in R[str(n)]["rows"])
            if md0["mode"] == "component":
                row = [k.split(": ", 1)[1], "component", "-"]
            else:
                row = [md0["alg"].upper() if md0["mode"] != "cohere" else f"cohere-core {md0['alg'].upper()}",
                       md0["mode"] + (f" ({md0.get('dtype')})" if md0["mode"] == "cohere" else ""),
                       md0["ffts"] if md0["ffts"] is not None else "-"]
            for n in args.sizes:
                r = R[str(n)]["rows"].get(k)
                if r is None:
                    row += ["-", "-"]
                else:
                    row += [r["ms_per_iter"], r["ratio_to_fft_bound"] if r["ratio_to_fft_bound"] is not None
                            else f"{r['per_fft_pair']:.2f} pairs"]
            rows.append(row)
        L += [md_table(hdr, rows), ""]
    L += ["'GPS-R / GPS-F real ...' rows: a real object; the dual and primal variables stay complex "
          "(docs/cdi.md), the estimate is real and its R-factor takes a real FFT: '/ bound' is against "
          "the complex pair with the bound (complex FFTs + real FFTs x real pair / complex pair) / 2; "
          "their 'real step, complex FFTs' row is the same problem with `rfft=False` (4 or 3 complex FFTs).",
          "",
          "'real ...' rows of ER / HIO / RAAR / OSS: a real object (`real=True`); '/ bound' is against the real FFT pair "
          "phasekit calls (`core.fft.rfftw` + `irfftw(overwrite=True)`: MKL called directly where "
          "torch has it) timed in "
          "adjacent blocks, also for the complex path of the same problem ('real step, complex "
          "FFTs', `rfft=False`); the component row 'torch rfftn+irfftn pair' is torch's plain "
          "pair in units of that pair.",
          "",
          "The complex FFT pair is the one phasekit calls (`core.fft.fftw` + `ifftw` in place: MKL called "
          "directly with a descriptor kept per shape, where torch has MKL; torch's `fftn` + `ifftn` "
          "until 2026-12-06); the component row 'torch fftn+ifftn pair' is torch's pair in units of it.",
          "",
          "'/ bound' = median over repeats of (block time / adjacent FFT-pair time) / (FFTs / 2). "
          "For 'double' rows the value is the time in complex64 FFT pairs (no bound). The component row "
          "times `problem.rfactor(x)` (1 FFT + the torch reduction) against 1 FFT. 'driver' rows time "
          f"whole reconstruct() calls of at least {args.driver_iter} iterations (random start included). cohere rows: 2 FFTs (complex128 scipy.fft) per iteration, but compared here "
          "against the complex64 torch pair.", "", "## Claims", "", claims_markdown(data["claims"]), "",
          "## Figures", ""] + [f"* `{f}`" for f in data["figures"]]
    return "\n".join(L)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    name = NAME + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    t_start = time.perf_counter()

    def log(s):
        print(s, flush=True)

    thr0 = set_threads(args.threads[0])
    meta = machine_meta()
    cohere = Cohere(args.cohere_python)
    log(f"cohere: {cohere.info or cohere.error}")
    res = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for thr in args.threads:
                info = set_threads(thr)
                log(f"threads: {info}")
                res[str(thr)] = {"threads": info}
                for n in args.sizes:
                    t0 = time.perf_counter()
                    res[str(thr)][str(n)] = measure_size(n, args, cohere, tmp, log)
                    R = res[str(thr)][str(n)]
                    log(f"{n}^2, {thr} thread(s), FFT pair {R['fft_pair_ms']:.3f} ms ({time.perf_counter() - t0:.0f} s):")
                    for k, r in R["rows"].items():
                        rb = r["ratio_to_fft_bound"]
                        log(f"   {k:28s} {r['ms_per_iter']:9.3f} ms/it  "
                            + (f"{rb:5.2f}x bound" if rb is not None else f"{r['per_fft_pair']:.2f} pairs"))
    finally:
        cohere.close()
    set_threads(thr0["torch_threads"])
    claims = make_claims(res, args, cohere)
    figs = plots(res, args, out, name)
    total = time.perf_counter() - t_start
    data = {"meta": {**meta, "name": name, "quick": args.quick, "args": vars(args),
                     "sizes": args.sizes, "seeds": {"object": args.seed, "algorithm_start": 0},
                     "cohere": cohere.info if cohere.proc is not None else {"error": cohere.error},
                     "ffts_per_step": FFTS_STEP, "extra_ffts_for_metrics": FFTS_METRICS,
                     "runtime_s": total},
            "claims": claims, "results": res, "figures": figs}
    write_results(name, data, markdown(data, args, meta), out)
    log(f"wrote {out / (name + '.json')} ({total / 60:.1f} min)")
    for c in claims:
        log(("HOLDS   " if c["holds"] else "FAILS   " if c["holds"] is False else "N/A     ") + c["claim"]
            + "  [" + c["evidence"] + "]")


if __name__ == "__main__":
    sys.exit(main())
