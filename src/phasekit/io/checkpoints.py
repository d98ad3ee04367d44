"""What a phasekit checkpoint holds, read without running any of its code.

A checkpoint (:func:`phasekit.engine.driver.save_checkpoint`) is a ``torch.save`` file: a zip
archive whose ``<name>/data.pkl`` member is a pickle of a dict with ``format =
"phasekit-checkpoint"``, ``version``, ``signature`` (modality, stages, starts, shape, seed),
``finished`` (one dict per finished start: image, R-factor, history, number of iterations) and
``current`` (the state of the start in progress, or ``None``).

Unpickling a file can run arbitrary code, so :func:`read_checkpoint_summary` never imports what
the pickle names: a restricted unpickler (``pickle.Unpickler.find_class`` overridden, see the
Python documentation, "Restricting Globals") turns every global into an inert placeholder that
records its name and arguments, and the tensor storages (``persistent_load``) into placeholders
that record their type and size.  Plain dicts, lists, numbers and strings come out as they are,
which is all a summary needs.
"""
from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import FileFormatError

__all__ = ["CHECKPOINT_FORMAT", "is_torch_zip", "read_checkpoint_summary", "describe_checkpoint"]

CHECKPOINT_FORMAT = "phasekit-checkpoint"
_MAX_PICKLE = 256 << 20  # bytes of data.pkl read at most (the tensors are stored beside it)
_SAFE = {"collections.OrderedDict": dict, "builtins.set": set, "builtins.frozenset": frozenset,
         "builtins.complex": complex, "builtins.slice": slice}


class _Placeholder:
    """An inert stand-in for whatever a pickle names: records arguments and state only."""

    qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.state = state

    def __repr__(self) -> str:
        return f"<{self.qualname}>"


class _InertUnpickler(pickle.Unpickler):
    def __init__(self, fh):
        super().__init__(fh)
        self._classes: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        full = f"{module}.{name}"
        if full in _SAFE:
            return _SAFE[full]
        if full not in self._classes:
            self._classes[full] = type(name, (_Placeholder,), {"qualname": full})
        return self._classes[full]

    def persistent_load(self, pid):
        return _Placeholder("storage", *(pid if isinstance(pid, tuple) else (pid,)))


def is_torch_zip(path: str | os.PathLike) -> bool:
    """True for a zip archive with a ``*/data.pkl`` member (the ``torch.save`` format)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/data.pkl") or n == "data.pkl" for n in z.namelist())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, RuntimeError):
        return False


def read_checkpoint_summary(path: str | os.PathLike) -> dict:
    """The payload of a ``torch.save`` file, with tensors and arrays as inert placeholders.

    Parameters
    ----------
    path : str or os.PathLike
        A ``torch.save`` zip archive.

    Returns
    -------
    dict
        The pickled dict; tensors and NumPy arrays are described by :func:`array_info`.

    Raises
    ------
    FileFormatError
        Not a ``torch.save`` archive, or an unreadable pickle.

    Examples
    --------
    >>> read_checkpoint_summary("run.ckpt")["format"]  # doctest: +SKIP
    'phasekit-checkpoint'
    """
    p = Path(os.fspath(path))
    try:
        with zipfile.ZipFile(p) as z:
            names = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                raise FileFormatError(f"{p}: a zip archive without data.pkl, not a torch.save "
                                      "file")
            info = z.getinfo(names[0])
            if info.file_size > _MAX_PICKLE:
                raise FileFormatError(f"{p}: {names[0]} is {info.file_size} bytes; too large")
            raw = z.read(names[0])
        obj = _InertUnpickler(io.BytesIO(raw)).load()
    except FileFormatError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, OSError, EOFError, ValueError,
            TypeError, AttributeError, LookupError, RuntimeError, MemoryError,
            RecursionError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        raise FileFormatError(f"{p}: unreadable torch.save file ({msg})") from exc
    return obj


def array_info(obj: Any) -> str | None:
    """``"shape (64, 64) float32"`` for a placeholder tensor or NumPy array, else ``None``."""
    if not isinstance(obj, _Placeholder):
        return None
    try:
        if obj.qualname.startswith("torch._utils._rebuild_tensor"):
            storage, size = obj.args[0], tuple(obj.args[2])
            kind = getattr(storage.args[1], "qualname", "?").rsplit(".", 1)[-1] \
                if isinstance(storage, _Placeholder) and len(storage.args) > 1 else "?"
            return f"tensor {size} {kind.replace('Storage', '').lower() or '?'}"
        if obj.qualname.endswith("multiarray._reconstruct") and isinstance(obj.state, tuple):
            shape, dtype = tuple(obj.state[1]), obj.state[2]
            dt = dtype.args[0] if isinstance(dtype, _Placeholder) and dtype.args else "?"
            try:
                dt = np.dtype(str(dt)).name  # parses a type code such as "c8"; runs nothing
            except TypeError:
                pass
            return f"array {shape} {dt}"
    except (IndexError, TypeError, AttributeError):
        return None
    return None


def _stages(signature: dict) -> str:
    parts = []
    for s in signature.get("stages") or []:
        if isinstance(s, (list, tuple)) and len(s) >= 2:
            parts.append(f"{str(s[0]).upper()}:{s[1]}")
    return ",".join(parts) or "?"


def describe_checkpoint(payload: dict) -> list[str]:
    """Summary lines of a checkpoint payload (from :func:`read_checkpoint_summary`).

    Raises
    ------
    FileFormatError
        ``format`` is not ``"phasekit-checkpoint"`` (the caller adds the file name).
    """
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise FileFormatError(f"a torch.save file, not a phasekit checkpoint (expected format "
                              f"{CHECKPOINT_FORMAT!r})")
    sig = payload.get("signature") if isinstance(payload.get("signature"), dict) else {}
    lines = [f"phasekit checkpoint (format version {payload.get('version')}): "
             f"{sig.get('modality', '?')}, schedule {_stages(sig)}, {sig.get('starts', '?')} "
             f"start(s), shape {sig.get('shape', '?')}, seed {sig.get('seed')}"]
    finished = payload.get("finished") if isinstance(payload.get("finished"), list) else []
    lines.append(f"  finished starts: {len(finished)}")
    for k, fin in enumerate(finished, 1):
        if not isinstance(fin, dict):
            continue
        rf = fin.get("rfactor")
        rf_s = f"R-factor {rf:.4g}" if isinstance(rf, float) else "R-factor ?"
        img = array_info(fin.get("image")) or "image ?"
        lines.append(f"    start {k}: {rf_s} after {fin.get('n_iter', '?')} iterations, {img}")
    cur = payload.get("current")
    if isinstance(cur, dict):
        hist = cur.get("history") if isinstance(cur.get("history"), dict) else {}
        its = hist.get("iteration")
        n_points = len(its) if isinstance(its, list) else 0
        start = cur.get("start")
        start_s = str(start + 1) if isinstance(start, int) else "?"
        lines.append(f"  in progress: start {start_s}, stage {cur.get('stage', '?')}, next "
                     f"step {cur.get('k', '?')} ({n_points} history points)")
    else:
        lines.append("  in progress: none (every start finished)")
    return lines
