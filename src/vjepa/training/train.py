"""The teacher-student training loop.

Every step's randomness is a function of (seed, step) alone: batch order, views and masks
come from a CPU generator reseeded at each step (`batch.step_seed`, the same on any device),
and the global RNG (used by heads that draw noise and by SIGReg's directions) is reseeded
too. A run resumed from any step boundary therefore replays exactly the same steps.
Scalars are buffered on the device and written to TensorBoard every `log_every` steps,
one host sync per flush rather than per step.

Under torchrun the same loop runs on every rank as DistributedDataParallel (`vjepa.core.distributed`):
each rank trains on its block of every global batch, the ranks agree on when to stop, and rank 0
alone writes checkpoints, curves, TensorBoard and the progress bar. A checkpoint holds no trace
of the number of ranks that wrote it, so a run resumes with any number.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vjepa.core import distributed
from vjepa.core.config import Config
from vjepa.core.errors import ConfigError, VJepaError
from vjepa.core.io import atomic_path
from vjepa.core.runtime import autocast, configure, progress_interval, seed_everything
from vjepa.data.sources import load_data_stats, load_split
from vjepa.eval.embed import extract_features_across_ranks, images_to_tensor
from vjepa.eval.head_metrics import held_out_batches, sample_quality
from vjepa.eval.knn import knn_accuracy
from vjepa.model import checkpoint, gradient_share
from vjepa.model.jepa import JEPA, ema_at, lr_at, param_groups
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.model.regularizers import effective_rank
from vjepa.training.batch import Batch, BatchStream, make_batch, seed_step

HELD_OUT_IMAGES = 64  # validation images whose targets score the head at each evaluation
# A snapshot's monitors see this many tokens drawn at random (the study's MDN has ~100k per step, ~180 M
# sigma values: 21 s a snapshot on a 2-core CPU), and each histogram at most this many values.
SNAPSHOT_TOKENS = 4096
HISTOGRAM_VALUES = 65536
MAX_CONSECUTIVE_SKIPS = 10  # with train.nonfinite: skip, this many bad steps in a row still stop the run


class NonFiniteLoss(VJepaError):
    pass


def train(
    cfg: Config,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    fresh: bool = False,
    progress: bool = True,
    clock: PhaseClock | None = None,
) -> dict:
    """Train one head; writes out_dir/checkpoint.pt (final) and out_dir/tb/ (TensorBoard).

    A periodic out_dir/resume.pt lets a rerun of the same command continue where an
    interrupted one stopped; it is removed once the final checkpoint is written. A `clock`
    records the wall time of every part of the loop (the GPU study's plan).
    """
    # -- setup: device, data, model, optimiser, and where an interrupted run left off
    clock = clock or PhaseClock.off()
    out_dir, t, world = Path(out_dir), cfg.train, distributed.world()
    distributed.check_batch(t.batch_size)
    device = distributed.device(t.device)
    configure(device)
    data = TrainingData.load(cfg, Path(data_dir))
    seed_everything(cfg.seed)
    model = JEPA(cfg).to(device)
    opt = make_optimizer(model, t.weight_decay, t.lr, device)
    resume_path, final_path = out_dir / "resume.pt", out_dir / "checkpoint.pt"
    say = tqdm.write if world.main else lambda message: None
    run = RunState.resume(resume_path, final_path, cfg, model, opt, fresh, say)
    first = distributed.broadcast(run.step)
    if distributed.any_rank(first != run.step):  # every rank read its own copy of the run folder
        raise ConfigError(
            f"the ranks resumed at different steps (rank 0: {first}); the run folder {out_dir} must be "
            "one folder that every node sees (a shared file system)"
        )
    if run.step >= t.steps:
        if world.main:
            write_curves(out_dir, run.curve, run.history)
        return {"step": run.step, "resumed": True, "history": run.history}

    # -- what the loop needs: the (DDP-wrapped, optionally compiled) forward, the data on the device,
    # the mask sampler, the epoch order, the step generator, logging and the progress bar
    forward = data_parallel(model, device)
    forward = torch.compile(forward, dynamic=True) if t.compile else forward  # mask shapes change per step
    images, val_images = data.on(device)
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    stream = BatchStream(len(images), t.batch_size, cfg.seed)
    gen = torch.Generator()
    log = ScalarLog(out_dir / "tb", fresh=not run.resumed, resume_path=resume_path, step=run.step, write=world.main)
    bar = tqdm(
        total=t.steps,
        initial=run.step,
        desc=f"train {cfg.head_name}",
        disable=not (progress and world.main),
        dynamic_ncols=True,
        mininterval=progress_interval(),
    )

    def save():
        run.measured = share.values()
        if world.main:
            checkpoint.save(resume_path, run.checkpoint(cfg, model, opt, data.stats))

    share = Measurements(model, cfg.trunk.predict_share, run.measured, device)
    model.train()
    stop = StopRequest().install()
    clock.lap("setup")
    try:
        while run.step < t.steps:
            # -- schedules: learning rate and EMA momentum are functions of the step alone
            lr = lr_at(run.step, t.steps, t.warmup_steps, t.lr, t.min_lr)
            momentum = ema_at(run.step, t.steps, t.ema_start, t.ema_end)
            for group in opt.param_groups:
                group["lr"] = lr
            # -- the step's inputs: its randomness is a function of (seed, step), so a resume is exact
            seed_step(gen, cfg.seed, run.step)
            batch = make_batch(images, stream.indices(run.step), cfg, data.stats, sampler, gen)
            # -- forward, backward, clip, AdamW, EMA (training_step); a bad step is dropped or stops the run
            scheduled = run.step % t.log_every == 0  # measure the parts' encoder gradients at these steps
            measure = scheduled or not share.latest
            out = training_step(
                forward, model, opt, batch, momentum, t.grad_clip, skip_nonfinite=t.nonfinite == "skip", measure=measure
            )
            if not out.dropped:
                share.record(out.part_norms, first=run.step == 0, scheduled=scheduled)
            run.step += 1
            scalars = {"loss": out.loss.detach(), "grad_norm": out.grad_norm, **out.diag, **share.latest}
            if out.dropped:
                run.skip(scalars, say)
            else:
                log.add(run.step, lr, momentum, scalars)
            clock.lap("measured step" if measure else "step")

            # -- every log_every steps: scalars to the host (one sync), the curve, TensorBoard, collapse monitors
            if not out.dropped and (run.step % t.log_every == 0 or run.step == t.steps):
                values = log.flush()
                run.curve.append({"step": run.step, "lr": lr, **values})
                if world.main:
                    log.snapshot(run.step, model, out.context, out.cond, t.batch_size)
                bar.set_postfix(loss=f"{values['loss']:.4f}", img_s=f"{log.rate:.0f}", refresh=False)
                clock.lap("log")
            # -- every eval_every steps: validation kNN of the frozen student and the head's held-out loss
            if t.eval_every and (run.step % t.eval_every == 0 or run.step == t.steps):
                row = validate(model, data, images, val_images, cfg)
                run.history.append({"step": run.step, **row})
                log.validation(run.step, row)
                run.check_collapse(t, say)
                say(f"step {run.step}: val kNN top-1 {row['knn_top1']:.4f}")
                clock.lap("validate")
            # -- every ckpt_every steps: resume.pt; on Ctrl-C / SIGTERM: save at this step boundary and stop
            if run.step % t.ckpt_every == 0 and run.step < t.steps:
                log.flush()  # never save weights that a non-finite step has already spoilt
                save()
                clock.lap("save")
            bar.update(1)
            if distributed.any_rank(stop.requested):  # at a step boundary: weights, logs and curves agree
                log.flush()
                save()
                distributed.barrier()  # no rank leaves (and has the launcher stop the rest) before the save
                say(f"interrupted: saved step {run.step} to {resume_path}; rerun the same command to resume")
                raise KeyboardInterrupt
    finally:
        stop.restore()
        bar.close()
        log.close()

    # -- done: the final checkpoint and curves, and resume.pt removed
    run.measured = share.values()
    if world.main:
        checkpoint.save(final_path, run.checkpoint(cfg, model, opt, data.stats))  # the loop flushed at the last step
        write_curves(out_dir, run.curve, run.history)
        resume_path.unlink(missing_ok=True)
    distributed.barrier()
    clock.lap("final")
    return {"step": run.step, "resumed": run.resumed, "history": run.history}


@dataclass
class TrainingData:
    """The prepared splits (uint8 N×H×W×3 arrays, labels) and their normalisation stats, checked
    against the config before any work."""

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    stats: dict

    @classmethod
    def load(cls, cfg: Config, data_dir: Path) -> TrainingData:
        train, train_labels = load_split(data_dir / "processed" / "train.npz", cfg.data.num_classes)
        val, val_labels = load_split(data_dir / "processed" / "val.npz", cfg.data.num_classes)
        stats = load_data_stats(data_dir)
        if cfg.train.batch_size > len(train):
            raise ConfigError(
                f"train.batch_size = {cfg.train.batch_size} is larger than the {len(train)} training "
                f"images; lower it to at most {len(train)}"
            )
        if train.shape[1] != cfg.data.image_size:
            raise ConfigError(
                f"prepared images are {train.shape[1]} px but data.image_size = "
                f"{cfg.data.image_size}; rerun `vjepa prepare`"
            )
        return cls(train, train_labels, val, val_labels, stats)

    def on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, val) images as uint8 N×3×H×W tensors on the device."""
        return images_to_tensor(self.train, device), images_to_tensor(self.val, device)


@dataclass
class RunState:
    """What a run has done so far besides its weights: the step, the logged curves, the val kNN
    history, the steps dropped as non-finite and the warnings (both also go to metrics.json)."""

    step: int = 0
    curve: list[dict] = field(default_factory=list)  # logged training scalars
    history: list[dict] = field(default_factory=list)  # val kNN rows
    skipped: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resumed: bool = False
    measured: dict[str, float] = field(default_factory=dict)  # the latest gradient measurement (logged each step)

    @classmethod
    def resume(
        cls, resume_path: Path, final_path: Path, cfg: Config, model: JEPA, opt, fresh: bool, say=tqdm.write
    ) -> RunState:
        """A fresh state, or an interrupted run's resume.pt / a finished checkpoint.pt of this config,
        loaded into `model` and `opt` (whatever number of ranks wrote it)."""
        for path in () if fresh else (resume_path, final_path):
            if not path.is_file():
                continue
            state = checkpoint.load(path)
            if state.get("config") != cfg.to_dict():
                say(f"{path} was written with other params; starting afresh")
                continue
            try:
                model.load_state_dict(state["model"])
                opt.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError) as e:  # e.g. written before the trained parameters changed
                say(f"{path} does not fit this model or optimiser ({str(e).splitlines()[0]}); starting afresh")
                seed_everything(cfg.seed)
                model.load_state_dict(JEPA(cfg).to(next(model.parameters()).device).state_dict())
                opt.load_state_dict(
                    make_optimizer(
                        model, cfg.train.weight_decay, cfg.train.lr, next(model.parameters()).device
                    ).state_dict()
                )
                continue
            return cls(
                int(state["step"]),
                list(state.get("curve", [])),
                list(state.get("history", [])),
                list(state.get("skipped_steps", [])),
                list(state.get("warnings", [])),
                resumed=True,
                measured=dict(state.get("measured", {})),
            )
        return cls()

    def checkpoint(self, cfg: Config, model: JEPA, opt, stats: dict) -> dict:
        return {
            "head": cfg.head_name,
            "config": cfg.to_dict(),
            "step": self.step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "stats": stats,
            "history": self.history,
            "curve": self.curve,
            "skipped_steps": self.skipped,
            "warnings": self.warnings,
            "measured": self.measured,
            "world_size": distributed.world().size,
        }  # for the record: a resume may use another

    def skip(self, scalars: dict[str, torch.Tensor], say) -> None:
        """Record a step dropped as non-finite (train.nonfinite: skip); too many in a row stop the run."""
        self.skipped.append(self.step)
        say(f"step {self.step}: non-finite {', '.join(_nonfinite(scalars))}; step skipped (train.nonfinite: skip)")
        if self.skipped[-MAX_CONSECUTIVE_SKIPS:] == list(range(self.step - MAX_CONSECUTIVE_SKIPS + 1, self.step + 1)):
            raise NonFiniteLoss(
                f"{MAX_CONSECUTIVE_SKIPS} steps in a row were non-finite (up to step {self.step}); "
                "lower train.lr or check the data"
            )

    def check_collapse(self, t, say) -> None:
        """Warn (once in metrics.json, each time in the log) when the pooled features' std stayed below
        train.collapse_std for train.collapse_patience evaluations in a row."""
        recent = [h.get("feature_std", math.inf) for h in self.history[-t.collapse_patience :]]
        if len(recent) < t.collapse_patience or max(recent) >= t.collapse_std:
            return
        message = (
            f"representation collapse: the pooled features' per-dimension std stayed below "
            f"train.collapse_std = {t.collapse_std} for {t.collapse_patience} evaluations "
            f"(step {self.step}: {recent[-1]:.2e})"
        )
        if not any(w.startswith("representation collapse") for w in self.warnings):
            self.warnings.append(message)
        say(f"warning: {message}")


