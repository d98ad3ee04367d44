"""Laplacian-smoothing SGD vs SGD (Pham thesis ch. 5, §5.3.1-5.3.2, Figs. 5.1-5.3).

**Reduced, offline stand-in for the thesis's MNIST experiments**: scikit-learn's bundled 8x8 digits
(1,797 images, pixels / 16) replace MNIST, and epochs / seeds are cut so that the whole script runs
in about 10 minutes on one core of the 2-core project machine.  Every reduction is recorded in the
JSON.

A. Multi-class logistic regression (§5.3.1, Figs. 5.1-5.2).  Fixed split: 1,000 training-pool /
   797 test images.  Each trial trains on a fresh random 300-image subset of the pool (the thesis:
   10 % of MNIST, ~6,000 images) with batch 100, 200 epochs, lr 0.5 divided by 10 at epochs 50, 100,
   150 (our reading of "decay 10 times after every 50 epochs"); SGD vs LS-SGD order 1 and order 2
   (sigma = 1, our choice: §5.3.1 gives none), ``--trials`` trials
   (default 100) with the same subset and initial weights per trial for every method; a sigma sweep
   {0.5, 2, 3} with fewer trials.  SVRG (in the thesis) is not run.  Reported: test accuracy mean /
   std, and the across-trial std of the training loss per epoch (Fig. 5.2).

A2. The same model on the whole 1,000-image pool at batch sizes 2, 8, 32, 100 (30 epochs, lr 0.5
   / 10 at epochs 10 and 20, ``--small-batch-seeds`` seeds, default 6): does SGD degrade at small
   batches where LS-SGD does not?

B. LeNet-style CNN (§5.3.2, Fig. 5.3a) scaled to 8x8 inputs: conv(20, 3x3, pad 1)-ReLU-maxpool 2 ->
   conv(50, 3x3, pad 1)-ReLU-maxpool 2 -> fc 200->128 (affine, no ReLU, as the authors' code;
   the thesis does not say) -> linear 128->10, cross-entropy.  Thesis optimiser settings: lr 0.01 divided by 5 at
   half the steps, momentum 0.9, weight decay 1e-4, sigma = 1.  Batch sizes 2, 4, 16, 64, each
   trained for the same number of optimizer steps (``--cnn-steps``, default 3000) on a 600-image
   training split, tested on the other 1,197; ``--cnn-seeds`` (default 3) seeds.  (The thesis trains
   100 epochs of 60k images, i.e. >= 47k steps at every batch size; a fixed epoch count on 600 images
   would leave batch 64 with ~100 steps, so the budget is in steps: equal steps, noisier gradients at
   small batches.)

A3. Optimiser noise only (Fig. 5.2): one 300-image subset and one set of initial weights,
   ``--noise-runs`` (default 30) runs that differ only in the mini-batch order; across-run std of
   the training loss per epoch and of the test accuracy, SGD vs LS-SGD order 1 and 2.

``--reuse-logreg JSON`` / ``--reuse-cnn JSON`` take parts A+A2 / B from an earlier run (recorded in
the output), so that one part can be rerun on the shared machine.

Wall time per step of LS-SGD relative to SGD is measured in the same runs (the thesis reports none).

Run ``python benchmarks/lsgd.py`` or ``--quick`` (writes ``lsgd_quick.*``).
"""
from __future__ import annotations

import _common  # noqa: F401  (first: pins OpenBLAS threads before numpy is imported)

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import phasekit  # noqa: E402,F401  (before torch: OpenMP wait policy)
import numpy as np  # noqa: E402

from _common import (RESULTS, claim, claims_markdown, fmt, machine_meta, md_table, meta_markdown,  # noqa: E402
                     save_figure, set_threads, write_results)

NAME = "lsgd"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=100, help="logistic-regression trials (main methods)")
    ap.add_argument("--sweep-trials", type=int, default=30)
    ap.add_argument("--small-batch-seeds", type=int, default=6)
    ap.add_argument("--cnn-steps", type=int, default=3000, help="optimizer steps per CNN run (every batch size)")
    ap.add_argument("--cnn-seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reuse-logreg", default=None, metavar="JSON",
                    help="take parts A and A2 from an earlier results file (recorded in the output)")
    ap.add_argument("--reuse-cnn", default=None, metavar="JSON",
                    help="take part B (the CNN) from an earlier results file (recorded in the output)")
    ap.add_argument("--noise-runs", type=int, default=30,
                    help="part A3: runs with data and initial weights fixed, only the batch order random")
    return ap.parse_args(argv)


