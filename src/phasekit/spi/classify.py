"""Single-hit classification of SPI patterns with cross-validated ROC AUC.

The VR-RK paper (Xian et al. 2022, section 4.4, Table 3) embeds phased PR772 patterns with
ISOMAP, classifies them with KNN under 4-fold cross-validation and reports one AUC per phasing
algorithm (0.9501 VR-RK, 0.9231 HIO, 0.9069 RAAR), with no error bars and without saying whether
ISOMAP saw the test folds.  Here every method is a scikit-learn pipeline **fitted inside each
training fold** (the embedding included, so nothing leaks), scored on the held-out fold:

* ``isomap-knn`` (the paper's): ``StandardScaler -> Isomap(n_neighbors, n_components) ->
  KNeighborsClassifier(k)``; ``grid=True`` picks ``n_neighbors in {5, 10, 15}``,
  ``n_components in {2, 5, 10}``, ``k in {3, 5, 7}`` by an inner 3-fold CV on the training fold
  (a resolution of the paper's missing values); default fixed ``(10, 5, 7)``;
* ``logistic``: standardised logistic regression (L2, ``C = 0.1``);
* ``gboost``: ``HistGradientBoostingClassifier`` (best on the physics scalars);
* ``pca-svm``: ``StandardScaler -> PCA(10) -> SVC(rbf)``, after Bobkov et al. 2015;
* ``cnn``: a tiny torch CNN (two 3x3 conv layers, 8 and 16 channels, global pooling) on square
  image-like features (raw patterns, reconstructions), 30 epochs of Adam (batches of 64);
* ``sbe-kmeans``: the unsupervised baseline, :class:`phasekit.learn.SBEKMeans` with 2 clusters
  on standardised PCA(10) features; the training fold's labels only name the cluster that holds
  most single hits (cluster-then-label); the score is the distance to the other cluster minus
  the distance to that one.

Statistics: ``repeats`` repetitions of stratified ``folds``-fold CV with different shuffles;
the AUC of a repetition pools its out-of-fold scores; mean +- sd over repetitions.  Two methods
(or feature sets) are compared on the *same* splits with the corrected resampled t-test of
Nadeau & Bengio (Machine Learning 52, 239 (2003)) on the per-fold AUC differences:
``t = mean(d) / sqrt((1/J + n_test/n_train) var(d))``, ``J`` = folds x repeats, ``J - 1`` degrees
of freedom (the plain paired t-test is anti-conservative because training sets overlap).  An
ordering should be claimed only where its p-value is small.

scikit-learn is imported when a function here runs, not when :mod:`phasekit` is imported.
"""
from __future__ import annotations

import math

import numpy as np

from ..core.errors import ConfigError, InputError

__all__ = [
    "METHODS",
    "compare",
    "corrected_ttest",
    "cross_validated_auc",
    "evaluate",
    "make_method",
    "roc_curve_points",
]

METHODS = ("isomap-knn", "logistic", "gboost", "pca-svm", "cnn", "sbe-kmeans")


def _sk():
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ConfigError("classification needs scikit-learn: pip install scikit-learn") from None


class _TinyCNN:
    """A very small torch CNN classifier with the scikit-learn fit/decision_function protocol."""

    def __init__(self, epochs: int = 30, seed: int = 0):
        self.epochs, self.seed = epochs, seed

    def get_params(self, deep=True):
        return {"epochs": self.epochs, "seed": self.seed}

    def set_params(self, **p):
        for k, v in p.items():
            setattr(self, k, v)
        return self

    def _images(self, X):
        X = np.asarray(X, np.float32)
        side = int(round(math.sqrt(X.shape[1])))
        if side * side != X.shape[1]:
            raise InputError(f"the cnn needs square image features, got {X.shape[1]} per pattern")
        return X.reshape(-1, 1, side, side)

    def fit(self, X, y):
        import torch

        g = torch.Generator().manual_seed(int(self.seed))
        Xi = self._images(X)
        self.mu_, self.sd_ = float(Xi.mean()), float(Xi.std() + 1e-8)
        xt = torch.from_numpy((Xi - self.mu_) / self.sd_)
        yt = torch.from_numpy(np.asarray(y, np.float32))
        torch.manual_seed(int(self.seed))
        self.net_ = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(), torch.nn.Linear(16, 1))
        opt = torch.optim.Adam(self.net_.parameters(), lr=3e-3, weight_decay=1e-4)
        lossf = torch.nn.BCEWithLogitsLoss()
        n = len(yt)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny tensors: one thread is fastest (and polite to workers)
        try:
            for _ in range(self.epochs):
                perm = torch.randperm(n, generator=g)
                for i in range(0, n, 64):
                    b = perm[i:i + 64]
                    opt.zero_grad()
                    loss = lossf(self.net_(xt[b]).squeeze(1), yt[b])
                    loss.backward()
                    opt.step()
        finally:
            torch.set_num_threads(threads)
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X):
        import torch

        xt = torch.from_numpy((self._images(X) - self.mu_) / self.sd_)
        with torch.no_grad():
            return self.net_(xt).squeeze(1).numpy().astype(np.float64)


