"""Atomic file writes.

Every file phasekit writes goes first to a temporary file in the destination folder and is then
renamed onto the destination with :func:`os.replace`, which is atomic on POSIX and Windows when
both names are on the same file system.  A reader therefore sees either the old file or the
complete new one, never a half-written file, and a writer that fails (exception, Ctrl-C) leaves
the old file untouched.

Temporary files are named ``.<name>.phasekit-tmp-<pid>-<host>-<random><suffix>`` (``<host>`` is
a short hash of the host name).  A writer killed outright (SIGKILL, power loss) cannot remove its
temporary file; the next :func:`atomic_write` to the same destination removes such leftovers
when the process that made them (same host, recorded pid) is no longer running.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import socket
import zlib
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "atomic_save_bytes",
    "atomic_save_text",
    "atomic_write",
    "host_tag",
    "pid_alive",
    "remove_stale_temporaries",
    "temp_name",
]

log = logging.getLogger("phasekit")

#: marker in the names of phasekit's temporary files
TMP_MARK = "phasekit-tmp"


def host_tag() -> str:
    """Eight hex digits identifying this host (a hash of its name) in temporary file names."""
    return format(zlib.crc32(socket.gethostname().encode("utf-8", "replace")), "08x")


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` runs on this host (or may: permission denied counts as alive).

    Examples
    --------
    >>> pid_alive(os.getpid())
    True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:  # pragma: no cover - platforms without signal 0: assume alive
        return True
    return True


def temp_name(final: Path, suffix: str = "") -> str:
    """A fresh temporary file name for ``final``: ``.<name>.phasekit-tmp-<pid>-<host>-<random>``.

    Examples
    --------
    >>> temp_name(Path("out/r.cxi"), ".cxi").startswith(".r.cxi.phasekit-tmp-")
    True
    """
    return (f".{final.name}.{TMP_MARK}-{os.getpid()}-{host_tag()}-{secrets.token_hex(4)}"
            f"{suffix}")


def _stale_pattern(final: Path) -> re.Pattern:
    return re.compile(r"^\." + re.escape(final.name) + r"\." + TMP_MARK
                      + r"-(?P<pid>\d+)-(?P<host>[0-9a-f]{8})-[0-9a-f]+.*$")


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` left by dead writers on this host.

    A file ``.<name>.phasekit-tmp-<pid>-<host>-...`` next to ``path`` is removed when ``<host>``
    is this host and no process ``<pid>`` runs.  Files of live processes and of other hosts
    (a shared file system) are left alone.

    Parameters
    ----------
    path : str or os.PathLike
        The destination whose leftovers to remove.

    Returns
    -------
    list of pathlib.Path
        The files removed.

    Examples
    --------
    >>> remove_stale_temporaries("out/result.cxi")      # doctest: +SKIP
    []
    """
    final = Path(os.fspath(path))
    parent = final.parent if str(final.parent) else Path(".")
    pat = _stale_pattern(final)
    me = host_tag()
    removed = []
    try:
        names = os.listdir(parent)
    except OSError:
        return removed
    for name in names:
        m = pat.match(name)
        if not m or m["host"] != me or pid_alive(int(m["pid"])):
            continue
        with contextlib.suppress(OSError):
            (parent / name).unlink()
            removed.append(parent / name)
            log.warning("removed %s, a temporary file left by an interrupted phasekit run "
                        "(pid %s)", parent / name, m["pid"])
    return removed


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
        The temporary path, a hidden file ``.<name>.phasekit-tmp-<pid>-<host>-<random><suffix>``
        next to ``path``.  Leftovers of the same destination from writers that were killed
        (see :func:`remove_stale_temporaries`) are removed first.

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
    remove_stale_temporaries(final)
    while True:
        tmp = parent / temp_name(final, suffix)
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
        os.close(fd)
        break
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
    with atomic_write(path) as tmp, open(tmp, "wb") as fh:
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
