"""The paper-sized study on one GPU within a deadline, with plain `python -m vjepa` commands (no
Snakemake, no DVC): `scripts/gpu_study.sh --data DIR --out DIR [--deadline S] [--device cpu --tiny]`.

prepare → stats → reference (the floors) → the plan (20 timed training steps of every head on the
real data: seconds per step, images/s, model FLOP utilisation against this device's own matmul
peak, peak GPU memory; the plan is printed and refused when it does not fit the deadline) → for
each head train, embed, evaluate → Table I in Markdown and JSON, with the throughput and every
stage's wall time, in the output folder. Every stage runs under what is left of the deadline: one
that would pass it is stopped (a training saves its resume.pt), and the table holds what finished.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .config import load_params
from .errors import ConfigError, DataError, VJepaError

SRC = Path(__file__).resolve().parents[1]
ROOT = SRC.parent
PROFILE = ROOT / "profiles" / "gpu-10min.yaml"
TINY = ROOT / "profiles" / "smoke.yaml"  # --tiny: its model, masking, trunk, budget, evaluation and heads
TINY_SECTIONS = ("model", "mask", "augment", "trunk", "train", "eval", "head")
# The paper's Table I, best validation kNN@1 (%) on Tiny ImageNet-100 (flow matching: no row).
PAPER_TABLE_I = {"deterministic": 9.84, "mdn": 13.96, "rnade": 11.92, "flow": 18.48, "diffusion": 22.36}
RESERVE_S = 15.0  # kept for the table at the end (at most 5 % of the deadline)
STOP_GRACE_S = 30.0  # a stage told to stop at the deadline gets this long (at most the reserve) to save and exit

HELP = """
Data: DIR holds Tiny ImageNet-100 in Hugging Face's parquet layout, train-0000K-of-0000N.parquet
shards and valid.parquet. It may arrive in pieces of at most 64 MiB (one transfer per piece into the
same DIR, e.g. first train-00000-of-00002.parquet with valid.parquet, then train-00001-of-00002.parquet):
the study checks that every shard named by '-of-N' is there before it starts.
Exit status: 0 when every head finished, 3 when the deadline cut the study short (the table holds
the heads that finished), 2 on bad input or a plan that does not fit the deadline.
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/gpu_study.sh", description=__doc__.split("\n\n")[0], epilog=HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder of train-*.parquet shards and valid.parquet")
    p.add_argument("--out", required=True, help="output folder (params, data, runs, logs, table1.md, table1.json)")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds for the whole study (default 600)")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cuda (checked at start) or cpu")
    p.add_argument("--tiny", action="store_true",
                   help=f"the smoke profile's sizes and budget ({TINY.relative_to(ROOT)}) on this data, whose "
                        "classes are renumbered to those its training shards hold: minutes on a CPU")
    p.add_argument("--params", default=str(PROFILE), help="the study's params (default: %(default)s)")
    p.add_argument("--fit", action="store_true",
                   help="when the plan does not fit, lower train.steps (equal for every head) until it does")
    p.add_argument("--timing-steps", type=int, default=20, help="timed training steps per head for the plan")
    p.add_argument("--record", action="store_true",
                   help="also copy the table, params and logs into results/gpu/DATE-DEVICE/ of this checkout, with a "
                        "README of the command and environment (the report shows the newest there)")
    return p.parse_args(argv)


