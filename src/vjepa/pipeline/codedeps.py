"""The package files a `vjepa` command runs: the closure of its imports, read from the source.

Neither Snakemake nor DVC follows Python imports, so each stage declares the files it runs. They
are computed here, not typed: starting from `cli.py` (its module-level imports, its helpers and
the command's own `cmd_*` function), every `import` anywhere in a module is followed, inside
functions too (lazy imports run when the command does). Two registries import by name at run
time and are followed for the one entry a stage uses: `vjepa.model.heads` (the stage's head) and
`vjepa.report.figures` (the stage's figure). Files a module reads beside its code are in `DATA_FILES`.

    closure("train", head="mdn") -> ["src/vjepa/__init__.py", "src/vjepa/data/augment.py", ...]

`tests/unit/pipeline/test_codedeps.py` checks the closure against the modules a command really loads.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = "vjepa"
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SOURCE_PREFIX = "src/vjepa"  # where the package lives in the project, as the pipeline names files

# package -> which selector picks the one submodule it imports by name at run time
REGISTRIES = {"vjepa.model.heads": "head", "vjepa.report.figures": "figure"}
# module -> files it reads from the package beside its code
DATA_FILES = {"vjepa.core.config": ["core/schema.yaml"]}


def _module_file(name: str) -> Path | None:
    """The file of package module `name` (a .py file or a package's __init__.py), or None."""
    if name == PACKAGE:
        return PACKAGE_DIR / "__init__.py"
    rel = Path(*name.split(".")[1:])
    return next((f for f in (PACKAGE_DIR / f"{rel}.py", PACKAGE_DIR / rel / "__init__.py") if f.is_file()), None)


def _is_package(name: str) -> bool:
    f = _module_file(name)
    return f is not None and f.name == "__init__.py"


@cache
def _tree(name: str) -> ast.Module:
    return ast.parse(_module_file(name).read_text(), filename=str(_module_file(name)))


def _imports_in(nodes, module: str) -> set[str]:
    """Package modules imported by the statements in `nodes` (walked recursively) of `module`."""
    package = module if _is_package(module) else module.rpartition(".")[0]
    found = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                if base.split(".")[0] != PACKAGE:
                    continue
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names if _module_file(f"{base}.{a.name}")}
    return {m for m in found if _module_file(m)}


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def command_roots(command: str) -> set[str]:
    """Modules `vjepa COMMAND` imports directly: cli.py's module level, its helpers, its cmd_ function."""
    tree = _tree("vjepa.cli")
    func = f"cmd_{command.replace('-', '_')}"
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if func not in {d.name for d in defs}:
        raise KeyError(f"vjepa has no command '{command}' (no {func} in cli.py)")
    chosen = [n for n in tree.body if n not in defs] + [
        d for d in defs if d.name == func or not d.name.startswith("cmd_")
    ]
    return _imports_in(chosen, "vjepa.cli") - {"vjepa.cli"}


def modules(command: str, head: str | None = None, figure: str | None = None) -> set[str]:
    """Every package module `vjepa COMMAND` runs (dotted names)."""
    selected = {"head": head, "figure": figure}
    # cli.py's own imports are the command's roots (not all of them: other commands' imports are lazy)
    # (`python -m vjepa` runs __main__.py, which nothing imports)
    todo, seen = [PACKAGE, "vjepa.__main__", *command_roots(command)], {"vjepa.cli"}
    while todo:
        name = todo.pop()
        for m in _with_parents(name) - seen:
            seen.add(m)
            todo.extend(_imports_in([_tree(m)], m) - seen)
            if m in REGISTRIES and selected[REGISTRIES[m]]:
                todo.append(f"{m}.{selected[REGISTRIES[m]]}")
    return seen


def closure(command: str, head: str | None = None, figure: str | None = None) -> list[str]:
    """The files (project-relative, sorted) that `vjepa COMMAND` runs and reads from the package."""
    files = set()
    for m in modules(command, head, figure):
        f = _module_file(m)
        if f is None:
            raise KeyError(f"module {m} is imported but has no file under {PACKAGE_DIR}")
        files.add(f)
        files |= {PACKAGE_DIR / d for d in DATA_FILES.get(m, [])}
    return sorted(f"{SOURCE_PREFIX}/{f.relative_to(PACKAGE_DIR).as_posix()}" for f in files)
