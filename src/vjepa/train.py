"""The teacher-student training loop.

Every step's randomness is a function of (seed, step) alone: batch order, crops,
flips and masks come from a CPU generator reseeded at each step (so they are the
same on any device), and the global RNG (used by heads that draw noise) is reseeded
too. A run resumed from any step boundary therefore replays exactly the same steps.
Scalars are buffered on the device and written to TensorBoard every `log_every`
steps, one host sync per flush rather than per step.
"""
from __future__ import annotations

import csv
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checkpoint
from .augment import apply_crops, crop_params
from .config import Config
from .data import load_data_stats, load_split
from .embed import extract_features, images_to_tensor
from .errors import ConfigError, VJepaError
from .io import atomic_path
from .head_metrics import held_out_batches, sample_quality
from .jepa import JEPA, ema_at, lr_at, param_groups
from .knn import knn_accuracy
from .masks import Masks, MultiBlockMaskSampler
from .regularizers import effective_rank
from .runtime import autocast, configure, pick_device, progress_interval, seed_everything


HELD_OUT_IMAGES = 64  # validation images whose targets score the head at each evaluation
MAX_CONSECUTIVE_SKIPS = 10  # with train.nonfinite: skip, this many bad steps in a row still stop the run


class NonFiniteLoss(VJepaError):
    pass


class BatchStream:
    """Epoch permutations derived from (seed, epoch) alone, so step s always gets the same images."""

    def __init__(self, n: int, batch_size: int, seed: int):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[i * self.batch_size:(i + 1) * self.batch_size]


def _tensorboard(log_dir: Path, fresh: bool):
    from torch.utils.tensorboard import SummaryWriter

    if fresh and log_dir.exists():
        for f in log_dir.glob("events.out.tfevents.*"):
            f.unlink()
    return SummaryWriter(str(log_dir))


