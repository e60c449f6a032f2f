"""A scratch copy of the project for tests that run the pipeline's tools (Snakemake, DVC, the
scripts) in a fresh git repository, and the way they run commands there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]  # the project
BIN = Path(sys.executable).parent
COPIED = [
    "Snakefile",
    "rules",
    "dvc.yaml",
    "src",
    "profiles",
    "envs",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "report/vjepa.tex",
    "report/.gitignore",
    "benchmarks/results",
    "results/gpu/README.md",
    "results/studies",
]

# On the tests that run the tools; the profile tests below are plain Python and run without them.
needs_tools = pytest.mark.skipif(
    not (BIN / "snakemake").exists() or not (BIN / "dvc").exists(),
    reason="snakemake and dvc are installed by scripts/setup.sh",
)


def run(args, cwd, check=True, env=None, path=()) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": os.pathsep.join([*map(str, path), str(BIN), os.environ["PATH"]]),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path(cwd) / "src"),
        **(env or {}),
    }
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def project_copy(dest: Path, profile: str | None = "profiles/smoke.yaml") -> Path:
    """The pipeline's files in a fresh git repository, with `profile` as its params.yaml."""
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    shutil.copy2(ROOT / (profile or "params.yaml"), dest / "params.yaml")
    run([sys.executable, "-m", "vjepa", "dvc-yaml"], dest)  # for this params file's heads
    run(["git", "init", "-q"], dest)
    commit(dest, "pipeline")
    return dest


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], repo)
