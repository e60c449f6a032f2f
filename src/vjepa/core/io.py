"""File I/O shared by the stages: atomic output, content digests, and exclusive use of an output folder.

Outputs are written to a temporary file beside the target, then renamed, so a killed
stage never leaves a truncated file at the final path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vjepa.core.errors import VJepaError


def run_dir(results_dir: str | os.PathLike, head: str, seed: int) -> Path:
    """Where one training run (a head and a seed) keeps its checkpoint, curves, features and metrics."""
    return Path(results_dir) / "heads" / head / f"seed{seed}"


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextmanager
def exclusive_use(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Fail at once, naming the holder, if another process is using `folder` for `what`.

    An advisory lock (flock) on a file in the system's temp folder, named after the folder's
    absolute path (a lock file inside it would change what the pipeline tools hash). It is
    released when the process ends, however it ends.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    key = hashlib.sha1(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    lock = open(Path(tempfile.gettempdir()) / f"vjepa-{key}.lock", "a+")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise VJepaError(
                f"{folder} is in use: {holder} is running {what} there; wait for it to finish or stop it, then rerun"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"process {os.getpid()}")
        lock.flush()
        yield
    finally:
        lock.close()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    # np.savez appends ".npz" to names without it, so the temporary name keeps the suffix.
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    """Hex digest of a file's content (e.g. "md5", as DVC records it, or "sha256"), read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
