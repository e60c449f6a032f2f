"""The code is linted and formatted by ruff, configured in pyproject.toml (`ruff check .`, `ruff format .`)."""

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def ruff() -> str:
    found = Path(sys.executable).parent / "ruff"
    path = str(found) if found.exists() else shutil.which("ruff")
    assert path, "ruff is not installed: pip install -e '.[test]' installs it"
    return path


def test_the_linter_passes():
    args = [ruff(), "check", "--output-format", "concise", "."]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, "ruff check found problems (ruff check --fix . fixes many):\n" + done.stdout[-3000:]


def test_the_code_is_formatted():
    done = subprocess.run([ruff(), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, "files not formatted (run ruff format .):\n" + done.stdout[-3000:]
