"""SPI preprocessing (phasekit.spi.preprocess): Friedel centring, sphere-model size fit, hit
finding, size filter, crop, [0, 255] scaling, the stack pipeline and the CLI."""
import numpy as np
import pytest
from click.testing import CliRunner

from phasekit.cli.main import cli
from phasekit.io.spi import (
    read_frames,
    read_masks,
    read_pattern_metadata,
    read_stack_info,
)
from phasekit.spi.detector import amo86615_geometry
from phasekit.spi.preprocess import (
    crop_patterns,
    find_centres,
    find_hits,
    fit_sphere,
    hit_scores,
    preprocess_stack,
    scale_255,
    size_filter,
)
from phasekit.spi.simulate import SUBCLASSES, SpiSimulator, simulate_spi_file


@pytest.fixture(scope="module")
def singles():
    """Icosahedral single hits (70 nm +- 4 %) with the beam centre off by up to ~4 px."""
    g = amo86615_geometry(128, 2)
    sim = SpiSimulator(12, geometry=g, model="icosahedron", pad=6, single_fraction=1.0,
                       photons=3e4, background=0.005, centre_jitter=2.0, seed=5)
    return g, sim, sim.simulate()


def test_centring_recovers_known_offsets(singles):
    g, sim, c = singles
    true = c.meta["centre_px"]
    off = np.abs(true - np.array(g.beam_centre)).max()
    assert off > 2.0  # the test has real offsets to find
    found = find_centres(c.frames, sim.mask, guess=g.beam_centre)
    err = np.abs(found - true).max(axis=1)
    assert err.max() < 0.5, err
    assert np.sqrt((err ** 2).mean()) < 0.25


def test_centring_of_a_pattern_shifted_far_from_the_guess():
    g = amo86615_geometry(64, 4)
    sim = SpiSimulator(3, geometry=g, model="sphere", single_fraction=1.0, photons=1e5,
                       centre_jitter=0.0, gap=0, hole_radius=3, seed=1)
    sim2 = SpiSimulator(3, geometry=g.with_centre((26.4, 37.7)), model="sphere",
                        single_fraction=1.0, photons=1e5, centre_jitter=0.0, gap=0,
                        hole_radius=3, seed=1)
    c = sim2.simulate()
    found = find_centres(c.frames, sim2.mask, guess=(32, 32), max_shift=8)
    np.testing.assert_allclose(found, np.tile([26.4, 37.7], (3, 1)), atol=0.5)
    assert sim.mask.sum() == sim2.mask.sum()


def test_wrap_aware_centring_of_a_pattern_in_fft_layout():
    """A pattern rolled so that its zero frequency sits at the array corner (FFT layout): the
    circular Friedel search finds it across the edge."""
    g = amo86615_geometry(64, 4)
    sim = SpiSimulator(3, geometry=g, model="sphere", single_fraction=1.0, photons=1e6,
                       centre_jitter=1.0, gap=0, hole_radius=0, seed=1)
    c = sim.simulate()
    rolled = np.roll(c.frames, (-32, -32), axis=(1, 2))
    found = find_centres(rolled, guess=(0, 0), wrap=True, max_shift=4)
    want = (c.meta["centre_px"] - 32) % 64
    d = np.abs((found - want + 32) % 64 - 32)
    assert d.max() < 0.3, (found, want)
    assert ((found >= 0) & (found < 64)).all()


def test_sphere_fit_size_within_a_few_percent(singles):
    g, sim, c = singles
    true_d = c.meta["diameter_m"][:, 0]
    fit = fit_sphere(c.frames, g, sim.mask, refine=False)
    rel = np.abs(fit["diameter_m"] / true_d - 1)
    assert np.median(rel) < 0.02 and rel.max() < 0.05, rel
    assert (fit["pearson"] > 0.8).all() and (fit["intensity"] > 0).all()
    # the refinement keeps the size and moves the centre to the truth
    ref = fit_sphere(c.frames[:2], g, sim.mask, refine=True)
    assert np.abs(ref["diameter_m"] / true_d[:2] - 1).max() < 0.05
    assert np.abs(ref["centre_px"] - c.meta["centre_px"][:2]).max() < 0.5


def test_sphere_fit_chi2_separates_spheres_from_dimers():
    g = amo86615_geometry(64, 4)
    kw = dict(geometry=g, model="sphere", photons=1e5, centre_jitter=0.0, seed=3)
    s = SpiSimulator(4, single_fraction=1.0, **kw).simulate()
    d = SpiSimulator(4, single_fraction=0.0, mix={"dimer": 1}, **kw).simulate()
    mask = SpiSimulator(1, **kw).mask
    chi_s = fit_sphere(s.frames, g, mask, refine=False)["chi2"]
    chi_d = fit_sphere(d.frames, g, mask, refine=False)["chi2"]
    assert chi_s.max() < chi_d.min()


