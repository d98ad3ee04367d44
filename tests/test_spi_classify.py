"""Single-hit features and classification (phasekit.spi.features / classify) on synthetic data
with a known answer."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from phasekit.core.errors import ConfigError, InputError
from phasekit.spi.classify import (
    compare,
    corrected_ttest,
    cross_validated_auc,
    evaluate,
    make_method,
)
from phasekit.spi.features import (
    _sphere,
    autocorrelation_features,
    feature_sets,
    physics_features,
    raw_features,
    reconstruction_features,
    sphere_fit,
    support_moments,
)


def _blobs(n, d, shift, seed):
    rng = np.random.default_rng(seed)
    y = np.r_[np.zeros(n // 2), np.ones(n - n // 2)].astype(int)
    X = rng.normal(size=(n, d))
    X[:, :2] += shift * y[:, None]
    return X, y


def test_separable_features_give_high_auc_and_noise_chance():
    X, y = _blobs(80, 6, 3.0, 0)
    noise = np.random.default_rng(1).normal(size=(80, 6))
    res = evaluate({"signal": X, "noise": noise}, y, methods=("isomap-knn", "logistic", "gboost", "pca-svm"),
                   repeats=2)
    for m in ("isomap-knn", "logistic", "gboost", "pca-svm"):
        assert res[("signal", m)]["mean"] > 0.93, (m, res[("signal", m)]["mean"])
        assert 0.3 < res[("noise", m)]["mean"] < 0.7, (m, res[("noise", m)]["mean"])
    r = res[("signal", "logistic")]
    assert r["auc"].shape == (2,) and r["fold_auc"].shape == (2, 4)
    t = compare(res[("signal", "logistic")], res[("noise", "logistic")])
    assert t["mean_diff"] > 0.3 and t["p"] < 0.01


def test_isomap_is_fitted_inside_the_folds():
    # 60 patterns of 300 pure-noise features: an embedding fitted on all patterns (labels aside)
    # would still not leak labels, but KNN on them must stay at chance; a leak of the test fold
    # into a supervised step would push it up.  Measured: 0.4 .. 0.6.
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 300))
    y = np.r_[np.zeros(30), np.ones(30)].astype(int)
    r = cross_validated_auc(X, y, "isomap-knn", repeats=3)
    assert 0.3 < r["mean"] < 0.7


def test_cnn_and_sbe_kmeans_baselines_learn_an_easy_image_task():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(32), np.ones(32)].astype(int)
    img = rng.normal(scale=0.5, size=(64, 8, 8))
    img[y == 1, 2:6, 2:6] += 2.0
    X = img.reshape(64, -1)
    assert cross_validated_auc(X, y, "cnn", repeats=1)["mean"] > 0.9
    assert cross_validated_auc(X, y, "sbe-kmeans", repeats=1)["mean"] > 0.9


def test_corrected_ttest_is_more_conservative_than_plain():
    a = np.array([0.90, 0.93, 0.91, 0.92, 0.94, 0.90, 0.92, 0.93])
    b = a - 0.01 + np.array([0.004, -0.003, 0.002, -0.004, 0.003, -0.002, 0.001, -0.001])
    from scipy import stats

    plain = stats.ttest_rel(a, b).pvalue
    corr = corrected_ttest(a, b, n_train=75, n_test=25)
    assert corr["p"] > plain and corr["mean_diff"] == pytest.approx(0.01)


def test_classification_errors():
    X, y = _blobs(40, 3, 1.0, 0)
    with pytest.raises(ConfigError, match="unknown classification method"):
        make_method("umap")
    with pytest.raises(InputError, match="labels must be 0"):
        cross_validated_auc(X, np.full(40, 2), "logistic")
    with pytest.raises(InputError, match="too few"):
        cross_validated_auc(X[:10], y[:10] if y[:10].min() != y[:10].max() else np.r_[np.zeros(5), np.ones(5)],
                            "logistic")
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        cross_validated_auc(Xn, y, "logistic")


# --------------------------------------------------------------------------- features
def _sphere_pattern(a, size=64, photons=None, seed=0):
    r = np.hypot(*np.meshgrid(np.arange(size) - size // 2, np.arange(size) - size // 2, indexing="ij"))
    I = 2e3 * _sphere(a * r)
    if photons:
        I = np.random.default_rng(seed).poisson(I).astype(float)
    return I


def test_sphere_fit_recovers_size_and_separates_a_dimer():
    I = _sphere_pattern(0.45, photons=True)
    f = sphere_fit(I)
    assert abs(f["a"] - 0.45) / 0.45 < 0.04
    # a coherent dimer: the sphere pattern times fringes along one axis
    yy = np.arange(64)[:, None] - 32
    dimer = I * (1 + np.cos(2 * np.pi * yy * 8 / 64)) + 0 * yy
    fd = sphere_fit(dimer)
    assert fd["chi2"] > 3 * f["chi2"]


def test_feature_shapes_and_support_moments():
    rng = np.random.default_rng(0)
    frames = rng.poisson(3.0, (3, 32, 32)).astype(float)
    mask = np.ones((32, 32), bool)
    mask[15:18, 15:18] = False
    assert raw_features(frames, mask, 16).shape == (3, 256)
    ac = autocorrelation_features(frames, mask, 12)
    assert ac.shape == (3, 144) and np.isfinite(ac).all()
    assert reconstruction_features(np.ones((3, 32, 32), complex), 8).max() == 1.0
    X, names = physics_features(frames, mask)
    assert X.shape == (3, len(names)) and np.isfinite(X).all()
    s = np.zeros((16, 16), bool)
    s[6:10, 6:10] = True
    area, _, _, ratio = support_moments(s)
    assert area == 16 and ratio == pytest.approx(1.0)
    s[6:10, 2:14] = True
    assert support_moments(s)[3] > 4
    fs = feature_sets(frames, mask)
    assert set(fs) == {"raw", "autocorrelation", "physics"}
