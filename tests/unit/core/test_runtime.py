"""Device set-up: CPU memory reuse, bf16 only on CUDA, explicit device requests, thread pools."""

import platform
import sys

import pytest
import torch

from vjepa.core.errors import ConfigError
from vjepa.core.runtime import autocast, keep_freed_memory, pick_device

from project import ROOT


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


def test_threads_option_bounds_every_thread_pool_also_those_loaded_later(tmp_path):
    """`--threads 1` holds PyTorch, NumPy's BLAS (loaded before the option is read) and SciPy's and
    scikit-learn's pools (loaded after) to one thread: a pool left at every core spins against the
    pipeline's other jobs."""
    import json
    import subprocess

    code = (
        "import json, sys; from vjepa.cli import main\n"
        "assert main(['check-params', '--threads', '1']) == 0\n"
        "import torch, scipy.linalg, sklearn.mixture; from threadpoolctl import threadpool_info\n"
        "pools = [(i['internal_api'], i['num_threads']) for i in threadpool_info()]\n"
        "print(json.dumps([torch.get_num_threads(), pools]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    torch_threads, pools = json.loads(done.stdout.splitlines()[-1])
    assert torch_threads == 1 and len(pools) >= 2, pools
    assert all(n == 1 for _, n in pools), pools


def test_versions_are_those_of_the_libraries_and_need_not_import_them():
    """The report and summary stages record versions without paying seconds to import PyTorch or
    scikit-learn; in a process that has imported them, the versions are the running ones."""
    import json
    import subprocess

    import numpy
    import sklearn

    from vjepa import __version__
    from vjepa.core.versions import versions

    assert versions() == {
        "vjepa": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
    }
    code = (
        "import json, sys; from vjepa.core.versions import versions\n"
        "v = versions(); print(json.dumps([v, sorted({'torch', 'sklearn'} & set(sys.modules))]))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    fresh, imported = json.loads(done.stdout)
    assert imported == [] and fresh == versions()
