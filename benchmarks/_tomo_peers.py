"""Per-slice 2-D peers for single y-axis tilt series: ASTRA (CPU) SIRT/FBP and scikit-image FBP.

A y-tilt series decouples into ``Ny`` independent 2-D problems in the ``(u, w)`` plane.  phasekit's convention: volume ``(x, y, z)``, centre ``N // 2``,
``x_det = cos(t) u - sin(t) w``.  The peers' image orientation and angle sign are **not assumed**:
:func:`calibrate` projects a point source with phasekit's real-space projector and with every
candidate mapping of the peer (image = slice or its transpose, angle +t or -t) and keeps the one
that puts the point at the same detector position.  ASTRA's centre is ``(N - 1) / 2``, so the
volume and detector are padded to the odd size ``N + 1`` (then both centres are ``N // 2``).
"""
from __future__ import annotations

import numpy as np
import torch

try:
    import astra  # noqa: F401

    HAVE_ASTRA = True
    ASTRA_VERSION = astra.__version__
except Exception:  # noqa: BLE001 - any import failure means "not available"
    HAVE_ASTRA = False
    ASTRA_VERSION = None

try:
    import skimage
    import skimage.transform  # noqa: F401

    HAVE_SKIMAGE = True
    SKIMAGE_VERSION = skimage.__version__
except ImportError:
    HAVE_SKIMAGE = False
    SKIMAGE_VERSION = None

_MAP: dict = {}


def _to_img(sl, transpose):
    return sl.T if transpose else sl


def _from_img(img, transpose):
    return img.T if transpose else img


# --------------------------------------------------------------------------- ASTRA
def _astra_geoms(n, thetas_deg, sign):
    import astra

    M = n + 1 if n % 2 == 0 else n
    vg = astra.create_vol_geom(M, M)
    pg = astra.create_proj_geom("parallel", 1.0, M, sign * np.deg2rad(thetas_deg))
    return vg, pg, M


def astra_forward_slice(sl, thetas_deg, transpose, sign):
    """ASTRA linear-projector sinogram (n_angles, N) of one (u, w) slice in our convention."""
    import astra

    n = sl.shape[0]
    vg, pg, M = _astra_geoms(n, thetas_deg, sign)
    img = np.zeros((M, M), np.float32)
    img[:n, :n] = _to_img(sl, transpose)
    pid = astra.create_projector("linear", pg, vg)
    sid, sino = astra.create_sino(img, pid)
    astra.data2d.delete(sid)
    astra.projector.delete(pid)
    return sino[:, :n]


