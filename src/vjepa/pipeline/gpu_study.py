"""The paper-sized study on one GPU within a deadline, with plain `python -m vjepa` commands (no
Snakemake, no DVC): `scripts/gpu_study.sh --data DIR --out DIR [--deadline S] [--device cpu --tiny]`.

preflight (interpreter and versions) → prepare → stats → reference (the floors) → the plan (a short
run of the real training loop of every head on the real data, its logging, host syncs, checkpoint
saves and in-training kNN each timed; one head's real embed and evaluation on its feature size and
every head's held-out scoring; images/s, model FLOP utilisation against this device's own matmul
peak, peak GPU memory; the plan is printed and refused when it does not fit the deadline; a head
that runs out of GPU memory is skipped) → for each head train, embed, evaluate → Table I in
Markdown and JSON, with the throughput, every stage's wall time and the plan against it, in the
output folder. The deadline counts from the start of scripts/gpu_study.sh (VJEPA_STUDY_STARTED).
Every stage runs under what is left of it: one that would pass it is stopped (a training saves its
resume.pt), and the table holds what finished.
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

from vjepa.core.config import load_params
from vjepa.core.errors import ConfigError, DataError, VJepaError

SRC = Path(__file__).resolve().parents[2]
ROOT = SRC.parent
PROFILE = ROOT / "profiles" / "gpu-10min.yaml"
TINY = ROOT / "profiles" / "smoke.yaml"  # --tiny: its model, masking, trunk, budget, evaluation and heads
TINY_SECTIONS = ("model", "mask", "augment", "trunk", "train", "eval", "head")
# The paper's Table I, best validation kNN@1 (%) on Tiny ImageNet-100 (flow matching: no row).
PAPER_TABLE_I = {"deterministic": 9.84, "mdn": 13.96, "rnade": 11.92, "flow": 18.48, "diffusion": 22.36}
RESERVE_S = 15.0  # kept for the table at the end (at most 5 % of the deadline)
STOP_GRACE_S = 30.0  # a stage told to stop at the deadline gets this long (at most the reserve) to save and exit
STARTED_ENV = "VJEPA_STUDY_STARTED"  # epoch seconds at which the study's command started (gpu_study.sh sets it)
WARMUP_STEPS = 3  # the timing run's first steps, slower (allocator, autotuning), charged once
# The timing run's events, each often enough to be timed: a log snapshot every 5 steps, a save every 10.
TIMING_LOG_EVERY, TIMING_CKPT_EVERY = 5, 10
# What the study needs beside PyTorch (import name, least version, why).
REQUIREMENTS = (
    ("numpy", None, ""),
    ("scipy", "1.10", "spearmanr(...).statistic"),
    ("PIL", None, ""),
    ("tensorboard", None, ""),
    ("yaml", None, ""),
    ("pyarrow", None, ""),
    ("sklearn", None, ""),
    ("tqdm", None, ""),
)

HELP = """
Data: DIR holds Tiny ImageNet-100 in Hugging Face's parquet layout, train-0000K-of-0000N.parquet
shards and valid.parquet, in DIR or in DIR/data/ (a Hugging Face snapshot). It may arrive in pieces
of at most 64 MiB (one transfer per piece into the same DIR, e.g. first train-00000-of-00002.parquet
with valid.parquet, then train-00001-of-00002.parquet): the study checks that every shard named by
'-of-N' is there before it starts.
Output: --out gets only what is small (table1.md, table1.json, params.yaml, logs/, README.md; on a
machine that returns only what is written under $OUT, give --out "$OUT/study"); the prepared data,
checkpoints and features go to --work (default: a work/ folder inside --out). scripts/gpu_recipe.md
is the recipe for a bare GPU machine reached through a 10-minute, 64-MiB-per-transfer tool.
Exit status: 0 when every head finished, 3 when the deadline cut the study short or a head ran out of
GPU memory (the table holds the heads that finished), 2 on bad input or a plan that does not fit.
"""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="scripts/gpu_study.sh",
        description=__doc__.split("\n\n")[0],
        epilog=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="folder of train-*.parquet shards and valid.parquet")
    p.add_argument("--out", required=True, help="output folder: table1.md, table1.json, params.yaml, logs/, README.md")
    p.add_argument(
        "--work",
        default=None,
        help="folder for the prepared data, runs and checkpoints (default: OUT/work); on a machine that "
        "returns all of $OUT, put it outside $OUT",
    )
    p.add_argument(
        "--deadline",
        type=float,
        default=600.0,
        help=f"seconds for the whole study, counted from the start of scripts/gpu_study.sh (or "
        f"${STARTED_ENV}; default 600)",
    )
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cuda (checked at start) or cpu")
    p.add_argument(
        "--tiny",
        action="store_true",
        help=f"the smoke profile's sizes and budget ({TINY.relative_to(ROOT)}) on this data, whose "
        "classes are renumbered to those its training shards hold: minutes on a CPU",
    )
    p.add_argument("--params", default=str(PROFILE), help="the study's params (default: %(default)s)")
    p.add_argument(
        "--fit",
        action="store_true",
        help="when the plan does not fit, lower train.steps (equal for every head) until it does",
    )
    p.add_argument(
        "--timing-steps",
        type=int,
        default=20,
        help=f"timed steps of each head's timing run (after {WARMUP_STEPS} warm-up steps)",
    )
    p.add_argument(
        "--record",
        action="store_true",
        help="also copy --out (table, params, logs, README) into results/gpu/DATE-DEVICE/ of this checkout "
        "(the report shows the newest there); on a remote machine land the returned folder instead: "
        "bash scripts/gpu_recipe.sh land DIR",
    )
    return p.parse_args(argv)


def data_folder(folder: Path) -> Path:
    """`folder`, or its data/ sub-folder when the shards are there (a Hugging Face snapshot; as vjepa.data.sources)."""
    if not list(folder.glob("train*.parquet")) and list((folder / "data").glob("train*.parquet")):
        return folder / "data"
    return folder


def check_data(folder: Path) -> dict:
    """The parquet files of `folder` (or of folder/data/) by split; DataError naming what is missing."""
    if not folder.is_dir():
        raise DataError(f"--data {folder}: no such folder")
    folder = data_folder(folder)
    found = {}
    for split in ("train", "valid"):
        files = sorted(folder.glob(f"{split}-*.parquet")) or sorted(folder.glob(f"{split}.parquet"))
        if not files:
            raise DataError(
                f"{folder} has no {split}.parquet or {split}-*.parquet; copy Tiny ImageNet-100's "
                f"{split} files there (see --help for pieces of at most 64 MiB)"
            )
        shards = [re.fullmatch(rf"{split}-(\d+)-of-(\d+)(?:-[0-9a-f]+)?\.parquet", f.name) for f in files]
        if all(shards):
            total = {int(m.group(2)) for m in shards}
            have = {int(m.group(1)) for m in shards}
            missing = sorted(set(range(max(total))) - have) if len(total) == 1 else None
            if missing is None:
                raise DataError(f"{folder}: {split} shards disagree on their count ({sorted(total)})")
            if missing:
                names = ", ".join(f"{split}-{i:05d}-of-{max(total):05d}.parquet" for i in missing)
                raise DataError(
                    f"{folder} lacks {names}; copy it into the same folder (a piece of at most 64 MiB each) and rerun"
                )
        found[split] = [f.name for f in files]
    return found


def study_params(args, data: Path) -> dict:
    """The profile (or, with --tiny, the smoke profile's sizes) on this data and device."""
    params = yaml.safe_load(Path(args.params).read_text())
    if args.tiny:
        tiny = yaml.safe_load(TINY.read_text())
        params.update({k: tiny[k] for k in TINY_SECTIONS})
        params["data"].update(
            image_size=tiny["data"]["image_size"],
            stats_subsample=tiny["data"]["stats_subsample"],
            num_classes=_classes_of(data),
        )
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

    folder = data_folder(folder)
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


def seconds_since_start() -> float:
    """Seconds since the study's command started: ${STARTED_ENV} (epoch seconds, set by gpu_study.sh), else
    since this Python process started (Linux /proc), else 0."""
    if os.environ.get(STARTED_ENV):
        return max(0.0, time.time() - float(os.environ[STARTED_ENV]))
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        return max(0.0, time.time() - boot - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0


class Study:
    """The output folder (small things), the work folder (data, runs), the clock and the record of every
    stage. The clock counts from the command's start, `already` seconds before this object."""

    def __init__(self, out: Path, deadline_s: float, params: dict, work: Path | None = None, already: float = 0.0):
        self.out, self.work = out, work or out / "work"
        self.started = time.monotonic() - already
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
        cmd = [
            sys.executable,
            "-m",
            "vjepa",
            *argv,
            "--params",
            str(self.params_file),
            "--data-dir",
            str(self.work / "data"),
            "--results-dir",
            str(self.work / "results"),
            "--quiet",
        ]
        env = _command_env()
        t0 = time.monotonic()
        with open(logs / f"{name}.log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            row["status"] = _wait(proc, budget, grace=min(STOP_GRACE_S, self.reserve))
        row["seconds"] = time.monotonic() - t0
        print(f"  {name:28s} {row['seconds']:7.1f} s  {row['status']}", flush=True)
        return row["status"] == "ok"

    def timed_command(self, name: str, argv: list[str], params_file: Path, results: Path, env: dict) -> float:
        """Wall seconds of `python -m vjepa ARGV` (for the plan); ConfigError when it fails."""
        cmd = [
            sys.executable,
            "-m",
            "vjepa",
            *argv,
            "--params",
            str(params_file),
            "--data-dir",
            str(self.work / "data"),
            "--results-dir",
            str(results),
            "--quiet",
        ]
        env = {**_command_env(), **env}
        (self.out / "logs").mkdir(exist_ok=True)
        t0 = time.monotonic()
        with open(self.out / "logs" / f"{name}.log", "w") as log:
            try:
                done = subprocess.run(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=max(1.0, self.left() - self.reserve)
                )
            except subprocess.TimeoutExpired:
                raise ConfigError(
                    f"the plan needs more time than the deadline leaves (it passed while timing "
                    f"`vjepa {argv[0]}`); raise --deadline"
                ) from None
        if done.returncode:
            raise ConfigError(f"`vjepa {' '.join(argv)}` failed while timing the plan; see {log.name}")
        return time.monotonic() - t0


def _command_env() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])}


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


