"""Training-step throughput, FLOP/s and model FLOP utilisation, against a naive reference step.

    .venv/bin/python benchmarks/train_step.py                                  # everything (~10 min on 2 cores)
    .venv/bin/python benchmarks/train_step.py --sizes paper --batches 128 --heads deterministic
    .venv/bin/python benchmarks/train_step.py --compile --out logs/train_step.json

For each model size (params.yaml's, and the paper's 64 px / patch 8 / 384 x 10 ViT) and
batch size, every head's real training step (the one `vjepa train` runs: `make_batch` +
`training_step`, uint8 images to AdamW and EMA) is timed; its FLOPs are counted with
`FlopCounterMode` over the same steps, and divided by the machine's square-matmul peak
measured in the same run (fp32 on CPU, bf16 on CUDA) to give the model FLOP utilisation.

The naive reference step computes the same loss the plain way: per-image augmentation,
attention written out (matmul, softmax, matmul), the predictor run once per target block
with the context repeated (I-JEPA's predictor), masks applied block by block in Python
loops, AdamW without foreach/fused kernels and a per-parameter EMA loop. Its loss is
checked against the real model run with `predictor_pass: per_block` before timing.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from common import ALL_HEADS, ROOT, config, peak_matmul_flops, seconds_per_call, sized_params, write_json

from vjepa.core.runtime import autocast, configure, pick_device
from vjepa.data.augment import render_views, view_params
from vjepa.model.jepa import JEPA, param_groups
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.model.vit import gather_tokens
from vjepa.training.batch import Batch, BatchStream, make_batch
from vjepa.training.train import make_optimizer, training_step

STATS = {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
GRAD_CLIP, MOMENTUM = 3.0, 0.99


class Bench:
    """A model, its optimiser and a stream of batches from random uint8 images; step(i) is deterministic in i."""

    def __init__(self, cfg, batch: int, device: torch.device, compile: bool = False):
        torch.manual_seed(0)
        self.cfg, self.device = cfg, device
        self.model = JEPA(cfg).to(device).train()
        self.opt = make_optimizer(self.model, 0.05, 1e-4, device)
        self.forward = torch.compile(self.model, dynamic=True) if compile else self.model
        size = cfg.data.image_size
        n = 4 * batch
        self.images = torch.randint(
            0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
        ).to(device)
        self.stream = BatchStream(n, batch, seed=0)
        self.sampler = MultiBlockMaskSampler.from_config(cfg.mask, self.model.encoder.grid)
        self.gen = torch.Generator()

    def batch(self, i: int):
        self.gen.manual_seed(i)
        return make_batch(self.images, self.stream.indices(i), self.cfg, STATS, self.sampler, self.gen)

    def step(self, i: int):
        return training_step(self.forward, self.model, self.opt, self.batch(i), MOMENTUM, GRAD_CLIP)

    # ----- the naive reference, on the same weights -----

    def naive_batch(self, i: int) -> Batch:
        """Same views and masks as batch(i), one view of one image at a time."""
        self.gen.manual_seed(i)
        idx, a, t = self.stream.indices(i), self.cfg.augment, self.cfg.trunk
        params = view_params(len(idx) * t.global_views, a, a.crop_scale, self.gen)
        masks = self.sampler(len(idx) * t.global_views, self.gen).to(self.device)
        local = view_params(len(idx) * t.local_views, a, t.local_crop_scale, self.gen) if t.local_views else None

        def render(rows, size):
            images = idx.repeat(len(rows) // len(idx)).tolist()
            return torch.cat(
                [
                    render_views(self.images[j : j + 1], rows[k : k + 1], size, STATS["mean"], STATS["std"])
                    for k, j in enumerate(images)
                ]
            )

        return Batch(
            render(params, self.cfg.data.image_size), masks, render(local, t.local_size) if local is not None else None
        )

    def naive_loss(self, batch: Batch):
        m, x, masks, local = self.model, batch.views, batch.masks, batch.local
        if m.target_view != "own":
            raise NotImplementedError("the naive reference predicts each view's own teacher tokens only")
        with torch.no_grad():
            h = naive_encode(m.teacher, x)
            h = F.layer_norm(h, h.shape[-1:])
            target = torch.cat([gather_tokens(h, masks.targets[:, j]) for j in range(masks.targets.shape[1])], 1)
        z = naive_encode(m.encoder, x, masks.context)
        cond = naive_predict(m.predictor, z, masks.context, masks.targets)
        loss, _ = m.head.loss(cond, target)
        if m.cross_view_on:
            views = list(z.mean(dim=1).chunk(m.views))
            if local is not None:
                views += list(naive_encode(m.encoder, local).mean(dim=1).chunk(len(local) // len(views[0])))
            loss = loss + m.cross_view(torch.stack(views))[0]
        return loss

    def naive_step(self, i: int, opt):
        batch = self.naive_batch(i)
        with autocast(self.device):
            loss = self.naive_loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), GRAD_CLIP, foreach=False)
        opt.step()
        with torch.no_grad():
            for t, s in zip(self.model.teacher.parameters(), self.model.encoder.parameters()):
                t.mul_(MOMENTUM).add_(s, alpha=1 - MOMENTUM)
        return loss


def naive_block(blk, x):
    b, n, d = x.shape
    nh = blk.attn.num_heads
    qkv = blk.attn.qkv(blk.norm1(x)).view(b, n, 3, nh, d // nh).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // nh), dim=-1)
    x = x + blk.attn.proj((w @ v).transpose(1, 2).reshape(b, n, d))
    return x + blk.mlp(blk.norm2(x))


def naive_encode(enc, images, keep=None):
    x = enc.patch_embed(images)
    x = x.flatten(2).transpose(1, 2) + enc.positions(x.shape[-1])
    if keep is not None:
        x = gather_tokens(x, keep)
    for blk in enc.blocks:
        x = naive_block(blk, x)
    return enc.norm(x)


def naive_predict(pred, z, ctx_idx, tgt_idx):
    """I-JEPA's predictor: one pass per target block, the context repeated in each."""
    b, m, nt = tgt_idx.shape
    pos = pred.pos_embed.expand(b, -1, -1)
    out = []
    for j in range(m):
        ctx = pred.embed(z) + gather_tokens(pos, ctx_idx)
        queries = pred.mask_token + gather_tokens(pos, tgt_idx[:, j])
        x = torch.cat([ctx, queries], dim=1)
        for blk in pred.blocks:
            x = naive_block(blk, x)
        out.append(pred.norm(x[:, z.shape[1] :]))
    return torch.cat(out, dim=1)