def train(cfg: Config, data_dir: str | Path, out_dir: str | Path, *, fresh: bool = False,
          progress: bool = True) -> dict:
    """Train one head; writes out_dir/checkpoint.pt (final) and out_dir/tb/ (TensorBoard).

    A periodic out_dir/resume.pt lets a rerun of the same command continue where an
    interrupted one stopped; it is removed once the final checkpoint is written.
    """
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    t = cfg.train
    device = pick_device(t.device)
    configure(device)

    images_np, train_labels = load_split(data_dir / "processed" / "train.npz", cfg.data.num_classes)
    val_np, val_labels = load_split(data_dir / "processed" / "val.npz", cfg.data.num_classes)
    stats = load_data_stats(data_dir)
    if t.batch_size > len(images_np):
        raise ConfigError(f"train.batch_size = {t.batch_size} is larger than the {len(images_np)} training "
                          f"images; lower it to at most {len(images_np)}")
    if images_np.shape[1] != cfg.data.image_size:
        raise ConfigError(f"prepared images are {images_np.shape[1]} px but data.image_size = "
                          f"{cfg.data.image_size}; rerun `vjepa prepare`")

    seed_everything(cfg.seed)
    model = JEPA(cfg).to(device)
    opt = make_optimizer(model, t.weight_decay, t.lr, device)
    forward = torch.compile(model, dynamic=True) if t.compile else model  # mask shapes change per step
    gen = torch.Generator()
    step = 0

    resume_path, final_path = out_dir / "resume.pt", out_dir / "checkpoint.pt"
    start_state = _resumable(resume_path, final_path, cfg, fresh)
    if start_state is not None:
        model.load_state_dict(start_state["model"])
        opt.load_state_dict(start_state["optimizer"])
        step = int(start_state["step"])
    if step >= t.steps:
        write_curves(out_dir, start_state.get("curve", []), start_state.get("history", []))
        return {"step": step, "resumed": True, "history": start_state.get("history", [])}

    images = images_to_tensor(images_np, device)
    val_images = images_to_tensor(val_np, device)
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    stream = BatchStream(len(images), t.batch_size, cfg.seed)
    writer = _tensorboard(out_dir / "tb", fresh=start_state is None)
    history = list(start_state.get("history", [])) if start_state else []  # val kNN rows
    curve = list(start_state.get("curve", [])) if start_state else []  # logged training scalars
    mean, std, size = stats["mean"], stats["std"], cfg.data.image_size

    skip = t.nonfinite == "skip"
    skipped = list(start_state.get("skipped_steps", [])) if start_state else []  # steps dropped as non-finite
    warnings = list(start_state.get("warnings", [])) if start_state else []  # also written to metrics.json

    def state_dict() -> dict:
        return {"head": cfg.head_name, "config": cfg.to_dict(), "step": step, "model": model.state_dict(),
                "optimizer": opt.state_dict(), "stats": stats, "history": history, "curve": curve,
                "skipped_steps": skipped, "warnings": warnings}

    def flush() -> dict[str, float]:
        """Buffered scalars to TensorBoard (one host sync); stop at the first non-finite one, naming its
        step and terms, before anything is saved from the spoilt weights."""
        if not pending:
            return {}
        values, bad = _flush(writer, pending)
        pending.clear()
        if bad:
            bad_step, terms = bad
            last = checkpoint.load(resume_path)["step"] if resume_path.is_file() else None
            kept = f"the last good checkpoint (step {last}) is {resume_path}" if last is not None else \
                "no checkpoint was saved before it"
            raise NonFiniteLoss(f"non-finite {', '.join(terms)} at step {bad_step}; training stopped and {kept}; "
                                "lower train.lr, check the data, or set train.nonfinite: skip")
        return values

    def evaluate_knn() -> tuple[float, float]:
        """(val kNN top-1, mean per-dimension std of the pooled train features)."""
        tr = extract_features(model.encoder, images, mean, std, size, cfg.eval.batch_size)
        va = extract_features(model.encoder, val_images, mean, std, size, cfg.eval.batch_size)
        acc = knn_accuracy(tr, train_labels, va, val_labels, k=cfg.eval.knn_k,
                           temperature=cfg.eval.knn_temperature, num_classes=cfg.data.num_classes)
        return acc["top1"], float(tr.std(0).mean())

    def check_collapse() -> None:
        recent = [h.get("feature_std", math.inf) for h in history[-t.collapse_patience:]]
        if len(recent) == t.collapse_patience and max(recent) < t.collapse_std:
            message = (f"representation collapse: the pooled features' per-dimension std stayed below "
                       f"train.collapse_std = {t.collapse_std} for {t.collapse_patience} evaluations "
                       f"(step {step}: {recent[-1]:.2e})")
            if not any(w.startswith("representation collapse") for w in warnings):
                warnings.append(message)
            bar.write(f"warning: {message}")

    def evaluate_held_out() -> dict[str, float]:
        """The head's loss and one draw per target token on a few validation images (fixed masks)."""
        model.eval()
        cond, target = next(held_out_batches(model, val_np[:HELD_OUT_IMAGES], stats, cfg,
                                              batch_size=HELD_OUT_IMAGES))
        with torch.no_grad(), autocast(device):
            val_loss = model.head.loss(cond, target)[0].float().item()
            draw = model.head.sample(cond, 1)
        model.train()
        return {"val_loss": val_loss, **sample_quality(draw, target)}

    pending: list[tuple[int, float, float, dict]] = []  # per-step scalars awaiting one host sync
    bar = tqdm(total=t.steps, initial=step, desc=f"train {cfg.head_name}", disable=not progress,
               dynamic_ncols=True, mininterval=progress_interval())
    t_last, n_last = time.perf_counter(), step
    model.train()
    stop = StopRequest().install()
    try:
        while step < t.steps:
            lr = lr_at(step, t.steps, t.warmup_steps, t.lr, t.min_lr)
            momentum = ema_at(step, t.steps, t.ema_start, t.ema_end)
            for group in opt.param_groups:
                group["lr"] = lr
            step_seed = (cfg.seed * 1_000_003 + step) * 2
            gen.manual_seed(step_seed)
            torch.manual_seed(step_seed + 1)
            x, masks = make_batch(images, stream.indices(step), cfg, stats, sampler, gen)
            loss, diag, context, cond, grad_norm, dropped = training_step(forward, model, opt, x, masks, momentum,
                                                                          t.grad_clip, skip_nonfinite=skip)
            step += 1
            scalars = {"loss": loss.detach(), "grad_norm": grad_norm, **diag}
            if dropped:
                skipped.append(step)
                bar.write(f"step {step}: non-finite {', '.join(_nonfinite(scalars))}; step skipped "
                          "(train.nonfinite: skip)")
                if skipped[-MAX_CONSECUTIVE_SKIPS:] == list(range(step - MAX_CONSECUTIVE_SKIPS + 1, step + 1)):
                    raise NonFiniteLoss(f"{MAX_CONSECUTIVE_SKIPS} steps in a row were non-finite (up to step {step}); "
                                        "lower train.lr or check the data")
            else:
                pending.append((step, lr, momentum, scalars))

            if not dropped and (step % t.log_every == 0 or step == t.steps):
                values = flush()
                curve.append({"step": step, "lr": lr, **values})
                flat = context.reshape(-1, context.shape[-1]).float()
                writer.add_scalar("embed/std", flat.std(0).mean().item(), step)
                writer.add_scalar("embed/effective_rank", effective_rank(flat), step)
                if hasattr(model.head, "histograms"):  # e.g. the MDN's sigma and mixture weights
                    for name, hist in model.head.histograms(cond).items():
                        writer.add_histogram(f"head/{name}", hist.float().cpu(), step)
                now = time.perf_counter()
                rate = (step - n_last) * t.batch_size / max(now - t_last, 1e-9)
                t_last, n_last = now, step
                writer.add_scalar("train/images_per_s", rate, step)
                bar.set_postfix(loss=f"{values['loss']:.4f}", img_s=f"{rate:.0f}", refresh=False)
            if t.eval_every and (step % t.eval_every == 0 or step == t.steps):
                top1, feature_std = evaluate_knn()
                held_out = evaluate_held_out()
                history.append({"step": step, "knn_top1": top1, "feature_std": feature_std, **held_out})
                check_collapse()
                writer.add_scalar("val/knn_top1", top1, step)
                for name, value in held_out.items():
                    writer.add_scalar(f"val/{name.removeprefix('val_')}", value, step)
                bar.write(f"step {step}: val kNN top-1 {top1:.4f}")
            if step % t.ckpt_every == 0 and step < t.steps:
                flush()  # never save weights that a non-finite step has already spoilt
                checkpoint.save(resume_path, state_dict())
            bar.update(1)
            if stop.requested:  # at a step boundary: weights, logs and curves agree
                flush()
                checkpoint.save(resume_path, state_dict())
                bar.write(f"interrupted: saved step {step} to {resume_path}; rerun the same command to resume")
                raise KeyboardInterrupt
    finally:
        stop.restore()
        bar.close()
        writer.close()

    checkpoint.save(final_path, state_dict())  # the loop flushed at the last step
    write_curves(out_dir, curve, history)
    resume_path.unlink(missing_ok=True)
    return {"step": step, "resumed": start_state is not None, "history": history}


