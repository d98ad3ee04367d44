"""Ptychography speed: time per iteration (one full sweep) of phasekit's ePIE and CRISP against the
FFT work a sweep must do, and side by side against PtyLab's ePIE on the same data, sizes and
iteration count, in one run.

Data (the shared peer dataset of digest peer_perf.md): 128 x 128 frames, 512 x 512 object, 400
Fermat-spiral positions (integer), Poisson noise at 1e6 photons per frame.  One thread
(``torch.set_num_threads(1)``; PtyLab's numpy with OPENBLAS_NUM_THREADS=1).  Each engine runs
1 warm-up + ``--iters`` timed iterations; medians are reported.

FFT bound: a sweep needs one forward and one inverse 128 x 128 FFT per position; the bound is
400 x the median time of a torch complex64 FFT pair (1 thread) measured in this run.

PtyLab runs in its own virtual environment (``--ptylab-python``, default
``/tmp/venv_ptylab/bin/python``; ``pip install ptylab`` there): PtyLab 0.3.7 pins numpy~=2.0 and
scipy~=1.11.

pty-chi runs in a subprocess of this venv's Python with ``--ptychi-path`` prepended to
``PYTHONPATH`` (default ``/tmp/ptychi_site:/tmp/ptychi_stub``), so nothing of it enters the
project's environment: ``pip install --no-deps --target /tmp/ptychi_site ptychi pandas pytz
tzdata python-dateutil scikit-learn joblib threadpoolctl scikit-image imageio tifffile
lazy_loader cloudpickle narwhals`` (a plain ``pip install ptychi`` pulls torchvision, which
replaces torch 2.13 CPU by a CUDA build), plus a local ``torchvision`` stub in
``/tmp/ptychi_stub`` providing ``transforms.GaussianBlur`` (the only torchvision name
ptychi 2.2.0 imports; PyPI torchvision does not import beside torch 2.13 CPU) -- the recipe of
digest peer_perf.md §4.  pty-chi's EPIE with batch size 1 and BILINEAR patch interpolation
(exact for integer positions) is the same algorithm as ours (sequential ePIE, one FFT pair per
position); its default FOURIER interpolation adds two sub-pixel-shift FFT pairs per position,
and batch 100 is a different (mini-batch) algorithm -- both reported for reference.

Usage: python benchmarks/ptycho_speed.py [--iters 6] [--ptylab-python PATH] [--ptychi-path P]
       [--quick]
"""
from __future__ import annotations

import _common  # noqa: F401  (first: thread set-up)

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

NAME = "ptycho_speed"

PTYLAB_WORKER = r'''
import sys, time, json, io, contextlib
import numpy as np
from importlib.metadata import version
from PtyLab import ExperimentalData, Reconstruction, Params, DummyMonitor, Engines
fn, nit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with contextlib.redirect_stdout(io.StringIO()):
    exp = ExperimentalData(fn, "CPM")
    params = Params()
    rec = Reconstruction(exp, params)
    rec.No = 512
    rec.initializeObjectProbe()
    eng = Engines.ePIE(rec, exp, params, DummyMonitor())
params.fftshiftSwitch = True
params.positionOrder = "random"
eng.numIterations = nit + 1
npos = exp.ptychogram.shape[0]
stamps = []
with contextlib.redirect_stdout(io.StringIO()):
    for loop, p in eng.reconstruct_stepwise():
        if p == npos - 1:
            stamps.append(time.perf_counter())
d = np.diff(stamps)
json.dump({"t_iter_s": d.tolist(), "ptylab": version("ptylab"), "numpy": np.__version__,
           "error_last": float(rec.error[-1])}, open(out, "w"))
'''