def timing_params(params: dict, steps: int) -> dict:
    """The params of a head's timing run: the study's, with warm-up + `steps` steps in which every event of
    the real loop (log snapshot, checkpoint save, validation) happens at least once."""
    params = json.loads(json.dumps(params))
    t, n = params["train"], WARMUP_STEPS + steps
    t.update(
        steps=n,
        warmup_steps=min(t["warmup_steps"], n - 1),
        log_every=min(t["log_every"], TIMING_LOG_EVERY),
        ckpt_every=min(t["ckpt_every"], TIMING_CKPT_EVERY),
        eval_every=n if t["eval_every"] else 0,
    )
    return params


def time_heads(study: Study, device_name: str, steps: int, time_one=None, time_eval=None) -> dict:
    """Per head, its timing run (`time_head`); a head that runs out of GPU memory is skipped with one line
    (its row says so). Then the first head's real commands, each in its own process (`time_commands`).

    The first head is timed twice, the first time for one step and not kept: this process pays once the
    costs of a first training (imports, first allocations), so every kept row's setup is a warm one. Each
    training runs in a process of its own and pays them again: that is charged to every head as the
    measured command's setup over the same head's warm setup."""
    import torch

    from vjepa.core.runtime import pick_device
    from vjepa.training.throughput import peak_matmul_flops

    device = pick_device(device_name)
    time_one, time_eval = time_one or time_head, time_eval or time_commands
    rows = {}
    for head in study.params["heads"]:
        if study.left() < study.reserve:
            raise ConfigError(
                f"the plan needs more time than the deadline leaves (it passed before timing {head}); raise --deadline"
            )
        try:
            if all("skipped" in r for r in rows.values()):  # no head timed yet
                time_one(study, head, device, 1)  # the warm-up, not kept
            rows[head] = time_one(study, head, device, steps)
        except torch.cuda.OutOfMemoryError:
            rows[head] = {
                "skipped": f"out of GPU memory in its timing run at train.batch_size = "
                f"{study.params['train']['batch_size']}"
            }
            print(f"  {head}: skipped, {rows[head]['skipped']}", flush=True)
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()  # the trainings run in their own processes
    timed = [h for h, r in rows.items() if "skipped" not in r]
    commands = time_eval(study, timed, device) if timed else {}
    first = commands.get("measured_on")
    cold = max(0.0, commands.get("train_setup_s", 0.0) - rows[first].get("setup_s", 0.0)) if timed else 0.0
    for head in timed:  # every head's evaluation: the first one's, with its own held-out scoring instead
        scoring = commands["heads"][head] - commands["heads"][first]
        rows[head].update(
            command_s=commands["train_overhead_s"] + cold,
            embed_seconds=commands["embed_s"],
            eval_command_s=commands["embed_s"] + commands["evaluate_s"] + scoring,
        )
    return {
        "peak_tflops": peak_matmul_flops(device) / 1e12,
        "peak_dtype": "bf16" if device.type == "cuda" else "fp32",
        "heads": rows,
        "commands": commands,
    }


