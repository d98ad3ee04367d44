"""``phasekit classify``: cross-validated single-hit classification of SPI patterns."""
from __future__ import annotations

import json
from pathlib import Path

import click

from .main import common_options

_FEATURES = ("raw", "autocorrelation", "reconstruction", "physics")
_METHODS = ("isomap-knn", "logistic", "gboost", "pca-svm", "cnn", "sbe-kmeans")


def _csv_list(value: str, allowed: tuple, what: str) -> list[str]:
    from ..core.errors import InputError

    items = [v.strip().lower() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad or not items:
        raise InputError(f"unknown {what} {', '.join(bad) or '(none)'} (choose from {', '.join(allowed)})")
    return items


def load_labels(path, n: int):
    """Labels (n,) from a ``.npy`` or ``.csv``/``.txt`` file: 1 single hit, 0 not, -1 unknown."""
    import numpy as np

    from ..core.errors import FileFormatError, InputError

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such labels file")
    try:
        if p.suffix.lower() == ".npy":
            a = np.load(p, allow_pickle=False)
        elif p.suffix.lower() in (".csv", ".txt"):
            a = np.loadtxt(p, delimiter="," if p.suffix.lower() == ".csv" else None, comments="#", ndmin=1)
        else:
            raise InputError(f"{path}: labels must be a .npy or .csv file")
    except ValueError as exc:
        raise FileFormatError(f"{path}: not readable as numbers ({' '.join(str(exc).split())})") from None
    a = np.asarray(a).reshape(-1)
    if a.size != n:
        raise InputError(f"{path}: {a.size} labels for {n} patterns")
    if not np.isin(a, (-1, 0, 1)).all():
        raise InputError(f"{path}: labels must be 1 (single hit), 0 (not) or -1 (unknown)")
    return a.astype(int)


@click.command("classify")
@click.argument("source", metavar="OUT")
@click.option("--stack", type=click.Path(dir_okay=False), default=None,
              help="The stack the run phased (default: the one named in OUT/run.json).")
@click.option("--labels", "labels_file", type=click.Path(dir_okay=False), default=None,
              help="Labels (.npy or .csv, one per pattern: 1 single hit, 0 not, -1 unknown); "
                   "default: the stack's labels.")
@click.option("--features", default="raw,autocorrelation,reconstruction,physics", show_default=True,
              help="Comma-separated feature sets.")
@click.option("--methods", default="isomap-knn,logistic,gboost,pca-svm", show_default=True,
              help=f"Comma-separated methods ({', '.join(_METHODS)}).")
@click.option("--folds", type=click.IntRange(min=2), default=4, show_default=True)
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Repetitions of the k-fold CV with different shuffles.")
@click.option("--grid", is_flag=True, help="Inner grid search of ISOMAP / KNN parameters.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the AUCs (per repeat) as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@common_options
def classify(source, stack, labels_file, features, methods, folds, repeats, grid, seed, json_out, quiet):
    """Cross-validated AUC of single-hit classification per feature set and method.

    OUT is a `phasekit batch` output directory (or its phased.h5, with --stack), or an SPI
    stack itself (phasing-free features only).  Every method is fitted inside each training
    fold (ISOMAP included); AUC = mean +- sd over --repeats stratified --folds-fold CVs, and the
    best pair is compared with the runner-up by a corrected resampled t-test.

    \b
    Examples:
      phasekit classify run1
      phasekit classify run1 --labels labels.csv --methods isomap-knn,logistic --repeats 10
      phasekit classify sim.cxi --features autocorrelation,physics
    """
    import numpy as np

    from ..core.errors import InputError
    from ..io.atomic import atomic_save_text
    from ..io.spi import read_frames, read_stack_info
    from ..spi.classify import compare, evaluate
    from ..spi.features import feature_sets
    from ..spi.results import RESULT_NAME, is_batch_run, read_result, read_run_record

    feats = _csv_list(features, _FEATURES, "feature set")
    meths = _csv_list(methods, _METHODS, "method")
    src = Path(source)
    result = None
    if is_batch_run(src):
        res_path = src / RESULT_NAME if src.is_dir() else src
        if src.is_dir() and stack is None:
            stack = read_run_record(src).get("stack")
        if not res_path.is_file():
            raise InputError(f"{src}: the run has no merged result yet (finish it with phasekit batch --resume)")
        result = read_result(res_path)
        if stack is None:
            raise InputError(f"{src}: give the phased stack with --stack")
    else:
        stack = source
        if "reconstruction" in feats:
            feats.remove("reconstruction")
            if not feats:
                raise InputError(f"{source} is a stack, not a batch run: no reconstruction features")
    info = read_stack_info(stack)
    if result is not None and len(result) != info.n:
        raise InputError(f"{stack} holds {info.n} patterns, the result {len(result)}")
    labels = load_labels(labels_file, info.n) if labels_file else info.labels
    if labels is None:
        raise InputError(f"{stack} has no labels; give them with --labels FILE (.npy or .csv)")
    labels = np.asarray(labels).astype(int)
    keep = labels >= 0
    if result is not None:
        keep &= result.status == 0
    if keep.sum() < 2 * folds:
        raise InputError(f"only {int(keep.sum())} labelled (and phased) patterns: too few for {folds}-fold CV")
    from ..io.spi import read_masks
    from ..spi.phasing import BatchResult

    parts: dict[str, list] = {}
    step = 512  # features chunk by chunk: a 10^5-pattern stack never sits in memory
    for s0 in range(0, info.n, step):
        s1 = min(info.n, s0 + step)
        k = keep[s0:s1]
        if not k.any():
            continue
        sub = None
        if result is not None:
            sub = BatchResult(**{a: getattr(result, a)[s0:s1][k] for a in BatchResult.ARRAYS},
                              message=[m for m, kk in zip(result.message[s0:s1], k) if kk],
                              config=result.config)
        chunk_fs = feature_sets(read_frames(info, s0, s1)[k], read_masks(info, s0, s1)[k], sub)
        for name, X in chunk_fs.items():
            parts.setdefault(name, []).append(X)
    fs = {name: np.concatenate(v) for name, v in parts.items()}
    fs = {k: fs[k] for k in feats if k in fs}
    y = labels[keep]
    res = evaluate(fs, y, methods=meths, folds=folds, repeats=repeats, seed=seed, grid=grid,
                   progress=not quiet)
    n1 = int(y.sum())
    click.echo(f"{len(y)} patterns ({n1} single hits, {len(y) - n1} not); {repeats} x {folds}-fold "
               f"stratified CV; AUC mean +- sd over repeats")
    click.echo(f"{'features':<16} {'method':<11} AUC")
    for (f, m), r in sorted(res.items(), key=lambda kv: -kv[1]["mean"]):
        click.echo(f"{f:<16} {m:<11} {r['mean']:.4f} +- {r['sd']:.4f}")
    ranked = sorted(res.items(), key=lambda kv: -kv[1]["mean"])
    if len(ranked) >= 2 and repeats * folds >= 2:
        (ka, ra), (kb, rb) = ranked[0], ranked[1]
        t = compare(ra, rb)
        click.echo(f"best {ka[0]}/{ka[1]} vs {kb[0]}/{kb[1]}: difference {t['mean_diff']:+.4f}, corrected "
                   f"resampled t-test p = {t['p']:.3g}"
                   + (" (not significant: no ordering claimed)" if not t["p"] < 0.05 else ""))
    if json_out:
        atomic_save_text(json_out, json.dumps(
            {"n": len(y), "n_single": n1, "folds": folds, "repeats": repeats, "seed": seed,
             "results": [{"features": f, "method": m, "auc": [float(v) for v in r["auc"]],
                          "mean": r["mean"], "sd": r["sd"]} for (f, m), r in res.items()]}, indent=1))
        click.echo(f"wrote {json_out}")
