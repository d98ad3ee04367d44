"""Atomic file writes.

Every file phasekit writes goes first to a temporary file in the destination folder and is then
renamed onto the destination with :func:`os.replace`, which is atomic on POSIX and Windows when
both names are on the same file system.  A reader therefore sees either the old file or the
complete new one, never a half-written file, and a writer that fails (exception, Ctrl-C) leaves
the old file untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "atomic_save_bytes", "atomic_save_text"]


def _umask() -> int:
    """Return the process umask without changing it (where the platform allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # fallback: briefly set and restore
    os.umask(old)
    return old


def _final_mode(path: Path) -> int:
    """Permissions for the new file: those of the file it replaces, else ``0o666 & ~umask``."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Context manager yielding a temporary path to write instead of ``path``.

    The temporary file is created (empty) in the same folder as ``path``; the caller writes it
    (with any library: ``open``, ``h5py.File(tmp, "w")``, ``np.save``...).  When the ``with``
    block ends normally the file is flushed to disk and renamed onto ``path`` with
    :func:`os.replace`.  When the block raises (any exception, including ``KeyboardInterrupt``)
    the temporary file is removed, ``path`` is left untouched and the exception propagates.

    Parameters
    ----------
    path : str or os.PathLike
        Final destination.  Missing parent folders are created.
    suffix : str, optional
        Suffix of the temporary file name.  Defaults to the suffix of ``path`` so that libraries
        which append an extension when it is missing (``np.save`` adds ``.npy``, ``np.savez``
        adds ``.npz``) write to the yielded name itself.

    Yields
    ------
    pathlib.Path
        The temporary path (a hidden file ``.<name>.<random><suffix>`` next to ``path``).

    Examples
    --------
    >>> with atomic_write("out/result.txt") as tmp:      # doctest: +SKIP
    ...     tmp.write_text("done")
    """
    final = Path(os.fspath(path))
    parent = final.parent if str(final.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = final.suffix
    fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{final.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{final}: the temporary file {tmp} vanished before the rename")
        os.chmod(tmp, _final_mode(final))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_save_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; parent folders are created.
    data : bytes
        The complete new content.
    """
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(bytes(data))


def atomic_save_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; parent folders are created.
    text : str
        The complete new content.
    encoding : str, optional
        Text encoding, UTF-8 by default.
    """
    atomic_save_bytes(path, text.encode(encoding))