class PhaseClock:
    """Wall seconds of each part of the training loop, in order: `lap(name)` charges
    the time since the previous lap to `name`, after waiting for the device (so that a step's queued
    kernels are charged to that step, not to the next host sync)."""

    def __init__(self, device: torch.device | None = None):
        from vjepa.training.throughput import sync

        self.sync = (lambda: sync(device)) if device is not None else (lambda: None)
        self.laps: list[tuple[str, float]] = []  # (part, seconds) in the order they ran
        self._last = time.perf_counter()

    @classmethod
    def off(cls) -> PhaseClock:
        clock = cls()
        clock.lap = lambda name: None
        return clock

    def lap(self, name: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.laps.append((name, now - self._last))
        self._last = now


class ScalarLog:
    """TensorBoard scalars, buffered on the device and written with one host sync per flush; a
    non-finite value stops training, naming its step and terms, before anything is saved from
    the spoilt weights. In a distributed run every rank flushes (the values are averaged over the
    ranks, so all of them see the same non-finite step) and only the one with `write` writes."""

    def __init__(self, log_dir: Path, fresh: bool, resume_path: Path, step: int, write: bool = True):
        from torch.utils.tensorboard import SummaryWriter

        if write and fresh and log_dir.exists():
            for f in log_dir.glob("events.out.tfevents.*"):
                f.unlink()
        self.writer = SummaryWriter(str(log_dir)) if write else None
        self.resume_path = resume_path
        self.pending: list[tuple[int, float, float, dict]] = []
        self.rate = 0.0  # images per second since the last snapshot
        self._clock, self._clock_step = time.perf_counter(), step

    def add(self, step: int, lr: float, momentum: float, scalars: dict[str, torch.Tensor]) -> None:
        self.pending.append((step, lr, momentum, scalars))

    def flush(self) -> dict[str, float]:
        """Write the buffered steps; returns the last one's values."""
        if not self.pending:
            return {}
        values, bad = _flush(self.writer, self.pending)
        self.pending.clear()
        if bad:
            bad_step, terms = bad
            last = checkpoint.load(self.resume_path)["step"] if self.resume_path.is_file() else None
            kept = (
                f"the last good checkpoint (step {last}) is {self.resume_path}"
                if last is not None
                else "no checkpoint was saved before it"
            )
            raise NonFiniteLoss(
                f"non-finite {', '.join(terms)} at step {bad_step}; training stopped and {kept}; "
                "lower train.lr, check the data, or set train.nonfinite: skip"
            )
        return values

    def snapshot(
        self, step: int, model: JEPA, context: torch.Tensor, cond: torch.Tensor | None, batch_size: int
    ) -> None:
        """Collapse monitors of the student's context tokens, the head's histograms, and throughput."""
        gen = torch.Generator(context.device).manual_seed(step)  # the same tokens on a rerun; global RNG untouched
        flat = _some_rows(context.reshape(-1, context.shape[-1]), SNAPSHOT_TOKENS, gen).float()
        self.writer.add_scalar("embed/std", flat.std(0).mean().item(), step)
        self.writer.add_scalar("embed/effective_rank", effective_rank(flat), step)
        if cond is not None and hasattr(model.head, "histograms"):  # e.g. the MDN's sigma and mixture weights
            with torch.no_grad():
                hists = model.head.histograms(_some_rows(cond.reshape(-1, cond.shape[-1]), SNAPSHOT_TOKENS, gen))
            for name, hist in hists.items():
                values = _some_rows(hist.flatten(), HISTOGRAM_VALUES, gen)
                self.writer.add_histogram(f"head/{name}", values.float().cpu(), step)
        now = time.perf_counter()
        self.rate = (step - self._clock_step) * batch_size / max(now - self._clock, 1e-9)
        self.writer.add_scalar("train/images_per_s", self.rate, step)
        self._clock, self._clock_step = now, step

    def validation(self, step: int, row: dict[str, float]) -> None:
        if self.writer is None:
            return
        for name, value in row.items():
            if name != "feature_std":
                self.writer.add_scalar(f"val/{name.removeprefix('val_')}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def validate(model: JEPA, data: TrainingData, images: torch.Tensor, val_images: torch.Tensor, cfg: Config) -> dict:
    """Val kNN top-1 of the pooled student features, their mean per-dimension std on the training
    images (collapse), and the head's loss and one draw per target token on a few validation
    images with fixed masks. In a distributed run every rank embeds its share of the images and
    rank 0 scores them; every rank returns rank 0's row."""
    mean, std, size = data.stats["mean"], data.stats["std"], cfg.data.image_size
    tr = extract_features_across_ranks(model.encoder, images, mean, std, size, cfg.eval.batch_size)
    va = extract_features_across_ranks(model.encoder, val_images, mean, std, size, cfg.eval.batch_size)
    if not distributed.world().main:
        return distributed.broadcast(None)
    acc = knn_accuracy(
        tr,
        data.train_labels,
        va,
        data.val_labels,
        k=cfg.eval.knn_k,
        temperature=cfg.eval.knn_temperature,
        num_classes=cfg.data.num_classes,
    )
    model.eval()
    cond, target = next(
        held_out_batches(model, data.val[:HELD_OUT_IMAGES], data.stats, cfg, batch_size=HELD_OUT_IMAGES)
    )
    device = images.device
    with torch.no_grad(), autocast(device):
        val_loss = model.head.loss(cond, target)[0].float().item()
        draw = model.head.sample(cond, 1)
    model.train()
    return distributed.broadcast(
        {
            "knn_top1": acc["top1"],
            "feature_std": float(tr.std(0).mean()),
            "val_loss": val_loss,
            **sample_quality(draw, target),
        }
    )


class Measurements:
    """The latest measurement of each loss part's gradient on the encoder (`vjepa.model.gradient_share`),
    logged with every step's scalars until the next one (kept in checkpoints, so a resumed run logs
    what one that ran through logs), and the scale that trunk.predict_share keeps, updated at the
    scheduled measurements (every train.log_every steps) alone: a run resumed from a checkpoint
    without a measurement measures once more on its first step, for its logs only."""

    def __init__(self, model: JEPA, share: float | None, saved: dict[str, float], device: torch.device):
        self.model, self.share = model, share
        self.latest = {k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in saved.items()}

    def values(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.latest.items()}

    def record(self, norms: dict[str, torch.Tensor] | None, *, first: bool, scheduled: bool) -> None:
        if norms is None:  # (norms are of the global batch's gradient, the same on every rank)
            return
        if self.share is not None and scheduled:
            gradient_share.update_scale(self.model.predict_scale, norms, self.share, first)
        self.latest = gradient_share.scalars(norms)
        if self.share is not None:
            self.latest[gradient_share.SCALE] = self.model.predict_scale.detach().clone()


class StopRequest:
    """Ctrl-C (SIGINT) and SIGTERM (schedulers, `kill`) ask the training loop to stop at the end of
    the current step, where it saves a checkpoint whose weights, curves and logs agree; a second
    signal stops at once (the last periodic checkpoint remains)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def install(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def data_parallel(model: JEPA, device: torch.device):
    """The model's forward for training: DistributedDataParallel in a distributed run (gradients
    averaged over ranks during the backward), the model itself otherwise. The teacher needs no
    gradient and the buffers agree on every rank by construction, so none are broadcast."""
    if not distributed.world().distributed:
        return model
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    options = inspect.signature(DistributedDataParallel).parameters  # the option's name since PyTorch 2.12
    no_sync = {"forward_sync_buffers": False} if "forward_sync_buffers" in options else {"broadcast_buffers": False}
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, **no_sync)


def make_optimizer(model: JEPA, weight_decay: float, lr: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused into one kernel on CUDA, multi-tensor (foreach) elsewhere."""
    fused = device.type == "cuda"
    return torch.optim.AdamW(
        param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95), fused=fused, foreach=None if fused else True
    )


