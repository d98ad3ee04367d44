"""``phasekit kmeans``: cluster the rows of an array (SBE, Lloyd or mini-batch k-means)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from .main import command_line, common_options

_METHODS = ("sbe", "lloyd", "minibatch")


def load_points(path: str, key: str | None = None):
    """Read an ``(n_samples, n_features)`` array from ``.npy``, ``.npz`` (``--key``), ``.csv``/``.txt``."""
    import numpy as np

    from ..core.errors import FileFormatError, InputError

    p = Path(path)
    suf = p.suffix.lower()
    try:
        if suf == ".npy":
            a = np.load(p, allow_pickle=False)
        elif suf == ".npz":
            with np.load(p, allow_pickle=False) as z:
                names = list(z.files)
                if key is None:
                    if len(names) != 1:
                        raise InputError(f"{path}: holds arrays {names}; choose one with --key")
                    key = names[0]
                if key not in names:
                    raise InputError(f"{path}: no array {key!r} (has {names})")
                a = z[key]
        elif suf in (".csv", ".txt", ".dat", ".tsv"):
            delim = "," if suf == ".csv" else None
            a = np.loadtxt(p, delimiter=delim, ndmin=2, comments="#")
        else:
            raise InputError(f"{path}: unknown data format {suf or '(no suffix)'!r}; use .npy, .npz, .csv or .txt")
    except (InputError, FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except ValueError as exc:
        raise FileFormatError(f"{path}: not readable as a numeric array ({exc})") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: not readable ({exc})") from None
    if a.ndim == 1:
        raise InputError(f"{path}: data must be 2-D (n_samples, n_features), got shape {a.shape} "
                         "(one feature per point? reshape it to (n, 1))")
    if a.dtype.kind in "biuf" and not np.isfinite(a).all():
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise InputError(f"{path}: {bad} NaN or infinite value(s) in the data")
    return a


def _save_array(path: Path, arr, fmt: str) -> None:
    import numpy as np

    from ..io.atomic import atomic_write

    suf = path.suffix.lower()
    with atomic_write(path) as tmp:
        if suf == ".npy":
            np.save(tmp, arr)
        elif suf in (".csv", ".txt"):
            np.savetxt(tmp, arr, delimiter="," if suf == ".csv" else " ", fmt=fmt)
        else:
            from ..core.errors import InputError

            raise InputError(f"{path}: output must end in .npy, .csv or .txt")


@click.command("kmeans")
@click.argument("data_file", metavar="DATA", type=click.Path(dir_okay=False))
@click.option("-k", "--clusters", "k", type=click.IntRange(min=1), required=True, help="Number of clusters K.")
@click.option("-m", "--method", type=click.Choice(_METHODS, case_sensitive=False), default="sbe",
              show_default=True, help="sbe: stochastic backward Euler (Pham thesis ch. 4); lloyd: full-batch "
              "Lloyd ('EM'); minibatch: Sculley's mini-batch k-means.")
@click.option("--init", type=click.Choice(["k-means++", "random"], case_sensitive=False), default="k-means++",
              show_default=True, help="Seeding; 'random' picks K distinct data points (the thesis's protocol).")
@click.option("--init-centers", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Start from these (K, d) centres instead (.npy/.csv/.txt).")
@click.option("--n-init", type=click.IntRange(min=1), default=1, show_default=True,
              help="Independent starts; the lowest objective wins.")
@click.option("-n", "--max-iter", type=click.IntRange(min=1), default=None,
              help="Iterations: SBE outer steps (default 100), Lloyd iterations (50), mini-batch steps (100).")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=500, show_default=True,
              help="Mini-batch size M (sbe, minibatch).")
@click.option("--inner", type=click.IntRange(min=1), default=10, show_default=True,
              help="SBE fixed-point passes per outer step (imaxit).")
@click.option("--alpha", type=click.FloatRange(0, 1, max_open=True), default=0.75, show_default=True,
              help="SBE averaging parameter.")
@click.option("--beta", type=click.FloatRange(0, 1, min_open=True), default=1 / 1.01, show_default=True,
              help="SBE step decay per outer step.")
@click.option("--gamma0", type=click.FloatRange(0, min_open=True), default=None,
              help="SBE initial step (default K).")
@click.option("--tol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Lloyd tolerance on the squared centre shift (relative to the mean variance).")
@click.option("--key", default=None, help="Array name inside an .npz input.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Random seed.")
@click.option("--device", type=click.Choice(["cpu", "cuda"], case_sensitive=False), default="cpu",
              show_default=True)
@click.option("--precision", type=click.Choice(["single", "double"], case_sensitive=False), default="single",
              show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="Result .npz (labels, centers, inertia, objective, config); default DATA_kmeans.npz.")
@click.option("--labels", "labels_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the labels here (.npy, .csv or .txt).")
@click.option("--centers", "centers_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the centres here (.npy, .csv or .txt).")
@click.option("-q", "--quiet", is_flag=True, default=False, help="No progress bar.")
@click.option("--force", is_flag=True, default=False,
              help="Run even when the estimated memory exceeds the available memory.")
@common_options
def kmeans(data_file, k, method, init, init_centers, n_init, max_iter, batch_size, inner, alpha, beta,
           gamma0, tol, key, seed, device, precision, out, labels_out, centers_out, quiet,
           force) -> None:
    """Cluster the rows of DATA (an (n_samples, n_features) array) into K clusters.

    \b
    Writes DATA_kmeans.npz (labels, centers, inertia, objective = inertia/(2N), n_iter, config)
    atomically, and optionally the labels / centres as .npy, .csv or .txt.

    \b
    Examples:
      phasekit kmeans data.npy -k 10
      phasekit kmeans data.csv -k 3 --method lloyd --n-init 10 --labels labels.txt
      phasekit kmeans data.npy -k 8 -b 1000 --inner 10 -n 150 --init random --seed 1
    """
    from ..core.resources import memory_override
    from .outputs import check_suffix, plan_outputs

    if out is None:
        out = str(Path(data_file).with_name(Path(data_file).stem + "_kmeans.npz"))
    for extra, opt in ((labels_out, "--labels"), (centers_out, "--centers")):
        if extra is not None:
            check_suffix(extra, (".npy", ".csv", ".txt"), opt, "output")
    with plan_outputs(out, input_path=data_file, suffixes=(".npz",),
                      extras=((labels_out, "--labels"), (centers_out, "--centers"))), \
            memory_override(force, "--force"):
        _kmeans(data_file, k, method, init, init_centers, n_init, max_iter, batch_size, inner,
                alpha, beta, gamma0, tol, key, seed, device, precision, out, labels_out,
                centers_out, quiet)


def _kmeans(data_file, k, method, init, init_centers, n_init, max_iter, batch_size, inner, alpha,
            beta, gamma0, tol, key, seed, device, precision, out, labels_out, centers_out,
            quiet) -> None:
    import numpy as np

    from ..core.resources import check_memory, estimate_kmeans
    from ..io.atomic import atomic_write
    from ..learn.kmeans import ESTIMATORS

    X = load_points(data_file, key)
    out_p = Path(out)
    check_memory(estimate_kmeans(X.shape[0], X.shape[1], k, precision.lower()),
                 f"k-means of {X.shape[0]} x {X.shape[1]} points into {k} clusters")
    init_arg = load_points(init_centers) if init_centers is not None else init
    method = method.lower()
    common = dict(init=init_arg, n_init=n_init, device=device.lower(), precision=precision.lower(), rng=seed,
                  progress=None if not quiet else False)
    if max_iter is not None:
        common["max_iter"] = max_iter
    if method == "sbe":
        est = ESTIMATORS["sbe"](k, batch_size=batch_size, n_inner=inner, alpha=alpha, beta=beta,
                                gamma0=gamma0, **common)
    elif method == "lloyd":
        est = ESTIMATORS["lloyd"](k, tol=tol, **common)
    else:
        est = ESTIMATORS["minibatch"](k, batch_size=batch_size, **common)
    t0 = time.perf_counter()
    est.fit(X)
    wall = time.perf_counter() - t0
    config = {"command": command_line(), "method": method, "n_clusters": k, "n_samples": int(X.shape[0]),
              "n_features": int(X.shape[1]), "seed": seed, "wall_s": wall,
              **{kk: (vv if isinstance(vv, (int, float, str, type(None))) else "array")
                 for kk, vv in est.get_params().items() if kk not in ("callback", "progress")}}
    with atomic_write(out_p) as tmp:
        np.savez(tmp, labels=est.labels_, centers=est.cluster_centers_, inertia=est.inertia_,
                 objective=est.objective_, n_iter=est.n_iter_, objectives=np.asarray(est.objectives_),
                 config=json.dumps(config))
    if labels_out is not None:
        _save_array(Path(labels_out), est.labels_, "%d")
    if centers_out is not None:
        _save_array(Path(centers_out), est.cluster_centers_, "%.8g")
    sizes = np.bincount(est.labels_, minlength=k)
    click.echo(f"{method} k-means: K={k}, N={X.shape[0]}, d={X.shape[1]}: objective {est.objective_:.6g} "
               f"(inertia {est.inertia_:.6g}), {est.n_iter_} iterations, {wall:.2f} s; cluster sizes "
               f"{sizes.min()}-{sizes.max()}"
               + (f"; {est.n_empty_clusters_} of {k} clusters empty" if est.n_empty_clusters_ else ""))
    click.echo(f"wrote {out_p}" + "".join(f", {p}" for p in (labels_out, centers_out) if p))
