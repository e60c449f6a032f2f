"""The library versions recorded with every result, read without importing the libraries (importing
PyTorch or scikit-learn takes seconds, which the report and summary stages would otherwise pay for
a version string)."""

from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version

# the key in the record, the module's import name, its distribution's name
LIBRARIES = [("torch", "torch", "torch"), ("numpy", "numpy", "numpy"), ("sklearn", "sklearn", "scikit-learn")]


def _version(module: str, distribution: str) -> str:
    if module in sys.modules:  # the version this process runs
        return sys.modules[module].__version__
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def versions() -> dict[str, str]:
    from vjepa import __version__

    return {
        "vjepa": __version__,
        **{key: _version(module, dist) for key, module, dist in LIBRARIES},
        "python": platform.python_version(),
    }
