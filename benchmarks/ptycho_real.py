"""Ptychography on beamline-like data: phasekit against PtyLab, pty-chi and cdtools.

Two simulated cases, each read back from a file as a user would:

A. **Far field, partially coherent, position errors, background.**  ``phasekit simulate
   ptycho`` (BL24XU-like geometry, 64x64 frames, zone-plate probe, particle film) with 2
   incoherent probe modes (the second at ``--mode-power`` 0.25 of the first), Gaussian errors of
   ``--position-error`` px in the positions written to the file (the true ones kept for
   scoring), a flat background of 2 counts/pixel, Poisson noise.  The same frames and file
   positions go to

   * phasekit ePIE, rPIE, CRISP with 2 modes + position refinement (from sweep 20) +
     background ("full"), and the same engines with 1 mode and nothing else ("plain");
   * PtyLab 0.3.7 ePIE and mPIE (its rPIE with momentum; PtyLab has no plain rPIE) with
     ``npsm = 2``, orthogonalisation every sweep, ``positionCorrectionSwitch`` (from sweep
     20) and ``backgroundModeSwitch``, in its own venv (``--ptylab-python``), reading the file
     written by ``phasekit.io.ptycho_formats.write_ptylab``;
   * pty-chi EPIE (and RPIE with ``--ptychi-engines EPIE,RPIE``; batch 1, 2 probe modes,
     position correction from epoch 20; no background term in its PIE options), when it
     imports (``--peer-python``).

B. **Near field (Fresnel-scaled) against cdtools.**  ``phasekit simulate ptycho --near-field``
   (the geometry of issue 13's file: 0.098 nm, 55 um at 1.12 m, focus 3.657 mm before the
   sample: 179 nm pixels, 3.645 mm effective distance), written as cdtools writes CXI
   (``basis_vectors``), reconstructed by ``phasekit reconstruct --near-field`` (rPIE) and by
   cdtools 0.3.2 ``FancyPtycho(near_field=True, propagation_distance=z1)`` with Adam (its
   near-field example's first stage: lr 0.04, batch 10).

Every engine runs the same number of sweeps (epochs) on the same data; scored by the FRC of
the complex object against the truth (PINE protocol: scale/phase fit, sub-pixel registration,
pixels lit < 1 % set to vacuum; mean over 0.1-0.4 cycles/px), the object error
(:func:`phasekit.ptycho.metrics.object_error`), the rms error of the refined positions (a global
shift removed) and the wall time per sweep, measured side by side in one run.

Run: ``nice -n 10 python benchmarks/ptycho_real.py`` (default: 100 sweeps, 7x7 and 6x6 scans of
64x64 frames, ~8-10 min on 2 loaded cores; scaled down from the 300+ sweeps and 256+ px frames
of a real run); ``--quick`` (20 sweeps, 6x6 and 5x5 scans).  One thread for every package
(torch, numpy), so that a loaded machine does not penalise one package's thread pool.
Peers: ``python3 -m venv /tmp/venv_ptylab && /tmp/venv_ptylab/bin/pip install ptylab``;
pty-chi and cdtools ``pip install --no-deps ptychi cdtools-py pandas`` in a venv that sees
the CPU torch 2.13 (``/tmp/venv_peers13``: a ``.pth`` file pointing at this venv's
site-packages, and the local ``torchvision`` stub of pty-chi's GaussianBlur described in
the project's peer notes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _common import (
    RESULTS,
    claim,
    claims_markdown,
    fmt,
    machine_meta,
    md_table,
    meta_markdown,
    save_figure,
    set_threads,
    write_results,
)

NAME = "ptycho_real"
REFINE_START = 20
BAND = (0.1, 0.4)

PTYLAB_WORKER = r'''
import sys, time, json, io, contextlib
import numpy as np
from importlib.metadata import version
from PtyLab import ExperimentalData, Reconstruction, Params, DummyMonitor, Engines
fn, engine, nit, out, No, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
np.random.seed(0)
with contextlib.redirect_stdout(io.StringIO()):
    exp = ExperimentalData(fn, "CPM")
    params = Params()
    params.positionOrder = "random"
    params.orthogonalizationSwitch = True
    params.orthogonalizationFrequency = 1
    params.probePowerCorrectionSwitch = True  # probe power matched to the data, as phasekit's start
    params.positionCorrectionSwitch = True
    params.backgroundModeSwitch = True
    rec = Reconstruction(exp, params)
    rec.No = No
    rec.npsm = 2
    rec.initializeObjectProbe()
    eng = getattr(Engines, engine)(rec, exp, params, DummyMonitor())
    eng.numIterations = nit
    eng.startAtIteration = start
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    eng.reconstruct()
wall = time.perf_counter() - t0
obj = np.asarray(rec.object).reshape(-1, rec.No, rec.No)[0]
probe = np.asarray(rec.probe).reshape(-1, rec.Np, rec.Np)
pos = np.asarray(rec.encoder_corrected) / rec.dxo + rec.No // 2 - rec.Np // 2
pos0 = np.asarray(exp.encoder) / rec.dxo + rec.No // 2 - rec.Np // 2
np.savez(out, obj=obj, probe=probe, pos=pos, pos0=pos0,
         bg=np.asarray(getattr(rec, "background", np.zeros(1))))
json.dump({"wall_s": wall, "ptylab": version("ptylab"), "numpy": np.__version__,
           "error_last": float(rec.error[-1])}, open(out + ".json", "w"))
'''

PTYCHI_WORKER = r'''
import sys, time, json, io, contextlib, logging, warnings
import numpy as np, torch
torch.set_num_threads(1)
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import ptychi, ptychi.api as api
from ptychi.api.task import PtychographyTask
fn, engine, nit, out, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
D = np.load(fn)
I, pos, shape = D["I"], D["pos"], tuple(int(v) for v in D["shape"])
Np = I.shape[-1]
# pty-chi positions: probe-centre offsets from the object centre, pixels
cy, cx = (Np - 1) / 2 - (shape[0] / 2 - 0.5), (Np - 1) / 2 - (shape[1] / 2 - 0.5)
probe0 = D["probe0"].astype(np.complex64)
O = getattr(api, engine + "Options")()
O.data_options.data = I
O.object_options.initial_guess = torch.ones([1, *shape], dtype=torch.complex64)
O.object_options.pixel_size_m = 1e-8
O.object_options.optimizable = True
O.object_options.optimizer = api.Optimizers.SGD
O.object_options.step_size = 1.0
O.probe_options.initial_guess = torch.tensor(probe0[None])
O.probe_options.optimizable = True
O.probe_options.optimizer = api.Optimizers.SGD
O.probe_options.step_size = 1.0
O.probe_position_options.position_x_px = (pos[:, 1] + cx).astype(np.float32)
O.probe_position_options.position_y_px = (pos[:, 0] + cy).astype(np.float32)
O.probe_position_options.optimizable = True
O.probe_position_options.optimization_plan.start = start
O.reconstructor_options.batch_size = 1
O.reconstructor_options.num_epochs = nit
O.reconstructor_options.default_device = api.Devices.CPU
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    task = PtychographyTask(O)
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    task.run()
wall = time.perf_counter() - t0
obj = task.get_data_to_cpu("object", as_numpy=True).reshape(-1, *shape)[0]
probe = task.get_data_to_cpu("probe", as_numpy=True)
pp = task.get_data_to_cpu("probe_positions", as_numpy=True)
p = np.stack([pp[:, 0] - cy, pp[:, 1] - cx], axis=1)
np.savez(out, obj=obj, probe=probe.reshape(-1, Np, Np), pos=p)
json.dump({"wall_s": wall, "ptychi": ptychi.__version__, "torch": torch.__version__}, open(out + ".json", "w"))
'''

CDTOOLS_WORKER = r'''
import sys, time, json, io, contextlib, warnings
import numpy as np, torch as t
t.set_num_threads(1)
warnings.filterwarnings("ignore")
import cdtools
from cdtools.tools import interactions
fn, nit, out, z1, ny, nx = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
t.manual_seed(0)
with contextlib.redirect_stdout(io.StringIO()):
    ds = cdtools.datasets.Ptycho2DDataset.from_cxi(fn)
    model = cdtools.models.FancyPtycho.from_dataset(ds, n_modes=1, near_field=True,
                                                    propagation_distance=z1, obj_padding=10)
    recon = cdtools.reconstructors.AdamReconstructor(model, ds)
t0 = time.perf_counter()
losses = []
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    for loss in recon.optimize(nit, lr=0.04, batch_size=10):
        losses.append(float(loss))
wall = time.perf_counter() - t0
(idx, tr), _ = ds[:]
pix = interactions.translations_to_pixel(model.obj_basis, tr) - model.min_translation
pix = pix.detach().numpy()
obj = model.obj.detach().numpy()
obj = obj.reshape(-1, *obj.shape[-2:])[0]
np.savez(out, obj=obj, pos=pix)
json.dump({"wall_s": wall, "cdtools": cdtools.__version__ if hasattr(cdtools, "__version__") else "0.3.2",
           "torch": t.__version__, "loss_last": losses[-1] if losses else None}, open(out + ".json", "w"))
'''


# --------------------------------------------------------------------------- scoring
def score(obj, truth, ill, pos=None, true_pos=None):
    from phasekit.ptycho.metrics import band_mean, object_error, object_frc

    f, c = object_frc(obj, truth, ill)
    out = {"frc": band_mean(f, c, *BAND), "object_error": object_error(obj, truth, ill),
           "frc_curve": [f.tolist(), c.tolist()]}
    if pos is not None and true_pos is not None:
        d = np.asarray(pos, float) - true_pos
        out["position_rms_px"] = float(np.sqrt(((d - d.mean(axis=0)) ** 2).sum(axis=1).mean()))
    return out


def crop_like(obj, shape, offset):
    """The region of a peer's object that maps onto phasekit's object grid."""
    oy, ox = (round(float(v)) for v in offset)
    pad = max(0, -oy, -ox, oy + shape[0] - obj.shape[0], ox + shape[1] - obj.shape[1])
    if pad:
        obj = np.pad(obj, pad, constant_values=1)
        oy, ox = oy + pad, ox + pad
    return obj[oy:oy + shape[0], ox:ox + shape[1]]


def run_worker(python, code, args, tmp, tag, timeout, env_extra=None):
    worker = tmp / f"{tag}_worker.py"
    worker.write_text(code)
    out = tmp / f"{tag}.npz"
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               **(env_extra or {}))
    try:
        p = subprocess.run([python, str(worker), *map(str, args(out))], capture_output=True,
                           text=True, env=env, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    except OSError as exc:
        return None, f"could not start {python}: {exc}"
    js = Path(str(out) + ".json")
    if p.returncode == 0 and out.exists() and js.exists():
        return {**dict(np.load(out)), **json.loads(js.read_text())}, ""
    err = (p.stderr or p.stdout).strip().splitlines()
    return None, (err[-1][:300] if err else f"exit {p.returncode}")


# --------------------------------------------------------------------------- case A
def case_far(a, tmp):
    import torch

    from phasekit.cli.simulate_ptycho import simulate_ptycho_file
    from phasekit.io import read_ptycho
    from phasekit.io.ptycho_formats import write_ptylab
    from phasekit.ptycho import PtychoProblem, reconstruct
    from phasekit.ptycho.probe import energy_match

    path = tmp / "far.cxi"
    _, _, geo = simulate_ptycho_file(path, obj="particles", frame=a.frame, points=a.points,
                                       overlap=0.7, jitter=0.3, dose=a.dose, seed=a.seed,
                                       modes=2, mode_power=0.25,
                                       position_error=a.position_error, background=2.0)
    d = read_ptycho(path)
    pos = d.positions_px()  # the file's (erroneous) positions, in the simulation's frame
    true_pos = d.metadata["true_positions"]
    truth, N, M = d.truth, d.n_frames, a.frame
    prob = PtychoProblem.from_arrays(d.intensities, true_pos, object_shape=truth.shape)
    ill = prob.illumination(torch.as_tensor(d.probe, dtype=prob.cdtype)).numpy()
    rms0 = float(np.sqrt(((pos - true_pos - (pos - true_pos).mean(0)) ** 2).sum(1).mean()))
    info = {"frames": N, "frame": M, "object": list(truth.shape), "modes_true": 2,
            "mode_power": 0.25, "position_error_sigma_px": a.position_error,
            "position_rms_file_px": rms0, "background_counts": 2.0, "dose": a.dose,
            "object_pixel_m": geo.pixel_size, "sweeps": a.sweeps, "seed": a.seed}
    print(f"case A: {N} frames {M}x{M}, object {truth.shape}, file position rms {rms0:.2f} px",
          flush=True)
    runs = {}
    for alg in ("epie", "rpie", "crisp"):
        for mode, kw in (("plain", {}),
                         ("full", {"n_modes": 2, "refine_positions": REFINE_START,
                                   "background": True})):
            reconstruct(d.intensities, pos, algorithm=alg, n_iter=2, rng=a.seed,  # warm-up
                        object_shape=truth.shape, progress=False, metric_every=0, **kw)
            t0 = time.perf_counter()
            r = reconstruct(d.intensities, pos, algorithm=alg, n_iter=a.sweeps, rng=a.seed,
                            object_shape=truth.shape, progress=False, metric_every=0, **kw)
            wall = time.perf_counter() - t0
            rp = (r.extras or {}).get("positions", pos)
            s = score(r.image, truth, ill, rp, true_pos)
            s.update(wall_s=wall, per_sweep_s=wall / a.sweeps, R_F=r.rfactor,
                     probe_shape=list(np.shape(r.probe)))
            if np.ndim(r.probe) == 3:
                pw = (np.abs(r.probe) ** 2).sum(axis=(1, 2))
                s["mode_power_fractions"] = (pw / pw.sum()).tolist()
            runs[f"phasekit {alg} {mode}"] = s
            print(f"  phasekit {alg:5s} {mode:5s} FRC {s['frc']:.3f} err {s['object_error']:.3f} "
                  f"pos rms {s['position_rms_px']:.2f} px, {s['per_sweep_s'] * 1e3:.0f} ms/sweep",
                  flush=True)
    # PtyLab: its own file layout, written by phasekit; encoder origin chosen so that its
    # object grid (No x No, probe at round(encoder / dxo) + No//2 - Np//2) is ours
    No = int(max(truth.shape))
    pl_file = write_ptylab(tmp / "far_ptylab.hdf5", d.intensities, pos, wavelength=d.wavelength,
                           distance=d.distance, pixel_size=d.pixel_size,
                           probe_diameter=geo.beam_diameter_px * geo.pixel_size,
                           origin=(No // 2 - M // 2, No // 2 - M // 2))
    peers = {}
    if Path(a.ptylab_python).exists():
        for eng in ("ePIE", "mPIE"):
            r, why = run_worker(a.ptylab_python, PTYLAB_WORKER,
                                lambda out, eng=eng: (pl_file, eng, a.sweeps, out, No,
                                                      REFINE_START), tmp, f"ptylab_{eng}",
                                a.peer_timeout)
            key = f"PtyLab {eng} full"
            if r is None:
                peers[key] = {"error": why}
                print(f"  {key}: failed ({why})", flush=True)
                continue
            obj = r["obj"][:truth.shape[0], :truth.shape[1]]
            s = score(obj, truth, ill, r["pos"], true_pos)
            s.update(wall_s=r["wall_s"], per_sweep_s=r["wall_s"] / a.sweeps,
                     version=r["ptylab"], start_position_rms_px=float(np.sqrt(
                         ((r["pos0"] - true_pos - (r["pos0"] - true_pos).mean(0)) ** 2)
                         .sum(1).mean())))
            if eng == "ePIE":
                s["note"] = ("PtyLab 0.3.7 applies positionCorrectionSwitch in mPIE only (its "
                             "ePIE never calls positionCorrection): the positions stay as read")
            runs[key] = s
            print(f"  {key:18s} FRC {s['frc']:.3f} err {s['object_error']:.3f} pos rms "
                  f"{s['position_rms_px']:.2f} px, {s['per_sweep_s'] * 1e3:.0f} ms/sweep",
                  flush=True)
    else:
        peers["PtyLab"] = {"error": f"no PtyLab venv at {a.ptylab_python}"}
    # pty-chi: same frames (its own data layout), 2 probe modes, position correction
    yy, xx = np.mgrid[:M, :M] - M // 2
    disk = ((xx ** 2 + yy ** 2) <= (geo.beam_diameter_px / 2) ** 2).astype(np.complex64)
    p0 = energy_match(disk, d.intensities)
    g = np.random.default_rng(0)
    p1 = 0.3 * p0 * np.exp(2j * np.pi * g.random(p0.shape))
    npz = tmp / "far_ptychi.npz"
    np.savez(npz, I=d.intensities.astype(np.float32), pos=pos, shape=np.array(truth.shape),
             probe0=np.stack([p0, p1]))
    if Path(a.peer_python).exists():
        for eng in ("EPIE", "RPIE"):
            if eng not in a.ptychi_engines.split(","):
                peers[f"pty-chi {eng} modes+positions"] = {
                    "error": f"not run (--ptychi-engines {a.ptychi_engines}; batch-1 pty-chi "
                             "costs ~1.2 s a sweep here, so the default run keeps one engine)"}
                continue
            r, why = run_worker(a.peer_python, PTYCHI_WORKER,
                                lambda out, eng=eng: (npz, eng, a.sweeps, out, REFINE_START),
                                tmp, f"ptychi_{eng}", a.peer_timeout)
            key = f"pty-chi {eng} modes+positions"
            if r is None:
                peers[key] = {"error": why}
                print(f"  {key}: failed ({why})", flush=True)
                continue
            s = score(r["obj"], truth, ill, r["pos"], true_pos)
            s.update(wall_s=r["wall_s"], per_sweep_s=r["wall_s"] / a.sweeps,
                     version=r["ptychi"])
            runs[key] = s
            print(f"  {key:24s} FRC {s['frc']:.3f} err {s['object_error']:.3f} pos rms "
                  f"{s['position_rms_px']:.2f} px, {s['per_sweep_s'] * 1e3:.0f} ms/sweep",
                  flush=True)
    else:
        peers["pty-chi"] = {"error": f"no peer venv at {a.peer_python}"}
    A = {"info": info, "runs": runs, "peer_errors": peers}
    A["timing"] = paired_timing_far(a, tmp, d, pos, truth, pl_file, No, npz, peers)
    return A


def _median_ratio(ours: list, theirs: list) -> dict:
    o, t = float(np.median(ours)), float(np.median(theirs))
    return {"phasekit_s_per_sweep": o, "peer_s_per_sweep": t, "peer_over_phasekit": t / o,
            "phasekit_runs_s": ours, "peer_runs_s": theirs}


def paired_timing_far(a, tmp, d, pos, truth, pl_file, No, npz, peers):
    """Per-sweep times of phasekit and each peer measured back to back, alternating, twice
    (``--timing-sweeps`` sweeps each): on a shared, loaded machine a single long run of each
    is at the mercy of the load at that moment."""
    from phasekit.ptycho import reconstruct

    n = a.timing_sweeps
    kw = {"n_modes": 2, "refine_positions": 1, "background": True}
    pairs = {"epie vs PtyLab ePIE": ("epie", "ptylab", "ePIE"),
             "rpie vs PtyLab mPIE": ("rpie", "ptylab", "mPIE"),
             "epie vs pty-chi EPIE": ("epie", "ptychi", "EPIE")}
    out = {}
    for name, (alg, peer, eng) in pairs.items():
        if peer == "ptylab" and any(k.startswith("PtyLab") and "error" in v
                                    for k, v in peers.items()):
            continue
        if peer == "ptychi" and (f"pty-chi {eng} modes+positions" in peers or
                                 not Path(a.peer_python).exists()):
            continue
        ours, theirs = [], []
        for rep in range(2):
            t0 = time.perf_counter()
            reconstruct(d.intensities, pos, algorithm=alg, n_iter=n, rng=a.seed,
                        object_shape=truth.shape, progress=False, metric_every=0, **kw)
            ours.append((time.perf_counter() - t0) / n)
            if peer == "ptylab":
                r, why = run_worker(a.ptylab_python, PTYLAB_WORKER,
                                    lambda out, eng=eng: (pl_file, eng, n, out, No, 1), tmp,
                                    f"t_ptylab_{eng}_{rep}", a.peer_timeout)
            else:
                r, why = run_worker(a.peer_python, PTYCHI_WORKER,
                                    lambda out, eng=eng: (npz, eng, n, out, 1), tmp,
                                    f"t_ptychi_{eng}_{rep}", a.peer_timeout)
            if r is None:
                break
            theirs.append(r["wall_s"] / n)
        if len(theirs) == 2:
            out[name] = _median_ratio(ours, theirs)
            print(f"  timing {name}: {out[name]['phasekit_s_per_sweep'] * 1e3:.0f} vs "
                  f"{out[name]['peer_s_per_sweep'] * 1e3:.0f} ms/sweep", flush=True)
    return out


# --------------------------------------------------------------------------- case B
def write_cdtools_cxi(path, d, pos, pixel):
    """The scan as cdtools writes CXI 1.6 (basis_vectors (3, 2), translations = minus the
    probe translation, energy in J) from phasekit's scan ``d`` with positions ``pos`` (pixels)
    at object ``pixel``."""
    import h5py

    r = np.zeros((len(pos), 3))
    r[:, 1], r[:, 0] = -pos[:, 0] * pixel, -pos[:, 1] * pixel
    p = d.detector_pixel()
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        det = f.create_group("entry_1/instrument_1/detector_1")
        det["data"] = d.intensities.astype(np.float32)
        det["distance"] = np.float32(d.distance)
        det["basis_vectors"] = np.array([[0, -p[1]], [-p[0], 0], [0, 0]], np.float32)
        det["x_pixel_size"], det["y_pixel_size"] = np.float32(p[1]), np.float32(p[0])
        f["entry_1/instrument_1/source_1/energy"] = np.float32(6.62607015e-34 * 299792458.0
                                                               / d.wavelength)
        f["entry_1/sample_1/geometry_1/translation"] = (-r).astype(np.float32)
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        f["entry_1/data_1/translation"] = h5py.SoftLink("/entry_1/sample_1/geometry_1/translation")
    return path


def case_near(a, tmp):
    import torch

    from phasekit.cli.simulate_ptycho import simulate_ptycho_file
    from phasekit.io import read_ptycho
    from phasekit.ptycho import PtychoProblem, reconstruct
    from phasekit.ptycho.geometry import scan_geometry

    z1 = 3.657e-3
    sim_path = tmp / "near_sim.cxi"
    _, _, geo = simulate_ptycho_file(sim_path, obj="siemens", frame=a.frame,
                                       points=a.near_points, step=a.frame / 10, jitter=0.5,
                                       dose=1e4, seed=a.seed, near_field=z1)
    ds = read_ptycho(sim_path)
    truth = ds.truth
    sim_pos = scan_geometry(ds, z1).positions  # the simulation's own frame
    cd_path = write_cdtools_cxi(tmp / "near_cdtools.cxi", ds, sim_pos, geo.pixel_size)
    d = read_ptycho(cd_path)
    g = scan_geometry(d, z1)
    pos = g.positions
    offset = (sim_pos - pos).mean(axis=0)  # its margin
    kw = g.reconstruct_kwargs()
    kw.pop("positions")
    prob = PtychoProblem.from_arrays(ds.intensities, sim_pos, object_shape=truth.shape, **kw)
    ill = prob.illumination(torch.as_tensor(ds.probe, dtype=prob.cdtype)).numpy()
    info = {"frames": d.n_frames, "frame": a.frame, "object": list(truth.shape),
            "focus_distance_m": z1, "magnification": g.magnification,
            "object_pixel_m": g.pixel_size[0], "effective_distance_m": g.distance,
            "median_step_px": g.step, "sweeps": a.sweeps}
    print(f"case B: near field, {d.n_frames} frames {a.frame}x{a.frame}, pixel "
          f"{g.pixel_size[0] * 1e9:.0f} nm, step {g.step:.1f} px", flush=True)
    runs, peers = {}, {}
    for alg in ("rpie", "epie"):
        reconstruct(d.intensities, pos + offset, algorithm=alg, n_iter=2, rng=a.seed,  # warm-up
                    object_shape=truth.shape, progress=False, metric_every=0, **kw)
        t0 = time.perf_counter()
        r = reconstruct(d.intensities, pos + offset, algorithm=alg, n_iter=a.sweeps, rng=a.seed,
                        object_shape=truth.shape, progress=False, metric_every=0, **kw)
        wall = time.perf_counter() - t0
        s = score(r.image, truth, ill)
        s.update(wall_s=wall, per_sweep_s=wall / a.sweeps, R_F=r.rfactor)
        runs[f"phasekit {alg} near field"] = s
        print(f"  phasekit {alg} near field: FRC {s['frc']:.3f} err {s['object_error']:.3f}, "
              f"{s['per_sweep_s'] * 1e3:.0f} ms/sweep", flush=True)
    if Path(a.peer_python).exists():
        r, why = run_worker(a.peer_python, CDTOOLS_WORKER,
                            lambda out: (cd_path, a.sweeps, out, z1, *truth.shape), tmp,
                            "cdtools", a.peer_timeout)
        if r is None:
            peers["cdtools"] = {"error": why}
            print(f"  cdtools failed ({why})", flush=True)
        else:
            off = (np.asarray(r["pos"]) - (pos + offset)).mean(axis=0)
            obj = crop_like(r["obj"], truth.shape, off)
            s = score(obj, truth, ill)
            s.update(wall_s=r["wall_s"], per_sweep_s=r["wall_s"] / a.sweeps,
                     version=r.get("cdtools"))
            runs["cdtools FancyPtycho near field (Adam)"] = s
            print(f"  cdtools near field: FRC {s['frc']:.3f} err {s['object_error']:.3f}, "
                  f"{s['per_sweep_s'] * 1e3:.0f} ms/sweep", flush=True)
    else:
        peers["cdtools"] = {"error": f"no peer venv at {a.peer_python}"}
    timing = {}
    if "cdtools FancyPtycho near field (Adam)" in runs:
        n, ours, theirs = a.timing_sweeps, [], []
        for rep in range(2):
            t0 = time.perf_counter()
            reconstruct(d.intensities, pos + offset, algorithm="rpie", n_iter=n, rng=a.seed,
                        object_shape=truth.shape, progress=False, metric_every=0, **kw)
            ours.append((time.perf_counter() - t0) / n)
            r, why = run_worker(a.peer_python, CDTOOLS_WORKER,
                                lambda out: (cd_path, n, out, z1, *truth.shape), tmp,
                                f"t_cdtools_{rep}", a.peer_timeout)
            if r is None:
                break
            theirs.append(r["wall_s"] / n)
        if len(theirs) == 2:
            timing["rpie near field vs cdtools Adam"] = _median_ratio(ours, theirs)
    return {"info": info, "runs": runs, "peer_errors": peers, "timing": timing}


# --------------------------------------------------------------------------- claims
def make_claims(A, B):
    R, C = A["runs"], []
    for alg in ("epie", "rpie", "crisp"):
        f, p = R.get(f"phasekit {alg} full"), R.get(f"phasekit {alg} plain")
        if f and p:
            C.append(claim(f"phasekit {alg} with 2 modes + position refinement + background "
                           "beats the plain engine on the partially coherent scan",
                           f["frc"] > p["frc"] and f["object_error"] < p["object_error"],
                           f"FRC {p['frc']:.3f} -> {f['frc']:.3f}, error "
                           f"{p['object_error']:.3f} -> {f['object_error']:.3f}"))
            C.append(claim(f"phasekit {alg} position refinement reduces the position error",
                           f["position_rms_px"] < A["info"]["position_rms_file_px"],
                           f"rms {A['info']['position_rms_file_px']:.2f} px in the file -> "
                           f"{f['position_rms_px']:.2f} px"))
    for ours, theirs in (("phasekit epie full", "PtyLab ePIE full"),
                         ("phasekit rpie full", "PtyLab mPIE full"),
                         ("phasekit epie full", "pty-chi EPIE modes+positions"),
                         ("phasekit rpie full", "pty-chi RPIE modes+positions")):
        o, t = R.get(ours), R.get(theirs)
        if o is None or t is None:
            why = A["peer_errors"].get(theirs) or A["peer_errors"].get(theirs.split()[0]) or {}
            C.append(claim(f"{ours} vs {theirs}: same data, same sweeps", None,
                           f"peer not run: {why.get('error', 'unknown')}"))
            continue
        C.append(claim(f"{ours} matches or beats (within 0.01) the FRC of {theirs} (same data "
                       "and sweeps)",
                       o["frc"] >= t["frc"] - 0.01,
                       f"FRC {o['frc']:.3f} vs {t['frc']:.3f}, error {o['object_error']:.3f} vs "
                       f"{t['object_error']:.3f}, positions rms {o['position_rms_px']:.2f} vs "
                       f"{t['position_rms_px']:.2f} px"))
        tkey = {"PtyLab ePIE full": "epie vs PtyLab ePIE", "PtyLab mPIE full":
                "rpie vs PtyLab mPIE", "pty-chi EPIE modes+positions": "epie vs pty-chi EPIE"
                }.get(theirs)
        tm = A.get("timing", {}).get(tkey)
        if tm is None:
            C.append(claim(f"{ours} is faster per sweep than {theirs}", None,
                           "no paired timing for this pair"))
        else:
            C.append(claim(f"{ours} is faster per sweep than {theirs}",
                           tm["peer_over_phasekit"] > 1,
                           f"{tm['phasekit_s_per_sweep'] * 1e3:.0f} vs "
                           f"{tm['peer_s_per_sweep'] * 1e3:.0f} ms/sweep (peer / phasekit "
                           f"{tm['peer_over_phasekit']:.2f}x; medians of 2 alternating "
                           "back-to-back runs of each; 2 modes, position refinement and "
                           "background on in both)"))
    RB = B["runs"]
    o, t = RB.get("phasekit rpie near field"), RB.get("cdtools FancyPtycho near field (Adam)")
    if o and t:
        C.append(claim("phasekit rPIE --near-field matches or beats (within 0.01) cdtools' FRC on the "
                       "Fresnel-scaled scan (same sweeps/epochs)", o["frc"] >= t["frc"] - 0.01,
                       f"FRC {o['frc']:.3f} vs {t['frc']:.3f}, error {o['object_error']:.3f} vs "
                       f"{t['object_error']:.3f}"))
        tm = B.get("timing", {}).get("rpie near field vs cdtools Adam")
        if tm is not None:
            C.append(claim("phasekit rPIE --near-field is faster per sweep than cdtools (Adam)",
                           tm["peer_over_phasekit"] > 1,
                           f"{tm['phasekit_s_per_sweep'] * 1e3:.0f} vs "
                           f"{tm['peer_s_per_sweep'] * 1e3:.0f} ms/sweep (cdtools / phasekit "
                           f"{tm['peer_over_phasekit']:.2f}x, medians of 2 alternating runs)"))
    else:
        C.append(claim("phasekit --near-field vs cdtools", None,
                       f"cdtools not run: {B['peer_errors'].get('cdtools', {}).get('error')}"))
    return C


def figure(A, B):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, case, title in ((axes[0], A, "A: far field, 2 modes, position errors, background"),
                            (axes[1], B, "B: near field (Fresnel-scaled)")):
        for k, s in case["runs"].items():
            f, c = s["frc_curve"]
            ax.plot(f, c, label=f"{k} ({s['frc']:.2f})", lw=1)
        ax.set_xlabel("spatial frequency (cycles/pixel)")
        ax.set_ylabel("FRC")
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 sweeps, smaller scans")
    ap.add_argument("--sweeps", type=int, default=None)
    ap.add_argument("--frame", type=int, default=64)
    ap.add_argument("--points", type=int, default=7, help="raster points per side, case A")
    ap.add_argument("--near-points", type=int, default=6, help="raster points per side, case B")
    ap.add_argument("--dose", type=float, default=1e8)
    ap.add_argument("--position-error", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ptylab-python", default="/tmp/venv_ptylab/bin/python")
    ap.add_argument("--peer-python", default="/tmp/venv_peers13/bin/python",
                    help="Python that imports pty-chi and cdtools next to the CPU torch")
    ap.add_argument("--peer-timeout", type=int, default=600)
    ap.add_argument("--ptychi-engines", default="EPIE", help="comma list of EPIE,RPIE")
    ap.add_argument("--timing-sweeps", type=int, default=10,
                    help="sweeps of each paired (alternating) timing run")
    a = ap.parse_args(argv)
    a.sweeps = a.sweeps or (20 if a.quick else 100)
    if a.quick:
        a.timing_sweeps = min(a.timing_sweeps, 4)
    global REFINE_START
    REFINE_START = min(REFINE_START, a.sweeps // 4)
    if a.quick:
        a.points, a.near_points = min(a.points, 6), min(a.near_points, 5)
    threads = set_threads(1)
    from _common import loadavg

    load0 = loadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        A = case_far(a, tmp)
        B = case_near(a, tmp)
    claims = make_claims(A, B)
    meta = machine_meta({"threads": threads, "total_s": time.perf_counter() - t0,
                         "loadavg_before_run": load0, "loadavg_at_end": loadavg(),
                         "scaled_down": f"{a.sweeps} sweeps, {a.frame}x{a.frame} frames, "
                                        f"{a.points}^2 / {a.near_points}^2 positions (a real "
                                        "run: 300+ sweeps, 256+ px frames)"})
    data = {"meta": meta, "far_field": A, "near_field": B, "claims": claims,
            "args": vars(a)}
    rows = []
    for case, title in ((A, "A"), (B, "B")):
        for k, s in case["runs"].items():
            rows.append([title, k, fmt(s["frc"]), fmt(s["object_error"]),
                         fmt(s.get("position_rms_px")), fmt(s["per_sweep_s"] * 1e3, 4)])
    md = (f"# {NAME}\n\n{__doc__.split(chr(10) + chr(10))[0]}\n\n"
          + md_table(["case", "run", f"FRC {BAND[0]}-{BAND[1]}", "object error",
                      "positions rms (px)", "ms / sweep"], rows)
          + "\n\nPaired per-sweep timing (alternating back-to-back runs, medians):\n\n"
          + md_table(["pair", "phasekit ms/sweep", "peer ms/sweep", "peer / phasekit"],
                     [[k, fmt(v["phasekit_s_per_sweep"] * 1e3, 4),
                       fmt(v["peer_s_per_sweep"] * 1e3, 4), fmt(v["peer_over_phasekit"])]
                      for k, v in {**A.get("timing", {}), **B.get("timing", {})}.items()])
          + "\n\nPeer failures / not run: "
          + json.dumps({**A["peer_errors"], **B["peer_errors"]})
          + "\n\n## Claims\n\n" + claims_markdown(claims) + "\n\n" + meta_markdown(meta))
    write_results(NAME, data, md)
    save_figure(figure(A, B), RESULTS / f"{NAME}.png")
    for c in claims:
        print(("HOLDS " if c["holds"] else "FAILS " if c["holds"] is False else "N/A   ")
              + c["claim"] + ": " + c["evidence"])


if __name__ == "__main__":
    main()