def check_data(folder: Path) -> dict:
    """The parquet files of `folder` by split; DataError naming what is missing."""
    if not folder.is_dir():
        raise DataError(f"--data {folder}: no such folder")
    found = {}
    for split in ("train", "valid"):
        files = sorted(folder.glob(f"{split}-*.parquet")) or sorted(folder.glob(f"{split}.parquet"))
        if not files:
            raise DataError(f"{folder} has no {split}.parquet or {split}-*.parquet; copy Tiny ImageNet-100's "
                            f"{split} files there (see --help for pieces of at most 64 MiB)")
        shards = [re.fullmatch(rf"{split}-(\d+)-of-(\d+)\.parquet", f.name) for f in files]
        if all(shards):
            total = {int(m.group(2)) for m in shards}
            have = {int(m.group(1)) for m in shards}
            missing = sorted(set(range(max(total))) - have) if len(total) == 1 else None
            if missing is None:
                raise DataError(f"{folder}: {split} shards disagree on their count ({sorted(total)})")
            if missing:
                names = ", ".join(f"{split}-{i:05d}-of-{max(total):05d}.parquet" for i in missing)
                raise DataError(f"{folder} lacks {names}; copy it into the same folder (a piece of at most "
                                "64 MiB each) and rerun")
        found[split] = [f.name for f in files]
    return found


def study_params(args, data: Path) -> dict:
    """The profile (or, with --tiny, the smoke profile's sizes) on this data and device."""
    params = yaml.safe_load(Path(args.params).read_text())
    if args.tiny:
        tiny = yaml.safe_load(TINY.read_text())
        params.update({k: tiny[k] for k in TINY_SECTIONS})
        params["data"].update(image_size=tiny["data"]["image_size"], stats_subsample=tiny["data"]["stats_subsample"],
                              num_classes=_classes_of(data))
    params["data"].update(source="tiny-imagenet", path=str(data.resolve()))
    params["train"]["device"] = args.device
    params["seeds"] = params["seeds"][:1]
    return params


