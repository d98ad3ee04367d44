"""PINE's learned denoisers (phasekit.learn.denoisers): dead-leaves statistics, RealSN layer
norms, the Lipschitz estimator against known operators, the averaged variant's bound, BN
folding, the complex wrapper, weight files, the shipped weights and a tiny training run."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from phasekit.core.errors import FileFormatError, InputError
from phasekit.learn.denoisers import (
    ComplexDenoiser,
    DnCNN,
    FoldedDnCNN,
    RealSNConv2d,
    conv_operator_norm,
    dead_leaves,
    dead_leaves_dataset,
    jacobian_norm,
    lipschitz_constant,
    load_complex_denoiser,
    load_denoiser,
    radius_pmf,
    weights_info,
)
from phasekit.learn.denoisers.patches import augment, extract_patches
from phasekit.learn.denoisers.training import TrainConfig, psnr, train_denoiser


# ----------------------------------------------------------------------------- dead leaves
def test_radius_law_is_r_minus_3():
    r, p = radius_pmf(128)
    assert r[0] == pytest.approx(0.03 * 128) and r[-1] == pytest.approx(128)
    assert p.sum() == pytest.approx(1.0)
    # p ~ r^-3 - rmax^-3: the log-log slope at small radii is -3
    slope = np.polyfit(np.log(r[:20]), np.log(p[:20]), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.02)


def test_leaf_radii_follow_the_law_and_canvas_is_covered():
    radii = []
    for s in range(3):
        img, info = dead_leaves(96, rng=s, return_leaves=True)
        assert info["coverage"] == 1.0            # leaves until covered
        assert info["n_leaves"] < 5000
        radii.append(info["radii"])
        assert 0 <= img.min() and img.max() <= 255
        assert np.allclose(img, np.rint(img))      # DL-Diverse: integer grey levels
    radii = np.concatenate(radii)
    levels, pmf = radius_pmf(96)
    expect = np.maximum(np.floor(levels), 1.0)
    for cut in (3, 5, 10):
        p_exp = pmf[expect <= cut].sum()
        assert np.mean(radii <= cut) == pytest.approx(p_exp, abs=0.04), cut


def test_generator_is_seeded_and_textured_differs():
    a = dead_leaves(48, rng=5)
    assert np.array_equal(a, dead_leaves(48, rng=5))
    assert not np.array_equal(a, dead_leaves(48, rng=6))
    t, info = dead_leaves(48, rng=5, textured=True, return_leaves=True)
    assert info["coverage"] == 1.0
    # textures vary inside the leaves: neighbouring pixels rarely share a level
    same = lambda im: np.mean(np.rint(im[:, 1:]) == np.rint(im[:, :-1]))
    assert same(a) > 0.6 and same(t) < 0.3
    incomplete = dead_leaves(48, rng=5, max_leaves=3, return_leaves=True)[1]
    assert incomplete["coverage"] < 1.0 and incomplete["n_leaves"] == 3


def test_dataset_and_patches():
    x = dead_leaves_dataset(4, size=64, seed=0, n_textures=4)
    assert x.shape == (4, 64, 64) and x.dtype == np.uint8
    assert np.array_equal(x[0], np.clip(np.rint(dead_leaves(64, 0)), 0, 255))
    p = extract_patches(np.zeros((2, 128, 128), np.uint8))
    assert p.shape == (2 * 165, 50, 50)        # 64 + 49 + 36 + 16 per image
    b = torch.arange(16.0).reshape(1, 1, 4, 4)
    outs = {tuple(augment(b, torch.Generator().manual_seed(s)).flatten().tolist()) for s in range(40)}
    assert len(outs) == 8                      # the eight symmetries of the square


# ----------------------------------------------------------------------------- RealSN
@pytest.mark.parametrize("target", [1.0, 0.5])
def test_realsn_layer_norm_equals_target(target):
    torch.manual_seed(0)
    conv = RealSNConv2d(3, 5, target=target).train()
    x = torch.randn(2, 3, 16, 16)
    for _ in range(150):                   # one power iteration per training forward pass
        conv(x).sum().backward()
    n = conv.operator_norm(n_iter=200)
    assert n == pytest.approx(target, rel=0.01)
    # the raw weight is far from it: the normalisation does the work
    assert abs(conv_operator_norm(conv.weight, n_iter=200) - target) > 0.1


def test_conv_operator_norm_known_kernels():
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 1, 1] = 2.0
    assert conv_operator_norm(w) == pytest.approx(2.0, rel=1e-6)
    w = torch.ones(1, 1, 3, 3) / 9.0            # box blur: norm 1 (DC) up to border effects
    assert conv_operator_norm(w, size=64, n_iter=300) == pytest.approx(1.0, abs=0.01)


# ----------------------------------------------------------------------------- Lipschitz
def test_lipschitz_estimator_on_a_linear_operator_of_known_norm():
    g = torch.Generator().manual_seed(1)
    u, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(30, 30, generator=g, dtype=torch.float64))
    s = torch.linspace(0.1, 2.5, 30, dtype=torch.float64)
    A = u @ torch.diag(s) @ v.T
    est = jacobian_norm(lambda x: A @ x, torch.randn(30, dtype=torch.float64), n_iter=300,
                        tol=1e-12)
    assert est == pytest.approx(2.5, rel=1e-3)
    # a convolution: the estimator agrees with the operator norm
    w = torch.randn(2, 1, 3, 3, generator=g)
    f = lambda x: torch.nn.functional.conv2d(x, w, padding=1)
    est = jacobian_norm(f, torch.randn(1, 1, 24, 24), n_iter=300, tol=1e-9)
    assert est == pytest.approx(conv_operator_norm(w, size=24, n_iter=500), rel=1e-3)
    r = lipschitz_constant(lambda x: 0.5 * x, [torch.ones(4, 4)])
    assert r["max"] == pytest.approx(0.5, rel=1e-6)


def test_averaged_variant_is_nonexpansive_on_random_inputs():
    torch.manual_seed(3)
    net = DnCNN(depth=5, width=8, bn=False, mode="averaged")
    for m in net.convs():
        m.power_iteration(100)
    net.eval()
    g = torch.Generator().manual_seed(0)
    vals = [jacobian_norm(net, torch.rand(1, 1, 24, 24, generator=g) * s, n_iter=40)
            for s in (0.1, 1.0, 5.0)]
    assert max(vals) <= 1.0 + 2e-3, vals
    assert min(vals) > 0.5                  # not trivially small: half the identity
    # the residual form of the same stack is only bounded by 2 (N 1-Lipschitz)
    res = DnCNN(depth=5, width=8, bn=False, mode="residual")
    res.load_state_dict(net.state_dict())
    res.eval()
    assert jacobian_norm(res, torch.rand(1, 1, 24, 24), n_iter=40) <= 2.0 + 1e-3


def test_bn_folding_is_exact_and_averaged_requires_no_bn():
    torch.manual_seed(0)
    net = DnCNN(depth=4, width=6, bn=True).train()
    for _ in range(5):
        net(torch.rand(4, 1, 20, 20))
    net.eval()
    x = torch.rand(2, 1, 20, 20)
    assert torch.allclose(net(x), net.fold()(x), atol=1e-5)
    assert net(x[0, 0]).shape == (20, 20)    # 2-D in, 2-D out
    with pytest.raises(InputError, match="no-bn|bn=False"):
        DnCNN(depth=4, width=6, bn=True, mode="averaged")


# ----------------------------------------------------------------------------- files, wrapper
def test_weight_files_roundtrip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    f = DnCNN(depth=3, width=4, bn=False).eval().fold()
    p = f.save(tmp_path / "w.npz", note="x")
    g = FoldedDnCNN.load(p)
    x = torch.rand(12, 12)
    assert torch.equal(f(x), g(x)) and g.meta["note"] == "x"
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(FileFormatError, match="not a phasekit DnCNN"):
        FoldedDnCNN.load(bad)
    with pytest.raises(InputError, match="no such shipped name"):
        load_denoiser("no-such-name")
    assert isinstance(load_denoiser(str(p)), FoldedDnCNN)


def test_complex_wrapper_minmax_is_scale_equivariant():
    torch.manual_seed(0)
    net = DnCNN(depth=3, width=4, bn=False).eval().fold()
    d = ComplexDenoiser(net)                         # min-max (the official code), default
    assert d.rescale == "minmax"
    z = torch.randn(20, 20, dtype=torch.complex128)
    a = d(z)
    assert a.dtype == z.dtype and a.shape == z.shape
    # min-max makes D equivariant to positive scaling and offsets of each part
    b = d(3.0 * z + (0.5 - 2.0j))
    assert torch.allclose(b, 3.0 * a + (0.5 - 2.0j), atol=1e-4)
    # a constant part passes unchanged; NumPy in, NumPy out
    c = d(np.full((8, 8), 1 + 0.25j))
    assert isinstance(c, np.ndarray) and np.allclose(c, 1 + 0.25j)
    ident = ComplexDenoiser(lambda x: x.numpy(), rescale="none")  # any callable, NumPy output
    assert torch.allclose(ident(z), z.to(torch.complex128), atol=1e-6)
    with pytest.raises(InputError):
        ComplexDenoiser(net, rescale="bogus")


# ----------------------------------------------------------------------------- shipped weights
@pytest.mark.parametrize("name", ["default", "nonexpansive"])
def test_shipped_weights_denoise_and_report(name):
    net = load_denoiser(name)
    info = weights_info(name)
    # shipped reports: default 24.6 -> 30.6 dB, nonexpansive 24.6 -> 26.9 dB (held out)
    gain = {"default": 5.0, "nonexpansive": 1.5}[name]
    assert info["heldout_deadleaves"]["psnr_out"] > info["heldout_deadleaves"]["psnr_in"] + gain
    clean = dead_leaves(64, rng=999).astype(np.float32) / 255.0
    noisy = clean + (15 / 255) * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    with torch.no_grad():
        den = net(torch.from_numpy(noisy)).numpy()
    assert psnr(den, clean) > psnr(noisy, clean) + gain - 1.0
    if name == "nonexpansive":
        assert info["network"]["bn"] is False and info["network"]["mode"] == "averaged"
        assert jacobian_norm(net, torch.from_numpy(noisy[:32, :32]), n_iter=30) <= 1.01
    d = load_complex_denoiser(name)
    z = torch.ones(16, 16, dtype=torch.complex64)
    assert torch.allclose(d(z), z)


# ----------------------------------------------------------------------------- training
def test_tiny_training_run_writes_weights_report_and_resumes(tmp_path):
    cfg = TrainConfig(depth=3, width=4, n_images=4, image_size=64, max_steps=3, batch=4,
                      precision="fp32", lipschitz_iters=3, checkpoint_every=2, threads=None)
    out = tmp_path / "w.npz"
    ck = tmp_path / "ck.pt"
    rep = train_denoiser(cfg, out, checkpoint=ck, progress=False)
    assert rep["steps"] == 3 and out.exists() and ck.exists()
    saved = json.loads(out.with_suffix(".json").read_text())
    for key in ("heldout_deadleaves", "lipschitz", "conv_norms", "seconds_per_step"):
        assert key in saved, key
    # the natural-image check needs scikit-image's camera(), an optional dependency
    assert ("camera" in saved) == (importlib.util.find_spec("skimage") is not None)
    assert saved["heldout_deadleaves"]["psnr_in"] == pytest.approx(24.6, abs=0.3)
    cfg.max_steps = 5
    rep = train_denoiser(cfg, out, checkpoint=ck, resume=True, progress=False)
    assert rep["steps"] == 5
    assert isinstance(load_denoiser(str(out)), FoldedDnCNN)


def test_cli_train_denoiser(tmp_path):
    from click.testing import CliRunner

    from phasekit.cli.main import cli

    r = CliRunner()
    out = r.invoke(cli, ["train-denoiser", "-o", str(tmp_path / "w.npz"), "--depth", "3",
                         "--width", "4", "--images", "2", "--image-size", "64", "--max-steps",
                         "1", "--batch", "4", "--precision", "fp32", "-q"])
    assert out.exit_code == 0, out.output
    assert "held-out dead leaves: PSNR" in out.output and "Lipschitz" in out.output
    rep = json.loads((tmp_path / "w.json").read_text())
    assert rep["steps"] == 1 and rep["network"]["depth"] == 3
    for args, text in ((["--mode", "averaged"], "needs --no-bn"), (["--resume"], "--checkpoint"),
                       (["-o", str(tmp_path / "w.txt")], ".npz")):
        out = r.invoke(cli, ["train-denoiser", "-o", str(tmp_path / "x.npz"), *args])
        assert out.exit_code == 2 and text in out.output, (args, out.output)


def test_folded_dncnn_channels_last_equals_the_plain_layout(monkeypatch):
    """The CPU inference runs its convolutions channels-last (faster on an Intel Xeon core); the
    values equal the plain NCHW layout's within float32 rounding, for 2-D, 3-D and batched inputs,
    and the output is a contiguous tensor of the input's shape."""
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(8, 1, 3, 3, generator=g) * 0.3, torch.randn(8, 8, 3, 3, generator=g) * 0.1,
          torch.randn(1, 8, 3, 3, generator=g) * 0.3]
    bs = [torch.randn(8, generator=g) * 0.1, torch.randn(8, generator=g) * 0.1, torch.zeros(1)]
    net = FoldedDnCNN(ws, bs)
    for x in (torch.rand(33, 40, generator=g), torch.rand(1, 20, 21, generator=g),
              torch.rand(3, 1, 24, 24, generator=g)):
        monkeypatch.setattr(FoldedDnCNN, "channels_last", True)
        a = net(x)
        monkeypatch.setattr(FoldedDnCNN, "channels_last", False)
        b = net(x)
        assert a.shape == b.shape == x.shape and a.is_contiguous()
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
        assert not torch.equal(a, x)
