"""The package's folders are its layers: each subpackage imports only the layers below it, there are no
import cycles, and docs/architecture.md's folder table lists exactly the folders in the tree."""

from __future__ import annotations

import re

from vjepa.pipeline import codedeps

from conftest import ROOT

PACKAGE = ROOT / "src" / "vjepa"
# bottom to top; a layer may import itself and any layer listed before it (cli may import all)
LAYERS = ["core", "data", "model", "eval", "training", "report", "pipeline", "cli"]
# data and model are siblings at the bottom: neither imports the other
SIBLINGS = {("data", "model"), ("model", "data")}


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__init__", "__main__"):
        return None  # the package itself (its version) sits beneath everything
    return parts[1]


def package_modules() -> list[str]:
    names = []
    for f in sorted(PACKAGE.rglob("*.py")):
        rel = f.relative_to(PACKAGE).with_suffix("").parts
        names.append(".".join(["vjepa", *(rel[:-1] if rel[-1] == "__init__" else rel)]))
    return names


def imports(module: str) -> set[str]:
    return codedeps._imports_in([codedeps._tree(module)], module) - {module}


def test_every_module_lives_in_a_layer():
    loose = [m for m in package_modules() if layer_of(m) not in (*LAYERS, None)]
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module in package_modules():
        here = layer_of(module)
        if here is None:
            continue
        for dep in imports(module):
            there = layer_of(dep)
            if there is None or there == here:
                continue
            if LAYERS.index(there) > LAYERS.index(here) or (here, there) in SIBLINGS:
                wrong.append(f"{module} imports {dep}")
    assert not wrong, "imports from a higher layer (or between data and model):\n" + "\n".join(wrong)


def test_no_import_cycles_between_modules():
    graph = {m: imports(m) for m in package_modules()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m, path):
        state[m] = 1
        for d in graph.get(m, ()):
            if d == m.rpartition(".")[0] or m == d.rpartition(".")[0]:
                continue  # a package and its own modules (its docstring-only __init__)
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, m, d]))
            if d in graph and not state.get(d):
                visit(d, [*path, m])
        state[m] = 2

    for m in graph:
        if not state.get(m):
            visit(m, [])


def test_the_architecture_docs_list_exactly_the_folders_of_the_tree():
    text = (ROOT / "docs" / "architecture.md").read_text()
    documented = set(re.findall(r"^\| `src/vjepa/([a-z_/]+)/` \|", text, flags=re.M))
    tree = {
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*") if p.is_dir() and (p / "__init__.py").is_file()
    }
    assert documented == tree, f"in the docs only: {documented - tree}; in the tree only: {tree - documented}"
