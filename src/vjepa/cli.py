"""The `vjepa` command: one sub-command per pipeline stage, each reading files and writing files."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from vjepa.core import audit, launch
from vjepa.core.config import load_params, parse_yaml, resolve, set_dotted, validate
from vjepa.core.errors import VJepaError
from vjepa.core.io import exclusive_use, run_dir
from vjepa.pipeline.gpus import GPU_COMMANDS, claim_gpu, keep_claims_across_exec


def _params(args) -> dict:
    params = load_params(args.params)
    if args.set:
        for item in args.set:
            key, sep, value = item.partition("=")
            if not sep:
                raise VJepaError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.steps=100")
            set_dotted(params, key, parse_yaml(value))
        validate(params, f"{args.params} with --set {' '.join(args.set)}")
    audit.start()  # what the command reads from here on (validation reads everything)
    return audit.watch(params)


def _run(args, params: dict):
    """(Config of the training run, its folder) for --head and --seed (default: the first of `seeds`)."""
    seed = params["seeds"][0] if args.seed is None else args.seed
    return resolve(params, args.head, seed), run_dir(args.results_dir, args.head, seed)


def cmd_check_params(args) -> None:
    params = _params(args)
    print(f"{args.params}: valid (heads: {', '.join(params['heads'])})")


def cmd_prepare(args) -> None:
    from vjepa.data.sources import prepare

    d = _params(args)["data"]
    summary = prepare(
        d["source"],
        Path(args.data_dir) / "processed",
        image_size=d["image_size"],
        num_classes=d["num_classes"],
        path=d["path"],
        val_fraction=d["val_fraction"],
        split_seed=d["split_seed"],
    )
    print(f"prepared {summary}")


def cmd_stats(args) -> None:
    from vjepa.data.sources import compute_stats

    params = _params(args)
    data_dir = Path(args.data_dir)
    stats = compute_stats(
        data_dir / "processed" / "train.npz",
        data_dir / "stats.json",
        subsample=params["data"]["stats_subsample"],
        seed=params["seed"],
    )
    print(f"stats: mean {[round(m, 4) for m in stats['mean']]} std {[round(s, 4) for s in stats['std']]}")


def cmd_train(args) -> None:
    from vjepa.core import distributed
    from vjepa.training.train import train

    params = _params(args)
    cfg, out = _run(args, params)
    spec = params["launch"]
    if not launch.launched():  # before CUDA starts: this job's own GPUs when several are shared
        claim_gpu(count=spec["nproc"])
    command = launch.launcher(spec, args.argv, cfg.train.device, args.threads)
    if command is not None:  # this process becomes torchrun (or srun), which starts the ranks
        print(f"vjepa: launching {' '.join(command)}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        keep_claims_across_exec()
        os.execve(command[0], command, launch.environment(spec, args.threads))
    world = distributed.start(cfg.train.device, spec["backend"])
    lock = exclusive_use(out, f"`vjepa train --head {args.head} --seed {cfg.seed}`") if world.main else None
    laps = os.environ.get("VJEPA_TRAIN_LAPS")  # the GPU study's plan: the loop's parts timed, to this JSON file
    clock = None
    if laps:
        from vjepa.core.runtime import pick_device
        from vjepa.training.train import PhaseClock

        clock = PhaseClock(pick_device(cfg.train.device))
    try:
        with lock or contextlib.nullcontext():
            result = train(cfg, args.data_dir, out, fresh=args.fresh, progress=not args.quiet, clock=clock)
    finally:
        distributed.stop()
    if clock is not None:
        Path(laps).write_text(json.dumps(clock.laps))
    if not world.main:
        return
    last = result["history"][-1]["knn_top1"] if result["history"] else None
    print(
        f"trained {args.head} (seed {cfg.seed}) to step {result['step']} -> {out / 'checkpoint.pt'}"
        + (f" (val kNN top-1 {last:.4f})" if last is not None else "")
    )


def cmd_embed(args) -> None:
    from vjepa.core import distributed
    from vjepa.eval.embed import embed

    params = _params(args)
    cfg, out_dir = _run(args, params)  # refuse bad params before any work, as every stage does
    if launch.launched():  # under torchrun: each rank embeds a share, rank 0 writes
        distributed.start(cfg.train.device, params["launch"]["backend"])
    out = Path(args.out) if args.out else out_dir / ("embeddings_init.npz" if args.random_init else "embeddings.npz")
    try:
        info = embed(
            out_dir / "checkpoint.pt",
            args.data_dir,
            out,
            random_init=args.random_init,
            device=cfg.train.device,
            progress=not args.quiet,
            expect=cfg,
        )
    finally:
        distributed.stop()
    if launch.is_main_rank():
        print(f"embedded {info['n_train']} train + {info['n_val']} val images ({info['dim']}-d) -> {out}")


def cmd_evaluate(args) -> None:
    from vjepa.eval.evaluate import evaluate

    params = _params(args)
    cfg, out_dir = _run(args, params)
    emb = Path(args.embeddings) if args.embeddings else out_dir / "embeddings.npz"
    out = Path(args.out) if args.out else out_dir / "metrics.json"
    ckpt = out_dir / "checkpoint.pt"  # --knn-only: what training reported, if it was trained; no head metrics
    m = evaluate(
        emb,
        out,
        cfg,
        checkpoint_path=ckpt if ckpt.is_file() or not args.knn_only else None,
        data_dir=args.data_dir,
        eval_seed=params["seed"],
        score_head=not args.knn_only,
    )
    print(f"{args.head}: kNN top-1 {m['knn_top1']:.4f}, top-5 {m['knn_top5']:.4f} -> {out}")


def cmd_ablate(args) -> None:
    from vjepa.training.ablation import run_point

    m = run_point(_params(args), args.area, args.blocks, args.data_dir, args.results_dir, progress=not args.quiet)
    print(
        f"ablation area {args.area}, {args.blocks} blocks: kNN top-1 {m['knn_top1']:.4f}, "
        f"probe top-1 {m['probe_top1']:.4f}"
    )


def cmd_reference(args) -> None:
    from vjepa.eval.reference import reference

    cfg = resolve(_params(args), None)
    out = Path(args.out) if args.out else Path(args.results_dir) / "reference" / "metrics.json"
    r = reference(cfg, args.data_dir, out)
    print(
        f"reference kNN top-1: raw pixels {r['raw_pixels']['top1']:.4f}, "
        f"untrained encoder {r['random_init']['top1']:.4f} -> {out}"
    )


def cmd_summarize(args) -> None:
    from vjepa.report.summarize import summarize

    params = _params(args)
    out = Path(args.out) if args.out else Path(args.results_dir) / "metrics.json"
    written = summarize(params, Path(args.results_dir), out, args.tex_dir)
    print(
        f"summary of {len(params['heads'])} heads x {len(params['seeds'])} seeds -> {out}, "
        f"{', '.join(map(str, written))}"
    )


def cmd_samples(args) -> None:
    from vjepa.eval.samples import draw_samples

    params = _params(args)
    cfg, out_dir = _run(args, params)
    out = out_dir / "samples.npz"
    info = draw_samples(
        out_dir / "checkpoint.pt",
        args.data_dir,
        out,
        num_samples=params["figures"]["num_samples"],
        batch_images=params["figures"]["batch_images"],
        device=cfg.train.device,
        seed=params["seed"],
        expect=cfg,
    )
    print(f"{args.head}: {info['token_draws']} draws of one token, {info['tokens']} batch tokens -> {out}")


def cmd_figure(args) -> None:
    from vjepa.report.figures import FIGURES, FigureContext, figure_names, render

    params = _params(args)
    if args.name not in FIGURES:
        raise VJepaError(f"unknown figure '{args.name}'; choose one of {', '.join(FIGURES)}")
    with audit.paused():  # a check that refuses decides nothing about the figure
        if args.name not in figure_names(params["heads"]):
            raise VJepaError(f"figure '{args.name}' needs the mdn head in `heads`")
    paths = render(args.name, FigureContext(params, Path(args.data_dir), Path(args.results_dir)), args.out_dir)
    print(f"figure {args.name} -> {', '.join(map(str, paths))}")


def cmd_report(args) -> None:
    from vjepa.report.latex import build_pdf, write_context

    params = _params(args)
    tex = Path(args.tex)
    if not tex.is_file():
        raise VJepaError(f"report source '{tex}' not found; run from the project folder")
    write_context(params, args.params, args.data_dir, args.results_dir, args.logs_dir, tex.parent / "generated")
    print(f"report -> {build_pdf(tex)}")


def cmd_dvc_yaml(args) -> None:
    from vjepa.pipeline.dvcfile import write

    params = _params(args)
    current = write(params, args.out, check=args.check)
    if args.check and not current:
        raise VJepaError(
            f"{args.out} is not what the stage table gives for {args.params}; "
            "run `python -m vjepa dvc-yaml` to write it"
        )
    print(f"{args.out}: {'up to date' if current else 'written'}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vjepa", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    common.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set train.steps=100 (repeatable)",
    )
    common.add_argument("--data-dir", default="data", help="prepared data folder (default: data)")
    common.add_argument(
        "--results-dir",
        default="results",
        help="results folder: heads/HEAD/seedN/, reference/, metrics.json (default: results)",
    )
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    common.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads for PyTorch (default: PyTorch's choice, usually all cores)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_, head=False):
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        if head:
            sp.add_argument("--head", required=True, help="predictor head, e.g. deterministic")
            sp.add_argument("--seed", type=int, help="training seed of the run (default: the first of `seeds`)")
        sp.set_defaults(func=func)
        return sp

    add("check-params", cmd_check_params, "validate the params file and exit")
    add("prepare", cmd_prepare, "download/read the data source into data/processed/{train,val}.npz")
    add("stats", cmd_stats, "per-channel mean/std of the training images into data/stats.json")
    sp = add("train", cmd_train, "train one head; resumes an interrupted run of the same params", head=True)
    sp.add_argument("--fresh", action="store_true", help="ignore existing checkpoints and start from step 0")
    sp = add(
        "embed",
        cmd_embed,
        "frozen-encoder features of train and val into results/heads/HEAD/seedN/embeddings.npz",
        head=True,
    )
    sp.add_argument("--random-init", action="store_true", help="embed with the untrained (step 0) encoder")
    sp.add_argument("--out", help="output .npz (default: results/heads/HEAD/seedN/embeddings.npz)")
    sp = add("evaluate", cmd_evaluate, "weighted kNN top-1/top-5 into results/heads/HEAD/seedN/metrics.json", head=True)
    sp.add_argument("--embeddings", help="features .npz (default: results/heads/HEAD/seedN/embeddings.npz)")
    sp.add_argument("--out", help="output JSON (default: results/heads/HEAD/seedN/metrics.json)")
    sp.add_argument(
        "--knn-only",
        action="store_true",
        help="skip the head's held-out distribution metrics (e.g. for random-init features)",
    )
    sp = add(
        "ablate",
        cmd_ablate,
        "one point of the masking sweep: train ablation.head with that masking, then kNN "
        "and probe into results/ablation/areaA_blocksB.json",
    )
    sp.add_argument(
        "--area", type=float, required=True, help="target block area fraction (one of ablation.target_area)"
    )
    sp.add_argument("--blocks", type=int, required=True, help="number of target blocks (one of ablation.num_targets)")
    sp = add(
        "reference", cmd_reference, "kNN floors (raw pixels, untrained encoder) into results/reference/metrics.json"
    )
    sp.add_argument("--out", help="output JSON (default: results/reference/metrics.json)")
    sp = add("summarize", cmd_summarize, "Table I: every head's metrics into results/metrics.json and LaTeX")
    sp.add_argument("--out", help="output JSON (default: results/metrics.json)")
    sp.add_argument(
        "--tex-dir",
        default="report/generated",
        help="folder of the LaTeX it writes: table1.tex (Table I), numbers.tex (macros of the numbers "
        "the report quotes), uncertainty.tex, comparison.tex (default: %(default)s)",
    )
    add(
        "samples",
        cmd_samples,
        "draws and targets for the distribution figures into results/heads/HEAD/seedN/samples.npz",
        head=True,
    )
    sp = add("figure", cmd_figure, "plot one figure into report/figures/NAME.pdf and .png")
    sp.add_argument("name", help="figure name, e.g. losses, knn, masks, heads_grid, mdn_pca")
    sp.add_argument("--out-dir", default="report/figures", help="output folder (default: %(default)s)")
    sp = add("report", cmd_report, "generated LaTeX (setup, figures, provenance) and the PDF via latexmk")
    sp.add_argument("--tex", default="report/vjepa.tex", help="LaTeX source (default: %(default)s)")
    sp.add_argument("--logs-dir", default="logs", help="Snakemake logs with benchmark files (default: %(default)s)")
    sp = add(
        "dvc-yaml", cmd_dvc_yaml, "write dvc.yaml from the stage table (src/vjepa/pipeline/stages.py) and the imports"
    )
    sp.add_argument("--out", default="dvc.yaml", help="output file (default: %(default)s)")
    sp.add_argument("--check", action="store_true", help="only compare; fail when the file differs")
    return p


def _run_name(args) -> str:
    """The command and what it ran on, e.g. train@mdn-0, ablate@0.25-4, figure@knn."""
    parts = [getattr(args, k) for k in ("head", "seed", "area", "blocks", "name") if getattr(args, k, None) is not None]
    return args.command + ("@" + "-".join(map(str, parts)) if parts else "")


# The commands that run as several processes under torchrun; every other one runs alone.
DISTRIBUTED_COMMANDS = ("train", "embed")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if launch.launched() and args.command not in DISTRIBUTED_COMMANDS:
        print(
            f"vjepa: error: `vjepa {args.command}` runs as one process; under torchrun only "
            f"{' and '.join(DISTRIBUTED_COMMANDS)} do",
            file=sys.stderr,
        )
        return 2
    if args.threads is not None:
        if args.threads < 1:
            print(f"vjepa: error: --threads {args.threads}: give a positive number of threads", file=sys.stderr)
            return 2
        launch.limit_threads(launch.rank_threads(args.threads))  # a rank's share of the job's threads
    try:
        if args.command in GPU_COMMANDS and args.command != "train" and not launch.launched():
            claim_gpu()  # before CUDA starts: this job's own GPU when several are shared (train: its own count)
        args.func(args)
        if launch.is_main_rank():
            audit.write(_run_name(args), args.argv)
    except VJepaError as e:
        print(f"vjepa: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vjepa: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