class StopRequest:
    """Ctrl-C (SIGINT) and SIGTERM (schedulers, `kill`) ask the training loop to stop at the end of
    the current step, where it saves a checkpoint whose weights, curves and logs agree; a second
    signal stops at once (the last periodic checkpoint remains)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._previous: dict = {}

    def install(self) -> "StopRequest":
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


def make_optimizer(model: JEPA, weight_decay: float, lr: float, device: torch.device) -> torch.optim.AdamW:
    """AdamW, fused into one kernel on CUDA, multi-tensor (foreach) elsewhere."""
    fused = device.type == "cuda"
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95),
                             fused=fused, foreach=None if fused else True)


def make_batch(images: torch.Tensor, idx: torch.Tensor, cfg: Config, stats: dict,
               sampler: MultiBlockMaskSampler, gen: torch.Generator):
    """One training batch from the uint8 dataset on the device: batched crops/flips there, masks as
    index tensors. Random parameters come from the CPU generator `gen` (same on any device)."""
    device = images.device
    crops = crop_params(len(idx), cfg.augment.crop_scale, cfg.augment.crop_ratio, cfg.augment.hflip, gen)
    masks = sampler(len(idx), gen)
    if device.type == "cuda":
        masks, crops, idx = Masks(*(m.pin_memory() for m in masks)), crops.pin_memory(), idx.pin_memory()
    masks = masks.to(device, non_blocking=True)
    x = apply_crops(images[idx.to(device, non_blocking=True)], crops, cfg.data.image_size,
                    stats["mean"], stats["std"])
    return x, masks


def training_step(forward, model: JEPA, opt, x: torch.Tensor, masks: Masks, momentum: float, grad_clip: float,
                  skip_nonfinite: bool = False):
    """Forward (through `forward`: the model or its compiled version), backward, clip, AdamW, EMA.
    Returns loss, diagnostics, context tokens, cond and grad norm as device tensors, and whether the
    step was dropped. With `skip_nonfinite`, a non-finite loss or gradient drops the step: weights,
    optimiser and teacher stay untouched (this costs one host sync per step)."""
    with autocast(x.device):
        loss, diag, context, cond = forward(x, masks)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if skip_nonfinite and not bool(torch.isfinite(loss.detach()) & torch.isfinite(grad_norm)):
        opt.zero_grad(set_to_none=True)
        return loss, diag, context, cond, grad_norm, True
    opt.step()
    model.update_teacher(momentum)
    return loss, diag, context, cond, grad_norm, False


def write_curves(out_dir: Path, curve: list[dict], history: list[dict]) -> None:
    """train_curve.csv (every logged step's scalars) and knn_curve.csv (val kNN), for `dvc plots`."""
    for name, rows, first in (("train_curve.csv", curve, ["step", "lr", "loss"]),
                              ("knn_curve.csv", history, ["step", "knn_top1"])):
        columns = first + sorted({k for r in rows for k in r} - set(first))
        with atomic_path(out_dir / name) as tmp, open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)


