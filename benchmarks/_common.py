"""Shared helpers of the benchmark scripts: thread set-up, machine / version metadata, claims,
markdown tables and atomic writing of the results into ``benchmarks/results/``.

Import this module **first** in a benchmark script: it pins OpenBLAS to one thread before NumPy
is imported (see ``README.md``, "Machine notes": OpenBLAS worker threads that spin after a
matrix product starve torch's OpenMP threads on a 2-core machine and slow every FFT ~100x).
"""
from __future__ import annotations

import os

# Must happen before numpy / scipy / torch are imported anywhere in the process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import datetime  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- threads
def set_threads(n: int) -> dict:
    """Use ``n`` threads in torch (intra-op) and in numba's parallel kernels; return what is set.

    numba first: launching numba's OpenMP thread pool calls ``omp_set_num_threads`` with numba's
    own count, which silently resets an earlier ``torch.set_num_threads`` (both share libgomp).
    """
    from phasekit.core.threads import set_cpu_threads

    torch_n, numba_n = set_cpu_threads(int(n))
    info = {"numba_threads": numba_n}
    if numba_n is not None:
        import numba

        info["numba_threading_layer"] = numba.threading_layer()
    info["torch_threads"] = torch_n
    return info


# --------------------------------------------------------------------------- metadata
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git() -> dict:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    head = run("rev-parse", "HEAD")
    dirty = run("status", "--porcelain", "--untracked-files=no", "--", "src")
    untracked = run("status", "--porcelain", "--untracked-files=normal", "--", "src")
    untracked = [l[3:] for l in untracked.splitlines() if l.startswith("??")]
    return {"commit": head or None, "src_modified": bool(dirty), "src_untracked": untracked}


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def machine_meta(extra: dict | None = None) -> dict:
    """Versions of phasekit / torch / numpy / scipy / numba / python, the machine and the date."""
    import scipy
    import torch

    import phasekit

    try:
        import numba

        nb = {"numba": numba.__version__, "numba_threads": numba.get_num_threads(),
              "numba_threading_layer": numba.config.THREADING_LAYER}
    except ImportError:  # pragma: no cover
        nb = {"numba": None}
    from phasekit.cdi import kernels

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"phasekit": phasekit.__version__, "torch": torch.__version__,
                     "numpy": np.__version__, "scipy": scipy.__version__,
                     "python": platform.python_version(), **{k: v for k, v in nb.items()
                                                             if k == "numba"}},
        "machine": {
            "platform": platform.platform(), "machine": platform.machine(), "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch_mkl": bool(torch.backends.mkl.is_available()),
            **{k: v for k, v in nb.items() if k != "numba"},
            "phasekit_fused_numba_kernels": bool(kernels.HAVE_NUMBA),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY"),
            "GOMP_SPINCOUNT": os.environ.get("GOMP_SPINCOUNT"),
            "loadavg_at_start": loadavg(),
            "nice": os.nice(0) if hasattr(os, "nice") else None,
        },
        "git": _git(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
    if extra:
        meta.update(extra)
    return meta


# --------------------------------------------------------------------------- claims
def claim(text: str, holds, evidence: str, **data) -> dict:
    """One checked claim. ``holds`` is True / False, or None when it could not be checked."""
    out = {"claim": text, "holds": None if holds is None else bool(holds), "evidence": evidence}
    out.update(data)
    return out


def claims_markdown(claims: list[dict]) -> str:
    rows = []
    for c in claims:
        mark = {True: "**holds**", False: "**does not hold**", None: "not checked"}[c["holds"]]
        rows.append([c["claim"], mark, c["evidence"]])
    return md_table(["claim", "result", "evidence"], rows)


# --------------------------------------------------------------------------- formatting
def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) < 10 ** -(digits - 1) or abs(v) >= 10 ** (digits + 2)):
        return f"{v:.{digits}g}"
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") if "." in f"{v:.{digits}f}" else f"{v}"


def md_table(headers: list[str], rows: list[list]) -> str:
    def cell(x):
        s = x if isinstance(x, str) else fmt(x)
        return s.replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """Replace non-finite floats by None (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, np.generic):
        return o.item()
    return o


# --------------------------------------------------------------------------- writing
def write_results(name: str, data: dict, markdown: str, results_dir: Path | None = None) -> Path:
    """Write ``<name>.json`` and ``<name>.md`` atomically into the results folder."""
    from phasekit.io.atomic import atomic_save_text

    d = Path(results_dir or RESULTS)
    d.mkdir(parents=True, exist_ok=True)
    data = dict(data)
    data.setdefault("meta", {})["loadavg_at_end"] = loadavg()
    text = json.dumps(_clean(data), indent=1, default=_json_default, allow_nan=False)
    atomic_save_text(d / f"{name}.json", text + "\n")
    atomic_save_text(d / f"{name}.md", markdown.rstrip() + "\n")
    return d / f"{name}.json"


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from phasekit.io.atomic import atomic_save_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    path = Path(path)
    atomic_save_bytes(path, buf.getvalue())
    return path


def meta_markdown(meta: dict) -> str:
    v, m = meta["versions"], meta["machine"]
    return (f"Run {meta['date']} on `{m['cpu']}` ({m['cpu_count']} CPUs, {m['platform']}); torch "
            f"threads {m['torch_threads']}, numba threads {m.get('numba_threads')}; phasekit "
            f"{v['phasekit']}, torch {v['torch']}, numpy {v['numpy']}, scipy {v['scipy']}, numba "
            f"{v.get('numba')}, Python {v['python']}; git {str(meta['git'].get('commit'))[:10]}"
            f"{' (src modified)' if meta['git'].get('src_modified') else ''}. Command: "
            f"`{meta['command']}`.")
