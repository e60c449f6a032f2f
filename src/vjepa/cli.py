"""The `vjepa` command: one sub-command per pipeline stage, each reading files and writing files."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import load_params, parse_yaml, resolve, set_dotted, validate
from .errors import VJepaError


def _params(args) -> dict:
    params = load_params(args.params)
    if args.set:
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise VJepaError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.steps=100")
            set_dotted(params, key, parse_yaml(value))
        validate(params, f"{args.params} with --set {' '.join(args.set)}")
    return params


def cmd_check_params(args) -> None:
    params = _params(args)
    print(f"{args.params}: valid (heads: {', '.join(params['heads'])})")


def cmd_prepare(args) -> None:
    from .data import prepare

    d = _params(args)["data"]
    summary = prepare(d["source"], Path(args.data_dir) / "processed", image_size=d["image_size"],
                      num_classes=d["num_classes"], path=d["path"], val_fraction=d["val_fraction"],
                      split_seed=d["split_seed"])
    print(f"prepared {summary}")


def cmd_stats(args) -> None:
    from .data import compute_stats

    params = _params(args)
    data_dir = Path(args.data_dir)
    stats = compute_stats(data_dir / "processed" / "train.npz", data_dir / "stats.json",
                          subsample=params["data"]["stats_subsample"], seed=params["seed"])
    print(f"stats: mean {[round(m, 4) for m in stats['mean']]} std {[round(s, 4) for s in stats['std']]}")


def cmd_train(args) -> None:
    from .train import train

    cfg = resolve(_params(args), args.head)
    out = Path(args.results_dir) / args.head
    result = train(cfg, args.data_dir, out, fresh=args.fresh, progress=not args.quiet)
    last = result["history"][-1]["knn_top1"] if result["history"] else None
    print(f"trained {args.head} to step {result['step']} -> {out / 'checkpoint.pt'}"
          + (f" (val kNN top-1 {last:.4f})" if last is not None else ""))


def cmd_embed(args) -> None:
    from .embed import embed

    _params(args)  # refuse bad params before any work, as every stage does
    out_dir = Path(args.results_dir) / args.head
    out = Path(args.out) if args.out else out_dir / ("embeddings_init.npz" if args.random_init else "embeddings.npz")
    info = embed(out_dir / "checkpoint.pt", args.data_dir, out, random_init=args.random_init,
                 progress=not args.quiet)
    print(f"embedded {info['n_train']} train + {info['n_val']} val images ({info['dim']}-d) -> {out}")


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate

    cfg = resolve(_params(args), args.head)
    out_dir = Path(args.results_dir) / args.head
    emb = Path(args.embeddings) if args.embeddings else out_dir / "embeddings.npz"
    out = Path(args.out) if args.out else out_dir / "metrics.json"
    ckpt = None if args.knn_only else out_dir / "checkpoint.pt"
    m = evaluate(emb, out, cfg, checkpoint_path=ckpt, data_dir=args.data_dir)
    print(f"{args.head}: kNN top-1 {m['knn_top1']:.4f}, top-5 {m['knn_top5']:.4f} -> {out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vjepa", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    common.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override one setting, e.g. --set train.steps=100 (repeatable)")
    common.add_argument("--data-dir", default="data", help="prepared data folder (default: data)")
    common.add_argument("--results-dir", default="results", help="per-head results folder (default: results)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_, head=False):
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        if head:
            sp.add_argument("--head", required=True, help="predictor head, e.g. deterministic")
        sp.set_defaults(func=func)
        return sp

    add("check-params", cmd_check_params, "validate the params file and exit")
    add("prepare", cmd_prepare, "download/read the data source into data/processed/{train,val}.npz")
    add("stats", cmd_stats, "per-channel mean/std of the training images into data/stats.json")
    sp = add("train", cmd_train, "train one head; resumes an interrupted run of the same params", head=True)
    sp.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start from step 0")
    sp = add("embed", cmd_embed, "frozen-encoder features of train and val into results/HEAD/embeddings.npz",
             head=True)
    sp.add_argument("--random-init", action="store_true", help="embed with the untrained (step 0) encoder")
    sp.add_argument("--out", help="output .npz (default: results/HEAD/embeddings.npz)")
    sp = add("evaluate", cmd_evaluate, "weighted kNN top-1/top-5 into results/HEAD/metrics.json", head=True)
    sp.add_argument("--embeddings", help="features .npz (default: results/HEAD/embeddings.npz)")
    sp.add_argument("--out", help="output JSON (default: results/HEAD/metrics.json)")
    sp.add_argument("--knn-only", action="store_true",
                    help="skip the head's held-out distribution metrics (e.g. for random-init features)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except VJepaError as e:
        print(f"vjepa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vjepa: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