@dataclass
class StepResult:
    loss: torch.Tensor
    diag: dict[str, torch.Tensor]
    context: torch.Tensor  # the student's context tokens (detached)
    cond: torch.Tensor | None  # the head's conditioning (detached; None without the masked-token loss)
    grad_norm: torch.Tensor
    dropped: bool  # a non-finite step skipped: weights, optimiser and teacher untouched
    part_norms: dict[str, torch.Tensor] | None = None  # each loss part's gradient norm on the encoder, if measured


def training_step(
    forward,
    model: JEPA,
    opt,
    batch: Batch,
    momentum: float,
    grad_clip: float,
    skip_nonfinite: bool = False,
    measure: bool = False,
) -> StepResult:
    """Forward (through `forward`: the model or its compiled version), backward, clip, AdamW, EMA.
    Everything returned stays on the device. With `skip_nonfinite`, a non-finite loss or gradient
    drops the step (this costs one host sync per step). With `measure`, each loss part's gradient
    norm on the encoder is measured first (`gradient_share`, of the global batch's gradient).
    In a distributed run `batch` is this rank's block of the global batch; gradients and the skip
    decision are shared by every rank."""
    # forward: student on the context, teacher targets, predictor + head, cross-view term (bf16 on CUDA)
    with distributed.batch_scope(), autocast(batch.views.device):
        loss, parts, diag, context, cond = forward(batch.views, batch.masks, batch.local, batch.geometry)
    # backward: first, on measured steps, each part's gradient on the encoder (the graph is kept), then the sum
    opt.zero_grad(set_to_none=True)
    norms = gradient_share.part_gradient_norms(parts, list(model.encoder.parameters())) if measure else None
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    # a non-finite loss or gradient on any rank drops the step everywhere (only with train.nonfinite: skip)
    result = StepResult(loss, diag, context, cond, grad_norm, dropped=False, part_norms=norms)
    if skip_nonfinite and distributed.any_rank(not bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm))):
        opt.zero_grad(set_to_none=True)
        return dataclasses.replace(result, dropped=True)
    # update: AdamW on student, predictor and head; then the teacher moves toward the student (EMA)
    opt.step()
    model.update_teacher(momentum)
    return result