def test_hit_finding():
    g = amo86615_geometry(32, 8)
    sim = SpiSimulator(40, geometry=g, model="sphere", single_fraction=0.5,
                       mix={"blank": 1}, photons=3e3, fluence_jitter=0.3, background=0.02,
                       seed=9)
    c = sim.simulate()
    blank = c.meta["subclass"] == SUBCLASSES.index("blank")
    sc = hit_scores(c.frames, sim.mask)
    hits, thr = find_hits(sc)
    np.testing.assert_array_equal(hits, ~blank)
    assert sc[blank].max() < thr < sc[~blank].min()
    hits2, _ = find_hits(sc, blank_scores=sc[blank])
    np.testing.assert_array_equal(hits2, ~blank)
    assert find_hits(sc, threshold=1e9)[0].sum() == 0
    # all hits and no blank population: every frame with photons is a hit
    allhit, _ = find_hits(sc[~blank])
    assert allhit.all()


def test_size_filter_crop_and_scale():
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(70e-9, 2e-9, 50), [140e-9, 35e-9, 250e-9]])
    keep, mode, _ = size_filter(d, k=4)
    assert keep[:50].mean() > 0.95 and not keep[50:].any()
    assert mode == pytest.approx(70e-9, rel=0.03)
    a = np.arange(2 * 10 * 12, dtype=np.float32).reshape(2, 10, 12)
    m = np.ones((10, 12), bool)
    m[0, 0] = False
    out, om = crop_patterns(a, [(5, 6), (1.2, 10.6)], 6, m)
    assert out.shape == (2, 6, 6)
    np.testing.assert_array_equal(out[0], a[0, 2:8, 3:9])
    assert out[1, 3, 3] == a[1, 1, 11] and not om[1, 0, 0] and out[1, 0, 0] == 0
    assert om[0].all()
    sc = scale_255(np.array([[[-2.0, 1.0], [3.0, 6.0]], [[0, 0], [0, 0]]]))
    np.testing.assert_allclose(sc[0], [[0, 42.5], [127.5, 255]])
    assert (sc[1] == 0).all()


def test_preprocess_stack_and_cli(tmp_path):
    g = amo86615_geometry(64, 4)
    src = tmp_path / "sim.cxi"
    simulate_spi_file(src, 24, chunk=10, geometry=g, model="sphere", single_fraction=0.5,
                      mix={"blank": 1, "droplet": 1}, photons=2e4, background=0.01,
                      centre_jitter=1.5, seed=4)
    info = read_stack_info(src)
    sub = read_pattern_metadata(info, "subclass")
    r = preprocess_stack(src, tmp_path / "pre.cxi", crop=48, scale255=True, size_filter_k=4,
                         chunk=7)
    blank = sub == SUBCLASSES.index("blank")
    assert r["n_hits"] == int((~blank).sum())
    out = read_stack_info(tmp_path / "pre.cxi")
    assert out.shape == (48, 48) and out.n == r["n_out"] <= r["n_hits"]
    idx = read_pattern_metadata(out, "source_index")
    assert not blank[idx].any()
    np.testing.assert_array_equal(out.labels, info.labels[idx])
    fr = read_frames(out)
    assert np.allclose(fr.max(axis=(1, 2)), 255)
    masks = read_masks(out)
    assert masks.shape == (out.n, 48, 48)
    n_bad = (~masks).sum(axis=(1, 2))  # the gap (4 rows of 48) and the hole, moved with each crop
    assert ((n_bad > 190) & (n_bad < 300)).all(), n_bad
    sizes = read_pattern_metadata(out, "fit_diameter_m")
    single = out.labels == 1
    true = read_pattern_metadata(out, "diameter_m")[:, 0]
    assert np.abs(sizes[single] / true[single] - 1).max() < 0.05
    # the CLI: simulate, preprocess, info; errors in one line
    runner = CliRunner()
    res = runner.invoke(cli, ["simulate", "spi", "-n", "12", "--size", "32", "--binning", "8",
                              "--model", "sphere", "--mix", "blank=1", "--single-fraction",
                              "0.5", "-o", str(tmp_path / "c.cxi"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "simulated 12 patterns 32x32" in res.output and "patterns/s" in res.output
    res = runner.invoke(cli, ["preprocess-spi", str(tmp_path / "c.cxi"), "--crop", "24",
                              "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "12 frames, 6 hits" in res.output
    assert read_stack_info(tmp_path / "c_pre.cxi").n == 6
    res = runner.invoke(cli, ["info", str(tmp_path / "c_pre.cxi")])
    assert res.exit_code == 0 and "SPI stack: 6 patterns of 24 x 24" in res.output
    res = runner.invoke(cli, ["simulate", "spi", "--photons", "5:1", "-o",
                              str(tmp_path / "x.cxi")])
    assert res.exit_code == 2 and "LOW must not exceed HIGH" in res.output
    res = runner.invoke(cli, ["preprocess-spi", str(tmp_path / "nothing.cxi")])
    assert res.exit_code == 2 and res.output.count("\n") == 1 and "no such file" in res.output