def load():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = d.data.astype(np.float32) / 16.0, d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(X))
    return X[perm], y[perm]


def make_opt(method, params, lr, **kw):
    import torch

    from phasekit.learn import LSSGD

    if method == "SGD":
        return torch.optim.SGD(params, lr=lr, **kw)
    sigma, order = method
    return LSSGD(params, lr=lr, sigma=sigma, order=order, **kw)


def label(method):
    return "SGD" if method == "SGD" else f"LS-SGD s={method[0]:g} n={method[1]}"


def train(model_fn, method, Xtr, ytr, Xte, yte, *, epochs, batch, lr, milestones, factor, seed,
          opt_kw=None, record_loss=False, max_steps=None, order_seed=None):
    """Train a freshly initialised model; return test accuracy, per-epoch train loss, time per step."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = model_fn()
    opt = make_opt(method, model.parameters(), lr, **(opt_kw or {}))
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=factor)
    if max_steps is not None:  # step-based budget: milestones count steps, epochs as many as needed
        epochs = -(-max_steps * batch // len(Xtr)) + 1
    Xt, yt = torch.as_tensor(Xtr), torch.as_tensor(ytr)
    rng = np.random.default_rng(seed if order_seed is None else order_seed)
    losses = []
    steps, t_steps = 0, 0.0
    diverged = False
    for ep in range(epochs):
        order = torch.as_tensor(rng.permutation(len(Xt)))
        t0 = time.perf_counter()
        for s in range(0, len(order), batch):
            idx = order[s:s + batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            steps += 1
            if max_steps is not None:
                sched.step()
                if steps >= max_steps:
                    break
        t_steps += time.perf_counter() - t0
        if max_steps is None:
            sched.step()
        if record_loss:
            with torch.no_grad():
                losses.append(float(F.cross_entropy(model(Xt), yt)))
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            diverged = True
            break
        if max_steps is not None and steps >= max_steps:
            break
    with torch.no_grad():
        acc = float((model(torch.as_tensor(Xte)).argmax(1).numpy() == yte).mean()) if not diverged else 0.1
    return {"acc": acc, "losses": losses, "s_per_step": t_steps / max(steps, 1), "diverged": diverged}


def logreg():
    import torch

    return torch.nn.Linear(64, 10)


def lenet():
    import torch.nn as nn

    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)),
                         nn.Conv2d(1, 20, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(20, 50, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(200, 128), nn.Linear(128, 10))


def summary(rs):
    a = np.array([r["acc"] for r in rs])
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "min": float(a.min()),
            "max": float(a.max()), "n": len(a), "diverged": int(sum(r["diverged"] for r in rs)),
            "s_per_step": float(np.mean([r["s_per_step"] for r in rs])), "accs": a.tolist()}


def main(argv=None):
    args = parse_args(argv)
    thr = set_threads(1)
    import torch

    import sklearn

    name = NAME + ("_quick" if args.quick else "")
    trials = 8 if args.quick else args.trials
    sweep_trials = 4 if args.quick else args.sweep_trials
    sb_seeds = 2 if args.quick else args.small_batch_seeds
    cnn_steps = 200 if args.quick else args.cnn_steps
    cnn_seeds = 1 if args.quick else args.cnn_seeds
    lr_epochs = 40 if args.quick else 200
    meta = machine_meta()
    meta["threads"] = thr
    meta["versions"]["scikit-learn"] = sklearn.__version__
    t_all = time.perf_counter()
    X, y = load()
    pool_X, pool_y, Xte, yte = X[:1000], y[:1000], X[1000:], y[1000:]

    main_methods = ["SGD", (1.0, 1), (1.0, 2)]
    sweep = [(0.5, 1), (2.0, 1), (3.0, 1)]
    sb_batches = [2, 8, 32, 100]
    sb_ep = 10 if args.quick else 30
    reused = None
    if args.reuse_logreg:
        import json

        old = json.load(open(args.reuse_logreg))
        reused = {"file": args.reuse_logreg, "date": old["meta"]["date"], "command": old["meta"]["command"],
                  "total_s": old.get("total_s")}
        A_sum, loss_std, loss_mean = old["logreg"], old["logreg_loss_std_per_epoch"], old["logreg_loss_mean_per_epoch"]
        A2 = {(r["batch"], r["method"]): r for r in old["logreg_small_batch"]}
        trials, sweep_trials, sb_seeds = A_sum["SGD"]["n"], A_sum[label(sweep[0])]["n"], A2[(2, "SGD")]["n"]
        lr_epochs = len(loss_std["SGD"])
        print(f"parts A and A2 reused from {args.reuse_logreg} ({reused['date']})", flush=True)
    else:
        # ---------------- A: logistic regression, batch 100
        ms = [lr_epochs // 4 * k for k in (1, 2, 3)]
        A = {label(m): [] for m in main_methods + sweep}
        for t in range(trials):
            sub = np.random.default_rng(1000 + t).choice(1000, 300, replace=False)
            for m in main_methods + (sweep if t < sweep_trials else []):
                A[label(m)].append(train(logreg, m, pool_X[sub], pool_y[sub], Xte, yte, epochs=lr_epochs, batch=100,
                                         lr=0.5, milestones=ms, factor=0.1, seed=t, record_loss=True))
        A_sum = {k: summary(v) for k, v in A.items()}
        loss_std = {k: np.std(np.array([r["losses"] for r in v]), axis=0, ddof=1).tolist() for k, v in A.items() if len(v) > 1}
        loss_mean = {k: np.mean(np.array([r["losses"] for r in v]), axis=0).tolist() for k, v in A.items()}
        print("[logreg b100] " + "; ".join(f"{k}: {100 * s['mean']:.2f}+-{100 * s['std']:.2f}" for k, s in A_sum.items()),
              flush=True)

        # ---------------- A2: logistic regression at small batch sizes
        A2 = {}
        for b in sb_batches:
            for m in ["SGD", (1.0, 1)]:
                rs = []
                for s in range(sb_seeds):
                    rs.append(train(logreg, m, pool_X, pool_y, Xte, yte, epochs=sb_ep, batch=b, lr=0.5,
                                    milestones=[sb_ep // 3, 2 * sb_ep // 3], factor=0.1, seed=s))
                A2[(b, label(m))] = summary(rs)
        print("[logreg small batch] " + "; ".join(f"b{b} {k}: {100 * s['mean']:.1f}+-{100 * s['std']:.1f}"
                                                  for (b, k), s in A2.items()), flush=True)

    # ---------------- B: LeNet-style CNN
    cnn_batches = [2, 4, 16, 64]
    Xtr_c, ytr_c, Xte_c, yte_c = X[:600], y[:600], X[600:], y[600:]
    B = {}
    reused_cnn = None
    if args.reuse_cnn:
        import json
        import re

        oldc = json.load(open(args.reuse_cnn))
        reused_cnn = {"file": args.reuse_cnn, "date": oldc["meta"]["date"], "command": oldc["meta"]["command"]}
        B = {(r["batch"], r["method"]): r for r in oldc["lenet"]}
        cnn_batches = sorted({b for b, _ in B})
        cnn_seeds = B[(2, "SGD")]["n"]
        cnn_steps = int(re.search(r"(\d+) optimizer steps", oldc["reductions"]["cnn"]).group(1))
        print(f"part B reused from {args.reuse_cnn} ({reused_cnn['date']})", flush=True)
    for b in ([] if args.reuse_cnn else cnn_batches):
        for m in ["SGD", (1.0, 1)]:
            rs = [train(lenet, m, Xtr_c, ytr_c, Xte_c, yte_c, epochs=0, batch=b, lr=0.01, max_steps=cnn_steps,
                        milestones=[cnn_steps // 2], factor=0.2, seed=s,
                        opt_kw=dict(momentum=0.9, weight_decay=1e-4)) for s in range(cnn_seeds)]
            B[(b, label(m))] = summary(rs)
            print(f"[lenet b{b}] {label(m)}: {100 * B[(b, label(m))]['mean']:.2f}+-{100 * B[(b, label(m))]['std']:.2f} "
                  f"({B[(b, label(m))]['s_per_step'] * 1e3:.2f} ms/step)", flush=True)

    # ---------------- A3: optimiser noise only (Fig. 5.2): same subset, same initial weights
    noise_runs = 4 if args.quick else args.noise_runs
    sub0 = np.random.default_rng(1000).choice(1000, 300, replace=False)
    A3 = {}
    for m in main_methods:
        rs = [train(logreg, m, pool_X[sub0], pool_y[sub0], Xte, yte, epochs=lr_epochs, batch=100, lr=0.5,
                    milestones=[lr_epochs // 4 * k for k in (1, 2, 3)], factor=0.1, seed=0, order_seed=500 + r,
                    record_loss=True) for r in range(noise_runs)]
        A3[label(m)] = {**summary(rs), "loss_std_per_epoch": np.std(np.array([r["losses"] for r in rs]), axis=0,
                                                                     ddof=1).tolist()}
    print("[logreg noise only] " + "; ".join(f"{k}: acc {100 * v['mean']:.2f}+-{100 * v['std']:.2f}" for k, v in A3.items()),
          flush=True)
    total = time.perf_counter() - t_all

    # ---------------- claims
    sgd, ls1, ls2 = A_sum["SGD"], A_sum[label((1.0, 1))], A_sum[label((1.0, 2))]
    med_std = {k: float(np.median(v[lr_epochs // 4:])) for k, v in loss_std.items()}
    claims = [
        claim("Logistic regression (L2): LS-SGD order 1 (sigma=1) lifts the mean test accuracy by >= 1 point over SGD",
              ls1["mean"] - sgd["mean"] >= 0.01,
              f"{100 * ls1['mean']:.2f}% vs {100 * sgd['mean']:.2f}% ({trials} trials, digits stand-in)"),
        claim("Logistic regression (L2): LS-SGD order 2 lifts the mean test accuracy by >= 1 point over SGD",
              ls2["mean"] - sgd["mean"] >= 0.01, f"{100 * ls2['mean']:.2f}% vs {100 * sgd['mean']:.2f}%"),
        claim("Logistic regression: LS-SGD (order 1 and 2) is more accurate on average than SGD",
              ls1["mean"] > sgd["mean"] and ls2["mean"] > sgd["mean"],
              f"means {100 * sgd['mean']:.2f} / {100 * ls1['mean']:.2f} / {100 * ls2['mean']:.2f}% (SGD / LS1 / LS2)"),
        claim("Logistic regression: the test accuracy of LS-SGD (order 1 and 2) varies less across trials than SGD's",
              ls1["std"] < sgd["std"] and ls2["std"] < sgd["std"],
              f"std {100 * sgd['std']:.2f} / {100 * ls1['std']:.2f} / {100 * ls2['std']:.2f} points (SGD / LS1 / LS2)"),
        claim("Logistic regression (Fig. 5.2), trials with different training subsets and initial weights: the "
              "across-trial std of the training loss is smaller with LS-SGD order 1 than SGD, and smaller again with "
              "order 2 (L6)",
              med_std[label((1.0, 1))] < med_std["SGD"] and med_std[label((1.0, 2))] < med_std[label((1.0, 1))],
              "median over epochs >= 50 of the across-trial std: " +
              ", ".join(f"{k} {fmt(med_std[k])}" for k in ("SGD", label((1.0, 1)), label((1.0, 2))))),
    ]
    n_med = {k: float(np.median(v["loss_std_per_epoch"][lr_epochs // 4:])) for k, v in A3.items()}
    claims.append(claim("Logistic regression (Fig. 5.2), optimiser noise only (same subset and initial weights, "
                        "random batch order): the across-run std of the training loss is smaller with LS-SGD order 1 "
                        "than SGD, and smaller again with order 2 (L6)",
                        n_med[label((1.0, 1))] < n_med["SGD"] and n_med[label((1.0, 2))] < n_med[label((1.0, 1))],
                        f"median over epochs >= {lr_epochs // 4} of the across-run std ({noise_runs} runs): " +
                        ", ".join(f"{k} {fmt(n_med[k])}" for k in n_med) + "; test accuracy std " +
                        ", ".join(f"{k} {100 * v['std']:.2f}" for k, v in A3.items()) + " points"))
    b2_sgd, b2_ls = A2[(2, "SGD")], A2[(2, label((1.0, 1)))]
    b100_sgd = A2[(100, "SGD")]
    claims.append(claim("Logistic regression at batch 2: SGD degrades (>= 2 points below its batch-100 accuracy) and "
                        "LS-SGD keeps a higher accuracy", b100_sgd["mean"] - b2_sgd["mean"] >= 0.02 and b2_ls["mean"] > b2_sgd["mean"],
                        f"SGD b2 {100 * b2_sgd['mean']:.1f}% vs b100 {100 * b100_sgd['mean']:.1f}%; LS-SGD b2 "
                        f"{100 * b2_ls['mean']:.1f}% ({sb_seeds} seeds, {sb_ep} epochs)"))
    wins = [b for b in cnn_batches if B[(b, label((1.0, 1)))]["mean"] >= B[(b, "SGD")]["mean"]]
    claims.append(claim("LeNet-style CNN (L3): LS-SGD (sigma=1) is at least as accurate as SGD at every batch size",
                        len(wins) == len(cnn_batches),
                        "; ".join(f"b{b}: {100 * B[(b, label((1.0, 1)))]['mean']:.2f} vs {100 * B[(b, 'SGD')]['mean']:.2f}%"
                                  for b in cnn_batches) + f" ({cnn_seeds} seeds, {cnn_steps} steps)"))
    bl = cnn_batches[-1]
    sgd_drop = B[(bl, "SGD")]["mean"] - min(B[(2, "SGD")]["mean"], B[(4, "SGD")]["mean"])
    ls_drop = B[(bl, label((1.0, 1)))]["mean"] - min(B[(2, label((1.0, 1)))]["mean"], B[(4, label((1.0, 1)))]["mean"])
    claims.append(claim("LeNet-style CNN (L3): SGD degrades at batch 2-4 (thesis: 97% at batch 4, chance at 2) while "
                        f"LS-SGD stays within 1 point of its batch-{bl} accuracy",
                        sgd_drop > 0.01 and ls_drop <= 0.01,
                        f"drop from batch {bl} to the worse of batch 2/4: SGD {100 * sgd_drop:.2f} points, LS-SGD "
                        f"{100 * ls_drop:.2f} points; diverged runs SGD b2 {B[(2, 'SGD')]['diverged']}"))
    claims.append(claim("LeNet-style CNN: LS-SGD's accuracy varies less across seeds than SGD's at batch 2 and 4",
                        all(B[(b, label((1.0, 1)))]["std"] <= B[(b, "SGD")]["std"] for b in (2, 4)),
                        "; ".join(f"b{b}: std {100 * B[(b, label((1.0, 1)))]['std']:.2f} vs {100 * B[(b, 'SGD')]['std']:.2f}"
                                  for b in (2, 4))))
    ov = {b: B[(b, label((1.0, 1)))]["s_per_step"] / B[(b, "SGD")]["s_per_step"] for b in cnn_batches}
    ov_lr = ls1["s_per_step"] / sgd["s_per_step"]
    claims.append(claim("Cost (new measurement): an LS-SGD step costs at most 1.5x an SGD step",
                        max(ov.values()) <= 1.5 and ov_lr <= 1.5,
                        f"time per step LS/SGD: logistic b100 {ov_lr:.2f}; LeNet " +
                        ", ".join(f"b{b} {v:.2f}" for b, v in ov.items())))

    # ---------------- figures
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 3.8))
    bins = np.linspace(min(min(s["accs"]) for s in A_sum.values()), max(max(s["accs"]) for s in A_sum.values()), 30)
    for k in ("SGD", label((1.0, 1)), label((1.0, 2))):
        ax[0].hist(A_sum[k]["accs"], bins=bins, alpha=0.55, label=k)
    ax[0].set_xlabel("test accuracy"); ax[0].set_title(f"logistic regression, {trials} trials"); ax[0].legend(fontsize=8)
    for k in ("SGD", label((1.0, 1)), label((1.0, 2))):
        ax[1].semilogy(range(1, len(loss_std[k]) + 1), loss_std[k], label=k)
    ax[1].set_xlabel("epoch"); ax[1].set_ylabel("across-trial std of training loss"); ax[1].legend(fontsize=8)
    for k in ("SGD", label((1.0, 1))):
        ax[2].errorbar(cnn_batches, [100 * B[(b, k)]["mean"] for b in cnn_batches],
                       yerr=[100 * B[(b, k)]["std"] for b in cnn_batches], capsize=3, marker="o", label=k)
    ax[2].set_xscale("log", base=2); ax[2].set_xlabel("batch size"); ax[2].set_ylabel("test accuracy (%)")
    ax[2].set_title(f"LeNet-style CNN, {cnn_steps} steps, {cnn_seeds} seeds"); ax[2].legend(fontsize=8)
    save_figure(fig, RESULTS / f"{name}.png")

    # ---------------- write
    data = {"name": name, "meta": meta, "total_s": total,
            "reductions": {"data": "scikit-learn 8x8 digits (1797 images) instead of MNIST",
                           "logreg": f"300-image training subsets (thesis ~6000), {trials} trials, {lr_epochs} epochs",
                           "logreg_sweep_trials": sweep_trials, "small_batch": f"{sb_seeds} seeds, {sb_ep} epochs, 1000 training images",
                           "cnn": f"8x8 LeNet-style, {cnn_steps} optimizer steps at every batch size (thesis: 100 epochs of 60k images), "
                                  f"{cnn_seeds} seeds, train 600 / test 1197",
                           "logreg_parts_reused_from": reused, "cnn_part_reused_from": reused_cnn,
                           "noise_only_runs": noise_runs,
                           "svrg": "not run"},
            "claims": claims,
            "logreg": {k: {kk: vv for kk, vv in s.items()} for k, s in A_sum.items()},
            "logreg_loss_std_per_epoch": loss_std, "logreg_loss_mean_per_epoch": loss_mean,
            "logreg_small_batch": [{"batch": b, "method": k, **s} for (b, k), s in A2.items()],
            "logreg_noise_only": A3,
            "lenet": [{"batch": b, "method": k, **s} for (b, k), s in B.items()]}
    rows = [[k, s["n"], f"{100 * s['mean']:.2f}", f"{100 * s['std']:.2f}", f"{100 * s['min']:.1f}",
             f"{100 * s['max']:.1f}", fmt(1e3 * s["s_per_step"], 3)] for k, s in A_sum.items()]
    rows2 = [[b, k, f"{100 * s['mean']:.2f}", f"{100 * s['std']:.2f}", s["diverged"]] for (b, k), s in A2.items()]
    rows3 = [[b, k, f"{100 * s['mean']:.2f}", f"{100 * s['std']:.2f}", s["diverged"], fmt(1e3 * s["s_per_step"], 3)]
             for (b, k), s in B.items()]
    md = ["# LS-SGD vs SGD (Pham thesis ch. 5), reduced offline stand-in\n",
          meta_markdown(meta) + f" scikit-learn {sklearn.__version__}. Total {total / 60:.1f} min on one thread.\n",
          "**Stand-in and reductions**: scikit-learn's 8x8 digits replace MNIST; logistic regression trains on 300-image "
          f"subsets ({trials} trials, {lr_epochs} epochs, batch 100, lr 0.5 /10 every {lr_epochs // 4} epochs); the CNN is a "
          f"LeNet-style net for 8x8 inputs trained {cnn_steps} optimizer steps at every batch size (thesis: 100 epochs on "
          f"60k images; a fixed epoch count on 600 images leaves the large batches with ~100 steps) with {cnn_seeds} "
          "seeds. SVRG is not run." + (f" Parts A/A2 reused from the run of {reused['date']}." if reused else "") +
          (f" Part B (CNN) reused from the run of {reused_cnn['date']}." if reused_cnn else "") + "\n",
          "## Claims\n", claims_markdown(claims),
          "\n## Logistic regression, batch 100 (test accuracy, %)\n",
          md_table(["method", "trials", "mean", "std", "min", "max", "ms / step"], rows),
          f"\n## Logistic regression at small batch sizes ({sb_seeds} seeds, {sb_ep} epochs)\n",
          md_table(["batch", "method", "mean", "std", "diverged"], rows2),
          f"\n## Logistic regression, optimiser noise only ({noise_runs} runs: same 300-image subset and initial "
          "weights, random batch order)\n",
          md_table(["method", "test acc. mean", "std", "median across-run std of training loss (epochs >= "
                    f"{lr_epochs // 4})"], [[k, f"{100 * v['mean']:.2f}", f"{100 * v['std']:.3f}",
                                             fmt(float(np.median(v['loss_std_per_epoch'][lr_epochs // 4:])))]
                                            for k, v in A3.items()]),
          f"\n## LeNet-style CNN ({cnn_seeds} seeds, {cnn_steps} steps, lr 0.01 / 5 at half, momentum 0.9, wd 1e-4)\n",
          md_table(["batch", "method", "mean", "std", "diverged", "ms / step"], rows3),
          f"\n![LS-SGD]({name}.png)\n"]
    write_results(name, data, "\n".join(md))
    print(f"done in {total / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