class _SBEKMeansScorer:
    """Unsupervised 2-cluster SBE k-means; training labels only name the single-hit cluster."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def get_params(self, deep=True):
        return {"seed": self.seed}

    def set_params(self, **p):
        for k, v in p.items():
            setattr(self, k, v)
        return self

    def fit(self, X, y):
        from sklearn.decomposition import PCA
        from sklearn.preprocessing import StandardScaler

        from ..learn import SBEKMeans

        self.scaler_ = StandardScaler().fit(X)
        Z = self.scaler_.transform(X)
        self.pca_ = PCA(n_components=min(10, Z.shape[1], Z.shape[0] - 1), random_state=self.seed).fit(Z)
        Z = self.pca_.transform(Z)
        km = SBEKMeans(2, batch_size=min(64, len(Z)), rng=self.seed, n_init=3).fit(Z)
        self.centers_ = np.asarray(km.cluster_centers_, np.float64)
        lab = np.argmin(((Z[:, None, :] - self.centers_[None]) ** 2).sum(-1), axis=1)
        y = np.asarray(y)
        frac = [y[lab == c].mean() if np.any(lab == c) else 0.0 for c in (0, 1)]
        self.single_ = int(np.argmax(frac))
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, X):
        Z = self.pca_.transform(self.scaler_.transform(X))
        d = np.sqrt(((Z[:, None, :] - self.centers_[None]) ** 2).sum(-1))
        return d[:, 1 - self.single_] - d[:, self.single_]


def make_method(name: str, *, seed: int = 0, grid: bool = False, n_samples: int | None = None,
                n_features: int | None = None):
    """A fresh (unfitted) estimator for method ``name`` (see the module notes).

    Examples
    --------
    >>> make_method("logistic")  # doctest: +ELLIPSIS
    Pipeline(...)
    """
    _sk()
    from sklearn.decomposition import PCA
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.manifold import Isomap
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if name == "isomap-knn":
        nn = 10 if n_samples is None else max(2, min(10, n_samples // 4))
        k = 7 if n_samples is None else max(1, min(7, n_samples // 2))
        pipe = Pipeline([("scale", StandardScaler()),
                         ("isomap", Isomap(n_neighbors=nn, n_components=5)),
                         ("knn", KNeighborsClassifier(n_neighbors=k))])
        if not grid:
            return pipe
        return GridSearchCV(pipe, {"isomap__n_neighbors": [5, 10, 15], "isomap__n_components": [2, 5, 10],
                                   "knn__n_neighbors": [3, 5, 7]}, scoring="roc_auc",
                            cv=StratifiedKFold(3, shuffle=True, random_state=seed), error_score=0.5)
    if name == "logistic":
        return Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression(C=0.1, max_iter=3000))])
    if name == "gboost":
        return HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=seed)
    if name == "pca-svm":
        return Pipeline([("scale", StandardScaler()), ("pca", PCA(n_components=min(10, n_features or 10), random_state=seed)),
                         ("svm", SVC(kernel="rbf", C=1.0, gamma="scale"))])
    if name == "cnn":
        return _TinyCNN(seed=seed)
    if name == "sbe-kmeans":
        return _SBEKMeansScorer(seed=seed)
    raise ConfigError(f"unknown classification method {name!r} (expected one of {', '.join(METHODS)})")


def _scores(est, X):
    if hasattr(est, "predict_proba"):
        try:
            return est.predict_proba(X)[:, 1]
        except AttributeError:  # SVC without probability
            pass
    return est.decision_function(X)


def _check(X, y):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(int).ravel()
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise InputError(f"features {X.shape} do not match {y.shape[0]} labels")
    if set(np.unique(y)) - {0, 1}:
        raise InputError("labels must be 0 (not a single hit) or 1 (single hit)")
    if min(np.count_nonzero(y == 0), np.count_nonzero(y == 1)) < 2:
        raise InputError("both classes need at least 2 labelled patterns per fold")
    if not np.isfinite(X).all():
        raise InputError("features contain NaN or infinite values")
    return X, y


def cross_validated_auc(X, y, method: str = "isomap-knn", *, folds: int = 4, repeats: int = 5,
                        seed: int = 0, grid: bool = False) -> dict:
    """Repeated stratified k-fold ROC AUC of one method on one feature matrix.

    Parameters
    ----------
    X : array (n, d)
    y : array (n,) of 0/1 (1 = single hit)
    method : str
        One of :data:`METHODS`.
    folds, repeats, seed : int
        Split ``r`` uses ``StratifiedKFold(folds, shuffle=True, random_state=seed + r)``: two calls
        with the same ``seed`` use the same splits (paired comparisons).
    grid : bool
        Inner grid search for ``isomap-knn``.

    Returns
    -------
    dict
        ``auc`` (per repeat, pooled out-of-fold scores), ``fold_auc`` (repeats x folds),
        ``mean``, ``sd``, ``n_train``, ``n_test``, ``scores`` (out-of-fold scores of repeat 0).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = np.r_[np.zeros(40), np.ones(40)]
    >>> X = rng.normal(size=(80, 3)) + 2 * y[:, None]
    >>> r = cross_validated_auc(X, y, "logistic", repeats=2)
    >>> r["mean"] > 0.9
    True
    """
    _sk()
    from sklearn.base import clone
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    X, y = _check(X, y)
    if min(np.bincount(y)) < folds:
        raise InputError(f"each class needs at least {folds} patterns for {folds}-fold CV")
    if len(y) * (folds - 1) // folds < 12:
        raise InputError(f"{len(y)} labelled patterns are too few for {folds}-fold CV "
                         "(each training fold needs at least 12)")
    proto = make_method(method, seed=seed, grid=grid, n_samples=int(len(y) * (folds - 1) / folds),
                        n_features=X.shape[1])
    import warnings

    warnings.filterwarnings("ignore", message=".*connected components.*")  # Isomap on small folds
    warnings.filterwarnings("ignore", message=".*sparsity structure.*")
    aucs, fold_aucs, first = [], [], None
    n_tr, n_te = [], []
    for r in range(repeats):
        skf = StratifiedKFold(folds, shuffle=True, random_state=seed + r)
        oof = np.zeros(len(y))
        fa = []
        for tr, te in skf.split(X, y):
            est = clone(proto).fit(X[tr], y[tr])
            s = _scores(est, X[te])
            oof[te] = s
            fa.append(roc_auc_score(y[te], s))
            n_tr.append(len(tr))
            n_te.append(len(te))
        aucs.append(roc_auc_score(y, oof))
        fold_aucs.append(fa)
        if first is None:
            first = oof
    aucs = np.asarray(aucs)
    return {"method": method, "auc": aucs, "fold_auc": np.asarray(fold_aucs), "mean": float(aucs.mean()),
            "sd": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
            "n_train": float(np.mean(n_tr)), "n_test": float(np.mean(n_te)), "scores": first}


def corrected_ttest(fold_auc_a, fold_auc_b, n_train: float, n_test: float) -> dict:
    """Nadeau-Bengio corrected resampled t-test of paired per-fold scores (a - b).

    Returns ``{"mean_diff", "t", "p"}`` (two-sided p-value, ``J - 1`` degrees of freedom).

    Examples
    --------
    >>> r = corrected_ttest([0.9, 0.92, 0.91, 0.93], [0.8, 0.82, 0.8, 0.81], 75, 25)
    >>> r["p"] < 0.05
    True
    """
    from scipy import stats

    d = (np.asarray(fold_auc_a, float) - np.asarray(fold_auc_b, float)).ravel()
    J = d.size
    if J < 2:
        return {"mean_diff": float(d.mean()) if J else float("nan"), "t": float("nan"), "p": float("nan")}
    var = d.var(ddof=1)
    mean = float(d.mean())
    if var == 0:
        return {"mean_diff": mean, "t": float("inf") if mean else 0.0, "p": 0.0 if mean else 1.0}
    t = mean / math.sqrt((1.0 / J + n_test / n_train) * var)
    p = 2 * stats.t.sf(abs(t), J - 1)
    return {"mean_diff": mean, "t": float(t), "p": float(p)}


def compare(result_a: dict, result_b: dict) -> dict:
    """Corrected resampled t-test between two :func:`cross_validated_auc` results (same splits)."""
    if np.shape(result_a["fold_auc"]) != np.shape(result_b["fold_auc"]):
        raise InputError("the two results were not computed on the same splits")
    return corrected_ttest(result_a["fold_auc"], result_b["fold_auc"], result_a["n_train"],
                           result_a["n_test"])


def evaluate(features: dict, y, methods=("isomap-knn", "logistic", "gboost", "pca-svm"), *,
             folds: int = 4, repeats: int = 5, seed: int = 0, grid: bool = False,
             progress: bool = False) -> dict:
    """Cross-validated AUC of every (feature set, method) pair on the same splits.

    ``cnn`` runs only on square image features (``raw``, ``reconstruction``); every other method
    on every set.  Returns ``{(feature_set, method): cross_validated_auc result}``.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> y = np.r_[np.zeros(30), np.ones(30)]
    >>> fs = {"good": rng.normal(size=(60, 4)) + 3 * y[:, None], "noise": rng.normal(size=(60, 4))}
    >>> res = evaluate(fs, y, methods=("logistic",), repeats=2)
    >>> res[("good", "logistic")]["mean"] > 0.95 > 0.8 > res[("noise", "logistic")]["mean"]
    True
    """
    from tqdm.auto import tqdm

    pairs = []
    for fname, X in features.items():
        d = np.asarray(X).shape[1]
        for m in methods:
            if m == "cnn" and (int(round(math.sqrt(d))) ** 2 != d or d < 16):
                continue
            pairs.append((fname, m))
    out = {}
    for fname, m in tqdm(pairs, desc="classify", unit="fit", disable=not progress):
        out[(fname, m)] = cross_validated_auc(features[fname], y, m, folds=folds, repeats=repeats,
                                              seed=seed, grid=grid)
    return out


def roc_curve_points(y, scores) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of the ROC curve of ``scores`` (1 = single hit)."""
    _sk()
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(y).astype(int), np.asarray(scores, float))
    return fpr, tpr