def _point_reference(n):
    """An off-centre point in an (n, 3, n) volume, the tilt (30 deg) and our projection of its
    middle slice: the reference both peers' conventions are calibrated against."""
    from phasekit.tomo.projectors import RealSpaceProjector

    vol = np.zeros((n, 3, n), np.float32)
    vol[n // 2 + 5, 1, n // 2 - 9] = 1.0
    th = np.array([30.0])
    ours = RealSpaceProjector(vol.shape, th).forward(torch.as_tensor(vol))[0, :, 1].numpy()
    return vol, th, ours


def calibrate_astra(n=32):
    if "astra" in _MAP:
        return _MAP["astra"]
    vol, th, ours = _point_reference(n)
    best = None
    for tr in (False, True):
        for sg in (1, -1):
            s = astra_forward_slice(vol[:, 1, :], th, tr, sg)[0]
            err = np.abs(s - ours).sum()
            if best is None or err < best[0]:
                best = (err, tr, sg)
    _MAP["astra"] = {"transpose": best[1], "sign": best[2], "mismatch_l1": float(best[0])}
    return _MAP["astra"]


def astra_project(vol, thetas_deg):
    """ASTRA linear projections of a volume (y-tilt): the neutral projector for R_F."""
    c = calibrate_astra()
    n, ny, _ = vol.shape
    out = np.zeros((len(thetas_deg), n, ny), np.float32)
    for j in range(ny):
        out[:, :, j] = astra_forward_slice(vol[:, j, :], thetas_deg, c["transpose"], c["sign"])
    return out


def astra_recon(b, thetas_deg, method="SIRT", n_iter=400, min_constraint=None, filter="ram-lak"):
    """Slice-by-slice ASTRA CPU reconstruction of projections ``b`` (n, Nx, Ny) -> (Nx, Ny, Nx)."""
    import astra

    c = calibrate_astra()
    _, n, ny = b.shape
    vg, pg, M = _astra_geoms(n, thetas_deg, c["sign"])
    pid = astra.create_projector("linear", pg, vg)
    out = np.zeros((n, ny, n), np.float32)
    for j in range(ny):
        sino = np.zeros((len(thetas_deg), M), np.float32)
        sino[:, :n] = b[:, :, j]
        sid = astra.data2d.create("-sino", pg, sino)
        rid = astra.data2d.create("-vol", vg, 0.0)
        cfg = astra.astra_dict("SIRT" if method == "SIRT" else "FBP")
        cfg["ProjectorId"] = pid
        cfg["ProjectionDataId"] = sid
        cfg["ReconstructionDataId"] = rid
        if method == "SIRT" and min_constraint is not None:
            cfg["option"] = {"MinConstraint": float(min_constraint)}
        if method == "FBP":
            cfg["FilterType"] = filter
        aid = astra.algorithm.create(cfg)
        astra.algorithm.run(aid, n_iter if method == "SIRT" else 1)
        img = astra.data2d.get(rid)[:n, :n]
        out[:, j, :] = _from_img(img, c["transpose"])
        astra.algorithm.delete(aid)
        astra.data2d.delete([sid, rid])
    astra.projector.delete(pid)
    return out


class AstraSlices:
    """ASTRA CPU ``SIRT`` set up once on every y-slice of a projection stack ``b`` (n, Nx, Ny),
    for timing iterations: :meth:`run` advances every slice by ``n_iter`` iterations and returns
    the wall and process CPU seconds it took.  ``projector``: ``"linear"`` (Joseph's ray-driven
    linear interpolation, the closest to phasekit's bilinear pair) or ``"strip"`` (area weights).
    """

    def __init__(self, b, thetas_deg, projector="linear", min_constraint=None):
        import astra

        c = calibrate_astra()
        _, n, ny = b.shape
        self.n = n
        self.transpose = c["transpose"]
        vg, pg, M = _astra_geoms(n, thetas_deg, c["sign"])
        self.pid = astra.create_projector(projector, pg, vg)
        self.ids = []
        for j in range(ny):
            sino = np.zeros((len(thetas_deg), M), np.float32)
            sino[:, :n] = b[:, :, j]
            sid = astra.data2d.create("-sino", pg, sino)
            rid = astra.data2d.create("-vol", vg, 0.0)
            cfg = astra.astra_dict("SIRT")
            cfg["ProjectorId"] = self.pid
            cfg["ProjectionDataId"] = sid
            cfg["ReconstructionDataId"] = rid
            if min_constraint is not None:
                cfg["option"] = {"MinConstraint": float(min_constraint)}
            self.ids.append((astra.algorithm.create(cfg), sid, rid))

    def run(self, n_iter):
        import time

        import astra

        t0, c0 = time.perf_counter(), time.process_time()
        for aid, _, _ in self.ids:
            astra.algorithm.run(aid, n_iter)
        return time.perf_counter() - t0, time.process_time() - c0

    def volume(self):
        import astra

        out = np.zeros((self.n, len(self.ids), self.n), np.float32)
        for j, (_, _, rid) in enumerate(self.ids):
            out[:, j, :] = _from_img(astra.data2d.get(rid)[:self.n, :self.n], self.transpose)
        return out

    def close(self):
        import astra

        for aid, sid, rid in self.ids:
            astra.algorithm.delete(aid)
            astra.data2d.delete([sid, rid])
        astra.projector.delete(self.pid)
        self.ids = []


# --------------------------------------------------------------------------- scikit-image
def calibrate_skimage(n=32):
    if "skimage" in _MAP:
        return _MAP["skimage"]
    from skimage.transform import radon

    vol, th, ours = _point_reference(n)
    best = None
    for tr in (False, True):
        for sg in (1, -1):
            for flip in (False, True):
                s = radon(_to_img(vol[:, 1, :], tr).astype(float), sg * th, circle=False)[:, 0]
                # radon pads to the diagonal: crop the central n bins
                c0 = s.shape[0] // 2 - n // 2
                s = s[c0:c0 + n]
                if flip:
                    s = s[::-1]
                err = np.abs(s - ours).sum()
                if best is None or err < best[0]:
                    best = (err, tr, sg, flip)
    _MAP["skimage"] = {"transpose": best[1], "sign": best[2], "flip": best[3],
                       "mismatch_l1": float(best[0])}
    return _MAP["skimage"]


def skimage_fbp(b, thetas_deg, filter_name="ramp"):
    """Slice-by-slice ``skimage.transform.iradon`` (circle=False) -> (Nx, Ny, Nx)."""
    from skimage.transform import iradon

    c = calibrate_skimage()
    _, n, ny = b.shape
    out = np.zeros((n, ny, n), np.float32)
    for j in range(ny):
        sino = b[:, :, j].T.astype(np.float64)  # (n_det, n_angles)
        if c["flip"]:
            sino = sino[::-1]
        img = iradon(sino, c["sign"] * np.asarray(thetas_deg), output_size=n, circle=False,
                     filter_name=filter_name)
        out[:, j, :] = _from_img(img, c["transpose"])
    return out
