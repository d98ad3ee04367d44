"""Property-based tests of every file reader: random files either read or fail cleanly.

Each reader (CXI/HDF5 diffraction data and results, ``.npy`` / ``.npz``, TIFF and EDF patterns,
ptychography scans, tomography tilt series in HDF5 and TIFF, tomography results, mask files,
``phasekit info``) is fed files laid out by hand with h5py / NumPy / tifffile / EDF header bytes:
random shapes and dtypes (complex, bool, strings, 0-d,
1-d, 4-d, empty), missing and extra datasets, groups and dangling links where datasets are
expected, truncated files and random bytes.  The property: the reader returns a valid object or
raises a :class:`~phasekit.core.errors.PhasekitError` with a one-line message, never anything
else (``KeyError``, ``ValueError``, ``TypeError``, ``IndexError``, h5py's ``OSError``...).

The examples are derandomized (the same on every host) and few enough that the file runs in a
few seconds.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from phasekit.core.errors import PhasekitError
from phasekit.io import (
    DiffractionData,
    PtychoData,
    describe,
    read_diffraction,
    read_ptycho,
    read_result,
)
from phasekit.io.patterns import read_image_array
from phasekit.tomo.io import read_tilt_series, read_tomo_result
from phasekit.tomo.simulate import TiltSeries

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- the property
def _check_diffraction(d):
    assert isinstance(d, DiffractionData)
    assert d.intensity.dtype == np.float32 and d.intensity.ndim in (2, 3) and d.intensity.size
    assert d.mask is None or (d.mask.dtype == bool and d.mask.shape == d.intensity.shape)
    for v in (d.wavelength, d.distance, d.pixel_size):
        assert v is None or (np.isfinite(v) and v > 0)


def _check_result(r):
    assert isinstance(r, dict) and r["images"]
    n = len(r["images"])
    assert len(r["supports"]) == n and len(r["rfactors"]) == n and len(r["histories"]) == n
    for im in r["images"]:
        assert isinstance(im, np.ndarray) and im.dtype.kind in "biufc"


def _check_ptycho(d):
    assert isinstance(d, PtychoData)
    n = d.intensities.shape[0]
    assert d.intensities.dtype == np.float32 and d.intensities.ndim == 3 and d.intensities.size
    assert np.isfinite(d.intensities).all() and (d.intensities >= 0).all()
    assert d.translations.shape == (n, 3) and np.isfinite(d.translations).all()
    assert d.mask is None or (d.mask.dtype == bool and d.mask.shape == d.intensities.shape[1:])


def _check_tilt_series(ts):
    assert isinstance(ts, TiltSeries)
    b = ts.projections
    assert b.dtype == np.float32 and b.ndim == 3 and b.size and np.isfinite(b).all()
    assert ts.angles.shape == (b.shape[0], 3) and np.isfinite(ts.angles).all()
    assert ts.mask is None or (ts.mask.dtype == bool and ts.mask.shape == b.shape)
    assert ts.vol_shape is None or (len(ts.vol_shape) == 3 and min(ts.vol_shape) > 0)
    assert ts.truth is None or (ts.truth.ndim == 3 and ts.truth.dtype == np.float32)
    assert ts.support is None or (ts.support.ndim == 3 and ts.support.dtype == bool)


def _check_tomo_result(r):
    assert r["volume"].ndim == 3 and r["volume"].dtype.kind == "f"
    assert all(isinstance(v, np.ndarray) for v in r["history"].values())
    assert isinstance(r["config"], dict) and isinstance(r["metrics"], dict)


def _check_image(a):
    assert isinstance(a, np.ndarray) and a.dtype.kind in "biuf"


def _check_text(s):
    assert isinstance(s, str) and s.startswith("file: ")


def _describe_file(path):
    from phasekit.cli.info import describe_file

    return describe_file(path)


READERS = {
    "read_diffraction": (read_diffraction, _check_diffraction),
    "read_result": (read_result, _check_result),
    "read_ptycho": (read_ptycho, _check_ptycho),
    "read_tilt_series": (read_tilt_series, _check_tilt_series),
    "read_tomo_result": (read_tomo_result, _check_tomo_result),
    "describe": (describe, _check_text),
    "read_image_array": (read_image_array, _check_image),
    "phasekit info": (_describe_file, _check_text),
}


def assert_reads_or_fails_cleanly(path: Path, readers=READERS) -> None:
    """Every reader returns a valid object or raises a one-line PhasekitError."""
    for name, (read, check) in readers.items():
        try:
            out = read(path)
        except PhasekitError as exc:
            msg = str(exc)
            assert msg and "\n" not in msg, f"{name}: multi-line message {msg!r}"
            continue
        except Exception as exc:  # noqa: BLE001 - the property under test
            raise AssertionError(f"{name}({path.name}) raised {type(exc).__name__}: {exc}") from exc
        check(out)


# --------------------------------------------------------------------------- random content
_DTYPES = [np.float32, np.float64, np.int16, np.uint8, np.uint32, np.int64, np.bool_,
           np.complex64, np.complex128, np.dtype("S4")]


@st.composite
def random_arrays(draw, max_dims=4, max_side=5):
    dtype = np.dtype(draw(st.sampled_from(_DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=max_side))
    return draw(hnp.arrays(dtype, shape))


@st.composite
def plausible_arrays(draw, shape):
    """An array of roughly the expected shape and a numeric dtype (exercises the happy path)."""
    dtype = draw(st.sampled_from([np.float32, np.float64, np.uint16, np.int32]))
    shape = tuple(shape)
    if draw(st.booleans()):  # one axis off by one
        k = draw(st.integers(0, len(shape) - 1)) if shape else 0
        shape = tuple(s + (1 if i == k else 0) for i, s in enumerate(shape))
    elements = st.floats(0, 100, width=32) if np.dtype(dtype).kind == "f" else st.integers(0, 100)
    return draw(hnp.arrays(dtype, shape, elements=elements))


# The places readers look, with the shape a well-formed file has there (n frames of m x m).
def _slots(n, m):
    return {
        "cxi_version": (),
        "entry_1/data_1/data": (n, m, m),
        "entry_1/data_1/translation": (n, 3),
        "entry_1/instrument_1/detector_1/data": (m, m),
        "entry_1/instrument_1/detector_1/mask": (m, m),
        "entry_1/instrument_1/detector_1/mask_shared": (m, m),
        "entry_1/instrument_1/detector_1/distance": (),
        "entry_1/instrument_1/detector_1/x_pixel_size": (),
        "entry_1/instrument_1/detector_1/y_pixel_size": (),
        "entry_1/instrument_1/source_1/wavelength": (),
        "entry_1/instrument_1/source_1/energy": (),
        "entry_1/sample_1/geometry_1/translation": (n, 3),
        "entry_1/simulation_1/truth": (m, m),
        "entry_1/simulation_1/support": (m, m),
        "entry_1/simulation_1/object": (2 * m, 2 * m),
        "entry_1/simulation_1/probe": (m, m),
        "entry_1/simulation_1/positions": (n, 2),
        "entry_1/image_1/data": (m, m),
        "entry_1/image_1/mask": (m, m),
        "entry_1/image_1/rfactor": (),
        "entry_1/image_1/process_1/history/rfactor": (n,),
        "entry_1/image_1/process_1/history/iteration": (n,),
        "entry_1/image_2/data": (m, m),
        "entry_1/result_1/illumination": (m, m),
        "entry_2/data_1/data": (m, m),
        "tomo/projections": (n, m, m),
        "tomo/angles": (n, 3),
        "tomo/mask": (n, m, m),
        "tomo/truth": (m, m, m),
        "tomo/support": (m, m, m),
        "tomo/volume_shape": (3,),
        "tomo_result/volume": (m, m, m),
        "tomo_result/history/R_F": (n,),
        "tomo_result/fsc/freq": (m,),
        "tomo_result/fsc/curve": (m,),
    }


_TEXT = st.sampled_from(["", "m", "nm", "eV", "keV", "J", "deg", "rad", "ZYZ", "ZYX", "XYZ",
                         "frame:y:x", "translation:y:x", "{}", '{"a": 1}', "[1, 2]", "not json",
                         "\xe9\x00x", "phasekit-tomo", "phasekit-tomo-result", "NXentry"])
_ATTRS = {
    "units": _TEXT, "axes": _TEXT, "convention": _TEXT, "angle_units": _TEXT,
    "params": _TEXT, "config": _TEXT, "provenance": _TEXT, "metrics": _TEXT, "format": _TEXT,
    "NX_class": _TEXT, "encoding": st.just("json"), "generated": st.integers(0, 1),
    "rfactor": st.one_of(st.floats(allow_nan=True), _TEXT), "note": _TEXT,
}


@st.composite
def hdf5_layouts(draw):
    """A list of (path, kind, value, attrs): what to write where, in order."""
    n = draw(st.integers(1, 3))
    m = draw(st.integers(1, 4))
    slots = _slots(n, m)
    chosen = draw(st.lists(st.sampled_from(sorted(slots)), min_size=0, max_size=12, unique=True))
    extra = draw(st.lists(st.sampled_from(["extra", "entry_1", "tomo", "tomo_result",
                                            "entry_1/instrument_1", "entry_1/simulation_1",
                                            "entry_1/image_1/process_1/note/config",
                                            "entry_1/image_1/process_1/history"]),
                          max_size=2, unique=True))
    out = []
    for path in chosen + extra:
        kind = draw(st.sampled_from(["plausible", "plausible", "plausible", "random", "group",
                                     "link", "string"]))
        if kind == "plausible":
            value = draw(plausible_arrays(slots.get(path, (m, m))))
        elif kind == "random":
            value = draw(random_arrays())
        elif kind == "link":
            value = draw(st.sampled_from(sorted(slots) + ["/nowhere", "/entry_1"]))
        elif kind == "string":
            value = draw(_TEXT)
        else:
            value = None
        names = draw(st.lists(st.sampled_from(sorted(_ATTRS)), max_size=2, unique=True))
        attrs = {a: draw(_ATTRS[a]) for a in names}
        out.append((path, kind, value, attrs))
    root_attrs = draw(st.sampled_from([{}, {"creator": "someone"}]))
    return out, root_attrs


def write_layout(path: Path, layout) -> None:
    items, root_attrs = layout
    with h5py.File(path, "w") as f:
        f.attrs.update(root_attrs)
        for where, kind, value, attrs in items:
            try:
                if where in f:
                    continue
                if kind == "group":
                    obj = f.create_group(where)
                elif kind == "link":
                    f[where] = h5py.SoftLink("/" + value.lstrip("/"))
                    continue
                elif kind == "string":
                    obj = f.create_dataset(where, data=value)
                else:
                    obj = f.create_dataset(where, data=value)
                for k, v in attrs.items():
                    obj.attrs[k] = v
            except (ValueError, TypeError, KeyError, OSError):
                continue  # e.g. a child of something that is a dataset: leave it out


_SUFFIXES = [".cxi", ".h5", ".npy", ".npz", ".tif", ".dat"]


# --------------------------------------------------------------------------- the tests
@FUZZ
@given(layout=hdf5_layouts(), suffix=st.sampled_from([".cxi", ".h5"]))
def test_hdf5_layouts(layout, suffix):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"f{suffix}"
        write_layout(p, layout)
        assert_reads_or_fails_cleanly(p)


@FUZZ
@given(layout=hdf5_layouts(), cut=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_hdf5(layout, cut):
    with tempfile.TemporaryDirectory() as d:
        full = Path(d) / "full.h5"
        write_layout(full, layout)
        data = full.read_bytes()
        p = Path(d) / "cut.cxi"
        p.write_bytes(data[: int(cut * len(data))])
        assert_reads_or_fails_cleanly(p)


@FUZZ
@given(data=st.binary(max_size=2048), suffix=st.sampled_from(_SUFFIXES),
       prefix=st.sampled_from([b"", b"\x89HDF\r\n\x1a\n", b"\x93NUMPY", b"PK\x03\x04",
                               b"II*\x00", b"MM\x00*"]))
def test_random_bytes(data, suffix, prefix):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"r{suffix}"
        p.write_bytes(prefix + data)
        assert_reads_or_fails_cleanly(p)


@FUZZ
@given(arr=random_arrays(), kind=st.sampled_from(["plain", "object", "structured", "fortran"]),
       cut=st.one_of(st.none(), st.floats(0.0, 1.0, exclude_max=True)))
def test_npy(arr, kind, cut):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.npy"
        if kind == "object":
            a = np.empty(arr.shape, dtype=object)
            a[...] = arr if arr.size else a
            np.save(p, a, allow_pickle=True)
        elif kind == "structured":
            np.save(p, np.zeros(arr.shape, dtype=[("re", "f4"), ("im", "f4")]))
        elif kind == "fortran":
            np.save(p, np.asfortranarray(arr))
        else:
            np.save(p, arr)
        if cut is not None:
            raw = p.read_bytes()
            p.write_bytes(raw[: int(cut * len(raw))])
        assert_reads_or_fails_cleanly(p)


_NPZ_KEYS = ["intensity", "data", "mask", "support", "truth", "wavelength", "distance",
             "pixel_size", "metadata", "labels", "centers", "inertia", "objective", "n_iter",
             "objectives", "config", "x"]


@st.composite
def npz_members(draw):
    m = draw(st.integers(1, 4))
    keys = draw(st.lists(st.sampled_from(_NPZ_KEYS), max_size=4, unique=True))
    out = {}
    for k in keys:
        how = draw(st.sampled_from(["plausible", "random", "json", "object"]))
        if how == "plausible":
            shape = {"wavelength": (), "distance": (), "pixel_size": (), "inertia": (),
                     "objective": (), "n_iter": (), "labels": (m * m,), "objectives": (3,),
                     "centers": (2, m)}.get(k, (m, m))
            out[k] = draw(plausible_arrays(shape))
        elif how == "random":
            out[k] = draw(random_arrays())
        elif how == "json":
            out[k] = np.array(draw(st.sampled_from(['{"method": "sbe", "n_clusters": 2}', "{}",
                                                    "[]", "not json", "1e999"])))
        else:
            out[k] = np.array([{"a": 1}, None], dtype=object)
    return out


@FUZZ
@given(members=npz_members(), compressed=st.booleans(),
       cut=st.one_of(st.none(), st.floats(0.0, 1.0, exclude_max=True)))
def test_npz(members, compressed, cut):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a_kmeans.npz"
        (np.savez_compressed if compressed else np.savez)(p, **members)
        if cut is not None:
            raw = p.read_bytes()
            p.write_bytes(raw[: int(cut * len(raw))])
        assert_reads_or_fails_cleanly(p)


@pytest.mark.filterwarnings("ignore:.*zero-size array:UserWarning")
@FUZZ
@given(arr=random_arrays(max_dims=4, max_side=4),
       sidecar=st.one_of(st.none(), st.sampled_from(["0\n30\n", "0 10 20\n", "nan\n1\n", "x y\n",
                                                     "", "1e400\n", "0\n" * 4])),
       cut=st.one_of(st.none(), st.floats(0.0, 1.0, exclude_max=True)))
def test_tiff(arr, sidecar, cut):
    tifffile = pytest.importorskip("tifffile")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.tif"
        try:
            tifffile.imwrite(p, arr, photometric="minisblack")
        except Exception:  # noqa: BLE001 - tifffile cannot store everything; bytes instead
            p.write_bytes(b"II*\x00" + arr.tobytes())
        if sidecar is not None:
            p.with_suffix(".rawtlt").write_text(sidecar)
        if cut is not None:
            raw = p.read_bytes()
            p.write_bytes(raw[: int(cut * len(raw))])
        assert_reads_or_fails_cleanly(p)


_EDF_TYPES = ["UnsignedByte", "SignedByte", "UnsignedShort", "SignedShort", "UnsignedInteger",
              "SignedInteger", "UnsignedLong", "SignedLong", "Signed64", "FloatValue",
              "DoubleValue", "Complex", "", "float"]


@st.composite
def edf_files(draw):
    """EDF bytes: a header of plausible and odd keys (some missing, some wrong), then data;
    about half the files are well formed (the happy path) before they are cut or appended to."""
    ok = draw(st.booleans())
    dims = draw(st.lists(st.integers(1 if ok else -1, 5), min_size=2 if ok else 0, max_size=3))
    keys = {f"Dim_{k}": str(d) for k, d in enumerate(dims, 1)}
    keys["DataType"] = draw(st.sampled_from(_EDF_TYPES[:11] if ok else _EDF_TYPES))
    keys["ByteOrder"] = draw(st.sampled_from(["LowByteFirst", "HighByteFirst"]
                                             + ([] if ok else ["Weird"])))
    comp = draw(st.sampled_from([None, "None", "gzip", "Z", "bz2"] + ([] if ok else ["RLE"])))
    if comp:
        keys["Compression"] = comp
    if not ok:
        for k in draw(st.lists(st.sampled_from(list(keys)), max_size=2, unique=True)):
            del keys[k]
    extra = draw(st.lists(st.sampled_from(["PSize_1 = 7e-5", "SampleDistance = nan",
                                           "WaveLength = 1e-10", "junk", "= 3"]
                                          + ([] if ok else ["Size = 12", "Size = -3", "Size = x",
                                                            "Dim_3 = 2"])), max_size=3))
    text = "{\n" + "".join(f"{k} = {v} ;\n" for k, v in keys.items()) + \
        "".join(f"{e} ;\n" for e in extra)
    pad = draw(st.sampled_from([0, (-(len(text) + 2)) % 512]))
    head = (text + " " * pad + "}\n").encode()
    body = draw(st.binary(min_size=1 if ok else 0, max_size=400))
    size = {"UnsignedByte": 1, "SignedByte": 1, "UnsignedShort": 2, "SignedShort": 2,
            "Signed64": 8, "DoubleValue": 8}.get(keys.get("DataType"), 4)
    if ok or draw(st.booleans()):  # exactly the bytes the dimensions ask for
        n = size * int(np.prod([max(d, 0) for d in dims] or [0]))
        body = (body * (n // max(len(body), 1) + 1))[:n]
    if comp in ("gzip", "Z", "bz2") and (ok or draw(st.booleans())):
        import bz2
        import gzip
        import zlib

        body = {"gzip": gzip.compress, "Z": zlib.compress, "bz2": bz2.compress}[comp](body)
    tail = draw(st.sampled_from([b"", b"", head, b"\x00" * 7]))
    return head + body + tail


@FUZZ
@given(data=edf_files(), suffix=st.sampled_from([".edf", ".dat"]),
       cut=st.one_of(st.none(), st.floats(0.0, 1.0, exclude_max=True)))
def test_edf(data, suffix, cut):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"e{suffix}"
        p.write_bytes(data if cut is None else data[: int(cut * len(data))])
        assert_reads_or_fails_cleanly(p)


def test_the_fuzzer_reaches_valid_files(tmp_path):
    """The layouts above can be read: the happy paths of the readers are exercised too."""
    tifffile = pytest.importorskip("tifffile")

    n, m = 2, 4
    rng = np.random.default_rng(0)
    p = tmp_path / "ok.h5"
    write_layout(p, ([("entry_1/data_1/data", "plausible", rng.random((n, m, m)), {}),
                      ("entry_1/data_1/translation", "plausible", rng.random((n, 3)), {}),
                      ("tomo/projections", "plausible", rng.random((n, m, m)), {}),
                      ("tomo/angles", "plausible", np.array([0.0, 30.0]), {}),
                      ("entry_1/image_1/data", "plausible", rng.random((m, m)), {})], {}))
    seen = {}
    for name, (read, check) in READERS.items():
        if name in ("read_diffraction", "read_tomo_result", "read_image_array"):
            continue
        out = read(p)
        check(out)
        seen[name] = out
    assert seen["read_ptycho"].n_frames == 2 and seen["read_tilt_series"].angles[1, 1] == 30.0
    assert seen["read_result"]["images"][0].shape == (m, m)
    # a stack of two frames is refused as one CDI pattern, naming the file
    stack = tmp_path / "stack.h5"
    with h5py.File(stack, "w") as f:
        f.create_dataset("entry_1/data_1/data", data=rng.random((2, m, m))).attrs["axes"] = \
            "frame:y:x"
    with pytest.raises(PhasekitError, match=r"stack\.h5: .*stack of 2 frames"):
        read_diffraction(stack)
    tifffile.imwrite(tmp_path / "t.tif", rng.random((2, m, m)).astype(np.float32),
                     photometric="minisblack")
    (tmp_path / "t.rawtlt").write_text("0\n30\n")
    ts = read_tilt_series(tmp_path / "t.tif")
    _check_tilt_series(ts)
    assert ts.projections.shape == (2, m, m) and ts.angles[1, 1] == 30.0
    # a single-page TIFF and an EDF frame are diffraction patterns
    tifffile.imwrite(tmp_path / "p.tif", rng.random((m, m)).astype(np.float32))
    _check_diffraction(read_diffraction(tmp_path / "p.tif"))
    edf = (b"{\nDim_1 = 4 ;\nDim_2 = 4 ;\nDataType = FloatValue ;\n}\n"
           + rng.random((m, m)).astype("<f4").tobytes())
    (tmp_path / "p.edf").write_bytes(edf)
    d = read_diffraction(tmp_path / "p.edf")
    _check_diffraction(d)
    assert d.shape == (m, m) and _describe_file(tmp_path / "p.edf").startswith("file: ")
