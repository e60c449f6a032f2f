"""kNN evaluation: vjepa.eval.knn against scikit-learn's brute-force KNeighborsClassifier.

    .venv/bin/python benchmarks/knn.py                      # 50,000 train x 10,000 val x 384 features
    .venv/bin/python benchmarks/knn.py --train 5000 --val 1000 --out logs/knn.json

Features are drawn as 100 noisy class clusters (so the vote is not trivial), the same
arrays for both. scikit-learn gets the same rule: cosine distance, k = 20, each
neighbour weighted by exp(similarity / T). Each method runs in its own child process,
so its peak resident memory (ru_maxrss) is its own; the baseline of an idle child with
the same imports is printed too. Predictions are compared one by one.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np

from common import write_json

K, T = 20, 0.07
NOISE = 4.5  # within-class spread: top-1 about 0.5 at 384 features, so the vote matters


def features(n_train: int, n_val: int, dim: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, classes, n)
        return (centres[y] + NOISE * rng.standard_normal((n, dim)).astype(np.float32)), y

    (xt, yt), (xv, yv) = draw(n_train), draw(n_val)
    return xt, yt, xv, yv


def run_vjepa(args):
    import torch

    from vjepa.eval.knn import knn_scores

    xt, yt, xv, _ = args
    t0 = time.perf_counter()
    pred = knn_scores(xt, yt, xv, k=K, temperature=T, num_classes=int(yt.max()) + 1).argmax(1).numpy()
    return pred, time.perf_counter() - t0, torch.get_num_threads()


def run_sklearn(args):
    from sklearn.neighbors import KNeighborsClassifier

    xt, yt, xv, _ = args
    t0 = time.perf_counter()
    clf = KNeighborsClassifier(
        n_neighbors=K, algorithm="brute", metric="cosine", weights=lambda d: np.exp((1.0 - d) / T), n_jobs=-1
    )
    pred = clf.fit(xt, yt).predict(xv)
    return pred, time.perf_counter() - t0, None


def run_idle(args):
    import sklearn.neighbors  # noqa: F401
    import torch  # noqa: F401

    return None, 0.0, None


def _child(fn, args, queue):
    out = fn(args)
    queue.put((*out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20))  # KiB → GiB


def in_child(fn, args):
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=int, default=50_000)
    p.add_argument("--val", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--skip-sklearn", action="store_true")
    p.add_argument("--out")
    args = p.parse_args()

    data = features(args.train, args.val, args.dim, args.classes)
    base_gb = in_child(run_idle, data)[3]
    ours, t_ours, threads, gb_ours = in_child(run_vjepa, data)
    results = {
        "train": args.train,
        "val": args.val,
        "dim": args.dim,
        "k": K,
        "temperature": T,
        "threads": threads,
        "child_baseline_rss_gb": base_gb,
        "vjepa": {"seconds": t_ours, "peak_rss_gb": gb_ours, "top1": float((ours == data[3]).mean())},
    }
    print(f"{args.train} train x {args.val} val x {args.dim} features, k={K}, T={T}, {threads} threads")
    print(
        f"vjepa.eval.knn     {t_ours:7.2f} s   peak RSS {gb_ours:.2f} GB (idle child with the imports: "
        f"{base_gb:.2f} GB)   top-1 {results['vjepa']['top1']:.4f}"
    )
    if not args.skip_sklearn:
        theirs, t_sk, _, gb_sk = in_child(run_sklearn, data)
        same = int((ours == theirs).sum())
        results["sklearn"] = {"seconds": t_sk, "peak_rss_gb": gb_sk, "top1": float((theirs == data[3]).mean())}
        results["identical_predictions"] = same
        results["speedup"] = t_sk / t_ours
        print(f"scikit-learn  {t_sk:7.2f} s   peak RSS {gb_sk:.2f} GB   top-1 {results['sklearn']['top1']:.4f}")
        print(f"identical predictions: {same} / {len(ours)};  vjepa is {t_sk / t_ours:.1f}x faster")
    write_json(args.out, results)


if __name__ == "__main__":
    main()
