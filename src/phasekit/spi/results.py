"""Files of a batch-phasing run: chunk files, the journal, the merged result.

Layout of an output directory (``phasekit batch STACK -o OUT``)::

    OUT/run.json            the run's parameters (stack, pattern count, chunk size, seed, phasing
                            config); a resumed run must match them
    OUT/journal.jsonl       one JSON line per finished (or failed) chunk, appended by the client
    OUT/chunks/c000012.h5   one file per chunk, written atomically (temporary name + rename) by
                            the process that phased it
    OUT/phased.h5           the merge of all chunk files, in pattern order (written atomically)

Result layout (chunk and merged files alike, CXI-flavoured HDF5)::

    /entry_1/image_1/data        (n, c, c) complex64 averaged reconstructions, centred crops
    /entry_1/image_1/support     (n, c, c) bool
    /entry_1/phasekit_batch/     index (n,) int64, status (n,) int8, message (n,) str, rfactor,
                                 rfactor_starts (n, starts), prtf (n, rings), resolution (cycles
                                 per pixel), support_area; attributes ``config`` (JSON),
                                 ``status_names`` (JSON), ``start``/``stop`` (chunk files)

A crash loses at most the chunks in flight; several writers never append to one HDF5 file.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..core.errors import FileFormatError, InputError
from ..io.atomic import atomic_write
from .phasing import STATUS, BatchResult

__all__ = [
    "RESULT_NAME",
    "append_journal",
    "chunk_complete",
    "chunk_path",
    "describe_run",
    "is_batch_result",
    "is_batch_run",
    "merge_chunks",
    "read_journal",
    "read_result",
    "read_run_record",
    "write_result",
]

RESULT_NAME = "phased.h5"
GROUP = "entry_1/phasekit_batch"


def chunk_path(outdir, chunk_id: int) -> Path:
    """``OUT/chunks/c<id>.h5``."""
    return Path(outdir) / "chunks" / f"c{int(chunk_id):06d}.h5"


def write_result(path, res: BatchResult, **attrs) -> Path:
    """Write a :class:`BatchResult` atomically (layout in the module notes).

    Examples
    --------
    >>> write_result("out/chunks/c000000.h5", res, start=0, stop=16)  # doctest: +SKIP
    """
    import h5py

    path = Path(path)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["phasekit_kind"] = "spi_batch"
        img = f.create_group("entry_1/image_1")
        img.create_dataset("data", data=res.image, compression="gzip", compression_opts=1)
        img.create_dataset("support", data=res.support.astype(np.uint8), compression="gzip",
                           compression_opts=1)
        g = f.create_group(GROUP)
        for k in ("index", "status", "rfactor", "rfactor_starts", "prtf", "resolution", "support_area"):
            g.create_dataset(k, data=getattr(res, k))
        g.create_dataset("message", data=np.array([m.encode("utf-8") for m in res.message], dtype=object),
                         dtype=h5py.string_dtype())
        g.attrs["config"] = json.dumps(res.config)
        g.attrs["status_names"] = json.dumps({str(k): v for k, v in STATUS.items()})
        g.attrs["wall_s"] = float(res.wall_s)
        for k, v in attrs.items():
            g.attrs[k] = json.dumps(v) if isinstance(v, (dict, list)) else v
    return path


def is_batch_result(path) -> bool:
    """True for a file written by :func:`write_result`."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return f.attrs.get("phasekit_kind") in ("spi_batch", b"spi_batch")
    except (OSError, ValueError):
        return False


def is_batch_run(path) -> bool:
    """True for a batch output directory (``run.json``) or a batch result file."""
    p = Path(path)
    if p.is_dir():
        return (p / "run.json").is_file()
    return p.is_file() and p.suffix.lower() in (".h5", ".hdf5", ".cxi") and is_batch_result(p)