PTYCHI_WORKER = r'''
import sys, time, json, io, contextlib, logging, warnings
import numpy as np, torch
torch.set_num_threads(1)
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import ptychi, ptychi.api as api
from ptychi.api.task import PtychographyTask
fn, nit, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
D = np.load(fn)
I, pos = D["I"], D["pos"]
Np, No = I.shape[-1], 512
# pty-chi positions: probe-centre offsets from the object centre, pixels
posc = (pos + (Np - 1) / 2 - (No / 2 - 0.5)).astype(np.float32)
probe0 = D["probe0"].astype(np.complex64)
def make(batch, interp):
    O = api.EPIEOptions()
    O.data_options.data = I
    O.object_options.initial_guess = torch.ones([1, No, No], dtype=torch.complex64)
    O.object_options.pixel_size_m = 1e-8
    O.object_options.optimizable = True
    O.object_options.optimizer = api.Optimizers.SGD
    O.object_options.patch_interpolation_method = getattr(api.PatchInterpolationMethods, interp)
    O.object_options.step_size = 1.0
    O.object_options.alpha = 1
    O.probe_options.initial_guess = torch.tensor(probe0[None, None])
    O.probe_options.optimizable = True
    O.probe_options.optimizer = api.Optimizers.SGD
    O.probe_options.step_size = 1.0
    O.probe_options.alpha = 1
    O.probe_position_options.position_x_px = posc[:, 1]
    O.probe_position_options.position_y_px = posc[:, 0]
    O.probe_position_options.optimizable = False
    O.reconstructor_options.batch_size = batch
    O.reconstructor_options.num_epochs = 1
    O.reconstructor_options.default_device = api.Devices.CPU
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return PtychographyTask(O)
res = {"ptychi": ptychi.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
       "configs": {}}
for batch, interp, n in ((1, "BILINEAR", nit), (1, "FOURIER", max(1, nit // 3)),
                         (100, "BILINEAR", nit)):
    key = f"EPIE batch={batch} interp={interp}"
    try:
        task = make(batch, interp)
        ts = []
        for i in range(n + 1):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                task.run(1)
            ts.append(time.perf_counter() - t0)
        lt = task.reconstructor.loss_tracker
        loss = lt.table["loss"].tolist() if hasattr(lt, "table") else None
        res["configs"][key] = {"t_iter_s": ts[1:], "loss": loss}
    except Exception as e:  # recorded, not raised: the claim says why
        res["configs"][key] = {"error": repr(e)[:400]}
json.dump(res, open(out, "w"))
'''


