"""Outputs appear whole or not at all, even when the writing process is killed."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from vjepa.core.io import atomic_path, write_json, write_npz

from conftest import ROOT


def test_failed_write_leaves_the_old_file_and_no_leftovers(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"top1": 0.5})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text('{"top1": 0.')  # half-way through
            raise RuntimeError("killed")
    assert target.read_text().startswith('{\n  "top1": 0.5') and list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("writer", ["npz", "json"])
def test_sigkill_during_a_write_never_leaves_a_truncated_output(tmp_path, writer):
    """A real process killed in the middle of writing: the final path does not exist."""
    target = tmp_path / f"out.{writer}"
    code = f"""
import os, signal, numpy as np
from vjepa.core import io
real = io.os.replace
def die(*a):  # the data is on disk, the rename has not happened
    os.kill(os.getpid(), signal.SIGKILL)
io.os.replace = die
if {writer!r} == "npz":
    io.write_npz({str(target)!r}, x=np.zeros((512, 512)))
else:
    io.write_json({str(target)!r}, {{"a": 1}})
"""
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir()]
    assert all(n.startswith(f".{target.name}.") and ".tmp" in n for n in leftovers)  # hidden, ignored by Git/DVC
    write_npz(tmp_path / "ok.npz", x=np.ones(3))
    assert np.load(tmp_path / "ok.npz")["x"].sum() == 3