def time_head(study: Study, head: str, device, steps: int) -> dict:
    """A short run of the real training loop (`vjepa.training.train.train`, the study's data, model, batch, logging,
    non-finite checks, saves and validation) with every part timed, in work/timing/HEAD; then the FLOPs
    of one training step. Seconds per part, images/s, MFU, peak GPU memory."""
    import torch

    from vjepa.core.config import resolve
    from vjepa.training.throughput import peak_matmul_flops
    from vjepa.training.train import PhaseClock, train

    cfg = resolve(timing_params(study.params, steps), head)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    clock = PhaseClock(device)
    train(cfg, study.work / "data", study.work / "timing" / head, fresh=True, progress=False, clock=clock)
    row = loop_costs(clock.laps, WARMUP_STEPS)
    peak_memory = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    flops, peak = step_flops(cfg, study.work / "data", device), peak_matmul_flops(device)
    t = study.params["train"]
    per_step = row["seconds_per_step"]
    return {
        **row,
        "images_per_s": t["batch_size"] / per_step,
        "flops_per_step": flops,
        "tflops": flops / per_step / 1e12,
        "mfu": flops / per_step / peak,
        "peak_memory_gb": peak_memory,
        "batch_size": t["batch_size"],
        "steps": t["steps"],
        "log_every": t["log_every"],
        "ckpt_every": t["ckpt_every"],
        "eval_every": t["eval_every"],
        "validates": bool(t["eval_every"]),
    }


