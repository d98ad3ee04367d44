"""Output safety of the commands (phasekit.cli.outputs, phasekit.io.atomic): result, figure and
checkpoint names that cannot collide, checks before any computing, lock files, stale temporary
files, and figure failures that keep the result."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli

QUICK = ["-a", "er", "-n", "3", "-q"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, *contains, code=2):
    assert res.exit_code == code, (res.exit_code, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    for c in contains:
        assert c in err, (c, err)
    return err


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("outputs") / "d.cxi"
    res = invoke("simulate", "cdi", "--size", 32, "--oversampling", 3, "--seed", 0, "-o", path)
    assert res.exit_code == 0, res.stderr
    return path


@pytest.fixture
def no_read(monkeypatch):
    """Make reading the input fail loudly: a refused command must not get that far."""
    import phasekit.io

    def boom(*a, **k):
        raise AssertionError("the input was read before the outputs were checked")

    monkeypatch.setattr(phasekit.io, "read_diffraction", boom)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def write_lock(path, pid, host=None, start=None):
    lock = path.with_name(path.name + ".lock")
    lock.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                "start": time.time() if start is None else start, "file": str(path)}))
    return lock


# --------------------------------------------------------------------------- names
def test_figure_name_as_result_is_refused_before_reading(data_file, tmp_path, no_read):
    err = one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", tmp_path / "weird.png"),
                         "weird.png", "figure", "weird.cxi")
    assert "Traceback" not in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args,contains", [
    (["simulate", "cdi", "--size", 32, "-o", "{tmp}/x.txt"], (".txt", ".cxi", ".h5", ".npz")),
    (["simulate", "ptycho", "--frame", 16, "--points", 2, "-o", "{tmp}/x.npz"], (".npz", ".cxi")),
    (["simulate", "tomo", "--size", 8, "-o", "{tmp}/x.txt"], (".txt", ".h5")),
    (["reconstruct", "{data}", "-o", "{tmp}/x.txt"], (".txt", ".cxi")),
    (["kmeans", "{tmp}/pts.npy", "-k", 2, "--labels", "{tmp}/l.png"], ("--labels", ".npy")),
])
def test_bad_suffix_is_one_line_error(args, contains, data_file, tmp_path):
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(20, 2)))
    before = sorted(os.listdir(tmp_path))
    args = [str(a).format(tmp=tmp_path, data=data_file) for a in args]
    one_line_error(invoke(*args), *contains)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written, no lock left


def test_output_equal_to_input_or_checkpoint_is_refused(data_file, tmp_path, no_read):
    one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", data_file), "input file")
    out = tmp_path / "r.cxi"
    one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", out, "--checkpoint", out),
                   "same file")
    one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", out, "--checkpoint",
                          tmp_path / "r.png"), "figure", "same file")
    assert os.listdir(tmp_path) == []


def test_kmeans_outputs_must_differ(tmp_path):
    np.save(tmp_path / "pts.npy", np.zeros((10, 2)))
    one_line_error(invoke("kmeans", tmp_path / "pts.npy", "-k", 2, "--labels", tmp_path / "a.npy",
                          "--centers", tmp_path / "a.npy"), "same file")


# --------------------------------------------------------------------------- folders
def test_missing_or_unusable_folder_is_refused_before_reading(data_file, tmp_path, no_read):
    afile = tmp_path / "afile"
    afile.write_text("x")
    t0 = time.perf_counter()
    one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", afile / "out.cxi"),
                   "afile", "not a folder")
    one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", tmp_path / "no" / "out.cxi"),
                   "does not exist")
    one_line_error(invoke("simulate", "cdi", "--size", 32, "-o", tmp_path / "no" / "s.cxi"),
                   "does not exist")
    one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", tmp_path), "directory")
    assert time.perf_counter() - t0 < 5
    assert sorted(os.listdir(tmp_path)) == ["afile"]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_read_only_folder_is_refused(data_file, tmp_path, no_read):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", ro / "out.cxi"),
                       "cannot write")
    finally:
        ro.chmod(0o755)


# --------------------------------------------------------------------------- locks
def test_held_lock_refuses_a_second_run(data_file, tmp_path, no_read):
    out = tmp_path / "r.cxi"
    lock = write_lock(out, os.getppid(), start=1e9)  # 2001-09-09  # a live process on this host
    err = one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", out),
                         "r.cxi is being written by another phasekit run",
                         f"pid {os.getppid()}", "wait or choose another --out")
    assert "started 2001-09-0" in err
    assert lock.exists() and not out.exists()  # the other run's lock is left alone
    # a lock from another host cannot be checked: refused too
    write_lock(out, dead_pid(), host="elsewhere.example")
    one_line_error(invoke("simulate", "cdi", "--size", 32, "-o", out), "on elsewhere.example")


def test_held_checkpoint_lock_refuses(data_file, tmp_path, no_read):
    ck = tmp_path / "run.ckpt"
    write_lock(ck, os.getppid())
    one_line_error(invoke("reconstruct", data_file, *QUICK, "-o", tmp_path / "r.cxi",
                          "--checkpoint", ck), "run.ckpt is being written", "--checkpoint")
    assert not (tmp_path / "r.cxi.lock").exists()  # the lock already taken was given back


def test_stale_lock_is_taken_over_and_locks_are_released(data_file, tmp_path):
    out = tmp_path / "r.cxi"
    write_lock(out, dead_pid())
    res = invoke("reconstruct", data_file, *QUICK, "--no-figure", "-o", out,
                 "--checkpoint", tmp_path / "r.ckpt")
    assert res.exit_code == 0, res.stderr
    assert "stale lock" in res.stderr
    assert sorted(os.listdir(tmp_path)) == ["r.ckpt", "r.cxi"]  # both locks removed


def test_lock_is_released_after_an_error(tmp_path):
    out = tmp_path / "s.cxi"
    one_line_error(invoke("simulate", "cdi", "--object", "unicorn", "--size", 32, "-o", out),
                   "unicorn")
    assert os.listdir(tmp_path) == []


def test_lock_unit(tmp_path):
    from phasekit.cli.outputs import acquire_lock, release_lock
    from phasekit.core.errors import InputError

    target = tmp_path / "x.h5"
    lock = acquire_lock(target)
    info = json.loads(lock.read_text())
    assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
    with pytest.raises(InputError, match="being written"):
        acquire_lock(target)
    release_lock(lock)
    assert not lock.exists()
    # an unreadable (e.g. half-written) lock: held while young, taken over when old
    lock.write_text("")
    with pytest.raises(InputError, match="being written"):
        acquire_lock(target)
    old = time.time() - 3600
    os.utime(lock, (old, old))
    release_lock(acquire_lock(target))
    assert not lock.exists()


# --------------------------------------------------------------------------- temporary files
def test_temporary_file_names_and_stale_removal(tmp_path):
    from phasekit.io.atomic import atomic_save_bytes, atomic_write, host_tag

    target = tmp_path / "out.cxi"
    with atomic_write(target) as tmp:
        assert tmp.name.startswith(f".out.cxi.phasekit-tmp-{os.getpid()}-{host_tag()}-")
        assert tmp.suffix == ".cxi"
        tmp.write_bytes(b"new")
    stale = tmp_path / f".out.cxi.phasekit-tmp-{dead_pid()}-{host_tag()}-0123abcd.cxi"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".out.cxi.phasekit-tmp-{os.getppid()}-{host_tag()}-0123abcd.cxi"
    live.write_bytes(b"y")
    other_host = tmp_path / f".out.cxi.phasekit-tmp-{dead_pid()}-ffffffff-0123abcd.cxi"
    if host_tag() == "ffffffff":  # pragma: no cover
        other_host = tmp_path / f".out.cxi.phasekit-tmp-{dead_pid()}-00000000-0123abcd.cxi"
    other_host.write_bytes(b"z")
    other_target = tmp_path / f".other.cxi.phasekit-tmp-{dead_pid()}-{host_tag()}-0123abcd.cxi"
    other_target.write_bytes(b"w")
    atomic_save_bytes(target, b"newer")
    assert target.read_bytes() == b"newer"
    assert not stale.exists()
    assert live.exists() and other_host.exists() and other_target.exists()
    # a failing write removes its own temporary file
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["out.cxi", live.name, other_host.name, other_target.name])


def test_stale_temporary_removed_by_next_cli_write(data_file, tmp_path):
    from phasekit.io.atomic import host_tag

    stale = tmp_path / f".r.cxi.phasekit-tmp-{dead_pid()}-{host_tag()}-deadbeef.cxi"
    stale.write_bytes(b"\0" * 4096)
    res = invoke("reconstruct", data_file, *QUICK, "--no-figure", "-o", tmp_path / "r.cxi")
    assert res.exit_code == 0, res.stderr
    assert os.listdir(tmp_path) == ["r.cxi"]


# --------------------------------------------------------------------------- figures
def test_figure_is_beside_the_result(data_file, tmp_path):
    res = invoke("reconstruct", data_file, *QUICK, "-o", tmp_path / "run.h5")
    assert res.exit_code == 0, res.stderr
    assert sorted(os.listdir(tmp_path)) == ["run.h5", "run.png"]
    assert f"wrote:   {tmp_path / 'run.h5'}, {tmp_path / 'run.png'}" in res.stdout


def test_figure_failure_keeps_the_result(data_file, tmp_path, monkeypatch):
    import phasekit.plot
    from phasekit.io import read_result

    def broken(*a, **k):
        raise RuntimeError("no backend")

    monkeypatch.setattr(phasekit.plot, "plot_cdi_result", broken)
    out = tmp_path / "r.cxi"
    res = invoke("reconstruct", data_file, *QUICK, "-o", out)
    assert res.exit_code == 0, res.stderr
    assert "could not write the figure" in res.stderr and "no backend" in res.stderr
    assert "r.png" not in res.stdout
    r = read_result(out)
    assert r["images"][0].shape == (32, 32) and np.isfinite(r["rfactors"][0])
    assert sorted(os.listdir(tmp_path)) == ["r.cxi"]


def test_write_figure_unit(tmp_path, caplog):
    from phasekit.cli.outputs import write_figure

    assert write_figure(tmp_path / "a.png", lambda p: p.write_bytes(b"png"), tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes() == b"png"
    assert not write_figure(tmp_path / "b.png", lambda: 1 / 0)
    assert "could not write the figure" in caplog.text and "division by zero" in caplog.text


def test_demo_plans_its_outputs(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    write_lock(out / "demo.cxi", os.getppid())
    one_line_error(invoke("demo", "--out", out, "--size", 32, "-q"), "demo.cxi",
                   "being written")
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(invoke("demo", "--out", afile / "sub", "--size", 32, "-q"), "cannot create")