def read_result(path) -> BatchResult:
    """Read a chunk or merged result file back into a :class:`BatchResult`.

    Raises
    ------
    FileFormatError
        Not a batch result (one line).
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise FileFormatError(f"{p}: no such batch result file")
    try:
        with h5py.File(p, "r") as f:
            if GROUP not in f or "entry_1/image_1/data" not in f:
                raise FileFormatError(f"{p}: not a phasekit batch result (no /{GROUP})")
            g = f[GROUP]
            kw = {k: np.asarray(g[k]) for k in ("index", "status", "rfactor", "rfactor_starts",
                                                "prtf", "resolution", "support_area")}
            msgs = [m.decode("utf-8") if isinstance(m, bytes) else str(m) for m in g["message"][()]]
            cfg = json.loads(g.attrs.get("config", "{}"))
            return BatchResult(image=np.asarray(f["entry_1/image_1/data"]),
                               support=np.asarray(f["entry_1/image_1/support"]).astype(bool),
                               message=msgs, wall_s=float(g.attrs.get("wall_s", 0.0)), config=cfg, **kw)
    except OSError as exc:
        raise FileFormatError(f"{p}: cannot read the batch result ({exc})") from None


def append_journal(outdir, entry: dict) -> None:
    """Append one JSON line to ``OUT/journal.jsonl`` (flushed and fsynced)."""
    p = Path(outdir) / "journal.jsonl"
    line = json.dumps({**entry, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n"
    with open(p, "a+b") as fh:
        # a crash mid-write leaves a torn last line without its newline: start on a fresh line,
        # or this entry would be glued to the torn one and lost with it
        if fh.seek(0, os.SEEK_END) > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                line = "\n" + line
        fh.write(line.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def read_journal(outdir) -> list[dict]:
    """The journal's entries (a torn line, from a crash mid-write, or any line that is not a
    chunk entry, is ignored: its chunk counts as not done)."""
    p = Path(outdir) / "journal.jsonl"
    if not p.exists():
        return []
    out = []
    for line in p.read_bytes().decode("utf-8", "replace").splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (isinstance(e, dict) and isinstance(e.get("chunk"), int) and not isinstance(e["chunk"], bool)
                and isinstance(e.get("status"), str)):
            out.append(e)
    return out


def read_run_record(outdir) -> dict:
    """``OUT/run.json`` as a dict; one line (:class:`InputError`) when it is missing or damaged."""
    p = Path(outdir) / "run.json"
    try:
        rec = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file (not a batch-run directory)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{p}: damaged run record ({type(exc).__name__}); the run cannot be "
                         "resumed, start it again in a new directory") from None
    if not isinstance(rec, dict):
        raise InputError(f"{p}: damaged run record (not a JSON object); the run cannot be resumed, "
                         "start it again in a new directory")
    return rec


def chunk_complete(outdir, chunk_id: int, start: int, stop: int) -> bool:
    """True when the chunk file opens and holds patterns ``start:stop`` (cheap: no image read)."""
    import h5py

    try:
        with h5py.File(chunk_path(outdir, chunk_id), "r") as f:
            if GROUP not in f or "entry_1/image_1/data" not in f:
                return False
            g = f[GROUP]
            n = stop - start
            return (np.array_equal(np.asarray(g["index"]), np.arange(start, stop))
                    and all(g[k].shape[:1] == (n,) for k in ("status", "rfactor", "message"))
                    and f["entry_1/image_1/data"].shape[:1] == (n,)
                    and f["entry_1/image_1/support"].shape[:1] == (n,))
    except (OSError, KeyError, ValueError):
        return False


def merge_chunks(outdir, n: int, chunks: list[tuple[int, int, int]], path=None) -> Path:
    """Merge chunk files into one result in pattern order, checking every pattern is there once.

    Parameters
    ----------
    outdir : path
        The run directory.
    n : int
        Patterns in the stack.
    chunks : list of (chunk_id, start, stop)
        The run's chunks.
    path : path, optional
        Destination (default ``OUT/phased.h5``).
    """
    parts = []
    for cid, start, stop in sorted(chunks, key=lambda c: c[1]):
        r = read_result(chunk_path(outdir, cid))
        if not np.array_equal(r.index, np.arange(start, stop)):
            raise FileFormatError(f"{chunk_path(outdir, cid)}: holds patterns other than "
                                  f"[{start}, {stop})")
        parts.append(r)
    res = BatchResult.concatenate(parts)
    if not np.array_equal(res.index, np.arange(n)):
        raise InputError(f"the chunks cover {len(res)} patterns, not the stack's {n} once each")
    dest = Path(path) if path is not None else Path(outdir) / RESULT_NAME
    return write_result(dest, res)


def describe_run(path) -> str:
    """Several lines about a batch output directory or result file (``phasekit info``)."""
    p = Path(path)
    lines = []
    if p.is_dir():
        run = read_run_record(p) if (p / "run.json").exists() else {}
        j = read_journal(p)
        ok = {e["chunk"] for e in j if e.get("status") == "ok"}
        failed = {e["chunk"] for e in j if e.get("status") != "ok"} - ok
        lines.append(f"{p}: SPI batch-phasing run directory")
        if run:
            cfg = run.get("config", {})
            lines.append(f"  stack: {run.get('stack')} ({run.get('n')} patterns, chunks of "
                         f"{run.get('chunk')}, {run.get('n_chunks')} chunks), seed {run.get('seed')}")
            lines.append(f"  algorithm {cfg.get('algorithm')}, {cfg.get('starts')} starts, "
                         f"{cfg.get('iterations')} iterations")
            lines.append(f"  journal: {len(ok)} of {run.get('n_chunks')} chunks done, "
                         f"{len(failed)} failed")
        res = p / RESULT_NAME
        if not res.exists():
            lines.append("  no merged result yet (run again with --resume)")
            return "\n".join(lines)
        p = res
    r = read_result(p)
    counts = ", ".join(f"{k} {v}" for k, v in r.status_counts().items())
    lines.append(f"{p}: SPI batch-phasing result, {len(r)} patterns ({counts})")
    lines.append(f"  algorithm {r.config.get('algorithm')}, {r.config.get('starts')} starts, "
                 f"images {r.image.shape[1:]} complex64")
    ok = r.ok
    if ok.any():
        res_ok = r.resolution[ok]
        fin = res_ok[np.isfinite(res_ok)]
        med_res = f"{np.median(fin):.3g} cycles/px" if fin.size else "n/a"
        lines.append(f"  R_F median {np.nanmedian(r.rfactor[ok]):.4g}, PRTF resolution median "
                     f"{med_res}, support area median {int(np.median(r.support_area[ok]))} px")
    bad = np.flatnonzero(~ok)[:3]
    for b in bad:
        lines.append(f"  pattern {int(r.index[b])}: {STATUS[int(r.status[b])]}: {r.message[b]}")
    return "\n".join(lines)