def loop_costs(laps: list[tuple[str, float]], warmup: int) -> dict:
    """Seconds per plain step, per measured step (the gradient-share measurement at log steps), per log
    snapshot, validation, save, and the setup and end of a training, from a PhaseClock's laps; the first
    `warmup` steps' excess over those means is charged once."""
    kinds = ("step", "measured step")
    steps = [(name, s) for name, s in laps if name in kinds]
    timed = steps[warmup:] or steps

    def mean(name, among=laps):
        values = [s for n, s in among if n == name]
        return sum(values) / len(values) if values else 0.0

    plain = mean("step", timed) or mean("measured step", timed)
    measured = mean("measured step", timed) or plain
    first = sum(s - (measured if name == "measured step" else plain) for name, s in steps[:warmup])
    return {
        "seconds_per_step": plain,
        "measured_step_s": measured,
        "warmup_extra_s": max(0.0, first),
        "setup_s": mean("setup"),
        "log_s": mean("log"),
        "validate_s": mean("validate"),
        "save_s": mean("save"),
        "final_s": mean("final"),
    }


def step_flops(cfg, data_dir: Path, device) -> int:
    """FLOPs of one training step of `cfg` on the prepared data (FlopCounterMode)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from vjepa.eval.embed import images_to_tensor
    from vjepa.model.jepa import JEPA
    from vjepa.model.masks import MultiBlockMaskSampler
    from vjepa.training.batch import BatchStream, make_batch, seed_step
    from vjepa.training.train import TrainingData, make_optimizer, training_step

    data = TrainingData.load(cfg, data_dir)
    images = images_to_tensor(data.train[: cfg.train.batch_size], device)
    torch.manual_seed(cfg.seed)
    model = JEPA(cfg).to(device)
    opt = make_optimizer(model, cfg.train.weight_decay, cfg.train.lr, device)
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    gen = torch.Generator()
    seed_step(gen, cfg.seed, 0)
    batch = make_batch(
        images, BatchStream(len(images), cfg.train.batch_size, cfg.seed).indices(0), cfg, data.stats, sampler, gen
    )
    with FlopCounterMode(display=False) as counter:
        training_step(model, model, opt, batch, 0.99, cfg.train.grad_clip)
    return counter.get_total_flops()


def time_commands(study: Study, heads: list[str], device) -> dict:
    """The real commands of the first head, each in its own process as the study runs them: a short
    `vjepa train` (its start-up and exit: the wall time its loop's laps leave), `vjepa embed`, `vjepa evaluate`
    (kNN, probe, spread on the features' size, and its head's held-out scoring); then every head's held-out
    scoring in-process, for what it adds to or takes from the first head's evaluation."""
    from vjepa.core.config import resolve
    from vjepa.eval.evaluate import _from_checkpoint

    params_file, results = study.work / "timing-commands" / "params.yaml", study.work / "timing-commands"
    params_file.parent.mkdir(parents=True, exist_ok=True)
    params_file.write_text(yaml.safe_dump(timing_params(study.params, 1), sort_keys=False))
    laps_file, head = results / "laps.json", heads[0]
    seconds = {}
    for name in ("train", "embed", "evaluate"):
        seconds[name] = study.timed_command(
            f"timing-{name}-{head}",
            [name, "--head", head],
            params_file,
            results,
            {"VJEPA_TRAIN_LAPS": str(laps_file)} if name == "train" else {},
        )
    laps = json.loads(laps_file.read_text())
    loop = sum(s for _, s in laps)
    scoring = {}
    for h in heads:
        start = time.perf_counter()
        _from_checkpoint(
            study.work / "timing" / h / "checkpoint.pt",
            study.work / "data",
            resolve(study.params, h),
            study.params["seed"],
        )
        scoring[h] = time.perf_counter() - start
    return {
        "train_overhead_s": seconds["train"] - loop,
        "train_setup_s": sum(s for name, s in laps if name == "setup"),  # in a fresh process
        "embed_s": seconds["embed"],
        "evaluate_s": seconds["evaluate"],
        "heads": scoring,
        "measured_on": head,
    }


def _counts(n: int, t: dict) -> dict:
    """How often each part of the training loop happens in `n` steps (as vjepa.training.train.train does it)."""
    every = lambda k: n // k + (n % k != 0) if k else 0  # at every k-th step and the last one
    log_every = t.get("log_every") or n or 1
    measured = (n - 1) // log_every + 1 if n else 0
    return {
        "step": n - measured,
        "measured": measured,
        "log": every(log_every),
        "validate": every(t.get("eval_every") or 0) if t.get("validates") else 0,
        "save": (n - 1) // t["ckpt_every"] if t.get("ckpt_every") and n else 0,
    }


def plan(timing: dict, overhead_s: float, evaluate_s: float | None = None, steps: int | None = None) -> dict:
    """Expected seconds per head (its training: start-up, setup, steps, log snapshots, validations, saves;
    then embed and evaluate, each a command of its own) for `steps` (default: the params'). Skipped heads
    are left out. Where a row lacks measured commands, `overhead_s` stands for each command's start-up and
    `evaluate_s` for an evaluation."""
    heads = {}
    for head, t in timing["heads"].items():
        if "skipped" in t:
            continue
        n = t["steps"] if steps is None else steps
        c = _counts(n, t)
        if "validate_s" not in t and t.get("validates"):  # a row without a timing run: kNN of one feature set
            c["validate"], t = 1, {**t, "validate_s": t["embed_seconds"] + (evaluate_s or 0.0) / 2}
        get = lambda k: t.get(k, 0.0)
        train_s = (
            t.get("command_s", overhead_s)
            + get("setup_s")
            + get("warmup_extra_s")
            + get("final_s")
            + c["step"] * t["seconds_per_step"]
            + c["measured"] * t.get("measured_step_s", t["seconds_per_step"])
            + c["log"] * get("log_s")
            + c["validate"] * get("validate_s")
            + c["save"] * get("save_s")
        )
        eval_s = t.get("eval_command_s", 2 * overhead_s + t["embed_seconds"] + (evaluate_s or 0.0))
        heads[head] = {"steps": n, "images": n * t["batch_size"], "train_s": train_s, "eval_s": eval_s}
    return {"heads": heads, "total_s": sum(h["train_s"] + h["eval_s"] for h in heads.values())}


def fitted_steps(timing: dict, overhead_s: float, evaluate_s: float | None, budget_s: float) -> int:
    """The largest number of steps (the same for every head) whose plan fits `budget_s` (0 when none does)."""
    fits = lambda n: plan(timing, overhead_s, evaluate_s, steps=n)["total_s"] <= budget_s + 1e-9
    low, high = 0, max([t["steps"] for t in timing["heads"].values() if "steps" in t] + [1])
    if not fits(low):
        return 0
    while fits(high):
        low, high = high, 2 * high
    while high - low > 1:  # the plan grows with the steps: bisect
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low


def print_plan(p: dict, left_s: float, deadline_s: float) -> None:
    print(f"plan (deadline {deadline_s:.0f} s, {left_s:.0f} s left):")
    print(f"  {'head':14s} {'steps':>6s} {'images':>9s} {'train s':>8s} {'embed+eval s':>12s}")
    for head, h in p["heads"].items():
        print(f"  {head:14s} {h['steps']:6d} {h['images']:9d} {h['train_s']:8.1f} {h['eval_s']:12.1f}")
    print(f"  {'all heads':14s} {'':6s} {'':9s} {p['total_s']:21.1f} s expected", flush=True)


def table(study: Study, timing: dict | None) -> dict:
    """Table I from the runs' metrics.json and the floors, with the throughput of each head."""
    results = study.work / "results"
    seed = study.params["seeds"][0]
    rows = {}
    for head in study.params["heads"]:
        f = results / "heads" / head / f"seed{seed}" / "metrics.json"
        skipped = ((timing or {}).get("heads", {}).get(head) or {}).get("skipped")
        if skipped or not f.is_file():
            rows[head] = {
                "finished": False,
                "paper_knn_top1": PAPER_TABLE_I.get(head),
                **({"skipped": skipped} if skipped else {}),
            }
            continue
        m = json.loads(f.read_text())
        nll = (m.get("head_metrics") or {}).get("nll_per_dim")
        rows[head] = {
            "finished": True,
            "knn_top1": m["knn_top1"],
            "knn_top5": m["knn_top5"],
            "probe_top1": m.get("probe_top1"),
            "nll_per_dim": nll,
            "step": m.get("step"),
            "paper_knn_top1": PAPER_TABLE_I.get(head),
        }
        if timing:
            rows[head]["throughput"] = timing["heads"][head]
    ref = results / "reference" / "metrics.json"
    floors = None
    if ref.is_file():
        r = json.loads(ref.read_text())
        floors = {
            name: {"knn_top1": r[name]["top1"], "probe_top1": r[name].get("probe_top1")}
            for name in ("raw_pixels", "random_init")
        }
    return {"heads": rows, "floors": floors}


def markdown(record: dict) -> str:
    pct = lambda v: "—" if v is None else f"{100 * v:.2f}"
    t = record["table"]
    lines = [
        f"# Table I: {record['device']}, {record['date']}",
        "",
        f"`{record['command']}` — {record['wall_s']:.0f} s in all (deadline {record['deadline_s']:.0f} s); "
        f"{'every head finished' if record['complete'] else 'the deadline cut the study short'}.",
        "",
        "| head | kNN top-1 | kNN top-5 | probe top-1 | NLL/dim | paper kNN@1 | images/s | MFU | peak GB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for head, r in t["heads"].items():
        th = r.get("throughput") or (record.get("timing") or {}).get("heads", {}).get(head, {})
        th = {} if "skipped" in th else th
        speed = (
            (
                f"{th['images_per_s']:.0f} | {100 * th['mfu']:.1f} % | "
                + ("—" if th.get("peak_memory_gb") is None else f"{th['peak_memory_gb']:.1f}")
            )
            if th
            else "— | — | —"
        )
        if not r["finished"]:
            why = f"skipped: {r['skipped']}" if r.get("skipped") else "not finished"
            lines.append(
                f"| {head} | {why} | | | | {r.get('paper_knn_top1') or '—'} | "
                f"{'— | — | —' if r.get('skipped') else speed} |"
            )
            continue
        nll = "—" if r["nll_per_dim"] is None else f"{r['nll_per_dim']:.3f}"
        lines.append(
            f"| {head} | {pct(r['knn_top1'])} | {pct(r['knn_top5'])} | {pct(r['probe_top1'])} | {nll} | "
            f"{r['paper_knn_top1'] if r['paper_knn_top1'] is not None else '—'} | {speed} |"
        )
    for name, label in (("raw_pixels", "raw pixels (floor)"), ("random_init", "untrained encoder (floor)")):
        if t["floors"]:
            f = t["floors"][name]
            lines.append(f"| {label} | {pct(f['knn_top1'])} | | {pct(f['probe_top1'])} | | | | | |")
    lines += [
        "",
        f"MFU against this device's measured {record['timing']['peak_dtype']} matmul peak, "
        f"{record['timing']['peak_tflops']:.3g} TFLOP/s."
        if record.get("timing")
        else "",
        "",
        "| stage | seconds | status |",
        "|---|---|---|",
    ]
    lines += [f"| {s['stage']} | {s['seconds']:.1f} | {s['status']} |" for s in record["stages"]]
    pva = record.get("plan_vs_actual")
    if pva and pva["heads"]:
        lines += [
            "",
            f"Plan against wall time of the trainings, embeds and evaluations that ran: "
            f"{pva['plan_s']:.1f} s planned, {pva['actual_s']:.1f} s taken ({pva['ratio']:.2f} x).",
        ]
    return "\n".join(lines) + "\n"


def plan_vs_actual(record: dict, stages: list[dict]) -> dict:
    """Each head's planned train and embed+evaluate seconds beside its stages' wall time (heads whose
    three stages all succeeded), and the totals."""
    took = {s["stage"]: s["seconds"] for s in stages if s["status"] == "ok"}
    heads = {}
    for head, h in (record.get("plan") or {}).get("heads", {}).items():
        names = [f"{c}-{head}" for c in ("train", "embed", "evaluate")]
        if all(n in took for n in names):
            heads[head] = {
                "train": {"plan_s": h["train_s"], "actual_s": took[names[0]]},
                "eval": {"plan_s": h["eval_s"], "actual_s": took[names[1]] + took[names[2]]},
            }
    plan_s = sum(h[k]["plan_s"] for h in heads.values() for k in ("train", "eval"))
    actual_s = sum(h[k]["actual_s"] for h in heads.values() for k in ("train", "eval"))
    return {"heads": heads, "plan_s": plan_s, "actual_s": actual_s, "ratio": actual_s / plan_s if plan_s else None}


def write_record(study: Study, record: dict) -> None:
    record["wall_s"] = time.monotonic() - study.started
    record["finished_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    record["stages"] = study.stages
    record["table"] = table(study, record.get("timing"))
    record["complete"] = all(r["finished"] for r in record["table"]["heads"].values())
    record["plan_vs_actual"] = plan_vs_actual(record, study.stages)
    (study.out / "table1.json").write_text(json.dumps(record, indent=2))
    (study.out / "table1.md").write_text(markdown(record))
    (study.out / "README.md").write_text(readme(record))


def readme(record: dict) -> str:
    return (
        f"# GPU study, {record['date']}, {record['device']}\n\n"
        f"Command: `{record['command']}`\n\n"
        f"Environment: PyTorch {record['torch']}, CUDA {record['cuda']}, Python {record['python']}; "
        f"{record['wall_s']:.0f} s in all against a deadline of {record['deadline_s']:.0f} s"
        + ("" if record["complete"] else " (the deadline or the GPU's memory cut it short)")
        + ".\n\n"
        "table1.md is Table I with the throughput, each stage's wall time and the plan against it; table1.json "
        "holds the same, the plan and the timings behind it; params.yaml the study's params; logs/ every "
        "command's output.\n"
    )


def land(folder: Path, results: Path = ROOT / "results" / "gpu") -> Path:
    """A study's --out folder brought back from another machine, recorded in results/gpu/DATE-DEVICE/."""
    f = folder / "table1.json"
    if not f.is_file():
        raise DataError(f"{folder} holds no table1.json; give the folder that the study's --out named")
    return record_in_results(folder, json.loads(f.read_text()), results)


def record_in_results(out: Path, record: dict, results: Path = ROOT / "results" / "gpu") -> Path:
    """results/gpu/DATE-DEVICE/: table1.md, table1.json, params.yaml, logs/ and the README."""
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
    (dest / "README.md").write_text(readme(record))
    return dest


def environment(device_name: str) -> dict:
    import torch

    name = torch.cuda.get_device_name() if device_name == "cuda" else platform.processor() or "cpu"
    return {
        "device": name,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.version.cuda if device_name == "cuda" else None,
    }


def preflight() -> dict:
    """The interpreter and the versions of what the study imports, printed on one line; ConfigError
    naming what is missing or too old."""
    import importlib

    import torch

    found = {
        "python": f"{sys.executable} {platform.python_version()}",
        "torch": torch.__version__,
        "cuda": f"{torch.version.cuda} ({'a GPU is visible' if torch.cuda.is_available() else 'no GPU visible'})",
    }
    problems = []
    for module, least, why in REQUIREMENTS:
        try:
            found[module] = getattr(importlib.import_module(module), "__version__", "?")
        except ImportError:
            found[module] = "missing"
            problems.append(f"{module} is missing")
            continue
        if least and _version(found[module]) < _version(least):
            problems.append(f"{module} {found[module]} is older than {least} ({why})")
    print("preflight: " + ", ".join(f"{k} {v}" for k, v in found.items()), flush=True)
    if problems:
        raise ConfigError(
            f"{'; '.join(problems)} for {sys.executable}; install them there or give another "
            "interpreter with PYTHON=..."
        )
    return found


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:2])


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return _main(args, argv)
    except VJepaError as e:
        print(f"gpu_study: error: {e}", file=sys.stderr)
        return 2


def _main(args, argv) -> int:
    already = seconds_since_start()  # the deadline counts from the command's start (imports, CUDA included)
    found = preflight()
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"no CUDA GPU is visible to PyTorch {torch.__version__} of {sys.executable}; on a GPU "
            "machine give its own Python (PYTHON=python3: a carried .venv may hold a CPU build); "
            "on a CPU run --device cpu --tiny to check the script"
        )
    check_data(Path(args.data))
    if Path(args.out).exists() and any(Path(args.out).iterdir()):
        raise ConfigError(f"--out {args.out} is not empty; give a new folder (a study's table holds only its own runs)")
    work = Path(args.work) if args.work else Path(args.out) / "work"
    data = tiny_subset(Path(args.data), work / "tiny-data") if args.tiny else Path(args.data)
    study = Study(Path(args.out), args.deadline, study_params(args, data_folder(data)), work, already)
    record = {
        **environment(args.device),
        "date": datetime.date.today().isoformat(),
        "command": " ".join(["scripts/gpu_study.sh", *(sys.argv[1:] if argv is None else argv)]),
        "deadline_s": args.deadline,
        "params": str(study.params_file),
        "preflight": found,
        "started_after_s": already,
    }
    print(
        f"gpu_study on {record['device']} (PyTorch {record['torch']}), deadline {args.deadline:.0f} s, "
        f"{already:.0f} s gone at start -> {study.out}"
    )
    for name in ("prepare", "stats", "reference"):
        if not study.run(name, name):
            write_record(study, record)
            raise DataError(
                f"`vjepa {name}` did not succeed ({study.stages[-1]['status']}); "
                f"see {study.out / 'logs' / (name + '.log')}"
            )
    overhead = 0.0  # each row holds its commands' measured start-up
    t0 = time.monotonic()
    try:
        record["timing"] = time_heads(study, args.device, args.timing_steps)
    except torch.cuda.OutOfMemoryError:
        write_record(study, record)
        raise ConfigError(
            f"out of GPU memory while timing the evaluation at eval.batch_size = "
            f"{study.params['eval']['batch_size']}; lower it (--params)"
        ) from None
    study.stages.append({"stage": "plan (timed steps)", "seconds": time.monotonic() - t0, "status": "ok"})
    heads = [h for h, r in record["timing"]["heads"].items() if "skipped" not in r]
    if not heads:
        write_record(study, record)
        raise ConfigError(
            f"every head ran out of GPU memory at train.batch_size = "
            f"{study.params['train']['batch_size']}; lower it (--params)"
        )
    p = plan(record["timing"], overhead)
    budget = study.left() - study.reserve  # one reading of the clock for the fit and the check
    if p["total_s"] > budget and args.fit:
        steps = fitted_steps(record["timing"], overhead, None, budget)
        if steps >= 10:
            fit_steps(study, record["timing"], steps)
            p = plan(record["timing"], overhead)
            record["fitted_steps"] = steps
    record["plan"] = p
    t, m = study.params["train"], study.params["model"]
    record["setup"] = {
        "image_size": study.params["data"]["image_size"],
        "patch_size": m["patch_size"],
        "embed_dim": m["embed_dim"],
        "depth": m["depth"],
        "num_heads": m["num_heads"],
        "batch_size": t["batch_size"],
        "steps": t["steps"],
        "images_per_head": t["batch_size"] * t["steps"],
        "tiny": args.tiny,
    }
    print_plan(p, budget + study.reserve, args.deadline)
    if p["total_s"] > budget:
        write_record(study, record)
        advice = (
            "even --fit leaves fewer than 10 steps; raise --deadline"
            if args.fit
            else f"raise --deadline, lower train.steps (--params {args.params}), or pass --fit"
        )
        raise ConfigError(
            f"the plan needs {p['total_s']:.0f} s but {budget:.0f} s of the {args.deadline:.0f} s "
            f"deadline are left; {advice}"
        )
    for head in heads:
        expect = p["heads"][head]["eval_s"]
        if study.run(f"train-{head}", "train", "--head", head, keep=expect):
            study.run(f"embed-{head}", "embed", "--head", head) and study.run(
                f"evaluate-{head}", "evaluate", "--head", head
            )
    write_record(study, record)
    pva = record["plan_vs_actual"]
    if pva["heads"]:
        print(f"plan {pva['plan_s']:.1f} s, actual {pva['actual_s']:.1f} s ({pva['ratio']:.2f} x)")
    if args.record:
        print(f"recorded in {record_in_results(study.out, record)}")
    print(f"Table I -> {study.out / 'table1.md'} ({record['wall_s']:.0f} s)")
    print((study.out / "table1.md").read_text())
    return 0 if record["complete"] else 3


def fit_steps(study: Study, timing: dict, steps: int) -> None:
    """Lower train.steps (and its schedule) to `steps` in the study's params and the timing rows."""
    params = json.loads(json.dumps(study.params))
    t = params["train"]
    t.update(
        steps=steps,
        warmup_steps=max(1, min(t["warmup_steps"], steps // 10)),
        eval_every=steps,
        ckpt_every=max(1, steps // 2),
    )
    study.write_params(params)
    for row in timing["heads"].values():
        if "skipped" not in row:
            row.update(steps=steps, eval_every=t["eval_every"], ckpt_every=t["ckpt_every"])


if __name__ == "__main__":
    sys.exit(main())
