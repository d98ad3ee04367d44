"""Batch phasing on a loopback Dask cluster (phasekit.spi.distributed).

One LocalCluster (2 single-threaded worker processes on 127.0.0.1) serves the whole module:
starting workers that import torch costs several seconds on this machine.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("distributed")

from test_spi_batch import OPTS, _mask, _objects, _patterns, write_stack

from phasekit.core.errors import ConfigError
from phasekit.spi import distributed as spid
from phasekit.spi.results import read_journal, read_result

pytestmark = pytest.mark.dask


def _killing_task(path, start, stop, config, seed, outdir, chunk_id):
    """Kills its own worker process the first time it runs chunk 1 (marker file)."""
    import os as _os
    from pathlib import Path as _Path

    from phasekit.spi.distributed import phase_chunk as _phase_chunk

    marker = _Path(outdir) / "killed-once"
    if chunk_id == 1 and not marker.exists():
        marker.write_text(str(_os.getpid()))
        _os._exit(1)  # the worker dies mid-task, no exception to catch
    return _phase_chunk(path, start, stop, config, seed, outdir, chunk_id)


@pytest.fixture(scope="module")
def cluster():
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import tests/
    with spid.local_cluster(2) as cl, Client(cl) as client:
        client.run(__import__, "phasekit.spi.distributed")  # workers import torch once, here
        yield cl, client


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    I = _patterns(_objects(6))
    I[3, 2, 2] = np.nan
    return write_stack(tmp_path_factory.mktemp("dask") / "s.cxi", I, mask=_mask())


@pytest.fixture(scope="module")
def serial(stack, tmp_path_factory):
    s = spid.run_batch(stack, tmp_path_factory.mktemp("serial") / "run", workers=0, chunk=3,
                       progress=False, **OPTS)
    return read_result(s.result)


def test_cluster_binds_to_loopback(cluster):
    cl, client = cluster
    assert cl.scheduler_address.startswith("tcp://127.0.0.1:")
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in workers)
    assert all(w["nthreads"] == 1 for w in workers.values())


def test_local_cluster_equals_serial_and_nan_pattern_has_status(cluster, stack, serial, tmp_path):
    _, client = cluster
    s = spid.run_batch(stack, tmp_path / "run", client=client, chunk=2, progress=False, **OPTS)
    assert s.workers == 2 and len(s.done) == 3
    r = read_result(s.result)
    np.testing.assert_array_equal(r.index, np.arange(6))
    np.testing.assert_array_equal(r.status, serial.status)
    assert list(r.status) == [0, 0, 0, 1, 0, 0] and "NaN" in r.message[3]
    np.testing.assert_allclose(r.image, serial.image, atol=1e-5)
    np.testing.assert_allclose(r.rfactor, serial.rfactor, rtol=1e-4, atol=1e-7)
    pids = {e["pid"] for e in read_journal(tmp_path / "run")}
    assert os.getpid() not in pids  # phased on the workers


def test_killed_worker_is_retried(cluster, stack, serial, tmp_path):
    _, client = cluster
    out = tmp_path / "kill"
    s = spid.run_batch(stack, out, client=client, chunk=2, progress=False, task=_killing_task, **OPTS)
    assert (out / "killed-once").exists()  # the first attempt did die
    assert not s.failed and sorted(s.done) == [0, 1, 2]
    j = read_journal(out)
    assert sorted(e["chunk"] for e in j) == [0, 1, 2]  # one ok line per chunk, no duplicate
    killed_pid = int((out / "killed-once").read_text())
    assert next(e for e in j if e["chunk"] == 1)["pid"] != killed_pid
    np.testing.assert_allclose(read_result(s.result).image, serial.image, atol=1e-5)
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_missing_dask_gives_install_hint(monkeypatch, stack, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigError, match=r"pip install 'phasekit\[dask\]'"):
        spid.run_batch(stack, tmp_path / "x", workers=2, progress=False, **OPTS)


def test_import_phasekit_does_not_import_dask():
    import subprocess

    code = ("import sys, phasekit, phasekit.spi, phasekit.cli.main; "
            "print(any(m.split('.')[0] in ('dask', 'distributed', 'sklearn') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.stdout.strip() == "False", out.stderr


def test_existing_cluster_by_address_and_scheduler_file(cluster, stack, serial, tmp_path):
    cl, client = cluster
    s = spid.run_batch(stack, tmp_path / "addr", scheduler=cl.scheduler_address, chunk=3,
                       progress=False, **OPTS)
    assert s.where.startswith("the cluster at tcp://127.0.0.1:") and s.workers == 2
    np.testing.assert_allclose(read_result(s.result).image, serial.image, atol=1e-5)
    sf = tmp_path / "scheduler.json"
    sf.write_text(json.dumps({"type": "Scheduler", "address": cl.scheduler_address}))  # as dask writes it
    s = spid.run_batch(stack, tmp_path / "file", scheduler_file=sf, chunk=6, progress=False, **OPTS)
    assert len(s.done) == 1 and not s.failed