def check_naive(params, bench: Bench, head: str) -> float:
    """|naive loss - real loss| with the real model's per-block predictor, same weights and batch."""
    per_block = JEPA(config(params, head, model__predictor_pass="per_block")).to(bench.device)
    per_block.load_state_dict(bench.model.state_dict())
    batch = bench.batch(0)
    with torch.no_grad(), autocast(bench.device):
        torch.manual_seed(5)
        real = per_block(*batch)[0].float()
        torch.manual_seed(5)
        naive = bench.naive_loss(bench.naive_batch(0)).float()
    return abs(real - naive).item() / max(abs(real).item(), 1e-12)


def count_flops(bench: Bench, steps: range) -> float:
    """FLOPs per step (forward + backward), averaged over the given steps."""
    with FlopCounterMode(display=False) as counter:
        for i in steps:
            bench.step(i)
    return counter.get_total_flops() / len(steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default=str(ROOT / "params.yaml"))
    p.add_argument("--sizes", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    p.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    p.add_argument("--heads", nargs="+", default=ALL_HEADS, choices=ALL_HEADS)
    p.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    p.add_argument(
        "--naive-heads",
        nargs="*",
        default=["deterministic"],
        choices=ALL_HEADS,
        help="heads whose naive reference step is timed too",
    )
    p.add_argument("--compile", action="store_true", help="also time the deterministic head under torch.compile")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args()

    device = pick_device("auto")
    configure(device)
    results = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": []}
    print(
        f"device {device}, {results['threads']} threads; peak = best square matmul "
        f"({'bf16' if device.type == 'cuda' else 'fp32'})"
    )
    for size in args.sizes:
        params = sized_params(args.params, size)
        for batch in args.batches:
            peak = peak_matmul_flops(device)
            rows = {}
            steps = range(1, 1 + args.steps)
            for head in args.heads:
                bench = Bench(config(params, head), batch, device)
                flops = count_flops(bench, range(100, 100 + args.steps))
                it = iter(steps)  # each timing walks the same steps
                sec = seconds_per_call(lambda: bench.step(next(it)), device, repeats=args.steps - 1)
                rows[head] = {
                    "step_ms": 1e3 * sec,
                    "images_per_s": batch / sec,
                    "gflop_per_step": flops / 1e9,
                    "gflops": flops / sec / 1e9,
                }
                if head in args.naive_heads:
                    rows[head]["naive_relative_loss_gap"] = check_naive(params, bench, head)
                    opt = torch.optim.AdamW(param_groups(bench.model, 0.05), lr=1e-4, foreach=False, fused=False)
                    it = iter(steps)
                    nsec = seconds_per_call(lambda: bench.naive_step(next(it), opt), device, repeats=args.steps - 1)
                    rows[head]["naive_step_ms"] = 1e3 * nsec
                    rows[head]["speedup_vs_naive"] = nsec / sec
                    with FlopCounterMode(display=False) as counter:
                        bench.naive_step(100, opt)
                    rows[head]["naive_gflop_per_step"] = counter.get_total_flops() / 1e9
                if args.compile and head == "deterministic":
                    cbench = Bench(config(params, head), batch, device, compile=True)
                    t0 = time.perf_counter()
                    for i in range(3):  # compile, then the recompiles for other mask shapes
                        cbench.step(i)
                    rows[head]["compile_s"] = time.perf_counter() - t0
                    it = iter(steps)
                    csec = seconds_per_call(lambda: cbench.step(next(it) + 10), device, repeats=args.steps, warmup=0)
                    rows[head]["compiled_step_ms"] = 1e3 * csec
                    rows[head]["compiled_speedup"] = sec / csec
                print(f"  {size} b{batch} {head:14s} {rows[head]['step_ms']:8.1f} ms/step", flush=True)
            peak = max(peak, peak_matmul_flops(device))
            for r in rows.values():
                r["mfu"] = r["gflops"] * 1e9 / peak
            results["runs"].append({"size": size, "batch": batch, "peak_gflops": peak / 1e9, "heads": rows})
            print_table(size, batch, peak, rows)
    write_json(args.out, results)


def print_table(size, batch, peak, rows) -> None:
    print(f"\n{size} model, batch {batch}, measured peak {peak / 1e9:.1f} GFLOP/s")
    print(
        f"{'head':14s} {'ms/step':>8s} {'img/s':>8s} {'GFLOP':>7s} {'GFLOP/s':>8s} {'MFU':>6s} "
        f"{'naive ms':>9s} {'speedup':>8s} {'compiled':>9s}"
    )
    for head, r in rows.items():
        naive = f"{r['naive_step_ms']:9.1f} {r['speedup_vs_naive']:7.2f}x" if "naive_step_ms" in r else " " * 18
        comp = f"{r['compiled_step_ms']:8.1f}" if "compiled_step_ms" in r else ""
        print(
            f"{head:14s} {r['step_ms']:8.1f} {r['images_per_s']:8.1f} {r['gflop_per_step']:7.2f} "
            f"{r['gflops']:8.1f} {r['mfu']:6.1%} {naive} {comp}"
        )
        if "naive_relative_loss_gap" in r:
            print(
                f"{'':14s} naive loss vs real (per-block predictor): relative gap {r['naive_relative_loss_gap']:.1e}; "
                f"naive FLOPs {r['naive_gflop_per_step']:.2f} G "
                f"({r['naive_gflop_per_step'] / r['gflop_per_step']:.2f}x)"
            )
    print(flush=True)


if __name__ == "__main__":
    main()
