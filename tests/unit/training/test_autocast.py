"""Training under CUDA's bf16 autocast, emulated on the CPU: every head trains a few steps with finite
losses close to the fp32 losses of the same steps, and samples finite draws.

On CUDA, `vjepa.core.runtime.autocast` runs `training_step`'s forward under torch.autocast("cuda",
bfloat16): linears, matmuls, convolutions and attention in bf16, and the ops on CUDA's fp32 list in
float32 (bf16 inputs upcast, float32 outputs). CPU autocast has the same bf16 list but a shorter
fp32 list, which lacks most of CUDA's: left alone, those ops would run in bf16 here and never on CUDA.
So `cuda_fp32_ops` registers, for this module's run, an AutocastCPU kernel for each op of CUDA's
fp32 list (CUDA_FP32, from PyTorch's autocast_mode.cpp) that CPU autocast does not already run in
float32: acos, asin, cosh, erfinv, exp, expm1, log, log10, log2, log1p, reciprocal, rsqrt, sinh,
tan, pow (three overloads), softplus, layer_norm, native_layer_norm, group_norm, frobenius_norm,
nuclear_norm, cosine_similarity, dist, pdist, renorm, logsumexp, softmax, log_softmax, cumprod,
cumsum, linalg_vector_norm, linalg_matrix_norm, sum (two overloads) and norm (two overloads). The
kernel upcasts the op's bf16/fp16 tensor arguments to float32 and calls it with autocast off, as
CUDA's does. The losses on CUDA's list (mse_loss, nll_loss, kl_div, ...), prod and cdist are on
CPU autocast's fp32 list already and keep its kernels. Kernels at the autocast dispatch key catch
every call, from Python or from inside other ops (x.square() reaches pow, F.layer_norm reaches
layer_norm), and the heads' own `autocast(enabled=False)` regions still switch them off. Ops on
neither list (gelu, tanh, mean, var, ...) run in their inputs' dtype, as on CUDA.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils._pytree import tree_map

from vjepa.core.config import resolve
from vjepa.model.heads import HEADS as REGISTERED_HEADS
from vjepa.model.jepa import JEPA
from vjepa.model.masks import MultiBlockMaskSampler
from vjepa.training import train as train_module
from vjepa.training.batch import BatchStream, make_batch, seed_step
from vjepa.training.train import TrainingData, make_optimizer, training_step

from conftest import tiny

HEADS = list(REGISTERED_HEADS)
# CUDA autocast's fp32 list (PyTorch's autocast_mode.cpp: fp32, fp32_set_opt_dtype and fp32_append_dtype),
# the ops of it that exist here; the losses on it are on CPU autocast's fp32 list already.
CUDA_FP32 = [
    "acos",
    "asin",
    "cosh",
    "erfinv",
    "exp",
    "expm1",
    "log",
    "log10",
    "log2",
    "log1p",
    "reciprocal",
    "rsqrt",
    "sinh",
    "tan",
    "pow.Tensor_Scalar",
    "pow.Tensor_Tensor",
    "pow.Scalar",
    "softplus",
    "layer_norm",
    "native_layer_norm",
    "group_norm",
    "frobenius_norm.dim",
    "nuclear_norm",
    "cosine_similarity",
    "poisson_nll_loss",
    "cosine_embedding_loss",
    "nll_loss",
    "hinge_embedding_loss",
    "kl_div",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "mse_loss",
    "margin_ranking_loss",
    "soft_margin_loss",
    "triplet_margin_loss",
    "multi_margin_loss",
    "binary_cross_entropy_with_logits",
    "dist",
    "pdist",
    "cdist",
    "renorm",
    "logsumexp",
    "prod",
    "prod.dim_int",
    "softmax.int",
    "log_softmax.int",
    "cumprod",
    "cumsum",
    "linalg_vector_norm",
    "linalg_matrix_norm",
    "sum",
    "sum.dim_IntList",
    "norm.Scalar",
    "norm.ScalarOpt_dim",
]
STEPS = 5
LOSS_RTOL, LOSS_ATOL = 0.02, 0.005  # bf16 keeps 8 significant bits: a relative rounding of 2^-9 = 0.2 %


def _upcast(a):
    return a.float() if isinstance(a, torch.Tensor) and a.dtype in (torch.bfloat16, torch.float16) else a


def _fp32_kernel(op):
    def kernel(*args, **kwargs):
        with torch._C._ExcludeDispatchKeyGuard(torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)):
            return op(*tree_map(_upcast, args), **tree_map(_upcast, kwargs))

    return kernel


@pytest.fixture(scope="module")
def cuda_fp32_ops():
    """The ops of CUDA_FP32 that CPU autocast does not already upcast, upcast while the module runs."""
    lib = torch.library.Library("aten", "IMPL")
    added = []
    try:
        for name in CUDA_FP32:
            base, _, overload = name.partition(".")
            if torch._C._dispatch_has_kernel_for_dispatch_key(f"aten::{name}", "AutocastCPU"):
                continue  # CPU autocast's own fp32 kernel
            lib.impl(name, _fp32_kernel(getattr(getattr(torch.ops.aten, base), overload or "default")), "AutocastCPU")
            added.append(name)
        yield added
    finally:
        lib._destroy()


def cuda_like_autocast(device=None):
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_the_emulation_upcasts_cuda_s_fp32_ops_and_keeps_matmuls_in_bf16(cuda_fp32_ops):
    """Under the emulated autocast a linear gives bf16 and layer_norm, softmax, log_softmax, exp, log,
    pow (also through square), sum, logsumexp and norm give float32, as on CUDA."""
    assert {
        "layer_norm",
        "softmax.int",
        "log_softmax.int",
        "exp",
        "log",
        "pow.Tensor_Scalar",
        "sum",
        "logsumexp",
        "norm.ScalarOpt_dim",
    } <= set(cuda_fp32_ops)
    x, w = torch.randn(4, 8), torch.randn(8, 8)
    with cuda_like_autocast():
        h = F.linear(x, w)
        assert h.dtype == torch.bfloat16 and F.gelu(h).dtype == torch.bfloat16
        for y in (
            F.layer_norm(h, (8,)),
            h.softmax(-1),
            F.log_softmax(h, -1),
            h.exp(),
            h.abs().log(),
            h**2,
            h.square(),
            h.sum(),
            torch.logsumexp(h, -1),
            h.norm(dim=-1),
        ):
            assert y.dtype == torch.float32
        with torch.autocast("cpu", enabled=False):  # a head's float32 region
            assert F.linear(x, w).dtype == torch.float32


def train(cfg, images, stats, steps: int) -> tuple[JEPA, list[tuple[float, float]]]:
    """`steps` real training steps (`training_step`, as `vjepa train` runs them) from seed 0, and each
    step's (loss, the head's part of it)."""
    torch.manual_seed(0)
    model = JEPA(cfg)
    opt = make_optimizer(model, cfg.train.weight_decay, cfg.train.lr, torch.device("cpu"))
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    stream, gen = BatchStream(len(images), cfg.train.batch_size, cfg.seed), torch.Generator()
    losses = []
    for step in range(steps):
        seed_step(gen, cfg.seed, step)
        batch = make_batch(images, stream.indices(step), cfg, stats, sampler, gen)
        out = training_step(model, model, opt, batch, 0.99, cfg.train.grad_clip)
        losses.append((out.loss.float().item(), out.diag["head_loss"].float().item()))
    return model, losses


@pytest.mark.slow
@pytest.mark.parametrize("head", HEADS)
def test_every_head_trains_and_samples_under_cuda_s_bf16_autocast(params, digits_dir, cuda_fp32_ops, monkeypatch, head):
    """Five steps under the emulated CUDA autocast give finite losses, each step's loss and the head's
    part of it within 2 % + 0.005 of the fp32 run's (measured: at most 0.6 % and 0.0015), not equal
    to them (bf16 did run); the trained head's draws under autocast are finite."""
    params = tiny(params)
    params["train"]["batch_size"] = 8  # 4 views each
    cfg = resolve(params, head)
    data = TrainingData.load(cfg, digits_dir)
    images = data.on(torch.device("cpu"))[0]
    _, fp32 = train(cfg, images, data.stats, STEPS)
    monkeypatch.setattr(train_module, "autocast", cuda_like_autocast)  # what training_step enters
    model, bf16 = train(cfg, images, data.stats, STEPS)
    assert all(math.isfinite(v) for step in bf16 for v in step), bf16
    for step, (ours, theirs) in enumerate(zip(bf16, fp32)):
        assert ours == pytest.approx(theirs, rel=LOSS_RTOL, abs=LOSS_ATOL), step
    assert bf16 != fp32
    model.eval()
    sampler = MultiBlockMaskSampler.from_config(cfg.mask, model.encoder.grid)
    batch = make_batch(images, torch.arange(4), cfg, data.stats, sampler, torch.Generator().manual_seed(1))
    with torch.no_grad(), cuda_like_autocast():
        cond, _ = model.conditioning(batch.views, batch.masks)
        draws = model.head.sample(cond, 2)
    assert draws.shape == (2, *cond.shape[:-1], cfg.model.embed_dim) and torch.isfinite(draws.float()).all()
