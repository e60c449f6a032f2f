"""Device set-up: CPU memory reuse, bf16 only on CUDA, explicit device requests."""

import platform
import sys

import pytest
import torch

from vjepa.core.errors import ConfigError
from vjepa.core.runtime import autocast, keep_freed_memory, pick_device


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_keeps_freed_memory():
    assert keep_freed_memory() is True


def test_no_autocast_on_cpu():
    with autocast(torch.device("cpu")):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_cuda_is_refused():
    with pytest.raises(ConfigError, match="train.device = 'cuda'"):
        pick_device("cuda")
