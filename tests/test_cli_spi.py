"""``phasekit batch`` / ``phasekit classify`` / ``phasekit info`` end to end on a tiny stack laid
out by hand with h5py."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli

pytest.importorskip("sklearn")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def one_line_error(res, *contains):
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    for c in contains:
        assert c in err, (c, err)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """24 patterns 24 x 24: 12 'single' (one disc) and 12 'double' (two discs), Poisson noise,
    a beamstop; the CXI layout of a foreign writer (frames under the detector, a soft link)."""
    rng = np.random.default_rng(0)
    n, s = 24, 24
    yy, xx = np.mgrid[:s, :s] - s // 2
    frames, labels = [], []
    for k in range(n):
        single = k % 2 == 0
        o = ((yy - rng.integers(-1, 2)) ** 2 + xx ** 2 < 8).astype(float)
        if not single:
            o = o + ((yy - 1) ** 2 + (xx - 5) ** 2 < 8)
        F = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(o), norm="ortho"))
        frames.append(rng.poisson(np.abs(F) ** 2 * 30).astype(np.float32))
        labels.append(int(single))
    mask = np.zeros((s, s), np.uint32)
    mask[s // 2 - 1:s // 2 + 2, s // 2 - 1:s // 2 + 2] = 1  # CXI: nonzero = bad
    p = tmp_path_factory.mktemp("clispi") / "tiny.cxi"
    with h5py.File(p, "w") as f:
        f["entry_1/instrument_1/detector_1/data"] = np.stack(frames)
        f["entry_1/instrument_1/detector_1/mask"] = mask
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        f["entry_1/sample_1/labels"] = np.asarray(labels, np.int8)
    return p


FAST = ["-n", 40, "--starts", 2, "--crop", 16, "--workers", 0, "--chunk", 10, "-q"]


@pytest.fixture(scope="module")
def run_dir(stack):
    out = stack.parent / "run"
    res = invoke("batch", stack, "-o", out, *FAST)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    assert "24 patterns in 3 chunks (3 phased, 0 resumed, 0 failed)" in res.stdout
    assert (out / "phased.h5").is_file()
    return out


def test_batch_then_info(run_dir):
    res = invoke("info", run_dir)
    assert res.exit_code == 0, res.stderr
    assert "SPI batch-phasing run directory" in res.stdout and "3 of 3 chunks done" in res.stdout
    res = invoke("info", run_dir / "phased.h5")
    assert res.exit_code == 0 and "24 patterns (ok 24)" in res.stdout


def test_batch_refuses_existing_and_resumes(stack, run_dir):
    one_line_error(invoke("batch", stack, "-o", run_dir, *FAST), "--resume")
    res = invoke("batch", stack, "-o", run_dir, *FAST, "--resume")
    assert res.exit_code == 0 and "(0 phased, 3 resumed, 0 failed)" in res.stdout
    one_line_error(invoke("batch", stack, "-o", run_dir, *FAST[:-3], "--chunk", 7, "--resume"),
                   "cannot resume")


def test_batch_errors(stack, tmp_path):
    one_line_error(invoke("batch", tmp_path / "missing.cxi", "-o", tmp_path / "o"))
    one_line_error(invoke("batch", stack, "-o", tmp_path / "o2", "--scheduler", "tcp://127.0.0.1:1",
                          "--scheduler-file", tmp_path / "f.json"), "either")
    bad = tmp_path / "flat.h5"
    with h5py.File(bad, "w") as f:
        f["entry_1/data_1/data"] = np.zeros((4, 4))
    one_line_error(invoke("batch", bad, "-o", tmp_path / "o3", "--workers", 0))
    res = invoke("batch", stack, "-o", tmp_path / "o4", "--algorithm", "gps")
    assert res.exit_code == 2


def test_classify_prints_auc_per_feature_and_method(run_dir, tmp_path):
    js = tmp_path / "auc.json"
    res = invoke("classify", run_dir, "--methods", "logistic,isomap-knn", "--repeats", 2, "-q",
                 "--json", js)
    assert res.exit_code == 0, (res.stdout, res.stderr)
    out = res.stdout
    assert "24 patterns (12 single hits, 12 not)" in out
    rows = [r for r in (ln.split() for ln in out.splitlines()) if len(r) == 5 and r[3] == "+-"]
    assert {(r[0], r[1]) for r in rows} >= {("reconstruction", "logistic"), ("physics", "isomap-knn"),
                                          ("autocorrelation", "logistic"), ("raw", "logistic")}
    best = max(float(r[2]) for r in rows)
    assert best > 0.9  # one disc vs two discs is easy for some feature set
    assert "corrected resampled t-test" in out and js.is_file()


def test_classify_with_labels_file_and_stack_source(stack, tmp_path):
    lab = tmp_path / "labels.csv"
    lab.write_text("\n".join(str(k % 2 == 1 and 1 or 0) for k in range(24)))  # flipped labels
    res = invoke("classify", stack, "--labels", lab, "--features", "physics", "--methods", "logistic",
                 "--repeats", 1, "-q")
    assert res.exit_code == 0, res.stderr
    assert "reconstruction" not in res.stdout and "physics" in res.stdout
    short = tmp_path / "short.npy"
    np.save(short, np.ones(5))
    one_line_error(invoke("classify", stack, "--labels", short), "5 labels for 24 patterns")
    one_line_error(invoke("classify", stack, "--methods", "umap"), "unknown method")


def test_help():
    for cmd in ("batch", "classify"):
        res = invoke(cmd, "--help")
        assert res.exit_code == 0 and "Examples" in res.stdout


def test_classify_refuses_unfinished_empty_foreign_and_damaged_runs(run_dir, tmp_path):
    import shutil

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "phased.h5").unlink()
    one_line_error(invoke("classify", unfinished, "-q"), "no merged result yet")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(invoke("classify", empty, "-q"), "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hi")
    one_line_error(invoke("classify", foreign, "-q"), "foreign")
    (unfinished / "run.json").write_text("{")
    one_line_error(invoke("classify", unfinished, "-q"), "run.json: damaged run record")


def test_batch_refuses_a_second_run_on_a_locked_directory(stack, tmp_path):
    import fcntl

    from phasekit.spi.distributed import LOCK_NAME

    out = tmp_path / "busy"
    out.mkdir()
    with open(out / LOCK_NAME, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        one_line_error(invoke("batch", stack, "-o", out, *FAST), "being written by another")
        assert not (out / "run.json").exists()