def write_curves(out_dir: Path, curve: list[dict], history: list[dict]) -> None:
    """train_curve.csv (every logged step's scalars) and knn_curve.csv (val kNN), for `dvc plots`."""
    for name, rows, first in (
        ("train_curve.csv", curve, ["step", "lr", "loss"]),
        ("knn_curve.csv", history, ["step", "knn_top1"]),
    ):
        columns = first + sorted({k for r in rows for k in r} - set(first))
        with atomic_path(out_dir / name) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)


def _flush(writer, pending) -> tuple[dict[str, float], tuple[int, list[str]] | None]:
    """Write buffered per-step scalars with a single device→host copy. Returns the last step's values
    and, if any value is non-finite, (the first such step, the names of its non-finite terms)."""
    keys = list(pending[-1][3])
    stacked = torch.stack([torch.stack([s[3][k].float() for k in keys]) for s in pending])
    stacked = distributed.mean_over_ranks(stacked).cpu().numpy()
    finite = np.isfinite(stacked)
    if not finite.all():
        i = int(np.argmin(finite.all(axis=1)))
        return {}, (pending[i][0], [k for k, ok in zip(keys, finite[i]) if not ok])
    if writer is not None:  # rank 0's; the others only reduce and check
        for (step, lr, momentum, _), row in zip(pending, stacked):
            writer.add_scalar("train/lr", lr, step)
            writer.add_scalar("train/ema_momentum", momentum, step)
            for k, v in zip(keys, row):
                writer.add_scalar(f"train/{k}", float(v), step)
    return {k: float(v) for k, v in zip(keys, stacked[-1])}, None


def _some_rows(x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """At most `n` rows of `x` drawn at random on its device (all of them when it has no more)."""
    if len(x) <= n:
        return x
    return x[torch.randint(len(x), (n,), generator=gen, device=x.device)]


def _nonfinite(scalars: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in scalars.items() if not torch.isfinite(v.float()).all()]