def tiny_subset(folder: Path, out: Path) -> Path:
    """A copy of a small Tiny ImageNet-style folder whose labels are the classes its training shards
    hold, numbered 0..K-1 (a few hundred images need not hold all 100), validation rows of other
    classes dropped: out/train.parquet, out/valid.parquet."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    read = lambda split: pa.concat_tables([pq.read_table(f) for f in sorted(folder.glob(f"{split}*.parquet"))])
    train, valid = read("train"), read("valid")
    classes = sorted(set(train.column("label").to_pylist()))
    number = {c: i for i, c in enumerate(classes)}
    valid = valid.filter(pc.is_in(valid.column("label"), value_set=pa.array(classes, pa.int64())))
    out.mkdir(parents=True, exist_ok=True)
    for name, t in (("train", train), ("valid", valid)):
        labels = pa.array([number[c] for c in t.column("label").to_pylist()], pa.int64())
        pq.write_table(t.set_column(t.schema.get_field_index("label"), "label", labels), out / f"{name}.parquet")
    return out


def _classes_of(folder: Path) -> int:
    import pyarrow.parquet as pq

    return len(set(pq.read_table(folder / "train.parquet", columns=["label"]).column("label").to_pylist()))


class Study:
    """The output folder, the clock and the record of every stage."""

    def __init__(self, out: Path, deadline_s: float, params: dict):
        self.out, self.started = out, time.monotonic()
        self.deadline = self.started + deadline_s
        self.reserve = min(RESERVE_S, 0.05 * deadline_s)
        self.params_file = out / "params.yaml"
        self.stages: list[dict] = []
        self.write_params(params)

    def write_params(self, params: dict) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        self.params = load_params(self.params_file)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, *argv: str, keep: float = 0.0) -> bool:
        """`python -m vjepa ARGV` on the study's files, stopped when only the reserve and `keep` more
        seconds of the deadline would be left; its output in logs/NAME.log. True when it succeeded."""
        budget = self.left() - self.reserve - keep
        row = {"stage": name, "seconds": 0.0}
        self.stages.append(row)
        if budget < 1.0:
            row["status"] = "skipped: no time left before the deadline"
            return False
        logs = self.out / "logs"
        logs.mkdir(exist_ok=True)
        cmd = [sys.executable, "-m", "vjepa", *argv, "--params", str(self.params_file), "--data-dir",
               str(self.out / "data"), "--results-dir", str(self.out / "results"), "--quiet"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])}
        t0 = time.monotonic()
        with open(logs / f"{name}.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            row["status"] = _wait(proc, budget, grace=min(STOP_GRACE_S, self.reserve))
        row["seconds"] = time.monotonic() - t0
        print(f"  {name:28s} {row['seconds']:7.1f} s  {row['status']}", flush=True)
        return row["status"] == "ok"


def _wait(proc: subprocess.Popen, budget: float, grace: float = STOP_GRACE_S) -> str:
    """The stage's status; past `budget` it is told to stop (SIGTERM: vjepa train saves its resume.pt at
    the end of the step) and killed `grace` seconds later (the study's reserve covers the grace)."""
    try:
        rc = proc.wait(timeout=budget)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return "stopped at the deadline"
    return "ok" if rc == 0 else f"failed (exit {rc}; see its log)"


def startup_seconds(device_name: str) -> float:
    """Wall time of a fresh Python that imports the training code (and starts CUDA)."""
    code = "import torch, vjepa.train, vjepa.evaluate" + ("; torch.cuda.init()" if device_name == "cuda" else "")
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.monotonic() - t0


def time_heads(study: Study, device_name: str, steps: int) -> dict:
    """Per head: seconds per training step (after 3 warm-up steps), images/s, FLOPs per step, model
    FLOP utilisation against the measured peak, peak GPU memory, and the seconds to embed a few
    batches (for the embed stage's estimate). The real training step on the prepared data."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .batch import BatchStream, make_batch, seed_step
    from .config import resolve
    from .embed import extract_features
    from .jepa import JEPA
    from .masks import MultiBlockMaskSampler
    from .runtime import configure, pick_device
    from .throughput import peak_matmul_flops, sync
    from .train import TrainingData, make_optimizer, training_step

    device = pick_device(device_name)
    configure(device)
    peak = peak_matmul_flops(device)
    data = TrainingData.load(resolve(study.params, None), study.out / "data")  # the same for every head
    images, _ = data.on(device)
    rows = {}
    for head in study.params["heads"]:
        cfg = resolve(study.params, head)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(cfg.seed)
        model = JEPA(cfg).to(device)
        opt = make_optimizer(model, cfg.train.weight_decay, cfg.train.lr, device)
        sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
        stream, gen = BatchStream(len(images), cfg.train.batch_size, cfg.seed), torch.Generator()

        def step(i):
            seed_step(gen, cfg.seed, i)
            batch = make_batch(images, stream.indices(i), cfg, data.stats, sampler, gen)
            training_step(model, model, opt, batch, 0.99, cfg.train.grad_clip)

        for i in range(3):
            step(i)
        sync(device)
        t0 = time.perf_counter()
        for i in range(3, 3 + steps):
            step(i)
        sync(device)
        per_step = (time.perf_counter() - t0) / steps
        with FlopCounterMode(display=False) as counter:
            step(3 + steps)
        flops = counter.get_total_flops()
        n_embed = min(len(images), 4 * cfg.eval.batch_size)
        sync(device)
        t0 = time.perf_counter()
        extract_features(model.encoder, images[:n_embed], data.stats["mean"], data.stats["std"],
                         cfg.data.image_size, cfg.eval.batch_size)
        sync(device)
        embed_per_image = (time.perf_counter() - t0) / n_embed
        rows[head] = {"seconds_per_step": per_step, "images_per_s": cfg.train.batch_size / per_step,
                      "flops_per_step": flops, "tflops": flops / per_step / 1e12, "mfu": flops / per_step / peak,
                      "peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
                      "embed_seconds": embed_per_image * (len(data.train) + len(data.val)),
                      "batch_size": cfg.train.batch_size, "steps": cfg.train.steps,
                      "validates": bool(cfg.train.eval_every)}  # then also at the last step
        del model, opt
    del images
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the trainings run in their own processes
    return {"peak_tflops": peak / 1e12, "peak_dtype": "bf16" if device.type == "cuda" else "fp32", "heads": rows}


def plan(timing: dict, overhead_s: float, evaluate_s: float, steps: int | None = None) -> dict:
    """Expected seconds per head (training with its validation at the last step, then embed and
    evaluate) for `steps` (default: the params')."""
    heads = {}
    for head, t in timing["heads"].items():
        n = t["steps"] if steps is None else steps
        validation = t["embed_seconds"] + evaluate_s / 2 if t.get("validates") else 0.0  # kNN of one feature set
        heads[head] = {"steps": n, "images": n * t["batch_size"],
                       "train_s": overhead_s + n * t["seconds_per_step"] + validation,
                       "eval_s": 2 * overhead_s + t["embed_seconds"] + evaluate_s}
    return {"heads": heads, "total_s": sum(h["train_s"] + h["eval_s"] for h in heads.values())}


def fitted_steps(timing: dict, overhead_s: float, evaluate_s: float, budget_s: float) -> int:
    """The largest number of steps (the same for every head) whose plan fits `budget_s`."""
    fixed = plan(timing, overhead_s, evaluate_s, steps=0)["total_s"]
    per_step = sum(t["seconds_per_step"] for t in timing["heads"].values())
    return int(max(0.0, budget_s - fixed) / per_step + 1e-9)  # not //: 158 // 0.4 is 394.0 in floating point


def print_plan(p: dict, left_s: float, deadline_s: float) -> None:
    print(f"plan (deadline {deadline_s:.0f} s, {left_s:.0f} s left):")
    print(f"  {'head':14s} {'steps':>6s} {'images':>9s} {'train s':>8s} {'embed+eval s':>12s}")
    for head, h in p["heads"].items():
        print(f"  {head:14s} {h['steps']:6d} {h['images']:9d} {h['train_s']:8.1f} {h['eval_s']:12.1f}")
    print(f"  {'all heads':14s} {'':6s} {'':9s} {p['total_s']:21.1f} s expected", flush=True)


def table(study: Study, timing: dict | None) -> dict:
    """Table I from the runs' metrics.json and the floors, with the throughput of each head."""
    results = study.out / "results"
    seed = study.params["seeds"][0]
    rows = {}
    for head in study.params["heads"]:
        f = results / "heads" / head / f"seed{seed}" / "metrics.json"
        if not f.is_file():
            rows[head] = {"finished": False, "paper_knn_top1": PAPER_TABLE_I.get(head)}
            continue
        m = json.loads(f.read_text())
        nll = (m.get("head_metrics") or {}).get("nll_per_dim")
        rows[head] = {"finished": True, "knn_top1": m["knn_top1"], "knn_top5": m["knn_top5"],
                      "probe_top1": m.get("probe_top1"), "nll_per_dim": nll, "step": m.get("step"),
                      "paper_knn_top1": PAPER_TABLE_I.get(head)}
        if timing:
            rows[head]["throughput"] = timing["heads"][head]
    ref = results / "reference" / "metrics.json"
    floors = None
    if ref.is_file():
        r = json.loads(ref.read_text())
        floors = {name: {"knn_top1": r[name]["top1"], "probe_top1": r[name].get("probe_top1")}
                  for name in ("raw_pixels", "random_init")}
    return {"heads": rows, "floors": floors}


def markdown(record: dict) -> str:
    pct = lambda v: "—" if v is None else f"{100 * v:.2f}"
    t = record["table"]
    lines = [f"# Table I: {record['device']}, {record['date']}", "",
             f"`{record['command']}` — {record['wall_s']:.0f} s in all (deadline {record['deadline_s']:.0f} s); "
             f"{'every head finished' if record['complete'] else 'the deadline cut the study short'}.", "",
             "| head | kNN top-1 | kNN top-5 | probe top-1 | NLL/dim | paper kNN@1 | images/s | MFU | peak GB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for head, r in t["heads"].items():
        th = r.get("throughput") or (record.get("timing") or {}).get("heads", {}).get(head, {})
        speed = (f"{th['images_per_s']:.0f} | {100 * th['mfu']:.1f} % | "
                 + ("—" if th.get("peak_memory_gb") is None else f"{th['peak_memory_gb']:.1f}")) if th else "— | — | —"
        if not r["finished"]:
            lines.append(f"| {head} | not finished | | | | {r.get('paper_knn_top1') or '—'} | {speed} |")
            continue
        nll = "—" if r["nll_per_dim"] is None else f"{r['nll_per_dim']:.3f}"
        lines.append(f"| {head} | {pct(r['knn_top1'])} | {pct(r['knn_top5'])} | {pct(r['probe_top1'])} | {nll} | "
                     f"{r['paper_knn_top1'] if r['paper_knn_top1'] is not None else '—'} | {speed} |")
    for name, label in (("raw_pixels", "raw pixels (floor)"), ("random_init", "untrained encoder (floor)")):
        if t["floors"]:
            f = t["floors"][name]
            lines.append(f"| {label} | {pct(f['knn_top1'])} | | {pct(f['probe_top1'])} | | | | | |")
    lines += ["", f"MFU against this device's measured {record['timing']['peak_dtype']} matmul peak, "
              f"{record['timing']['peak_tflops']:.1f} TFLOP/s." if record.get("timing") else "", "",
              "| stage | seconds | status |", "|---|---|---|"]
    lines += [f"| {s['stage']} | {s['seconds']:.1f} | {s['status']} |" for s in record["stages"]]
    return "\n".join(lines) + "\n"


def write_record(study: Study, record: dict) -> None:
    record["wall_s"] = time.monotonic() - study.started
    record["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record["stages"] = study.stages
    record["table"] = table(study, record.get("timing"))
    record["complete"] = all(r["finished"] for r in record["table"]["heads"].values())
    (study.out / "table1.json").write_text(json.dumps(record, indent=2))
    (study.out / "table1.md").write_text(markdown(record))


def record_in_results(out: Path, record: dict, results: Path = ROOT / "results" / "gpu") -> Path:
    """results/gpu/DATE-DEVICE/: table1.md, table1.json, params.yaml, logs/ and a README."""
    slug = re.sub(r"[^a-z0-9]+", "-", record["device"].lower()).strip("-")
    dest, n = results / f"{record['date']}-{slug}", 1
    while dest.exists():  # a second study on the same day and device
        n += 1
        dest = results / f"{record['date']}-{slug}-{n}"
    (dest / "logs").mkdir(parents=True)
    for name in ("table1.md", "table1.json", "params.yaml"):
        (dest / name).write_bytes((out / name).read_bytes())
    for log in (out / "logs").glob("*.log"):
        (dest / "logs" / log.name).write_bytes(log.read_bytes())
    (dest / "README.md").write_text(
        f"# GPU study, {record['date']}, {record['device']}\n\n"
        f"Command: `{record['command']}`\n\n"
        f"Environment: PyTorch {record['torch']}, CUDA {record['cuda']}, Python {record['python']}; "
        f"{record['wall_s']:.0f} s in all against a deadline of {record['deadline_s']:.0f} s"
        + ("" if record["complete"] else " (the deadline cut it short)") + ".\n\n"
        "table1.md is Table I with the throughput and each stage's wall time; table1.json holds the same and the "
        "plan; params.yaml the study's params; logs/ every command's output.\n")
    return dest


def environment(device_name: str) -> dict:
    import torch

    name = torch.cuda.get_device_name() if device_name == "cuda" else platform.processor() or "cpu"
    return {"device": name, "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.version.cuda if device_name == "cuda" else None}


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return _main(args, argv)
    except VJepaError as e:
        print(f"gpu_study: error: {e}", file=sys.stderr)
        return 2


def _main(args, argv) -> int:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"no CUDA GPU is visible to PyTorch {torch.__version__}; on a CPU run "
                          "--device cpu --tiny to check the script")
    check_data(Path(args.data))
    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise ConfigError(f"--out {args.out} is not empty; give a new folder (a study's table holds only its own runs)")
    data = tiny_subset(Path(args.data), Path(args.out) / "tiny-data") if args.tiny else Path(args.data)
    study = Study(Path(args.out), args.deadline, study_params(args, data))
    record = {**environment(args.device), "date": datetime.date.today().isoformat(),
              "command": " ".join(["scripts/gpu_study.sh", *(sys.argv[1:] if argv is None else argv)]),
              "deadline_s": args.deadline, "params": str(study.params_file)}
    print(f"gpu_study on {record['device']} (PyTorch {record['torch']}), deadline {args.deadline:.0f} s -> {study.out}")
    for name in ("prepare", "stats", "reference"):
        if not study.run(name, name):
            write_record(study, record)
            raise DataError(f"`vjepa {name}` did not succeed ({study.stages[-1]['status']}); "
                            f"see {study.out / 'logs' / (name + '.log')}")
    overhead = startup_seconds(args.device)  # what every training, embed and evaluate command costs before work
    study.stages.append({"stage": "command start-up (measured)", "seconds": overhead, "status": "ok"})
    evaluate_s = next(s["seconds"] for s in study.stages if s["stage"] == "reference")  # kNN and probe, twice
    t0 = time.monotonic()
    try:
        record["timing"] = time_heads(study, args.device, args.timing_steps)
    except torch.cuda.OutOfMemoryError:
        write_record(study, record)
        raise ConfigError(f"out of GPU memory while timing the heads at train.batch_size = "
                          f"{study.params['train']['batch_size']}; lower it (--params)") from None
    study.stages.append({"stage": "plan (timed steps)", "seconds": time.monotonic() - t0, "status": "ok"})
    p = plan(record["timing"], overhead, evaluate_s)
    budget = study.left() - study.reserve  # one reading of the clock for the fit and the check
    if p["total_s"] > budget and args.fit:
        steps = fitted_steps(record["timing"], overhead, evaluate_s, budget)
        if steps >= 10:
            params = json.loads(json.dumps(study.params))
            t = params["train"]
            t.update(steps=steps, warmup_steps=max(1, min(t["warmup_steps"], steps // 10)), eval_every=steps,
                     ckpt_every=max(1, steps // 2))
            study.write_params(params)
            for row in record["timing"]["heads"].values():
                row["steps"] = steps
            p = plan(record["timing"], overhead, evaluate_s)
            record["fitted_steps"] = steps
    record["plan"] = p
    t, m = study.params["train"], study.params["model"]
    record["setup"] = {"image_size": study.params["data"]["image_size"], "patch_size": m["patch_size"],
                       "embed_dim": m["embed_dim"], "depth": m["depth"], "num_heads": m["num_heads"],
                       "batch_size": t["batch_size"], "steps": t["steps"], "images_per_head": t["batch_size"] * t["steps"],
                       "tiny": args.tiny}
    print_plan(p, budget + study.reserve, args.deadline)
    if p["total_s"] > budget:
        write_record(study, record)
        advice = ("even --fit leaves fewer than 10 steps; raise --deadline" if args.fit else
                  f"raise --deadline, lower train.steps (--params {args.params}), or pass --fit")
        raise ConfigError(f"the plan needs {p['total_s']:.0f} s but {budget:.0f} s of the {args.deadline:.0f} s "
                          f"deadline are left; {advice}")
    for head in study.params["heads"]:
        expect = p["heads"][head]["eval_s"]
        if study.run(f"train-{head}", "train", "--head", head, keep=expect):
            study.run(f"embed-{head}", "embed", "--head", head) and study.run(f"evaluate-{head}", "evaluate",
                                                                              "--head", head)
    write_record(study, record)
    if args.record:
        print(f"recorded in {record_in_results(study.out, record)}")
    print(f"Table I -> {study.out / 'table1.md'} ({record['wall_s']:.0f} s)")
    print((study.out / "table1.md").read_text())
    return 0 if record["complete"] else 3


if __name__ == "__main__":
    sys.exit(main())