def dataset(tmp: Path):
    import h5py
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    Np, No, N = 128, 512, 400
    wavelength, zo, dxd = 632.8e-9, 5e-2, 72e-6
    dxp = wavelength * zo / (Np * dxd)
    y, x = np.mgrid[-Np // 2:Np // 2, -Np // 2:Np // 2].astype(np.float64)
    r2 = x ** 2 + y ** 2
    probe = (gaussian_filter((r2 <= 32 ** 2).astype(float), 2) * np.exp(1j * 0.004 * r2)).astype(np.complex64)
    amp = gaussian_filter(rng.random((No, No)), 3)
    amp = 0.5 + 0.5 * (amp - amp.min()) / np.ptp(amp)
    ph = gaussian_filter(rng.random((No, No)), 3)
    ph = 2 * (ph - ph.min()) / np.ptp(ph) - 1
    obj = (amp * np.exp(1j * ph)).astype(np.complex64)
    n = np.arange(N)
    c = 188 / np.sqrt(N)
    rr = c * np.sqrt(n)
    th = n * np.deg2rad(137.508)
    pos = np.round(np.stack([rr * np.sin(th), rr * np.cos(th)], 1)).astype(int) + (No // 2 - Np // 2)
    from phasekit.ptycho.sim import forward_intensities

    I = forward_intensities(obj, probe, pos).astype(np.float32)
    scale = 1e6 / I.sum(axis=(1, 2)).mean()
    I = rng.poisson(I * scale).astype(np.float32)
    encoder = (pos - (No // 2 - Np // 2)) * dxp
    fn = tmp / "simu400.hdf5"
    with h5py.File(fn, "w") as hf:
        hf.create_dataset("ptychogram", data=I, dtype="f")
        hf.create_dataset("encoder", data=encoder, dtype="f")
        hf.create_dataset("binningFactor", data=1, dtype="i")
        hf.create_dataset("dxd", data=(dxd,), dtype="f")
        hf.create_dataset("Nd", data=(Np,), dtype="i")
        hf.create_dataset("No", data=(No,), dtype="i")
        hf.create_dataset("zo", data=(zo,), dtype="f")
        hf.create_dataset("wavelength", data=(wavelength,), dtype="f")
        hf.create_dataset("entrancePupilDiameter", data=(64 * dxp,), dtype="f")
        hf.create_dataset("orientation", data=0)
    return I, pos.astype(float), fn


def fft_pair_time(M=128, reps=3000):
    import torch

    x = torch.randn(M, M, dtype=torch.complex64)
    z = torch.empty_like(x)
    y = torch.empty_like(x)
    for _ in range(200):
        torch.fft.fft2(x, norm="ortho", out=z)
        torch.fft.ifft2(z, norm="ortho", out=y)
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(reps // 5):
            torch.fft.fft2(x, norm="ortho", out=z)
            torch.fft.ifft2(z, norm="ortho", out=y)
        ts.append((time.perf_counter() - t) / (reps // 5))
    return float(np.median(ts))


def fft_sweep_time(n_pos, M=128):
    """The FFT bound of one sweep measured now: ``n_pos`` torch FFT pairs (one thread)."""
    import torch

    x = torch.randn(M, M, dtype=torch.complex64)
    z = torch.empty_like(x)
    y = torch.empty_like(x)
    t = time.perf_counter()
    for _ in range(n_pos):
        torch.fft.fft2(x, norm="ortho", out=z)
        torch.fft.ifft2(z, norm="ortho", out=y)
    return time.perf_counter() - t


def time_engine(problem, cls, iters, fused=None, **kw):
    """Per-iteration sweep times and, right after each sweep, the time of the sweep's FFT
    pairs alone (so each ratio to the FFT bound is measured under the same machine load)."""
    alg = cls(problem, iters + 1, **kw)
    alg.bind_rng(np.random.default_rng(0))
    alg.initialize(problem.random_start())
    alg.fused = fused
    ts, bs = [], []
    for k in range(iters + 1):
        t = time.perf_counter()
        alg.step(k)
        ts.append(time.perf_counter() - t)
        bs.append(fft_sweep_time(problem.n_positions))
    return ts[1:], alg._last["R_F"], bs[1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--ptylab-python", default="/tmp/venv_ptylab/bin/python")
    ap.add_argument("--ptychi-path", default="/tmp/ptychi_site:/tmp/ptychi_stub")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    global NAME
    if a.quick:
        a.iters = 1
        NAME = NAME + "_quick"
    threads = set_threads(1)
    meta = machine_meta({"threads": threads})
    from phasekit.ptycho import PtychoProblem
    from phasekit.ptycho import engines as E

    tmp = Path(tempfile.mkdtemp(prefix="ptycho_speed_"))
    I, pos, fn = dataset(tmp)
    prob = PtychoProblem.from_arrays(I, pos, object_shape=(512, 512))
    N = len(pos)
    rows, res = [], {}
    t_fft = fft_pair_time()
    bound = N * t_fft
    res["fft_pair_s"] = t_fft
    res["fft_bound_s"] = bound
    for name, cls, kw, fused in (("phasekit ePIE (fused CPU kernels)", E.EPIE, {}, None),
                                 ("phasekit CRISP (fused CPU kernels)", E.CRISP, {}, None),
                                 ("phasekit rPIE (fused CPU kernels)", E.RPIE, {}, None),
                                 ("phasekit ePIE (torch reference path)", E.EPIE, {}, False)):
        ts, rf, bs = time_engine(prob, cls, a.iters if fused is None else max(2, a.iters // 3),
                                 fused=fused, **kw)
        paired = float(np.median(np.asarray(ts) / np.asarray(bs)))
        res[name] = {"t_iter_s": ts, "median_s": float(np.median(ts)), "R_F_last": rf,
                     "fft_sweep_s": bs, "x_bound_paired": paired}
        print(name, f"{np.median(ts) * 1e3:.1f} ms/iter, {paired:.2f}x the paired FFT bound",
              flush=True)
    # FFT bound re-measured after the engines (the machine is shared; report both)
    t_fft2 = fft_pair_time()
    res["fft_pair_after_s"] = t_fft2
    ptylab = None
    if Path(a.ptylab_python).exists():
        worker = tmp / "ptylab_worker.py"
        worker.write_text(PTYLAB_WORKER)
        out = tmp / "ptylab.json"
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        b0 = fft_sweep_time(N)
        p = subprocess.run([a.ptylab_python, str(worker), str(fn), str(a.iters), str(out)],
                           capture_output=True, text=True, env=env, timeout=3000, check=False)
        b1 = fft_sweep_time(N)
        if p.returncode == 0 and out.exists():
            ptylab = json.loads(out.read_text())
            ptylab["median_s"] = float(np.median(ptylab["t_iter_s"]))
            ptylab["fft_sweep_s"] = [b0, b1]
            ptylab["x_bound_paired"] = ptylab["median_s"] / (0.5 * (b0 + b1))
            print("PtyLab ePIE", f"{ptylab['median_s'] * 1e3:.1f} ms/iter", flush=True)
        else:
            print("PtyLab failed:", p.stderr[-2000:], file=sys.stderr)
    res["ptylab_epie"] = ptylab
    # pty-chi (subprocess of this Python, its packages only on the worker's PYTHONPATH)
    ptychi, ptychi_why = None, ""
    if all(Path(q).exists() for q in a.ptychi_path.split(":")):
        from phasekit.ptycho.probe import energy_match

        yy, xx = np.mgrid[-64:64, -64:64]
        disk = ((xx ** 2 + yy ** 2) <= 32 ** 2).astype(np.complex64)
        npz = tmp / "ptychi_data.npz"
        np.savez(npz, I=I.astype(np.float32), pos=pos, probe0=energy_match(disk, I))
        worker = tmp / "ptychi_worker.py"
        worker.write_text(PTYCHI_WORKER)
        out = tmp / "ptychi.json"
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1",
                   PYTHONPATH=a.ptychi_path + (":" + os.environ["PYTHONPATH"]
                                               if os.environ.get("PYTHONPATH") else ""))
        b0 = fft_sweep_time(N)
        p = subprocess.run([sys.executable, str(worker), str(npz), str(a.iters), str(out)],
                           capture_output=True, text=True, env=env, timeout=3000, check=False)
        b1 = fft_sweep_time(N)
        if p.returncode == 0 and out.exists():
            ptychi = json.loads(out.read_text())
            ptychi["fft_sweep_s"] = [b0, b1]
            for k, v in ptychi["configs"].items():
                if "t_iter_s" in v:
                    v["median_s"] = float(np.median(v["t_iter_s"]))
                    v["x_bound_paired"] = v["median_s"] / (0.5 * (b0 + b1))
                    print(f"pty-chi {k}", f"{v['median_s'] * 1e3:.1f} ms/iter", flush=True)
                else:
                    print(f"pty-chi {k} failed: {v['error']}", flush=True)
        else:
            ptychi_why = "pty-chi worker failed: " + p.stderr.strip().splitlines()[-1][:300] \
                if p.stderr.strip() else f"pty-chi worker exit {p.returncode}"
            print(ptychi_why, file=sys.stderr)
    else:
        ptychi_why = f"pty-chi not installed at {a.ptychi_path} (see the module docstring)"
    res["ptychi_epie"] = ptychi
    b = min(t_fft, t_fft2) * N
    for name in [k for k in res if k.startswith("phasekit")]:
        m = res[name]["median_s"]
        rows.append([name, m * 1e3, m / N * 1e6, m / b, res[name]["x_bound_paired"],
                     (ptylab["median_s"] / m) if ptylab else None])
    if ptylab:
        rows.append([f"PtyLab {ptylab['ptylab']} ePIE (numpy {ptylab['numpy']})",
                     ptylab["median_s"] * 1e3, ptylab["median_s"] / N * 1e6,
                     ptylab["median_s"] / b, ptylab["x_bound_paired"], 1.0])
    pc_seq = pc_seqx = None
    if ptychi:
        for k, v in ptychi["configs"].items():
            if "median_s" in v:
                m = v["median_s"]
                rows.append([f"pty-chi {ptychi['ptychi']} {k} (torch {ptychi['torch']})", m * 1e3,
                             m / N * 1e6, m / b, v["x_bound_paired"],
                             (ptylab["median_s"] / m) if ptylab else None])
        pc_seq = ptychi["configs"].get("EPIE batch=1 interp=BILINEAR", {}).get("median_s")
        pc_seqx = ptychi["configs"].get("EPIE batch=1 interp=BILINEAR", {}).get("x_bound_paired")
        if pc_seq is None:
            ptychi_why = "pty-chi ran but its sequential EPIE failed: " + \
                ptychi["configs"].get("EPIE batch=1 interp=BILINEAR", {}).get("error", "?")
    ep = res["phasekit ePIE (fused CPU kernels)"]["median_s"]
    cr = res["phasekit CRISP (fused CPU kernels)"]["median_s"]
    epx = res["phasekit ePIE (fused CPU kernels)"]["x_bound_paired"]
    crx = res["phasekit CRISP (fused CPU kernels)"]["x_bound_paired"]
    claims = [
        claim("ePIE within 1.5x of the FFT bound (400 FFT pairs of 128^2 per sweep)", epx <= 1.5,
              f"median over iterations of sweep time / FFT-pairs time measured right after it: "
              f"{epx:.2f}x (against the bound measured before/after all engines: {ep / b:.2f}x)"),
        claim("CRISP within 1.5x of the FFT bound", crx <= 1.5,
              f"paired {crx:.2f}x (unpaired {cr / b:.2f}x)"),
        claim("CRISP costs about as much as ePIE (paper: 1.09x)", cr / ep <= 1.2,
              f"CRISP / ePIE = {cr / ep:.2f}"),
        claim("faster than PtyLab's ePIE on the same data",
              (ptylab["median_s"] > ep and ptylab["x_bound_paired"] > epx) if ptylab else None,
              f"PtyLab {ptylab['median_s'] * 1e3:.1f} ms vs phasekit {ep * 1e3:.1f} ms "
              f"({ptylab['median_s'] / ep:.1f}x); in units of the FFT bound measured around each "
              f"run: {ptylab['x_bound_paired']:.2f} vs {epx:.2f} "
              f"({ptylab['x_bound_paired'] / epx:.1f}x)" if ptylab else "PtyLab not available"),
        claim("faster than pty-chi's ePIE (sequential, batch 1, BILINEAR: the same algorithm)",
              (pc_seq > ep and pc_seqx > epx) if pc_seq else False,
              (f"pty-chi {pc_seq * 1e3:.1f} ms vs phasekit {ep * 1e3:.1f} ms ({pc_seq / ep:.1f}x; "
               f"in FFT-bound units {pc_seqx:.1f} vs {epx:.2f}); "
               "pty-chi batch 100 (mini-batch, another algorithm): " + ", ".join(
                   f"{v['median_s'] * 1e3:.1f} ms" for k, v in ptychi["configs"].items()
                   if "batch=100" in k and "median_s" in v))
              if pc_seq else f"not measured: {ptychi_why}"),
    ]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    names = [r[0] for r in rows]
    ax.barh(names, [r[1] for r in rows])
    ax.axvline(b * 1e3, color="k", ls="--", label="FFT bound")
    ax.set_xscale("log")
    ax.set_xlabel("ms per iteration (400 positions, 128^2)")
    ax.legend()
    save_figure(fig, RESULTS / f"{NAME}.png")
    sizes = {"frames": [128, 128], "object": [512, 512], "positions": N, "timed_iterations": a.iters,
             "threads": 1}
    md = [f"# {NAME}: time per ptychography iteration", "", meta_markdown(meta), "",
          f"Sizes: {sizes}. FFT pair (torch, complex64, 1 thread): {t_fft * 1e6:.1f} us before, "
          f"{t_fft2 * 1e6:.1f} us after the engines; bound = 400 x the smaller = {b * 1e3:.1f} ms.",
          "", ("x FFT bound (paired): median over iterations of the sweep time divided by the time "
               "of 400 FFT pairs run right after that sweep (robust to the load of this shared "
               "machine); for the peers, the FFT bound measured just before and after their run."),
          "", md_table(["engine", "ms / iteration", "us / position", "x FFT bound",
                        "x FFT bound (paired)", "PtyLab / this"], rows), "", "## Claims", "",
          claims_markdown(claims), "",
          f"![times]({NAME}.png)"]
    write_results(NAME, {"meta": meta, "sizes": sizes, "claims": claims, "results": res,
                         "table": rows}, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