def _flush(writer, pending) -> tuple[dict[str, float], tuple[int, list[str]] | None]:
    """Write buffered per-step scalars with a single device→host copy. Returns the last step's values
    and, if any value is non-finite, (the first such step, the names of its non-finite terms)."""
    keys = list(pending[-1][3])
    stacked = torch.stack([torch.stack([s[3][k].float() for k in keys]) for s in pending]).cpu().numpy()
    finite = np.isfinite(stacked)
    if not finite.all():
        i = int(np.argmin(finite.all(axis=1)))
        return {}, (pending[i][0], [k for k, ok in zip(keys, finite[i]) if not ok])
    for (step, lr, momentum, _), row in zip(pending, stacked):
        writer.add_scalar("train/lr", lr, step)
        writer.add_scalar("train/ema_momentum", momentum, step)
        for k, v in zip(keys, row):
            writer.add_scalar(f"train/{k}", float(v), step)
    return {k: float(v) for k, v in zip(keys, stacked[-1])}, None


def _nonfinite(scalars: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in scalars.items() if not torch.isfinite(v.float()).all()]


def _resumable(resume_path: Path, final_path: Path, cfg: Config, fresh: bool) -> dict | None:
    """The state to continue from: an interrupted run's resume.pt, or a finished checkpoint.pt, of this config."""
    if fresh:
        return None
    for path in (resume_path, final_path):
        if path.is_file():
            state = checkpoint.load(path)
            if state.get("config") == cfg.to_dict():
                return state
            tqdm.write(f"{path} was written with other params; starting afresh")
    return None
